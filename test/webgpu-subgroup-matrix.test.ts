// The f16 matmul on subgroup matrices (render-wgsl-subgroup-matrix.ts). No adapter here executes
// subgroup matrices, so what is checked is what can be: the WGSL it renders for random products
// (batches, transposed operands, edges off every tile, epilogues, f16 or f32 outputs) in several
// adapter configs compiles on Dawn's null backend with the feature on (compile-only: that backend
// runs nothing), acquireWebGpu asks for the feature where the adapter has it, the tuner offers the
// kernel only for f16 operands on a device with a fitting f16 config; and the kernel's own tiling
// (staging, fragment offsets, edges, epilogue) runs on the Dawn adapter (llvmpipe) with the
// subgroup-matrix builtins emulated in plain WGSL, against the interpreter.

import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { DType } from '../graphs/types.js';
import { ivar, type MatmulKernel } from '../ops/kernel-ir.js';
import { SUBGROUP_MATRIX_FEATURE, acquireWebGpu, lastAcquireFailure, type SubgroupMatrixConfig, type WebGpuDevice } from '../runtime/webgpu/device.js';
import { mulberry32 } from '../runtime/rng.js';
import { f16round } from '../ops/f16.js';
import { reference } from './fixtures/kernel-runs.js';
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
let nullGpu: GPU | null = null; // Dawn's instance must outlive its devices
let nullDevice: GPUDevice | null = null;
let nullLimits: SubgroupMatrixDevice | null = null;
let nullReason = '';

beforeAll(async () => {
  try {
    const mod = (await import('webgpu')) as unknown as { create(flags: string[]): GPU; globals: object };
    for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    nullGpu = mod.create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
    const adapter = await nullGpu.requestAdapter({ featureLevel: 'core' });
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
    // half: f16 buffers bound as array<f16>, as on a device with 'shader-f16' (every device with subgroup matrices)
    await fc.assert(fc.asyncProperty(f16Case, fc.constantFrom(...SHAPES), fc.boolean(), async (c, shape, half) => {
      const plan = planSubgroupMatrix(shape, nullLimits!);
      expect(plan, `no tiling of ${JSON.stringify(shape)} fits the null device`).not.toBeNull();
      const r = renderSubgroupMatrixMatmul(matmulKernel(c), shape, nullLimits!, 65535, half);
      expect(r.passes).toHaveLength(1);
      const code = r.passes[0]!.code;
      expect(code).toContain('subgroupMatrixMultiplyAccumulate(');
      expect(await tintMessages(code), code).toEqual([]);
      seen.add(JSON.stringify(shape));
    }), { numRuns: 25, examples: SHAPES.map((s) => [{ batch: 3, m: 77, n: 45, k: 70, aT: true, bT: false, bias: true, out: 'f16', operands: ['f16', 'f16'] }, s, true]) });
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

// ---------------------------------------------------------------- the tiling, executed

/**
 * The rendered kernel with its subgroup-matrix builtins written out in plain WGSL, for an adapter
 * without the feature. A subgroup is `sg` consecutive invocations; a loaded left or right matrix
 * is its place in the workgroup tile (offset and stride), read when it is multiplied; an
 * accumulator is spread over its subgroup, each invocation holding the elements e ≡ lane (mod sg)
 * of the row-major M×N fragment, as hardware spreads them. f16 tiles are held as f32 (the test's
 * operands are f16 values, so nothing rounds differently); only f32 accumulators are emulated.
 */
function emulateBuiltins(code: string, shape: SubgroupMatrixShape, sg: number): string {
  const { M, N, K } = shape;
  const E = (M * N) / sg;
  expect(Number.isInteger(E)).toBe(true);
  // loop bounds the shader compiler cannot see (llvmpipe unrolls constant ones, and compiles for minutes)
  const helpers = `
var<private> sgm_lane: u32;
var<private> sgm_e: u32;
var<private> sgm_k: u32;
fn sgm_at(off: u32, stride: u32) -> vec2<u32> { return vec2<u32>(off, stride); }
fn sgm_mma(a: vec2<u32>, b: vec2<u32>, c: ptr<function, array<f32, ${E}>>) {
  for (var t = 0u; t < sgm_e; t++) {
    let e = sgm_lane + t * ${sg}u;
    let i = e / ${N}u;
    let j = e % ${N}u;
    var s = (*c)[t];
    for (var q = 0u; q < sgm_k; q++) { s = s + tA[a.x + i * a.y + q] * tB[b.x + q * b.y + j]; }
    (*c)[t] = s;
  }
}
fn sgm_store(off: u32, c: ptr<function, array<f32, ${E}>>, stride: u32) {
  for (var t = 0u; t < sgm_e; t++) {
    let e = sgm_lane + t * ${sg}u;
    tC[off + (e / ${N}u) * stride + e % ${N}u] = (*c)[t];
  }
}
`;
  const out = code
    .replace(/^(enable (f16|subgroups|chromium_experimental_subgroup_matrix);|diagnostic\(off, chromium_experimental\.subgroup_matrix_uniformity\);)\n/gm, '')
    .replace(/subgroup_matrix_result<f32, \d+, \d+>\(\)/g, `array<f32, ${E}>()`)
    .replace(/subgroupMatrixLoad<subgroup_matrix_left<f16, \d+, \d+>, row_major>\(&tA, /g, 'sgm_at(')
    .replace(/subgroupMatrixLoad<subgroup_matrix_right<f16, \d+, \d+>, row_major>\(&tB, /g, 'sgm_at(')
    .replace(/(acc\d+_\d+) = subgroupMatrixMultiplyAccumulate\((\w+), (\w+), \1\);/g, 'sgm_mma($2, $3, &$1);')
    .replace(/subgroupMatrixStore<row_major>\(&tC, ([^;]*), (acc\d+_\d+), (\d+u)\);/g, 'sgm_store($1, &$2, $3);')
    .replace(/array<f16, /g, 'array<f32, ')
    .replace(/\bf16\(/g, 'f32(')
    .replace(/0\.0h/g, '0.0f')
    .replace(', @builtin(subgroup_id) sid: u32) {',
      `) {\n  let sid = lidx / ${sg}u;\n  sgm_lane = lidx % ${sg}u;\n  sgm_e = ${E}u + min(arrayLength(&out), 0u);\n  sgm_k = ${K}u + min(arrayLength(&out), 0u);`)
    .replace('\nfn epilogue(', `${helpers}\nfn epilogue(`);
  expect(out.replace(/\/\/.*$/gm, '')).not.toMatch(/subgroup|f16|0\.0h/);
  return out;
}

/** Runs one pass of WGSL on `gpu` over f32 buffers (inputs, then the output) and reads the output. */
async function runWgsl(gpu: WebGpuDevice, code: string, workgroups: readonly [number, number, number], ins: readonly Float32Array[], outLen: number): Promise<Float32Array> {
  const d = gpu.device;
  d.pushErrorScope('validation');
  const module = d.createShaderModule({ code });
  const pipeline = d.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const err = await d.popErrorScope();
  if (err) {
    const info = await module.getCompilationInfo();
    throw new Error(`${err.message}\n${info.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('\n')}\n${code}`);
  }
  const buf = (a: Float32Array | null, n: number) => {
    const b = d.createBuffer({ size: Math.max(16, n * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    if (a) d.queue.writeBuffer(b, 0, a.buffer, a.byteOffset, a.byteLength);
    return b;
  };
  const bufs = [...ins.map((a) => buf(a, a.length)), buf(null, outLen)];
  const read = d.createBuffer({ size: Math.max(16, outLen * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = d.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, d.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: bufs.map((b, i) => ({ binding: i, resource: { buffer: b } })) }));
  pass.dispatchWorkgroups(...workgroups);
  pass.end();
  enc.copyBufferToBuffer(bufs.at(-1)!, 0, read, 0, Math.max(16, outLen * 4));
  d.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(read.getMappedRange().slice(0, outLen * 4));
  read.unmap();
  for (const b of [...bufs, read]) b.destroy();
  return out;
}

describe('subgroup-matrix f16 matmul, tiling executed with emulated builtins', () => {
  let gpu: WebGpuDevice | null = null;
  beforeAll(async () => {
    gpu = await acquireWebGpu();
  });

  // One config, 16x16x16 with f32 accumulators (NVIDIA's and others'): llvmpipe compiles the
  // emulated builtins inline at every call, and the 8x8 configs' 64 calls a kernel take it minutes.
  it('gives the interpreter\'s numbers for random products, edges off every tile, in every workgroup layout', async () => {
    if (!gpu) {
      if (process.env['CI']) expect.fail(`CI is set but no WebGPU adapter was found: ${lastAcquireFailure}`);
      console.warn(`emulated subgroup-matrix tiling skipped: no WebGPU adapter (${lastAcquireFailure})`);
      return;
    }
    const shape: SubgroupMatrixShape = { M: 16, N: 16, K: 16, result: 'f32' };
    const maxInvocations = Math.min(gpu.limits.maxComputeInvocationsPerWorkgroup, gpu.limits.maxComputeWorkgroupSizeX);
    const layouts = new Set<string>();
    const small = fc.record({
      batch: fc.constantFrom(1, 2),
      m: fc.integer({ min: 1, max: 80 }), n: fc.integer({ min: 1, max: 80 }), k: fc.integer({ min: 1, max: 70 }),
      aT: fc.boolean(), bT: fc.boolean(), bias: fc.boolean(),
      out: fc.constant<DType>('f32'),
      operands: fc.constant<[DType, DType]>(['f16', 'f16']),
      seed: fc.integer(),
      // workgroup memory the plan may use (32 KiB: 2x2 subgroups; less: 2x1, 1x1), and the
      // subgroup size it runs at (under the adapter's largest, a workgroup has idle subgroups)
      storage: fc.constantFrom(32768, 20000, 12000),
      sg: fc.constantFrom(16, 8),
    });
    await fc.assert(fc.asyncProperty(small, async (c) => {
      const dev: SubgroupMatrixDevice = { subgroupMaxSize: 16, maxInvocations, maxWorkgroupStorage: c.storage };
      const plan = planSubgroupMatrix(shape, dev)!;
      // the emulation holds the f16 tiles as f32: twice their bytes must fit
      const emulatedBytes = plan.bytes + 2 * (plan.BM * plan.BK + plan.BK * plan.BN);
      expect(emulatedBytes).toBeLessThanOrEqual(gpu!.limits.maxComputeWorkgroupStorageSize);
      layouts.add(`${plan.SR}x${plan.SC}`);
      const kernel = matmulKernel(c);
      const r = mulberry32(c.seed);
      // f16 values: exact in f32, so holding the tiles as f32 changes nothing
      const arrays = kernel.inputs.map((p, i) => Float32Array.from({ length: p.size }, () => (i < 2 ? f16round(r() * 4 - 2) : Math.fround(r() - 0.5))));
      const rendered = renderSubgroupMatrixMatmul(kernel, shape, dev, 65535);
      const got = await runWgsl(gpu!, emulateBuiltins(rendered.passes[0]!.code, shape, c.sg), rendered.passes[0]!.workgroups, arrays, c.batch * c.m * c.n);
      const want = reference(kernel, arrays);
      for (let i = 0; i < want.length; i++) {
        if (!(Math.abs(got[i]! - want[i]!) <= 1e-4 * (1 + Math.abs(want[i]!)) * Math.sqrt(c.k))) {
          expect.fail(`${JSON.stringify(c)} (plan ${plan.SR}x${plan.SC}) element ${i}: emulated ${got[i]}, interpreter ${want[i]}`);
        }
      }
    }), {
      numRuns: 6,
      examples: [
        [{ batch: 2, m: 77, n: 70, k: 45, aT: true, bT: true, bias: true, out: 'f32', operands: ['f16', 'f16'], seed: 3, storage: 32768, sg: 16 }],
        [{ batch: 1, m: 65, n: 33, k: 70, aT: false, bT: true, bias: false, out: 'f32', operands: ['f16', 'f16'], seed: 4, storage: 12000, sg: 8 }],
        [{ batch: 1, m: 40, n: 50, k: 33, aT: true, bT: false, bias: true, out: 'f32', operands: ['f16', 'f16'], seed: 5, storage: 20000, sg: 16 }],
      ],
    });
    expect(layouts).toEqual(new Set(['2x2', '2x1', '1x1']));
  }, 600_000);
});
