// The f16 matmul on subgroup matrices (runtime/webgpu/render-wgsl-subgroup-matrix.ts) where the
// adapter has them: first a check of its numbers on a product off every tile edge against f16
// operands multiplied on the CPU, then C = A·B at n³ (f16 operands, f16 output) on the device,
// forced to each of the adapter's f16 configs and to the backend's default variant, each timed as
// the median wall clock until the queue is done. Elsewhere it prints "no subgroup matrices on
// this adapter" and why. Used by bench/matmul.ts (--big).

import { f16round } from '../ops/f16.js';
import type { MatmulKernel } from '../ops/kernel-ir.js';
import { adapterIdentity, SUBGROUP_MATRIX_FEATURE } from '../runtime/webgpu/device.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import { f16Shapes, type SubgroupMatrixShape } from '../runtime/webgpu/render-wgsl-subgroup-matrix.js';
import { TuningStore, tuningKey, type KernelVariant } from '../runtime/webgpu/tuner.js';
import { emit, gflopsMetric, median, metricValue, progress, QUICK } from './harness.js';

const f16Matmul = (m: number, n: number, k: number, out: 'f16' | 'f32'): MatmulKernel => ({
  kind: 'matmul', name: `f16_matmul_${m}x${n}x${k}`, batch: [], m, n, k, epilogue: null,
  a: { buf: 0, offset: 0, batchStrides: [], rowStride: k, colStride: 1 },
  b: { buf: 1, offset: 0, batchStrides: [], rowStride: n, colStride: 1 },
  inputs: [{ dtype: 'f16', size: m * k }, { dtype: 'f16', size: k * n }],
  out: { dtype: out, shape: [m, n] },
});

/** A backend on `be`'s device whose kernels with `kernel`'s signature run in `variant` (null: its default). */
function forced(be: WebGpuBackend, kernel: MatmulKernel, variant: KernelVariant | null): WebGpuBackend {
  const tuning = new TuningStore(null);
  if (variant) tuning.set(adapterIdentity(be.gpu.info), tuningKey(kernel)!, { variant, ms: 0, timings: {} });
  return new WebGpuBackend(be.gpu, { tuning });
}

const label = (s: SubgroupMatrixShape) => `${s.M}x${s.N}x${s.K}_${s.result}acc`;

/** Largest |got - want| over |want| + 1, `got` from the device and `want` from f16 operands in f64. */
async function checkShape(be: WebGpuBackend, shape: SubgroupMatrixShape): Promise<number> {
  const [m, n, k] = [333, 201, 157];
  const kernel = f16Matmul(m, n, k, 'f32');
  const a = Float32Array.from({ length: m * k }, (_, i) => f16round(((i * 7919) % 61) / 61 - 0.5));
  const b = Float32Array.from({ length: k * n }, (_, i) => f16round(((i * 104729) % 53) / 53 - 0.5));
  const dev = forced(be, kernel, { kind: 'matmul', matmul: 'subgroup-matrix', shape });
  try {
    const ta = dev.upload(a, 'f16'), tb = dev.upload(b, 'f16'), to = dev.alloc('f32', m * n);
    dev.run(kernel, [ta, tb], to);
    const got = await dev.read(to);
    let worst = 0;
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < n; c++) {
        let s = 0;
        for (let q = 0; q < k; q++) s += a[r * k + q]! * b[q * n + c]!;
        worst = Math.max(worst, Math.abs(got[r * n + c]! - s) / (Math.abs(s) + 1));
      }
    }
    return worst;
  } finally {
    dev.dispose();
  }
}

/** Median ms of C = A·B in `variant` on `be`'s device, with the product left there. */
async function timeProduct(be: WebGpuBackend, kernel: MatmulKernel, variant: KernelVariant | null): Promise<{ ms: number; variant: string }> {
  const dev = forced(be, kernel, variant);
  try {
    const { m, n, k } = kernel;
    const data = (len: number) => Float32Array.from({ length: len }, (_, i) => ((i * 7919) % 13) / 13 - 0.5);
    const ta = dev.upload(data(m * k), 'f16'), tb = dev.upload(data(k * n), 'f16'), to = dev.alloc(kernel.out.dtype, m * n);
    const times: number[] = [];
    for (let i = 0; i < (QUICK ? 3 : 6); i++) {
      const t0 = performance.now();
      dev.run(kernel, [ta, tb], to);
      await dev.sync();
      if (i > 0) times.push(performance.now() - t0);
    }
    return { ms: median(times), variant: JSON.stringify(dev.variantOf(kernel)) };
  } finally {
    dev.dispose();
  }
}

/** The subgroup-matrix figures at n³ (or a line saying why there are none). */
export async function benchSubgroupMatrix(be: WebGpuBackend | null, n: number): Promise<void> {
  const metric = gflopsMetric(2 * n ** 3);
  const base = { bench: 'matmul', metric: metric.name, unit: metric.unit, peer: null, peer_value: null, ratio: null };
  const caseName = `f16_n${n}_on_device/webgpu_subgroup_matrix`;
  const shapes = be ? f16Shapes(be.gpu.subgroupMatrixConfigs) : [];
  if (!be || shapes.length === 0) {
    const why = !be
      ? 'no WebGPU adapter'
      : be.gpu.subgroupMatrixConfigs.length > 0
        ? `no subgroup matrices on this adapter for f16 operands (its configs: ${JSON.stringify(be.gpu.subgroupMatrixConfigs)})`
        : be.gpu.features.has(SUBGROUP_MATRIX_FEATURE)
          ? 'no subgroup matrices on this adapter (it lists no configs)'
          : `no subgroup matrices on this adapter (no '${SUBGROUP_MATRIX_FEATURE}'${be.gpu.features.has('shader-f16') ? '' : ", no 'shader-f16'"}; ` +
            'in Node, Dawn lists the feature only with RHEO_WEBGPU_UNSAFE_APIS=1)';
    progress(`matmul/${caseName}: ${why}`);
    emit({ ...base, case: caseName, value: null, note: why });
    return;
  }
  const kernel = f16Matmul(n, n, n, 'f16');
  for (const shape of shapes) {
    const err = await checkShape(be, shape);
    const ok = err <= (shape.result === 'f16' ? 2e-2 : 2e-3);
    progress(`matmul/${caseName} ${label(shape)}: 333x201x157 against the CPU, largest relative error ${err.toExponential(2)}${ok ? '' : ' (WRONG)'}`);
    const t = await timeProduct(be, kernel, { kind: 'matmul', matmul: 'subgroup-matrix', shape });
    emit({
      ...base, case: `${caseName}_${label(shape)}`, value: metricValue(metric, t.ms),
      note: `${be.gpu.info.description || be.gpu.info.device}; median of ${QUICK ? 2 : 5} runs; numbers checked: largest relative error ${err.toExponential(2)}${ok ? '' : ' (WRONG)'}`,
    });
  }
  const d = await timeProduct(be, kernel, null);
  emit({ ...base, case: `f16_n${n}_on_device/webgpu_default_variant`, value: metricValue(metric, d.ms), note: `the backend's default for this product: ${d.variant}` });
}
