// GFLOP/s of the WebGPU backend's matmul kernels (register-tiled and workgroup-tiled) on the
// adapter acquireWebGpu finds (llvmpipe on a machine without a GPU). Each timed run dispatches the
// kernel and reads the result back once; median after warm-up. JSON lines on stdout (no peer).
// Usage: npx tsx bench/webgpu-matmul-kernel.ts [--quick]

import type { MatmulKernel } from '../ops/kernel-ir.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import { acquireWebGpu, lastAcquireFailure } from '../runtime/webgpu/device.js';
import { QUICK, emit, measure, progress } from './harness.js';

interface Case {
  name: string;
  m: number;
  n: number;
  k: number;
  /** B stored [n, k] (the backward pass's x·Wᵀ) */
  bT?: boolean;
}

const cases: Case[] = [
  { name: '256x256x256', m: 256, n: 256, k: 256 },
  { name: '1024x1024x1024', m: 1024, n: 1024, k: 1024 },
  { name: 'fwd x·W1 128x784·784x256', m: 128, n: 256, k: 784 },
  { name: 'bwd dh·W1T 128x256·256x784', m: 128, n: 784, k: 256, bT: true },
];

function kernelOf(c: Case): MatmulKernel {
  return {
    kind: 'matmul', name: `bench_${c.m}x${c.n}x${c.k}`, batch: [], m: c.m, n: c.n, k: c.k, epilogue: null,
    a: { buf: 0, offset: 0, batchStrides: [], rowStride: c.k, colStride: 1 },
    b: { buf: 1, offset: 0, batchStrides: [], rowStride: c.bT ? 1 : c.n, colStride: c.bT ? c.k : 1 },
    inputs: [{ dtype: 'f32', size: c.m * c.k }, { dtype: 'f32', size: c.k * c.n }],
    out: { dtype: 'f32', shape: [c.m, c.n] },
  };
}

const gpu = await acquireWebGpu();
if (!gpu) {
  progress(`no WebGPU adapter: ${lastAcquireFailure}`);
  process.exit(0);
}
progress(`adapter: ${gpu.info.backend} ${gpu.info.device} ${gpu.info.description} (${gpu.info.featureLevel})`);

for (const variant of ['register', 'workgroup'] as const) {
  const be = new WebGpuBackend(gpu, { matmul: variant });
  for (const c of cases) {
    if (QUICK && c.name.startsWith('bwd')) continue;
    const kernel = kernelOf(c);
    const a = be.upload(Float32Array.from({ length: c.m * c.k }, () => Math.random() - 0.5));
    const b = be.upload(Float32Array.from({ length: c.k * c.n }, () => Math.random() - 0.5));
    const out = be.alloc('f32', c.m * c.n);
    await be.compile(kernel);
    const flop = 2 * c.m * c.n * c.k;
    const slow = flop > 1e9;
    const r = await measure(
      async () => {
        be.run(kernel, [a, b], out);
        await be.read(out);
      },
      QUICK || slow ? { warmup: 1, runs: 3, minTimeMs: 0, maxTimeMs: 15_000, minRuns: 3 } : {},
    );
    const gflops = flop / (r.medianMs * 1e6);
    progress(`${variant.padEnd(9)} ${c.name.padEnd(28)} ${gflops.toFixed(2).padStart(7)} GFLOP/s  (median ${r.medianMs.toFixed(1)} ms)`);
    emit({
      bench: 'webgpu-matmul-kernel', case: `${variant} ${c.name}`, metric: 'throughput', value: gflops,
      unit: 'GFLOP/s', peer: null, peer_value: null, ratio: null,
      note: `${gpu.info.device || gpu.info.description}; includes reading the result back`,
    });
    for (const t of [a, b, out]) be.release(t);
  }
  be.dispose();
}
gpu.destroy();
