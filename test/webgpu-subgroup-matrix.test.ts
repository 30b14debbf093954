// The f16 matmul on subgroup matrices (render-wgsl-subgroup-matrix.ts). No adapter here executes
// subgroup matrices, so what is checked is what can be: the WGSL it renders for random products
// (batches, transposed operands, edges off every tile, epilogues, f16 or f32 outputs) in several
// adapter configs compiles on Dawn's null backend with the feature on (compile-only: that backend
// runs nothing), acquireWebGpu asks for the feature where the adapter has it, the tuner offers the
// kernel only for f16 operands on a device with a fitting f16 config, and the tiling covers every
// output once with every k (emulated on the CPU from the plan).

import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { DType } from '../graphs/types.js';
import { ivar, type MatmulKernel } from '../ops/kernel-ir.js';
import { SUBGROUP_MATRIX_FEATURE, acquireWebGpu, type SubgroupMatrixConfig } from '../runtime/webgpu/device.js';
import {
  f16Shapes, planSubgroupMatrix, renderSubgroupMatrixMatmul, type SubgroupMatrixDevice, type SubgroupMatrixShape,
} from '../runtime/webgpu/render-wgsl-subgroup-matrix.js';
import { candidates, type VariantLimits } from '../runtime/webgpu/tuner.js';

interface MatmulCase {
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly aT: boolean;
  readonly bT: boolean;
  readonly bias: boolean;
  readonly out: DType;
  readonly operands: readonly [DType, DType];
}

function matmulKernel(c: MatmulCase): MatmulKernel {
  const { batch, m, n, k } = c;
  return {
    kind: 'matmul', name: 'mm', batch: batch > 1 ? [batch] : [], m, n, k,
    a: { buf: 0, offset: 0, batchStrides: batch > 1 ? [m * k] : [], rowStride: c.aT ? 1 : k, colStride: c.aT ? m : 1 },
    b: { buf: 1, offset: 0, batchStrides: batch > 1 ? [k * n] : [], rowStride: c.bT ? 1 : n, colStride: c.bT ? k : 1 },
    inputs: [{ dtype: c.operands[0], size: batch * m * k }, { dtype: c.operands[1], size: batch * k * n }, ...(c.bias ? [{ dtype: 'f32' as DType, size: n }] : [])],
    out: { dtype: c.out, shape: batch > 1 ? [batch, m, n] : [m, n] },
    epilogue: c.bias
      ? { k: 'unary', op: 'relu', a: { k: 'binary', op: 'add', a: { k: 'acc', dtype: 'f32' }, b: { k: 'load', buf: 2, at: ivar(batch > 1 ? 'i2' : 'i1'), dtype: 'f32' }, dtype: 'f32' }, dtype: 'f32' }
      : null,
  };
}

const f16Case = fc.record({
  batch: fc.constantFrom(1, 1, 3),
  m: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 60, max: 200 })),
  n: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 60, max: 200 })),
  k: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 60, max: 200 })),
  aT: fc.boolean(), bT: fc.boolean(), bias: fc.boolean(),
  out: fc.constantFrom<DType>('f16', 'f32'),
  operands: fc.constant<[DType, DType]>(['f16', 'f16']),
});

/** Shapes adapters list for f16 (Apple's 8x8x8, NVIDIA's and others' 16x16x16 and 16x8x16), accumulating in f32 or f16. */
const SHAPES: SubgroupMatrixShape[] = [
  { M: 8, N: 8, K: 8, result: 'f32' }, { M: 8, N: 8, K: 8, result: 'f16' },
  { M: 16, N: 16, K: 16, result: 'f32' }, { M: 16, N: 16, K: 16, result: 'f16' },
  { M: 16, N: 8, K: 16, result: 'f32' },
];

// Dawn's null backend with its unsafe APIs allowed lists the feature (with no configs)
let nullDevice: GPUDevice | null = null;
let nullLimits: SubgroupMatrixDevice | null = null;
let nullReason = '';

beforeAll(async () => {
  try {
    const mod = (await import('webgpu')) as unknown as { create(flags: string[]): GPU; globals: object };
    for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    const gpu = mod.create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
    const adapter = await gpu.requestAdapter({ featureLevel: 'core' });
    if (!adapter) throw new Error('no null adapter');
    const want = ['shader-f16', 'subgroups', SUBGROUP_MATRIX_FEATURE];
    const missing = want.filter((f) => !adapter.features.has(f));
    if (missing.length) throw new Error(`the null adapter lacks ${missing.join(', ')}`);
    const l = adapter.limits;
    nullDevice = await adapter.requestDevice({
      requiredFeatures: want as GPUFeatureName[],
      requiredLimits: { maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup, maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX, maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize },
    });
    const info = adapter.info as GPUAdapterInfo & { subgroupMaxSize?: number };
    nullLimits = {
      subgroupMaxSize: info.subgroupMaxSize ?? 0,
      maxInvocations: Math.min(nullDevice.limits.maxComputeInvocationsPerWorkgroup, nullDevice.limits.maxComputeWorkgroupSizeX),
      maxWorkgroupStorage: nullDevice.limits.maxComputeWorkgroupStorageSize,
    };
  } catch (e) {
    nullReason = (e as Error).message;
  }
});

/** Tint's verdict on `code`: its error and warning messages (module and pipeline), empty when clean. */
async function tintMessages(code: string): Promise<string[]> {
  const d = nullDevice!;
  d.pushErrorScope('validation');
  const module = d.createShaderModule({ code });
  d.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const err = await d.popErrorScope();
  const info = await module.getCompilationInfo();
  const msgs = info.messages.filter((m) => m.type !== 'info').map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`);
  return err ? [...msgs, err.message] : msgs;
}

describe('subgroup-matrix f16 matmul', () => {
  it('Dawn\'s null backend with unsafe APIs has the feature (else these compile-only checks could not run)', () => {
    expect(nullReason).toBe('');
    expect(nullLimits!.subgroupMaxSize).toBeGreaterThan(0);
  });

  it('compile-only: the rendered WGSL passes Tint on the null backend, in every config, for random products', async () => {
    const seen = new Set<string>();
    await fc.assert(fc.asyncProperty(f16Case, fc.constantFrom(...SHAPES), async (c, shape) => {
      const plan = planSubgroupMatrix(shape, nullLimits!);
      expect(plan, `no tiling of ${JSON.stringify(shape)} fits the null device`).not.toBeNull();
      const r = renderSubgroupMatrixMatmul(matmulKernel(c), shape, nullLimits!, 65535);
      expect(r.passes).toHaveLength(1);
      const code = r.passes[0]!.code;
      expect(code).toContain('subgroupMatrixMultiplyAccumulate(');
      expect(await tintMessages(code), code).toEqual([]);
      seen.add(JSON.stringify(shape));
    }), { numRuns: 25, examples: SHAPES.map((s) => [{ batch: 3, m: 77, n: 45, k: 70, aT: true, bT: false, bias: true, out: 'f16', operands: ['f16', 'f16'] }, s]) });
    expect(seen.size).toBe(SHAPES.length);
  }, 120_000);

  it('compile-only: the check is live (Tint rejects the kernel with one type broken)', async () => {
    const code = renderSubgroupMatrixMatmul(matmulKernel({ batch: 1, m: 40, n: 40, k: 40, aT: false, bT: false, bias: false, out: 'f32', operands: ['f16', 'f16'] }), SHAPES[2]!, nullLimits!, 65535).passes[0]!.code;
    expect(await tintMessages(code)).toEqual([]);
    const broken = code.replace('var<workgroup> tA: array<f16,', 'var<workgroup> tA: array<f32,');
    expect(broken).not.toBe(code);
    expect((await tintMessages(broken)).join('\n')).toMatch(/error/i);
  }, 60_000);

  it('acquireWebGpu asks for the feature where the adapter has it (null backend, RHEO_WEBGPU_UNSAFE_APIS=1)', async () => {
    const saved = { backend: process.env.RHEO_WEBGPU_BACKEND, unsafe: process.env.RHEO_WEBGPU_UNSAFE_APIS };
    process.env.RHEO_WEBGPU_BACKEND = 'null';
    process.env.RHEO_WEBGPU_UNSAFE_APIS = '1';
    try {
      const gpu = await acquireWebGpu();
      expect(gpu, 'no null device').not.toBeNull();
      expect(gpu!.device.features.has(SUBGROUP_MATRIX_FEATURE)).toBe(true);
      expect(gpu!.subgroupMaxSize).toBeGreaterThan(0);
      // the null adapter lists no configs, so there is nothing to multiply in
      expect(gpu!.subgroupMatrixConfigs).toEqual([]);
      gpu!.destroy();
    } finally {
      for (const [k, v] of [['RHEO_WEBGPU_BACKEND', saved.backend], ['RHEO_WEBGPU_UNSAFE_APIS', saved.unsafe]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }, 60_000);

  it('the tuner offers it only for f16 operands on a device with a fitting f16 config', () => {
    const dtype = fc.constantFrom<DType>('f16', 'f32');
    const config = fc.record({
      componentType: fc.constantFrom('f16', 'f32', 'i8'),
      resultComponentType: fc.constantFrom('f16', 'f32', 'i32'),
      M: fc.constantFrom(8, 16, 32), N: fc.constantFrom(8, 16, 32), K: fc.constantFrom(8, 16),
    });
    const device = fc.record({
      subgroupMaxSize: fc.constantFrom(0, 4, 32, 64, 128),
      maxInvocations: fc.constantFrom(128, 256, 1024),
      maxWorkgroupStorage: fc.constantFrom(8192, 16384, 32768),
    });
    let offered = 0;
    fc.assert(fc.property(f16Case, dtype, dtype, fc.option(fc.record({ configs: fc.array(config, { maxLength: 4 }), device })), (c, da, db, sgm) => {
      const k = matmulKernel({ ...c, operands: [da, db] });
      const lim: VariantLimits = { workgroupMatmul: true, subgroups: true, maxInvocations: 256, ...(sgm ? { subgroupMatrix: sgm } : {}) };
      const got = candidates(k, lim, null).filter((v) => v.kind === 'matmul' && v.matmul === 'subgroup-matrix');
      const fitting = sgm ? f16Shapes(sgm.configs as SubgroupMatrixConfig[]).filter((s) => planSubgroupMatrix(s, sgm.device)) : [];
      const want = da === 'f16' && db === 'f16' ? fitting : [];
      expect(got.map((v) => (v.kind === 'matmul' ? v.shape : null))).toEqual(want.filter((s, i) => want.findIndex((t) => JSON.stringify(t) === JSON.stringify(s)) === i));
      for (const s of want) {
        const cfg = sgm!.configs.find((x) => x.M === s.M && x.N === s.N && x.K === s.K && x.componentType === 'f16' && x.resultComponentType === s.result);
        expect(cfg).toBeDefined();
      }
      offered += got.length;
    }), { numRuns: 300 });
    expect(offered).toBeGreaterThan(0);
  });
});
