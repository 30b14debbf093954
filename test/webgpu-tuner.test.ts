// The WebGPU autotuner (runtime/webgpu/tuner.ts, autotune.ts): signature keys, adapter keys that
// ignore how the adapter was reached, the table's export/import and its atomic file, and on the
// adapter: every variant the tuner can pick for a matmul (register tiles, workgroup tiles) or a
// reduction (splits, workgroup sizes) gives the reference interpreter's numbers when forced, and
// tuning records a winner that later launches use. Without an adapter the device part skips, except under CI.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { mulberry32 } from '../runtime/rng.js';
import { reference, runOn } from './fixtures/kernel-runs.js';
import { fcParams } from './arbitraries.js';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DType } from '../graphs/types.js';
import { ivar, type Kernel, type MatmulKernel } from '../ops/kernel-ir.js';
import { acquireWebGpu, adapterIdentity, lastAcquireFailure, type WebGpuAdapterInfo, type WebGpuDevice } from '../runtime/webgpu/device.js';
import { WebGpuBackend, type HostArray } from '../runtime/webgpu/backend.js';
import { TuningError, TuningStore, candidates, tuningKey, type KernelVariant, type TuningRecord } from '../runtime/webgpu/tuner.js';

const gpu: WebGpuDevice | null = await acquireWebGpu();
if (!gpu) console.warn(`WebGPU tuner tests skipped: no adapter (${lastAcquireFailure})`);

/** A seeded generator: each case is built from one fast-check integer. */
const rng = mulberry32;

interface MatmulCase { batch: number; m: number; n: number; k: number; aT: boolean; bT: boolean; bias: boolean; seed: number }

/** out[b, m, n] = (bias +) sum_k a[b, m, k] b[b, k, n], operands stored row-major or transposed. */
function matmulCase(c: MatmulCase): { kernel: MatmulKernel; arrays: Float32Array[] } {
  const { batch, m, n, k } = c;
  const r = rng(c.seed);
  const a = Float32Array.from({ length: batch * m * k }, () => Math.fround(r() * 2 - 1));
  const b = Float32Array.from({ length: batch * k * n }, () => Math.fround(r() * 2 - 1));
  const bias = Float32Array.from({ length: n }, () => Math.fround(r() - 0.5));
  const kernel: MatmulKernel = {
    kind: 'matmul', name: 'mm', batch: batch > 1 ? [batch] : [], m, n, k,
    a: { buf: 0, offset: 0, batchStrides: batch > 1 ? [m * k] : [], rowStride: c.aT ? 1 : k, colStride: c.aT ? m : 1 },
    b: { buf: 1, offset: 0, batchStrides: batch > 1 ? [k * n] : [], rowStride: c.bT ? 1 : n, colStride: c.bT ? k : 1 },
    inputs: [{ dtype: 'f32', size: a.length }, { dtype: 'f32', size: b.length }, ...(c.bias ? [{ dtype: 'f32' as DType, size: n }] : [])],
    out: { dtype: 'f32', shape: batch > 1 ? [batch, m, n] : [m, n] },
    epilogue: c.bias ? { k: 'binary', op: 'add', a: { k: 'acc', dtype: 'f32' }, b: { k: 'load', buf: 2, at: ivar(batch > 1 ? 'i2' : 'i1'), dtype: 'f32' }, dtype: 'f32' } : null,
  };
  return { kernel, arrays: c.bias ? [a, b, bias] : [a, b] };
}

const matmulArb = fc.record({
  batch: fc.constantFrom(1, 1, 3),
  m: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 60, max: 140 })),
  n: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 60, max: 140 })),
  k: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 60, max: 200 })),
  aT: fc.boolean(), bT: fc.boolean(), bias: fc.boolean(), seed: fc.integer(),
});

/** Tall-skinny products (k ≫ m·n), where split-K is a candidate. */
const tallArb = fc.record({
  batch: fc.constantFrom(1, 2),
  m: fc.integer({ min: 1, max: 12 }),
  n: fc.integer({ min: 1, max: 12 }),
  k: fc.integer({ min: 256, max: 20_000 }),
  aT: fc.boolean(), bT: fc.boolean(), bias: fc.boolean(), seed: fc.integer(),
});

function sumKernel(rows: number, n: number): Kernel {
  return {
    kind: 'map', name: 'rowsum', inputs: [{ dtype: 'f32', size: rows * n }], out: { dtype: 'f32', shape: [rows] },
    expr: { k: 'reduce', op: 'sum', vars: [{ name: 'r', size: n }], dtype: 'f32',
      body: { k: 'load', buf: 0, at: { k: 'add', a: { k: 'mul', a: ivar('i0'), c: n }, b: ivar('r') }, dtype: 'f32' } },
  };
}

function expectClose(got: HostArray, want: HostArray, atol: number, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= atol + 1e-4 * Math.abs(want[i]!))) {
      expect.fail(`${what}: element ${i}: webgpu ${got[i]}, reference ${want[i]}`);
    }
  }
}

const LIMITS = { workgroupMatmul: true, subgroups: false, maxInvocations: 256 };

describe('WebGPU tuning table', () => {
  it('kernels that differ only by name share a key; other shapes or layouts do not', () => {
    fc.assert(fc.property(matmulArb, matmulArb, (c1, c2) => {
      const k1 = matmulCase({ ...c1, seed: 0 }).kernel, k2 = matmulCase({ ...c2, seed: 0 }).kernel;
      expect(tuningKey({ ...k1, name: 'other' })).toBe(tuningKey(k1));
      const same = c1.batch === c2.batch && c1.m === c2.m && c1.n === c2.n && c1.k === c2.k &&
        c1.aT === c2.aT && c1.bT === c2.bT && c1.bias === c2.bias;
      if (!same) expect(tuningKey(k1)).not.toBe(tuningKey(k2));
    }));
    expect(tuningKey(sumKernel(2, 1000))).not.toBe(tuningKey(sumKernel(2, 1001)));
    expect(candidates(sumKernel(1, 100_000), LIMITS, null).length).toBeGreaterThan(2);
    expect(candidates(matmulCase({ batch: 1, m: 64, n: 64, k: 64, aT: false, bT: false, bias: false, seed: 0 }).kernel, LIMITS, null)
      .some((v) => v.kind === 'matmul' && v.matmul === 'workgroup')).toBe(true);
  });

  const recordArb: fc.Arbitrary<TuningRecord> = fc.record({
    variant: fc.oneof(
      fc.record({ kind: fc.constant('matmul' as const), matmul: fc.constantFrom('register' as const, 'workgroup' as const) }),
      fc.record({ kind: fc.constant('reduce' as const), reduce: fc.record({ split: fc.oneof(fc.constant<'auto'>('auto'), fc.integer({ min: 1, max: 4096 })), subgroups: fc.boolean() }) }),
    ) as fc.Arbitrary<KernelVariant>,
    ms: fc.double({ min: 0, max: 1e4, noNaN: true }),
    timings: fc.dictionary(fc.string(), fc.double({ min: 0, max: 1e4, noNaN: true })),
  });

  it('export then import gives back every record, under its adapter and key', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.string(), fc.string(), recordArb), { maxLength: 12 }), (rows) => {
      const a = new TuningStore(null);
      for (const [ad, key, rec] of rows) a.set(ad, key, rec);
      const b = new TuningStore(null);
      expect(b.importTuning(a.exportTuning())).toBe(a.size);
      for (const [ad, key] of rows) expect(b.get(ad, key)).toEqual(a.get(ad, key));
      expect(b.exportTuning()).toBe(a.exportTuning());
    }), fcParams(100));
  });

  it('an adapter is keyed by what it is, not by how it was reached', () => {
    const text = fc.string({ maxLength: 12 });
    const info = fc.record({ vendor: text, architecture: text, device: text, description: text });
    const reached = fc.record({ backend: fc.constantFrom('navigator.gpu', 'opengles', 'vulkan', 'metal'), featureLevel: fc.constantFrom('core', 'compatibility') });
    fc.assert(fc.property(info, reached, reached, (id, r1, r2) => {
      const a: WebGpuAdapterInfo = { ...id, ...r1, isCpu: false }, b: WebGpuAdapterInfo = { ...id, ...r2, isCpu: false };
      expect(adapterIdentity(a)).toBe(adapterIdentity(b));
      expect(adapterIdentity(a)).not.toMatch(/navigator\.gpu|opengles|compatibility/);
    }));
    const llvmpipe: WebGpuAdapterInfo = { vendor: '', architecture: '', device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'OpenGL version OpenGL ES 3.2 Mesa 22.3.6', featureLevel: 'compatibility', backend: 'opengles', isCpu: true };
    expect(adapterIdentity(llvmpipe)).toBe('llvmpipe-llvm-15-0-6-256-bits- (OpenGL ES 3.2 Mesa 22.3.6)');
    expect(adapterIdentity({ ...llvmpipe, device: 'lavapipe' })).not.toBe(adapterIdentity(llvmpipe));
  });

  it('a table that is not one is a TuningError naming its source', () => {
    const s = new TuningStore(null);
    expect(() => s.importTuning('{', 'shipped.json')).toThrow(TuningError);
    expect(() => s.importTuning('{"version":1,"adapters":{"x":{"k":{"ms":1}}}}')).toThrow(/record 'k' of adapter 'x'/);
    expect(() => s.importTuning('{"version":9,"adapters":{}}')).toThrow(/version/);
  });

  it('saves atomically to its file and loads it back', async () => {
    const dir = join('out', `tuning-test-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    try {
      const path = join(dir, 'sub', 'webgpu-tuning.json');
      const a = new TuningStore(path);
      a.set('adapter (x)', 'matmul - 8x8x8 nn f32,f32,f32', { variant: { kind: 'matmul', matmul: 'register' }, ms: 0.5, timings: {} });
      await a.save();
      expect(readdirSync(join(dir, 'sub'))).toEqual(['webgpu-tuning.json']);
      expect(JSON.parse(readFileSync(path, 'utf8')).version).toBe(1);
      const b = new TuningStore(path);
      await b.load();
      expect(b.exportTuning()).toBe(a.exportTuning());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('WebGPU autotuner', () => {
  it('has an adapter when CI is set (skips elsewhere)', () => {
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

    /** Every candidate of `k`, forced through the table, against the interpreter. */
    async function everyVariant(k: Kernel, arrays: HostArray[], atol: number): Promise<number> {
      const key = tuningKey(k)!;
      const adapter = adapterIdentity(gpu!.info);
      const want = reference(k, arrays);
      const cands = candidates(k, { workgroupMatmul: gpu!.limits.maxComputeInvocationsPerWorkgroup >= 256, subgroups: gpu!.features.has('subgroups'), maxInvocations: 256 }, be.variantOf(k));
      for (const v of cands) {
        store.set(adapter, key, { variant: v, ms: 0, timings: {} });
        expect(be.variantOf(k)).toEqual(v);
        expectClose(await runOn(be, k, arrays), want, atol, JSON.stringify(v));
      }
      return cands.length;
    }

    it('every matmul variant the tuner can pick matches the interpreter (random shapes, transposes, batches, bias)', async () => {
      await fc.assert(fc.asyncProperty(matmulArb, async (c) => {
        const { kernel, arrays } = matmulCase(c);
        expect(await everyVariant(kernel, arrays, 2e-6 * c.k + 1e-5)).toBeGreaterThan(1);
      }), { numRuns: 8 });
    }, 600_000);

    it('workgroup tiles load row-major operands as vec4s where the shapes allow, with the same results', async () => {
      for (const c of [
        { batch: 2, m: 64, n: 68, k: 36, aT: false, bT: false, bias: true, seed: 5 },
        { batch: 1, m: 33, n: 8, k: 100, aT: false, bT: false, bias: false, seed: 6 },
        { batch: 1, m: 40, n: 44, k: 12, aT: true, bT: false, bias: false, seed: 7 },
      ]) {
        const { kernel, arrays } = matmulCase(c);
        const v: KernelVariant = { kind: 'matmul', matmul: 'workgroup', wgTile: { wt: 16, bk: 16, vec4: true } };
        const code = be.render(kernel, v).passes[0]!.code;
        if (!c.aT) expect(code, 'A tile as vec4s').toContain('let av = ');
        expect(code, 'B tile as vec4s').toContain('let bv4 = ');
        store.set(adapterIdentity(gpu!.info), tuningKey(kernel)!, { variant: v, ms: 0, timings: {} });
        expectClose(await runOn(be, kernel, arrays), reference(kernel, arrays), 2e-6 * c.k + 1e-5, JSON.stringify(c));
      }
    }, 600_000);

    it('register and workgroup tiles store rows of whole vec4s as vec4s (epilogue per lane), with the same results', async () => {
      for (const c of [
        { batch: 3, m: 37, n: 68, k: 21, aT: false, bT: true, bias: true, seed: 8 },
        { batch: 1, m: 130, n: 4, k: 9, aT: true, bT: false, bias: true, seed: 9 },
        { batch: 1, m: 5, n: 132, k: 64, aT: false, bT: false, bias: false, seed: 10 },
      ]) {
        const { kernel, arrays } = matmulCase(c);
        const vs = candidates(kernel, LIMITS, null).filter((x) => x.kind === 'matmul' && (x.tile?.vec4Store || x.wgTile?.vec4Store));
        expect(vs.map((v) => v.kind === 'matmul' && v.matmul).sort(), 'vec4-store candidates').toEqual(['register', 'workgroup']);
        for (const v of vs) {
          const code = be.render(kernel, v).passes[0]!.code;
          expect(code).toContain('var<storage, read_write> out: array<vec4<f32>>;');
          store.set(adapterIdentity(gpu!.info), tuningKey(kernel)!, { variant: v, ms: 0, timings: {} });
          expectClose(await runOn(be, kernel, arrays), reference(kernel, arrays), 2e-6 * c.k + 1e-5, `${JSON.stringify(c)} ${JSON.stringify(v)}`);
        }
      }
      // rows that are not whole vec4s are never offered them
      const odd = matmulCase({ batch: 1, m: 8, n: 6, k: 8, aT: false, bT: false, bias: false, seed: 0 }).kernel;
      expect(candidates(odd, LIMITS, null).some((x) => x.kind === 'matmul' && (x.tile?.vec4Store || x.wgTile?.vec4Store))).toBe(false);
    }, 600_000);

    it('every variant of tall-skinny products (split-K among them) matches the interpreter', async () => {
      let splitk = 0;
      await fc.assert(fc.asyncProperty(tallArb, async (c) => {
        const { kernel, arrays } = matmulCase(c);
        expect(await everyVariant(kernel, arrays, 2e-6 * c.k + 1e-5)).toBeGreaterThan(1);
        if (candidates(kernel, LIMITS, null).some((v) => v.kind === 'matmul' && v.matmul === 'splitk')) splitk++;
      }), { numRuns: 3 });
      expect(splitk).toBeGreaterThan(0);
    }, 600_000);

    it('a tall-skinny product splits k by default, in two passes', () => {
      const { kernel } = matmulCase({ batch: 1, m: 4, n: 4, k: 50_000, aT: false, bT: false, bias: false, seed: 1 });
      const fresh = new WebGpuBackend(gpu!, { tuning: new TuningStore(null) });
      try {
        expect(fresh.variantOf(kernel)).toMatchObject({ kind: 'matmul', matmul: 'splitk' });
        expect(fresh.render(kernel).passes.length).toBe(2);
      } finally {
        fresh.dispose();
      }
    });

    it('every reduction variant the tuner can pick matches the interpreter', async () => {
      await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 300, max: 90_000 }), fc.integer(), async (rows, n, seed) => {
        const r = rng(seed);
        const k = sumKernel(rows, n);
        const x = Float32Array.from({ length: rows * n }, () => Math.fround(r() * 2 - 1));
        expect(await everyVariant(k, [x], 1e-4 * Math.sqrt(n))).toBeGreaterThan(1);
      }), { numRuns: 8 });
    }, 600_000);

    it('tuneKernel times the candidates, records the fastest, and later launches use it', async () => {
      const { kernel, arrays } = matmulCase({ batch: 1, m: 96, n: 80, k: 64, aT: false, bT: false, bias: true, seed: 3 });
      const rec = (await be.tuneKernel(kernel, 60_000))!;
      const times = Object.values(rec.timings);
      expect(times.length).toBeGreaterThan(1);
      expect(rec.ms).toBe(Math.min(...times));
      expect(rec.timings[JSON.stringify(rec.variant)]).toBe(rec.ms);
      // the clock the adapter allows (timestamps are checked in Chromium: browser-webgpu.test.ts)
      expect(rec.clock).toBe(gpu!.features.has('timestamp-query') ? 'timestamp-query' : 'wall-clock');
      expect(store.get(adapterIdentity(gpu!.info), tuningKey(kernel)!)).toEqual(rec);
      expect(be.variantOf(kernel)).toEqual(rec.variant);
      expectClose(await runOn(be, kernel, arrays), reference(kernel, arrays), 1e-4, 'tuned');
    }, 600_000);

    it('launches recorded while a signature is being tuned keep their inputs and results', async () => {
      const k = sumKernel(2, 70_000);
      const r = rng(11);
      const x = Float32Array.from({ length: 140_000 }, () => Math.fround(r() * 2 - 1));
      const want = reference(k, [x]);
      const { kernel: mm } = matmulCase({ batch: 1, m: 40, n: 36, k: 300, aT: false, bT: true, bias: false, seed: 2 });
      const xs = be.upload(x);
      const outs = [be.alloc('f32', 2), be.alloc('f32', 2)];
      be.run(k, [xs], outs[0]!);
      const tuning = be.tuneKernel(mm, 5_000);
      be.run(k, [xs], outs[1]!); // recorded while the tuner's own submissions run
      be.release(xs); // its buffer may be handed out again, but not to the tuner
      await tuning;
      const got = await be.readMany(outs);
      for (const g of got) expectClose(g, want, 1e-4 * Math.sqrt(70_000), 'during tuning');
      for (const t of outs) be.release(t);
    }, 600_000);

    it('choices tuned through an installed navigator.gpu apply to the same adapter reached directly', async () => {
      const shared = new TuningStore(null);
      const viaNavigator: WebGpuDevice = { ...gpu!, info: { ...gpu!.info, backend: 'navigator.gpu' } };
      const bench = new WebGpuBackend(viaNavigator, { tuning: shared });
      const library = new WebGpuBackend(gpu!, { tuning: shared });
      try {
        const { kernel, arrays } = matmulCase({ batch: 1, m: 24, n: 20, k: 32, aT: false, bT: false, bias: false, seed: 9 });
        const rec = (await bench.tuneKernel(kernel, 2_000))!;
        expect(library.adapterKey).toBe(bench.adapterKey);
        expect(shared.get(library.adapterKey, tuningKey(kernel)!)).toEqual(rec);
        expect(library.variantOf(kernel)).toEqual(rec.variant);
        expectClose(await runOn(library, kernel, arrays), reference(kernel, arrays), 1e-4, 'tuned via navigator.gpu');
      } finally {
        bench.dispose();
        library.dispose();
      }
    }, 600_000);

    it('with tune on, a launched signature is tuned at the next read', async () => {
      const own = new TuningStore(null);
      const tuned = new WebGpuBackend(gpu!, { tune: true, tuning: own, tuneBudgetMs: 2000 });
      try {
        const k = sumKernel(1, 200_000);
        const x = new Float32Array(200_000).fill(0.5);
        expect(await runOn(tuned, k, [x])).toEqual(Float32Array.of(100_000));
        expect(own.get(tuned.adapterKey, tuningKey(k)!)).toBeDefined();
        expect(await runOn(tuned, k, [x])).toEqual(Float32Array.of(100_000));
      } finally {
        tuned.dispose();
      }
    }, 600_000);
  });
});
