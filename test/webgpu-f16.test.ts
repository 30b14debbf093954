// f16 on WebGPU. On the Dawn adapter found here (in CI llvmpipe, which has no 'shader-f16': f16
// tensors are f32 words and every f16 store is quantizeToF16): random f16 graphs (elementwise,
// reductions, matmuls, casts both ways) give the CPU device's numbers to f16 tolerance and read
// back binary16 values, and every matmul variant the tuner can pick, forced, does the same on f16
// operands. Compile-only, on Dawn's null backend (it validates WGSL with Tint and runs nothing): a
// backend on a device with 'shader-f16' renders every kernel of random f16 graphs and every matmul
// variant with array<f16> buffers and f16 products, and Tint accepts all of them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ivar, type Kernel, type MatmulKernel } from '../ops/kernel-ir.js';
import { f16round, f16roundArray } from '../ops/f16.js';
import { compile, compileAsync, type Outputs } from '../runtime/executor.js';
import { planGraph } from '../scheduler/plan.js';
import { graph } from '../graphs/builder.js';
import { grad } from '../graphs/autodiff.js';
import { f16, type DType } from '../graphs/types.js';
import { mulberry32 } from '../runtime/rng.js';
import { acquireWebGpu, adapterIdentity, lastAcquireFailure, type WebGpuDevice } from '../runtime/webgpu/device.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import { WebGpuDevice as GpuDevice } from '../runtime/webgpu/gpu-device.js';
import { TuningStore, candidates, tuningKey, type KernelVariant, type VariantLimits } from '../runtime/webgpu/tuner.js';
import { arbGraph, fcParams, type GraphOp } from './arbitraries.js';
import { reference, runOn } from './fixtures/kernel-runs.js';

const gpu: WebGpuDevice | null = await acquireWebGpu();
if (!gpu) console.warn(`WebGPU f16 tests on an adapter skipped: no adapter (${lastAcquireFailure})`);

/** The ops of the random f16 graphs: elementwise math, casts, reductions and matmuls. */
const F16_OPS: readonly GraphOp[] = ['unary', 'binary', 'unary', 'binary', 'cast', 'cast', 'where', 'reduce', 'reduce', 'matmul', 'matmul', 'softmax', 'layerNorm', 'transpose', 'broadcastTo'];

/** |a - b| <= 1e-2 * max(|a|, |b|) + 1e-2 (a few binary16 steps of rounding, compounded), and f16 outputs hold binary16 values. */
function expectF16Close(got: Outputs, want: Outputs, what: string): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const [name, w] of Object.entries(want)) {
    const g = got[name]!;
    expect(g.dtype, `${what}: ${name}`).toBe(w.dtype);
    for (let i = 0; i < w.data.length; i++) {
      const a = g.data[i]!, b = w.data[i]!;
      if (g.dtype === 'f16' && !Number.isNaN(a) && f16round(a) !== a) expect.fail(`${what}: '${name}' element ${i} is ${a}, not a binary16 value`);
      if (a === b || (Number.isNaN(a) && Number.isNaN(b))) continue;
      if (!(Math.abs(a - b) <= 1e-2 * Math.max(Math.abs(a), Math.abs(b)) + 1e-2)) expect.fail(`${what}: '${name}' element ${i}: webgpu ${a}, cpu ${b}`);
    }
  }
}

interface MatmulCase { batch: number; m: number; n: number; k: number; aT: boolean; bT: boolean; bias: boolean; out: DType; seed: number }

/** out[b, m, n] = (relu(acc + bias)) with f16 operands, stored row-major or transposed. */
function f16Matmul(c: MatmulCase): { kernel: MatmulKernel; arrays: Float32Array[] } {
  const { batch, m, n, k } = c;
  const r = mulberry32(c.seed);
  const vals = (len: number) => f16roundArray(Float32Array.from({ length: len }, () => r() * 2 - 1));
  const arrays = [vals(batch * m * k), vals(batch * k * n), ...(c.bias ? [vals(n)] : [])];
  const kernel: MatmulKernel = {
    kind: 'matmul', name: 'mm', batch: batch > 1 ? [batch] : [], m, n, k,
    a: { buf: 0, offset: 0, batchStrides: batch > 1 ? [m * k] : [], rowStride: c.aT ? 1 : k, colStride: c.aT ? m : 1 },
    b: { buf: 1, offset: 0, batchStrides: batch > 1 ? [k * n] : [], rowStride: c.bT ? 1 : n, colStride: c.bT ? k : 1 },
    inputs: [{ dtype: 'f16', size: arrays[0]!.length }, { dtype: 'f16', size: arrays[1]!.length }, ...(c.bias ? [{ dtype: 'f16' as DType, size: n }] : [])],
    out: { dtype: c.out, shape: batch > 1 ? [batch, m, n] : [m, n] },
    epilogue: c.bias
      ? { k: 'unary', op: 'relu', a: { k: 'binary', op: 'add', a: { k: 'acc', dtype: 'f32' }, b: { k: 'load', buf: 2, at: ivar(batch > 1 ? 'i2' : 'i1'), dtype: 'f16' }, dtype: 'f32' }, dtype: 'f32' }
      : null,
  };
  return { kernel, arrays };
}

const matmulArb = fc.record({
  batch: fc.constantFrom(1, 1, 3),
  m: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 60, max: 140 })),
  n: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 60, max: 140 })),
  k: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 60, max: 200 }), fc.integer({ min: 256, max: 1500 })),
  aT: fc.boolean(), bT: fc.boolean(), bias: fc.boolean(),
  out: fc.constantFrom<DType>('f16', 'f16', 'f32'),
  seed: fc.integer(),
});

/**
 * A product off every tile edge and a tall-skinny one: between them, every kind of matmul
 * variant the tuner can offer is among their candidates (split-K the tall-skinny one's).
 */
const EVERY_KIND: readonly MatmulCase[] = [
  { batch: 3, m: 70, n: 68, k: 90, aT: true, bT: false, bias: true, out: 'f16', seed: 1 },
  { batch: 1, m: 5, n: 7, k: 1100, aT: false, bT: true, bias: false, out: 'f16', seed: 2 },
];

/** What the tuner may offer on a device with workgroup matmuls (subgroup matrices aside: test/webgpu-subgroup-matrix.test.ts). */
const LIMITS: VariantLimits = { workgroupMatmul: true, subgroups: false, maxInvocations: 256 };

/** The variants of a matmul: every candidate, or the heuristic's alone when there is no choice. */
function variantsOf(k: Kernel, be: WebGpuBackend): KernelVariant[] {
  const c = candidates(k, LIMITS, be.variantOf(k));
  return c.length ? c : [be.variantOf(k)!];
}

describe('f16 on WebGPU', () => {
  it('has a WebGPU adapter when CI is set (skips elsewhere)', () => {
    if (!gpu && process.env.CI) expect.fail(`CI is set but no WebGPU adapter was found: ${lastAcquireFailure}`);
  });

  describe.skipIf(!gpu && !process.env['CI'])('on the Dawn adapter', () => {
    let be: WebGpuBackend;
    let store: TuningStore;
    beforeAll(() => {
      store = new TuningStore(null);
      be = new WebGpuBackend(gpu!, { tuning: store });
    });
    afterAll(() => be.dispose());

    it('random f16 graphs (elementwise, reductions, matmuls, casts both ways) equal the CPU device to f16 tolerance', async () => {
      await fc.assert(fc.asyncProperty(arbGraph({ maxOps: 8, float: 'f16', params: true, ops: F16_OPS }), async ({ graph: g, feeds, variables }) => {
        const cpu = compile(g, { backend: 'cpu' });
        cpu.setVariables(variables);
        const web = await compileAsync(g, { backend: 'webgpu' });
        web.setVariables(variables);
        expectF16Close(await web.run(feeds), cpu.runSync(feeds), 'f16 graph');
      }), fcParams(30));
    }, 600_000);

    it('every matmul variant the tuner can pick, forced, multiplies f16 operands as the interpreter does and stores binary16', async () => {
      const adapter = adapterIdentity(gpu!.info);
      const seen = new Set<string>();
      /** `c` in variant `v`, forced through the tuning table, against the interpreter. */
      const check = async (c: MatmulCase, v: KernelVariant, kernel: MatmulKernel, arrays: Float32Array[], want: ArrayLike<number>) => {
        if (v.kind !== 'matmul') return;
        seen.add(v.matmul);
        store.set(adapter, tuningKey(kernel)!, { variant: v, ms: 0, timings: {} });
        expect(be.variantOf(kernel)).toEqual(v);
        const got = await runOn(be, kernel, arrays);
        for (let i = 0; i < want.length; i++) {
          const a = got[i]!, b = want[i]!;
          if (c.out === 'f16' && f16round(a) !== a) expect.fail(`${JSON.stringify(v)}: element ${i} is ${a}, not binary16`);
          // f32 sums in another order, then (f16 outputs) one rounding: a binary16 step apart at most
          if (!(Math.abs(a - b) <= 2e-3 * Math.abs(b) + 1e-5 * c.k)) expect.fail(`${JSON.stringify(v)} ${JSON.stringify(c)}: element ${i}: webgpu ${a}, interpreter ${b}`);
        }
      };
      // every candidate of a product off every tile edge, and of a tall-skinny one (split-K among its candidates)
      for (const c of EVERY_KIND) {
        const { kernel, arrays } = f16Matmul(c);
        const want = reference(kernel, arrays);
        for (const v of variantsOf(kernel, be)) await check(c, v, kernel, arrays, want);
      }
      for (const v of ['register', 'workgroup', 'splitk']) if (v !== 'workgroup' || gpu!.limits.maxComputeInvocationsPerWorkgroup >= 256) expect(seen, v).toContain(v);
      // random products, each in one of its candidates (drawn)
      await fc.assert(fc.asyncProperty(matmulArb, fc.nat(), async (c, pick) => {
        const { kernel, arrays } = f16Matmul(c);
        const vs = variantsOf(kernel, be);
        await check(c, vs[pick % vs.length]!, kernel, arrays, reference(kernel, arrays));
      }), fcParams(8));
    }, 600_000);

    it('f16 buffers take the bytes the caps say, and an f16 upload reads back rounded', async () => {
      const t = be.upload(new Float32Array([0.1, 65519, 70000, 1 / 3, -2.98e-8]), 'f16');
      expect([...await be.read(t)]).toEqual([0.0999755859375, 65504, Infinity, 0.333251953125, -0]);
      expect(be.elementBytes('f16')).toBe(be.f16 ? 2 : 4);
      be.release(t);
    });
  });
});

// ---------------------------------------------------------------- compile-only (Dawn's null backend)

interface NullGpu { device: GPUDevice; wrapped: WebGpuDevice }

/** Dawn's null backend with 'shader-f16', wrapped as the backend's device; null (with the reason) where Dawn has none. */
async function nullGpu(): Promise<NullGpu | string> {
  const mod = (await import('webgpu')) as unknown as { create(flags: string[]): GPU; globals: object };
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const instance = mod.create(['backend=null']);
  const adapter = await instance.requestAdapter({ featureLevel: 'core' });
  if (!adapter) return 'the null backend gave no adapter';
  if (!adapter.features.has('shader-f16')) return "the null adapter lacks 'shader-f16'";
  const device = await adapter.requestDevice({ requiredFeatures: ['shader-f16'] });
  const wrapped: WebGpuDevice = {
    device, adapter,
    info: { vendor: 'null', architecture: '', device: 'null', description: 'Dawn null backend', featureLevel: 'core', backend: 'null', isCpu: false },
    features: new Set(['shader-f16']),
    limits: device.limits,
    subgroupMaxSize: 0,
    subgroupMatrixConfigs: [],
    takeError: () => null,
    lost: null,
    destroy: () => device.destroy(),
  };
  // keep the instance alive as long as the device
  (wrapped as { instance?: GPU }).instance = instance;
  return { device, wrapped };
}

/** Tint's message for each pass of `kernel` rendered in `v` that does not compile (empty when all do). */
async function tintErrors(dev: GPUDevice, be: WebGpuBackend, kernel: Kernel, v: KernelVariant | null): Promise<string[]> {
  const errors: string[] = [];
  for (const pass of be.render(kernel, v).passes) {
    dev.pushErrorScope('validation');
    const module = dev.createShaderModule({ code: pass.code });
    dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const err = await dev.popErrorScope();
    if (err) errors.push(`${kernel.name} ${JSON.stringify(v)}: ${err.message}\n${pass.code}`);
  }
  return errors;
}

describe("compile-only: f16 kernels rendered for a 'shader-f16' device pass Tint on Dawn's null backend", () => {
  let nul: NullGpu | string = 'not started';
  let be: WebGpuBackend;
  beforeAll(async () => {
    nul = await nullGpu();
    if (typeof nul !== 'string') be = new WebGpuBackend(nul.wrapped, { tuning: new TuningStore(null) });
  });

  it("the null adapter has 'shader-f16' and the backend renders f16 buffers as array<f16> there", () => {
    if (typeof nul === 'string') expect.fail(nul);
    expect(be.f16).toBe(true);
    const { kernel } = f16Matmul({ batch: 1, m: 8, n: 8, k: 8, aT: false, bT: false, bias: true, out: 'f16', seed: 1 });
    const code = be.render(kernel, { kind: 'matmul', matmul: 'workgroup' }).passes[0]!.code;
    expect(code.startsWith('enable f16;')).toBe(true);
    expect(code).toContain('array<f16');
    expect(code).toContain('var<workgroup> tileA: array<f16');
  });

  it("a device with 'shader-f16' counts f16 at 2 bytes an element (caps, allocator) and pads buffers to whole words", () => {
    if (typeof nul === 'string') expect.fail(nul);
    const dev = new GpuDevice(be);
    expect(dev.caps.elementBytes).toEqual({ f32: 4, f16: 2, i32: 4, bool: 4 });
    const t = dev.alloc('f16', 3);
    expect(dev.bytes(t)).toBe(6);
    expect(dev.memory.liveBytes).toBe(6);
    expect(t.buffer.size % 4).toBe(0);
    expect(t.buffer.size).toBeGreaterThanOrEqual(6);
    dev.free(t);
    expect(dev.memory.liveBytes).toBe(0);
  });

  it("a 'shader-f16' backend refuses an f32 tensor where a kernel reads f16 (their elements differ in size)", () => {
    if (typeof nul === 'string') expect.fail(nul);
    const { kernel } = f16Matmul({ batch: 1, m: 4, n: 4, k: 4, aT: false, bT: false, bias: false, out: 'f16', seed: 2 });
    const a = be.alloc('f32', 16), b = be.alloc('f16', 16), out = be.alloc('f16', 16);
    expect(() => be.run(kernel, [a, b], out)).toThrow(/input 0 is f32, expected f16/);
    for (const t of [a, b, out]) be.release(t);
  });

  it('compile-only: every kernel of random f16 graphs, in every variant the tuner can pick, compiles', async () => {
    if (typeof nul === 'string') expect.fail(nul);
    const dev = nul.device;
    // planned for this device (its caps: f16 at 2 bytes, matmul operands that gather, as conv2d's)
    const caps = new GpuDevice(be).caps;
    const ops: GraphOp[] = [...F16_OPS, 'conv2d', 'conv2d', 'gather', 'scatterAdd', 'pad', 'concat', 'slice', 'reshape', 'einsum', 'logSoftmax', 'dropout'];
    await fc.assert(fc.asyncProperty(arbGraph({ maxOps: 8, maxElements: 256, float: 'f16', params: true, ops }), async ({ graph: g }) => {
      const plan = planGraph(g, g.nodes.map((n) => n.shape as number[]), { caps });
      const errors: string[] = [];
      for (const s of plan.steps) {
        if (s.kind !== 'launch') continue;
        const vs = candidates(s.kernel, LIMITS, be.variantOf(s.kernel));
        for (const v of vs.length ? vs : [be.variantOf(s.kernel)]) errors.push(...await tintErrors(dev, be, s.kernel, v));
      }
      expect(errors).toEqual([]);
    }), fcParams(25));
  }, 600_000);

  it('compile-only: the kernels of an f16 conv2d and its gradients compile in every variant', async () => {
    if (typeof nul === 'string') expect.fail(nul);
    const caps = new GpuDevice(be).caps;
    for (const [stride, padding] of [[1, 1], [2, 0], [1, 2]] as const) {
      const g = grad(graph('conv', (b) => {
        const x = b.param('x', f16(2, 3, 9, 9)), w = b.param('w', f16(4, 3, 3, 3));
        const y = b.conv2d(x, w, { stride, padding });
        return { y, loss: b.sum(b.mul(y, y)) };
      }), 'loss');
      const errors: string[] = [];
      for (const s of planGraph(g, g.nodes.map((n) => n.shape as number[]), { caps }).steps) {
        if (s.kind !== 'launch') continue;
        const vs = candidates(s.kernel, LIMITS, be.variantOf(s.kernel));
        for (const v of vs.length ? vs : [be.variantOf(s.kernel)]) errors.push(...await tintErrors(nul.device, be, s.kernel, v));
      }
      expect(errors).toEqual([]);
    }
  }, 600_000);

  it('compile-only: every matmul variant on f16 operands (f16 or f32 outputs, epilogues, transposes, batches) compiles', async () => {
    if (typeof nul === 'string') expect.fail(nul);
    const dev = nul.device;
    const seen = new Set<string>();
    await fc.assert(fc.asyncProperty(matmulArb, async (c) => {
      const { kernel } = f16Matmul(c);
      const errors: string[] = [];
      for (const v of variantsOf(kernel, be)) {
        if (v.kind === 'matmul') seen.add(v.matmul);
        errors.push(...await tintErrors(dev, be, kernel, v));
      }
      expect(errors).toEqual([]);
    }), { ...fcParams(20), examples: EVERY_KIND.map((c) => [c]) }); // so that every kind is seen, whatever the seed
    expect([...seen].sort()).toEqual(['register', 'splitk', 'workgroup']);
  }, 600_000);
});
