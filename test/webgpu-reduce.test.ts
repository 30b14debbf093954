// Reductions split over many workgroups (render-wgsl-reduce.ts) against the reference
// interpreter: full and partial reductions of every kind the kernel IR has, over random shapes
// and axes (lengths past 65535 and off the workgroup size, length-1 and empty axes), with
// epilogues of one or two reductions (mean, logsumexp over a given shift, a squared-error loss,
// a variance), each split forced to a number of partials; and the same graphs through the executor
// on WebGPU and on the CPU. Without an adapter the suite skips, except under CI.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { mulberry32 } from '../runtime/rng.js';
import { reference, runOn } from './fixtures/kernel-runs.js';
import { numel, type DType } from '../graphs/types.js';
import { iadd, imul, ivar, iconst, stridesOf, type Expr, type IndexExpr, type Kernel, type LoopVar, type ReduceOp } from '../ops/kernel-ir.js';
import { acquireWebGpu, lastAcquireFailure, type WebGpuDevice } from '../runtime/webgpu/device.js';
import { WebGpuBackend, type HostArray } from '../runtime/webgpu/backend.js';
import { renderWgsl } from '../runtime/webgpu/render-wgsl.js';
import { graph } from '../graphs/builder.js';
import { f32 as f32t } from '../graphs/types.js';
import { compile, compileAsync } from '../runtime/executor.js';
import { tensor } from '../runtime/tensor.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';
import { DEFAULT_REDUCE, chooseParts, type ReduceVariant } from '../runtime/webgpu/render-wgsl-reduce.js';
import { candidates } from '../runtime/webgpu/tuner.js';

const gpu: WebGpuDevice | null = await acquireWebGpu();
if (!gpu) console.warn(`WebGPU reduction tests skipped: no adapter (${lastAcquireFailure})`);

/** A seeded generator: each case is built from one fast-check integer. */
const rng = mulberry32;

type Kind = 'sum' | 'mean' | 'max' | 'min' | 'argmax' | 'argmin' | 'any' | 'isum' | 'logsumexp' | 'mse' | 'variance';

interface Case {
  readonly shape: readonly number[];
  readonly axes: readonly number[];
  readonly kind: Kind;
  readonly seed: number;
}

const f32 = (k: Expr['k'], rest: object): Expr => ({ k, ...rest, dtype: 'f32' }) as Expr;

/** out[kept axes] = kind over `axes` of x (and y for the loss); the kernel and its input arrays. */
function buildCase(c: Case): { kernel: Kernel; arrays: HostArray[] } {
  const { shape, axes } = c;
  const kept = shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const n = numel(shape);
  const st = stridesOf(shape);
  const at = (rv: (axis: number) => IndexExpr): IndexExpr =>
    shape.reduce<IndexExpr>((acc, d, i) => iadd(acc, imul(d === 1 ? iconst(0) : rv(i), st[i]!)), iconst(0));
  const vars = (p: string): LoopVar[] => axes.map((a) => ({ name: `${p}${a}`, size: shape[a]! }));
  const idx = (p: string) => (i: number) => (axes.includes(i) ? ivar(`${p}${i}`) : ivar(`i${kept.indexOf(i)}`));
  const load = (buf: number, p: string, dtype: DType = 'f32'): Expr => ({ k: 'load', buf, at: at(idx(p)), dtype });
  const red = (op: ReduceOp, body: Expr, p: string, dtype: DType = body.dtype): Expr =>
    ({ k: 'reduce', op, vars: vars(p), body, dtype });
  const len = axes.reduce((a, i) => a * shape[i]!, 1);
  const r = rng(c.seed);
  const ties = r() < 0.5;
  const floats = () => Float32Array.from({ length: n }, () => (ties ? Math.floor(r() * 5) - 2 : Math.fround(r() * 6 - 3)));
  let expr: Expr, out: DType = 'f32', inputs: DType[] = ['f32'];
  let arrays: HostArray[] = [floats()];
  switch (c.kind) {
    case 'sum': case 'max': case 'min': expr = red(c.kind, load(0, 'r'), 'r'); break;
    case 'mean': expr = f32('binary', { op: 'mul', a: red('sum', load(0, 'r'), 'r'), b: f32('const', { v: 1 / Math.max(1, len) }) }); break;
    case 'argmax': case 'argmin': expr = red(c.kind, load(0, 'r'), 'r', (out = 'i32')); break;
    case 'any':
      inputs = ['bool'];
      arrays = [Uint8Array.from({ length: n }, () => (r() < 0.002 ? 1 : 0))];
      expr = red('max', load(0, 'r', 'bool'), 'r', (out = 'bool'));
      break;
    case 'isum':
      inputs = ['i32'];
      arrays = [Int32Array.from({ length: n }, () => Math.floor(r() * 200) - 100)];
      expr = red('sum', load(0, 'r', 'i32'), 'r', (out = 'i32'));
      break;
    case 'logsumexp': {
      // log(sum(exp(x - 3))) + 3: the shift is a constant here (a max would be its own kernel)
      const sh = f32('const', { v: 3 });
      const body = f32('unary', { op: 'exp', a: f32('binary', { op: 'sub', a: load(0, 'r'), b: sh }) });
      expr = f32('binary', { op: 'add', a: f32('unary', { op: 'log', a: red('sum', body, 'r') }), b: sh });
      break;
    }
    case 'mse': {
      inputs = ['f32', 'f32'];
      arrays.push(floats());
      const d = f32('binary', { op: 'sub', a: load(0, 'r'), b: load(1, 'r') });
      expr = f32('binary', { op: 'mul', a: red('sum', f32('unary', { op: 'square', a: d }), 'r'), b: f32('const', { v: 1 / Math.max(1, len) }) });
      break;
    }
    case 'variance': {
      // two reductions in one epilogue: E[x²] - E[x]²
      const inv = f32('const', { v: 1 / Math.max(1, len) });
      const m = f32('binary', { op: 'mul', a: red('sum', load(0, 'r'), 'r'), b: inv });
      const m2 = f32('binary', { op: 'mul', a: red('sum', f32('unary', { op: 'square', a: load(0, 's') }), 's'), b: inv });
      expr = f32('binary', { op: 'sub', a: m2, b: f32('unary', { op: 'square', a: m }) });
      break;
    }
  }
  const kernel: Kernel = {
    kind: 'map', name: `reduce_${c.kind}`, inputs: inputs.map((dtype) => ({ dtype, size: n })),
    out: { dtype: out, shape: kept.map((i) => shape[i]!) }, expr,
  };
  return { kernel, arrays };
}

function expectClose(k: Kernel, got: HostArray, want: HostArray, len: number, what: string): void {
  const exact = k.out.dtype !== 'f32';
  // sums in another order: the error grows with the length and with the magnitude summed
  const atol = exact ? 0 : 2e-5 * Math.sqrt(Math.max(1, len)) * 3 + 1e-5;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (g === w || (Number.isNaN(g) && Number.isNaN(w))) continue;
    if (exact || !(Math.abs(g - w) <= atol + 1e-4 * Math.abs(w))) {
      expect.fail(`${what} ${k.name} out [${k.out.shape.join(', ')}] element ${i}: webgpu ${g}, reference ${w}`);
    }
  }
  expect(got.length).toBe(want.length);
}

const KINDS: Kind[] = ['sum', 'mean', 'max', 'min', 'argmax', 'argmin', 'any', 'isum', 'logsumexp', 'mse', 'variance'];

/** Small random shapes and axes (length-1 and empty dims included), or one long axis. */
const caseArb: fc.Arbitrary<Case> = fc.oneof(
  fc.record({
    shape: fc.array(fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constant(1), fc.integer({ min: 200, max: 700 })), { minLength: 1, maxLength: 3 }),
    axisBits: fc.integer({ min: 1, max: 7 }),
    kind: fc.constantFrom(...KINDS),
    seed: fc.integer(),
  }).map(({ shape, axisBits, kind, seed }) => {
    let axes = shape.map((_, i) => i).filter((i) => axisBits & (1 << i));
    // argmax/argmin reduce over one variable in the kernel IR
    if (axes.length === 0 || ((kind === 'argmax' || kind === 'argmin') && axes.length > 1)) axes = [axes.at(-1) ?? shape.length - 1];
    return { shape, axes, kind, seed };
  }).filter((c) => numel(c.shape) <= 400_000),
  // past llvmpipe's 65535 iterations and off any power of two, over all or over the last axis
  fc.record({
    n: fc.integer({ min: 65_537, max: 180_000 }),
    rows: fc.constantFrom(1, 1, 2, 3),
    kind: fc.constantFrom(...KINDS),
    seed: fc.integer(),
  }).map(({ n, rows, kind, seed }) => ({ shape: rows === 1 ? [n] : [rows, n], axes: rows === 1 ? [0] : [1], kind, seed })),
);

/** The variants a backend can be given: forced splits, and both defaults ('gpu' is a GPU's, 'auto' this adapter's). */
const VARIANTS: Record<string, Partial<ReduceVariant>> = {
  '2': { split: 2, workgroupSize: 64 },
  '5/256': { split: 5, workgroupSize: 256 },
  '64': { split: 64, workgroupSize: 64 },
  gpu: { ...DEFAULT_REDUCE },
  auto: {},
};

describe('split reductions on WebGPU', () => {
  it('has an adapter when CI is set (skips elsewhere)', () => {
    if (!gpu && process.env.CI) expect.fail(`CI is set but no WebGPU adapter was found: ${lastAcquireFailure}`);
  });

  it('partials per output: within the reduction length, under the loop limit, 1 when there is nothing to split', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 1e8 }), fc.integer({ min: 1, max: 1e5 }), fc.constantFrom(64, 256),
      fc.oneof(fc.constant<'auto'>('auto'), fc.integer({ min: 1, max: 10_000 })), (len, outputs, wg, split) => {
        const p = chooseParts({ split, subgroups: false }, outputs, len, wg);
        expect(p).toBeGreaterThanOrEqual(1);
        if (len <= wg) expect(p).toBe(1);
        else expect(p).toBeLessThanOrEqual(Math.max(Math.ceil(len / wg), 1));
        const chunk = Math.ceil(Math.ceil(len / p) / wg) * wg;
        expect(chunk * p).toBeGreaterThanOrEqual(len);
        expect(chunk / wg).toBeLessThanOrEqual(16384);
      }));
  });

  it('with subgroups, sum/max/min partials combine through subgroup operations (WGSL text)', () => {
    const { kernel } = buildCase({ shape: [100_000], axes: [0], kind: 'sum', seed: 1 });
    const r = renderWgsl(kernel, { workgroupSize: 256, reduce: { split: 'auto', subgroups: true }, maxStorageBuffers: 8 });
    expect(r.passes.length).toBe(2);
    expect(r.passes[0]!.code).toMatch(/^enable subgroups;/);
    expect(r.passes[0]!.code).toContain('subgroupAdd(');
    expect(r.scratchWords).toBeGreaterThan(0);
  });

  describe.skipIf(!gpu && !process.env['CI'])('on the Dawn adapter', () => {
    const backends = new Map<string, WebGpuBackend>();
    const subgroups = gpu?.features.has('subgroups') ?? false;
    beforeAll(() => {
      for (const [name, v] of Object.entries(VARIANTS)) backends.set(name, new WebGpuBackend(gpu!, { reduce: { ...v, subgroups: false } }));
      if (subgroups) backends.set('subgroups', new WebGpuBackend(gpu!, { reduce: { split: 'auto', subgroups: true } }));
    });
    afterAll(() => {
      for (const be of backends.values()) be.dispose();
    });

    it('full and partial reductions, every kind, every forced split, match the interpreter', async () => {
      await fc.assert(
        fc.asyncProperty(caseArb, fc.constantFrom(...Object.keys(VARIANTS)), async (c, split) => {
          const { kernel, arrays } = buildCase(c);
          const be = backends.get(split)!;
          const len = c.axes.reduce((a, i) => a * c.shape[i]!, 1);
          expectClose(kernel, await runOn(be, kernel, arrays), reference(kernel, arrays), len, `split ${split}`);
        }),
        { numRuns: 120 },
      );
    }, 600_000);

    it('a full reduction of 300,000 elements runs as two passes, the first over many workgroups', async () => {
      const { kernel, arrays } = buildCase({ shape: [300_000], axes: [0], kind: 'argmax', seed: 7 });
      for (const [name, least] of [['auto', 2], ['gpu', 256]] as const) {
        const be = backends.get(name)!;
        const r = be.render(kernel);
        expect(r.passes.length).toBe(2);
        expect(r.passes[0]!.workgroups[0]).toBeGreaterThanOrEqual(least);
        expect(r.passes[1]!.workgroups).toEqual([1, 1, 1]);
        expectClose(kernel, await runOn(be, kernel, arrays), reference(kernel, arrays), 300_000, name);
      }
    }, 120_000);

    it('graph reductions over long rows (sum, mean, max, min, argmax, logsumexp, softmax, layer norm, losses) give the CPU numbers', async () => {
      const shared = await sharedWebGpuBackend();
      await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 5_000, max: 80_000 }), fc.integer(), async (rows, n, seed) => {
        const g = graph('long_rows', (b) => {
          const x = b.input('x', f32t(rows, n));
          const y = b.input('y', f32t(rows, n));
          return {
            total: b.sum(x), mean: b.mean(x, 1), max: b.max(x, 1), min: b.min(x), arg: b.argmax(x, 1),
            lse: b.logsumexp(x, 1), soft: b.max(b.softmax(x, 1), 1), norm: b.sum(b.square(b.layerNorm(x)), 1),
            ce: b.softmaxCrossEntropy(x, b.softmax(y, 1)), mse: b.mse(x, y),
          };
        });
        const r = rng(seed);
        const feeds = {
          x: tensor(Float32Array.from({ length: rows * n }, () => Math.floor(r() * 9) - 4 + Math.fround(r() * 0.01)), [rows, n]),
          y: tensor(Float32Array.from({ length: rows * n }, () => Math.fround(r() * 2 - 1)), [rows, n]),
        };
        const want = compile(g, { backend: 'cpu' }).runSync(feeds);
        const got = await (await compileAsync(g, { backend: 'webgpu', webgpu: shared! })).run(feeds);
        for (const [name, w] of Object.entries(want)) {
          const gv = got[name]!.data;
          for (let i = 0; i < w.data.length; i++) {
            const a = gv[i]!, b = w.data[i]!;
            const tol = name === 'arg' ? 0 : 1e-4 * Math.max(1, Math.abs(b)) + (name === 'total' || name === 'norm' ? 1e-5 * Math.sqrt(n) * 5 : 1e-5);
            if (!(Math.abs(a - b) <= tol)) expect.fail(`${name}[${i}] rows ${rows} n ${n}: webgpu ${a}, cpu ${b}`);
          }
        }
      }), { numRuns: 6 });
    }, 600_000);

    // with the feature: subgroup combines give the interpreter's numbers; without it (llvmpipe):
    // asking for them is refused, and the tuner never offers them, so it cannot pick what would
    // not compile here
    it(subgroups ? 'subgroup combines match the interpreter' : 'without subgroups, subgroup reductions are refused and never a tuner candidate', async () => {
      if (!subgroups) {
        expect(() => new WebGpuBackend(gpu!, { reduce: { split: 'auto', subgroups: true } })).toThrow(/subgroups/);
        let offered = 0;
        fc.assert(
          fc.property(caseArb, (c) => {
            const { kernel } = buildCase(c);
            for (const v of candidates(kernel, { workgroupMatmul: true, subgroups: false, maxInvocations: 256 }, null)) {
              if (v.kind !== 'reduce') continue;
              offered++;
              expect(v.reduce.subgroups).toBe(false);
            }
          }),
          { numRuns: 60 },
        );
        expect(offered).toBeGreaterThan(0);
        return;
      }
      await fc.assert(
        fc.asyncProperty(caseArb, async (c) => {
          const { kernel, arrays } = buildCase(c);
          const len = c.axes.reduce((a, i) => a * c.shape[i]!, 1);
          expectClose(kernel, await runOn(backends.get('subgroups')!, kernel, arrays), reference(kernel, arrays), len, 'subgroups');
        }),
        { numRuns: 60 },
      );
    }, 600_000);
  });
});
