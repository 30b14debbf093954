// The WebGPU backend against the reference interpreter: random kernel IR (elementwise trees over
// odd shapes, reductions, matmuls with strides and epilogues, scatter-add, rand) must give the
// interpreter's numbers within f32 tolerance, and exactly where the math is exact.
// Without an adapter the suite skips with the reason, except under CI, where that is a failure.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { hostArray, reference, runOn } from './fixtures/kernel-runs.js';
import type { DType } from '../graphs/types.js';
import {
  ibounds, iconst, iadd, imul, ivar,
  type BufferParam, type Expr, type IndexExpr, type IndexPred, type Kernel, type MatmulKernel,
  type MatmulOperand, type ScatterAddKernel,
} from '../ops/kernel-ir.js';
import { randUniform } from '../ops/rand.js';
import { acquireWebGpu, lastAcquireFailure, DeviceError, type WebGpuDevice } from '../runtime/webgpu/device.js';
import { WebGpuBackend, KernelLaunchError, type HostArray } from '../runtime/webgpu/backend.js';
import { KernelCompileError } from '../runtime/webgpu/render-wgsl.js';

const gpu: WebGpuDevice | null = await acquireWebGpu();
if (!gpu) console.warn(`WebGPU tests skipped: no adapter (${lastAcquireFailure})`);

// ---------------------------------------------------------------- running and comparing

/** Index of the first element differing by more than atol + rtol*|want| (NaN matches NaN), or -1. */
function mismatch(got: HostArray, want: HostArray, rtol: number, atol: number): number {
  if (got.length !== want.length) return 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (g === w || (Number.isNaN(g) && Number.isNaN(w))) continue;
    if (!(Math.abs(g - w) <= atol + rtol * Math.abs(w))) return i;
  }
  return -1;
}

function expectMatch(k: Kernel, got: HostArray, want: HostArray, rtol = 2e-4, atol = 2e-4): void {
  const exact = k.out.dtype === 'i32' || k.out.dtype === 'bool';
  const i = mismatch(got, want, exact ? 0 : rtol, exact ? 0 : atol);
  if (i >= 0) {
    expect.fail(`kernel ${JSON.stringify(k)}\nelement ${i}: webgpu ${got[i]}, reference ${want[i]}`);
  }
}

// ---------------------------------------------------------------- random kernel IR

/** A small seeded generator: the trees are built from one fast-check integer, so a failing case
 * prints its seed and shape and replays exactly. */
class Rng {
  constructor(private s: number) {}
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** What values an input holds: floats; small integers as f32 (ties for argmax, exact for mod);
 * halves (round's ties); i32 values; bools; i32 gather indices (some out of range). */
type Fill = 'float' | 'ints' | 'halves' | 'i32' | 'bool' | 'index';
const FILL_DTYPE: Record<Fill, DType> = { float: 'f32', ints: 'f32', halves: 'f32', i32: 'i32', bool: 'bool', index: 'i32' };

class ExprGen {
  readonly fills: Fill[] = [];
  readonly hi: number[] = [];
  private readonly sizes = new Map<string, number>();
  private nvars = 0;

  constructor(readonly r: Rng, readonly shape: readonly number[]) {
    shape.forEach((d, i) => this.sizes.set(`i${i}`, d));
  }

  get outVars(): string[] {
    return this.shape.map((_, i) => `i${i}`);
  }

  private input(fill: Fill): number {
    const have = this.fills.flatMap((f, i) => (f === fill ? [i] : []));
    if (have.length && (have.length >= 2 || this.r.chance(0.6))) return this.r.pick(have);
    this.fills.push(fill);
    this.hi.push(0);
    return this.fills.length - 1;
  }

  /** A random affine index over `vars`, sometimes through div/mod or a gathered index. */
  index(vars: readonly string[]): IndexExpr {
    let e: IndexExpr = iconst(this.r.int(0, 3));
    for (const v of vars) if (this.r.chance(0.7)) e = iadd(e, imul(ivar(v), this.r.pick([0, 1, 1, 2, 3, 5])));
    if (this.r.chance(0.2)) e = { k: 'div', a: e, c: this.r.int(2, 4) };
    if (this.r.chance(0.2)) e = { k: 'mod', a: e, c: this.r.int(2, 7) };
    if (this.r.chance(0.1)) {
      const buf = this.input('index');
      const at = this.index(vars.slice(0, 1));
      this.hi[buf] = Math.max(this.hi[buf]!, ibounds(at, this.sizes)[1]);
      e = iadd({ k: 'loadIndex', buf, at, hi: this.r.int(0, 8) }, e);
    }
    return e;
  }

  load(fill: Fill, vars: readonly string[]): Expr {
    const buf = this.input(fill);
    const at = this.index(vars);
    this.hi[buf] = Math.max(this.hi[buf]!, ibounds(at, this.sizes)[1]);
    return { k: 'load', buf, at, dtype: FILL_DTYPE[fill] };
  }

  private newVars(): { name: string; size: number }[] {
    return Array.from({ length: this.r.int(1, 2) }, () => {
      const v = { name: `r${this.nvars++}`, size: this.r.int(1, 6) };
      this.sizes.set(v.name, v.size);
      return v;
    });
  }

  /** An f32 value whose computation is exact on both sides (inputs to discontinuous ops). */
  exactF(vars: readonly string[]): Expr {
    switch (this.r.int(0, 4)) {
      case 0: return this.load('float', vars);
      case 1: return this.load('ints', vars);
      case 2: return this.load('halves', vars);
      case 3: return { k: 'const', v: this.r.pick([-2, -1.5, -0.5, 0, 0.5, 1, 2.5]), dtype: 'f32' };
      default: return { k: 'index', at: this.index(vars), dtype: 'f32' };
    }
  }

  f32(d: number, vars: readonly string[]): Expr {
    const u = (op: Extract<Expr, { k: 'unary' }>['op'], a: Expr): Expr => ({ k: 'unary', op, a, dtype: 'f32' });
    const b = (op: Extract<Expr, { k: 'binary' }>['op'], a: Expr, c: Expr): Expr => ({ k: 'binary', op, a, b: c, dtype: 'f32' });
    const c = (v: number): Expr => ({ k: 'const', v, dtype: 'f32' });
    const sub = () => this.f32(d - 1, vars);
    if (d <= 0 || this.r.chance(0.2)) {
      const leaf = this.r.int(0, 5);
      if (leaf <= 2) return this.load('float', vars);
      if (leaf === 3) return c(Math.fround(this.r.next() * 4 - 2));
      if (leaf === 4) return { k: 'rand', seed: this.r.int(0, 2 ** 32 - 1), at: this.index(vars), dtype: 'f32' };
      return this.exactF(vars);
    }
    switch (this.r.int(0, 11)) {
      case 0: {
        const op = this.r.pick(['neg', 'abs', 'tanh', 'sigmoid', 'relu'] as const);
        return u(op, sub());
      }
      case 1: {
        const x = sub();
        switch (this.r.int(0, 7)) {
          case 0: return u('exp', u('tanh', x));
          case 1: return u('log', b('add', u('abs', x), c(1)));
          case 2: return u('sqrt', u('abs', x));
          case 3: return u('rsqrt', b('add', u('abs', x), c(1)));
          case 4: return u('recip', b('add', u('abs', x), c(1)));
          case 5: return u('square', u('tanh', x));
          case 6: return u('sin', b('mul', u('tanh', x), c(3)));
          default: return u('cos', b('mul', u('tanh', x), c(3)));
        }
      }
      case 2: return u(this.r.pick(['floor', 'ceil', 'round', 'sign', 'step', 'not'] as const), this.exactF(vars));
      case 3: case 4: return b(this.r.pick(['add', 'sub', 'mul', 'max', 'min'] as const), sub(), sub());
      case 5: {
        switch (this.r.int(0, 2)) {
          case 0: return b('div', sub(), b('add', u('abs', sub()), c(1)));
          case 1: return b('pow', b('add', u('abs', sub()), c(0.5)), b('mul', u('tanh', sub()), c(2)));
          default: return b('pow', this.exactF(vars), c(this.r.pick([0, 1, 2, 3])));
        }
      }
      case 6: return b('mod', this.r.chance(0.5) ? this.load('halves', vars) : this.load('ints', vars), c(this.r.pick([-4, -2, -1, 1, 2, 4])));
      case 7: return { k: 'where', c: this.bool(d - 1, vars), a: sub(), b: sub(), dtype: 'f32' };
      case 8: return { k: 'select', pred: this.pred(vars), a: sub(), b: sub(), dtype: 'f32' };
      case 9: return { k: 'cast', a: this.r.chance(0.5) ? this.i32(d - 1, vars) : this.bool(d - 1, vars), dtype: 'f32' };
      default: {
        const rv = this.newVars();
        const body = this.f32(d - 1, [...vars, ...rv.map((v) => v.name)]);
        return { k: 'reduce', op: this.r.pick(['sum', 'max', 'min'] as const), vars: rv, body, dtype: 'f32' };
      }
    }
  }

  i32(d: number, vars: readonly string[]): Expr {
    const b = (op: Extract<Expr, { k: 'binary' }>['op'], a: Expr, c: Expr): Expr => ({ k: 'binary', op, a, b: c, dtype: 'i32' });
    if (d <= 0 || this.r.chance(0.25)) {
      switch (this.r.int(0, 2)) {
        case 0: return this.load('i32', vars);
        case 1: return { k: 'const', v: this.r.int(-5, 5), dtype: 'i32' };
        default: return { k: 'index', at: this.index(vars), dtype: 'i32' };
      }
    }
    const sub = () => this.i32(d - 1, vars);
    switch (this.r.int(0, 6)) {
      case 0: case 1: return b(this.r.pick(['add', 'sub', 'mul', 'max', 'min'] as const), sub(), sub());
      // x / 0 = 0 everywhere; x mod 0 is 0 in the backends but NaN -> 0 late in the interpreter
      case 2: return this.r.chance(0.5) ? b('div', sub(), sub()) : b('mod', sub(), { k: 'const', v: this.r.pick([-3, -2, 2, 3]), dtype: 'i32' });
      case 3: return { k: 'unary', op: this.r.pick(['neg', 'abs', 'sign', 'relu', 'square'] as const), a: sub(), dtype: 'i32' };
      case 4: return { k: 'cast', a: this.exactF(vars), dtype: 'i32' };
      case 5: return { k: 'where', c: this.bool(d - 1, vars), a: sub(), b: sub(), dtype: 'i32' };
      default: {
        const [v] = this.newVars();
        const body = this.r.chance(0.5) ? this.load('ints', [...vars, v!.name]) : this.load('float', [...vars, v!.name]);
        return { k: 'reduce', op: this.r.pick(['argmax', 'argmin'] as const), vars: [v!], body, dtype: 'i32' };
      }
    }
  }

  bool(d: number, vars: readonly string[]): Expr {
    const cmp = this.r.pick(['lt', 'le', 'gt', 'ge', 'eq', 'ne'] as const);
    if (d <= 0 || this.r.chance(0.3)) {
      if (this.r.chance(0.3)) return this.load('bool', vars);
      return { k: 'binary', op: cmp, a: this.exactF(vars), b: this.exactF(vars), dtype: 'bool' };
    }
    switch (this.r.int(0, 3)) {
      case 0: return { k: 'binary', op: cmp, a: this.i32(d - 1, vars), b: this.i32(d - 1, vars), dtype: 'bool' };
      case 1: return { k: 'binary', op: this.r.pick(['and', 'or'] as const), a: this.bool(d - 1, vars), b: this.bool(d - 1, vars), dtype: 'bool' };
      case 2: return { k: 'unary', op: 'not', a: this.bool(d - 1, vars), dtype: 'bool' };
      default: return { k: 'cast', a: this.i32(d - 1, vars), dtype: 'bool' };
    }
  }

  pred(vars: readonly string[]): IndexPred {
    const one = (): IndexPred => ({ k: this.r.pick(['lt', 'ge'] as const), a: this.index(vars), c: this.r.int(0, 6) });
    return this.r.chance(0.3) ? { k: 'and', a: one(), b: one() } : one();
  }

  /** Input buffers filled with values of their kind. */
  data(): { params: BufferParam[]; arrays: HostArray[] } {
    const params: BufferParam[] = [], arrays: HostArray[] = [];
    this.fills.forEach((fill, i) => {
      const n = this.hi[i]! + 1;
      const a = hostArray(FILL_DTYPE[fill], n);
      for (let j = 0; j < n; j++) {
        const r = this.r;
        a[j] = fill === 'float' ? Math.fround(r.next() * 4 - 2) : fill === 'ints' ? r.int(-3, 3)
          : fill === 'halves' ? r.int(-6, 6) / 2 : fill === 'i32' ? r.int(-5, 5) : fill === 'bool' ? r.int(0, 1) : r.int(-3, 12);
      }
      params.push({ dtype: FILL_DTYPE[fill], size: n });
      arrays.push(a);
    });
    return { params, arrays };
  }
}

function mapKernel(seed: number, shape: number[], dtype: DType, depth: number): { kernel: Kernel; arrays: HostArray[] } {
  const g = new ExprGen(new Rng(seed), shape);
  const expr = dtype === 'f32' ? g.f32(depth, g.outVars) : dtype === 'i32' ? g.i32(depth, g.outVars) : g.bool(depth, g.outVars);
  const { params, arrays } = g.data();
  return { kernel: { kind: 'map', name: `random_${seed >>> 0}`, inputs: params, out: { dtype, shape }, expr }, arrays };
}

const shapeArb = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 60, max: 700 })).map((s) => [...s]) },
);

// ---------------------------------------------------------------- matmul kernels

interface Layout {
  transposed: boolean;
  broadcast: boolean[];
  gap: number;
  offset: number;
}

const layoutArb = (nb: number) =>
  fc.record({
    transposed: fc.boolean(),
    broadcast: fc.array(fc.boolean(), { minLength: nb, maxLength: nb }),
    gap: fc.constantFrom(1, 1, 1, 2),
    offset: fc.constantFrom(0, 0, 4, 3),
  });

/** An operand [...batch, rows, cols] laid out densely (rows/cols possibly swapped), maybe padded. */
function operand(buf: number, batch: readonly number[], rows: number, cols: number, l: Layout): { op: MatmulOperand; size: number } {
  const inner = l.transposed ? rows : cols, outer = l.transposed ? cols : rows;
  const innerStride = 1, outerStride = inner * l.gap;
  let s = outer * outerStride;
  const batchStrides = batch.map(() => 0);
  for (let i = batch.length - 1; i >= 0; i--) {
    if (l.broadcast[i]) continue;
    batchStrides[i] = s;
    s *= batch[i]!;
  }
  const [rowStride, colStride] = l.transposed ? [innerStride, outerStride] : [outerStride, innerStride];
  const max = l.offset + batch.reduce((a, d, i) => a + (d - 1) * batchStrides[i]!, 0) + (rows - 1) * rowStride + (cols - 1) * colStride;
  return { op: { buf, offset: l.offset, batchStrides, rowStride, colStride }, size: max + 1 };
}

const dimArb = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 20 }).map((x) => 4 * x), fc.integer({ min: 30, max: 140 }));

const matmulArb = fc
  .record({
    batch: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
    m: dimArb, n: dimArb, k: dimArb,
    epilogue: fc.constantFrom('none', 'bias', 'relu2d', 'leaky', 'scale'),
    seed: fc.integer(),
  })
  .chain((c) => fc.record({ c: fc.constant(c), la: layoutArb(c.batch.length), lb: layoutArb(c.batch.length) }));

function buildMatmul(c: { batch: number[]; m: number; n: number; k: number; epilogue: string; seed: number }, la: Layout, lb: Layout) {
  const rng = new Rng(c.seed);
  const A = operand(0, c.batch, c.m, c.k, la), B = operand(1, c.batch, c.k, c.n, lb);
  const nb = c.batch.length;
  const inputs: BufferParam[] = [{ dtype: 'f32', size: A.size }, { dtype: 'f32', size: B.size }];
  const acc: Expr = { k: 'acc', dtype: 'f32' };
  const f = (op: Extract<Expr, { k: 'binary' }>['op'], a: Expr, b: Expr): Expr => ({ k: 'binary', op, a, b, dtype: 'f32' });
  let epilogue: Expr | null = null;
  if (c.epilogue === 'bias') {
    inputs.push({ dtype: 'f32', size: c.n });
    epilogue = f('add', acc, { k: 'load', buf: 2, at: ivar(`i${nb + 1}`), dtype: 'f32' });
  } else if (c.epilogue === 'relu2d') {
    inputs.push({ dtype: 'f32', size: c.m * c.n });
    const at = iadd(imul(ivar(`i${nb}`), c.n), ivar(`i${nb + 1}`));
    epilogue = { k: 'unary', op: 'relu', a: f('add', acc, { k: 'load', buf: 2, at, dtype: 'f32' }), dtype: 'f32' };
  } else if (c.epilogue === 'leaky') {
    const pos: Expr = { k: 'binary', op: 'gt', a: acc, b: { k: 'const', v: 0, dtype: 'f32' }, dtype: 'bool' };
    epilogue = { k: 'where', c: pos, a: acc, b: f('mul', acc, { k: 'const', v: 0.1, dtype: 'f32' }), dtype: 'f32' };
  } else if (c.epilogue === 'scale') {
    epilogue = f('mul', acc, { k: 'const', v: 0.5, dtype: 'f32' });
  }
  const kernel: MatmulKernel = {
    kind: 'matmul', name: 'random_matmul', inputs, out: { dtype: 'f32', shape: [...c.batch, c.m, c.n] },
    batch: c.batch, m: c.m, n: c.n, k: c.k, a: A.op, b: B.op, epilogue,
  };
  const arrays = inputs.map((p) => Float32Array.from({ length: p.size }, () => Math.fround(rng.next() * 2 - 1)));
  return { kernel, arrays };
}

// ---------------------------------------------------------------- the suite

describe('WebGPU backend', () => {
  it('has an adapter when CI is set (skips elsewhere)', () => {
    if (!gpu && process.env.CI) {
      expect.fail(`CI is set but no WebGPU adapter was found: ${lastAcquireFailure}. Install libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri.`);
    }
  });

  describe.skipIf(!gpu)('on the Dawn adapter', () => {
    let be: WebGpuBackend;
    let beWorkgroup: WebGpuBackend;
    beforeAll(() => {
      be = new WebGpuBackend(gpu!, { matmul: 'register' });
      beWorkgroup = new WebGpuBackend(gpu!, { matmul: 'workgroup' });
    });
    afterAll(() => {
      be.dispose();
      beWorkgroup.dispose();
    });

    it('reports the adapter', () => {
      expect(gpu!.info.description + gpu!.info.device).not.toBe('');
      expect(gpu!.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(4);
    });

    it('random elementwise expression trees match the interpreter', async () => {
      await fc.assert(
        fc.asyncProperty(shapeArb, fc.integer(), fc.constantFrom<DType>('f32', 'f32', 'f32', 'i32', 'bool'), fc.integer({ min: 1, max: 4 }),
          async (shape, seed, dtype, depth) => {
            const { kernel, arrays } = mapKernel(seed, shape, dtype, depth);
            expectMatch(kernel, await runOn(be, kernel, arrays), reference(kernel, arrays));
          }),
        { numRuns: 150 },
      );
    });

    it('reductions (sum, max, min, argmax with ties) over rows match the interpreter', async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 40 }), fc.oneof(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 200, max: 1500 })),
          fc.constantFrom('sum', 'max', 'min', 'argmax', 'argmin', 'softmax'), fc.integer(),
          async (rows, cols, op, seed) => {
            const rng = new Rng(seed);
            const x: Expr = { k: 'load', buf: 0, at: iadd(imul(ivar('i0'), cols), ivar('r')), dtype: 'f32' };
            const r = [{ name: 'r', size: cols }];
            let expr: Expr, dtype: DType = 'f32';
            if (op === 'argmax' || op === 'argmin') {
              expr = { k: 'reduce', op, vars: r, body: x, dtype: (dtype = 'i32') };
            } else if (op === 'softmax') {
              // out[i0, i1] = exp(x - max) / sum(exp(x - max)): a reduction nested in a reduction's body
              const xi: Expr = { ...x, at: iadd(imul(ivar('i0'), cols), ivar('i1')) } as Expr;
              const mx = (v: string): Expr => ({ k: 'reduce', op: 'max', vars: [{ name: v, size: cols }], body: { ...x, at: iadd(imul(ivar('i0'), cols), ivar(v)) } as Expr, dtype: 'f32' });
              const e = (a: Expr, v: string): Expr => ({ k: 'unary', op: 'exp', a: { k: 'binary', op: 'sub', a, b: mx(v), dtype: 'f32' }, dtype: 'f32' });
              const total: Expr = { k: 'reduce', op: 'sum', vars: r, body: e(x, 'q'), dtype: 'f32' };
              expr = { k: 'binary', op: 'div', a: e(xi, 'p'), b: total, dtype: 'f32' };
            } else {
              expr = { k: 'reduce', op: op as 'sum', vars: r, body: x, dtype: 'f32' };
            }
            const shape = op === 'softmax' ? [rows, cols] : [rows];
            if (op === 'softmax' && rows * cols * cols > 4e5) return;
            const ties = rng.chance(0.5);
            const data = Float32Array.from({ length: rows * cols }, () => (ties ? rng.int(-2, 2) : Math.fround(rng.next() * 6 - 3)));
            const kernel: Kernel = { kind: 'map', name: `reduce_${op}`, inputs: [{ dtype: 'f32', size: rows * cols }], out: { dtype, shape }, expr };
            expectMatch(kernel, await runOn(be, kernel, [data]), reference(kernel, [data]), 1e-4, 1e-4 * Math.sqrt(cols));
          }),
        // every split, kind and shape class is also in test/webgpu-reduce.test.ts
        { numRuns: 50 },
      );
    });

    for (const variant of ['register', 'workgroup'] as const) {
      it(`${variant}-tiled matmuls with random shapes, strides, batches and epilogues match the interpreter`, async () => {
        const backend = variant === 'register' ? be : beWorkgroup;
        await fc.assert(
          fc.asyncProperty(matmulArb, async ({ c, la, lb }) => {
            const { kernel, arrays } = buildMatmul(c, la, lb);
            expectMatch(kernel, await runOn(backend, kernel, arrays), reference(kernel, arrays), 1e-4, 2e-6 * c.k + 1e-6);
          }),
          // the register kernel's large tiles take ~0.2 s each to compile on llvmpipe; every variant
          // the tuner can pick is run again in test/webgpu-tuner.test.ts
          { numRuns: variant === 'register' ? 20 : 50 },
        );
      });
    }

    it('register matmuls read transposed operands (xᵀ·dy, dy·Wᵀ) as vec4s and match the interpreter', async () => {
      const layouts: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];
      for (const [m, n, k] of [[12, 8, 16], [20, 12, 6], [4, 4, 1], [36, 16, 20]]) {
        for (const [aT, bT] of layouts) {
          const c = { batch: [2], m: m!, n: n!, k: k!, epilogue: 'bias', seed: m! * 7 + k! };
          const la = { transposed: aT, broadcast: [false], gap: 1, offset: 4 }, lb = { transposed: bT, broadcast: [true], gap: 1, offset: 0 };
          const { kernel, arrays } = buildMatmul(c, la, lb);
          const code = be.render(kernel).passes[0]!.code;
          if (aT && m! % 4 === 0) expect(code, 'A read along m').toContain('ag0');
          if (bT && k! % 4 === 0 && k! >= 4) expect(code, 'B read along k').toContain('bc40');
          expectMatch(kernel, await runOn(be, kernel, arrays), reference(kernel, arrays), 1e-4, 2e-6 * k! + 1e-6);
        }
      }
    });

    it('tuneMatmul times each matmul variant and keeps the faster', async () => {
      const tuned = new WebGpuBackend(gpu!, {});
      const rates = await tuned.tuneMatmul(128);
      expect(rates.register).toBeGreaterThan(0);
      const best = (Object.entries(rates) as [string, number][]).sort((x, y) => y[1] - x[1])[0]![0];
      expect(tuned.matmulVariant).toBe(best);
      tuned.dispose();
    });

    it('scatter-add adds rows in order, exactly as the interpreter does', async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 40 }), fc.integer(),
          async (rows, outRows, inner, seed) => {
            const rng = new Rng(seed);
            const kernel: ScatterAddKernel = {
              kind: 'scatterAdd', name: 'scatter', out: { dtype: 'f32', shape: [outRows, inner] },
              inputs: [{ dtype: 'f32', size: outRows * inner }, { dtype: 'i32', size: rows }, { dtype: 'f32', size: rows * inner }],
              base: 0, indices: 1, updates: 2, rows, outRows, inner, outer: 1,
            };
            const arrays = [
              Float32Array.from({ length: outRows * inner }, () => Math.fround(rng.next() * 2 - 1)),
              Int32Array.from({ length: rows }, () => rng.int(-2, outRows + 1)),
              Float32Array.from({ length: rows * inner }, () => Math.fround(rng.next() * 2 - 1)),
            ];
            expectMatch(kernel, await runOn(be, kernel, arrays), reference(kernel, arrays), 0, 0);
          }),
        { numRuns: 100 },
      );
    });

    it('long reductions are shared by a workgroup and stay exact (llvmpipe stops loops at 65535)', async () => {
      const n = 300_000;
      const sum: Kernel = { kind: 'map', name: 'total', inputs: [{ dtype: 'f32', size: n }], out: { dtype: 'f32', shape: [] },
        expr: { k: 'reduce', op: 'sum', vars: [{ name: 'r', size: n }], body: { k: 'load', buf: 0, at: ivar('r'), dtype: 'f32' }, dtype: 'f32' } };
      expect([...(await runOn(be, sum, [new Float32Array(n).fill(1)]))]).toEqual([n]);
      const arg: Kernel = { ...sum, name: 'where_max', out: { dtype: 'i32', shape: [] }, expr: { ...sum.expr, op: 'argmax', dtype: 'i32' } as Expr };
      const x = new Float32Array(n);
      x[123_457] = 2;
      x[200_000] = 2;
      expect([...(await runOn(be, arg, [x]))]).toEqual([123_457]);
      if (be.loopLimit < Infinity) {
        // a nest no workgroup split can bring under the limit is refused, not computed wrong
        const m = 3000;
        const inner: Expr = { k: 'reduce', op: 'max', vars: [{ name: 'q', size: m }], body: { k: 'load', buf: 0, at: ivar('q'), dtype: 'f32' }, dtype: 'f32' };
        const nest: Kernel = { ...sum, name: 'nest', inputs: [{ dtype: 'f32', size: m }], expr: { k: 'reduce', op: 'sum', vars: [{ name: 'r', size: m }], body: inner, dtype: 'f32' } };
        expect(() => be.run(nest, [be.alloc('f32', m)], be.alloc('f32', 1))).toThrow(KernelLaunchError);
      }
    });

    it('scatter-add of more rows than one pass takes keeps the order of additions', async () => {
      const rows = 70_000, outRows = 3;
      const kernel: ScatterAddKernel = {
        kind: 'scatterAdd', name: 'scatter_long', out: { dtype: 'f32', shape: [outRows, 1] },
        inputs: [{ dtype: 'f32', size: outRows }, { dtype: 'i32', size: rows }, { dtype: 'f32', size: rows }],
        base: 0, indices: 1, updates: 2, rows, outRows, inner: 1, outer: 1,
      };
      const rng = new Rng(5);
      const arrays = [new Float32Array([1, 2, 3]), Int32Array.from({ length: rows }, () => rng.int(0, 2)),
        Float32Array.from({ length: rows }, () => Math.fround(rng.next()))];
      expect(be.render(kernel).passes.length).toBeGreaterThan(2);
      expectMatch(kernel, await runOn(be, kernel, arrays), reference(kernel, arrays), 0, 0);
    });

    it('scatter-add without a base starts from zeros and folds outer dims', async () => {
      const kernel: ScatterAddKernel = {
        kind: 'scatterAdd', name: 'scatter_outer', out: { dtype: 'f32', shape: [2, 3, 2] },
        inputs: [{ dtype: 'i32', size: 3 }, { dtype: 'f32', size: 12 }],
        base: -1, indices: 0, updates: 1, rows: 3, outRows: 3, inner: 2, outer: 2,
      };
      const upd = Float32Array.from({ length: 12 }, (_, i) => i + 1); // [outer 2][rows 3][inner 2]
      const got = await runOn(be, kernel, [new Int32Array([2, 2, 9]), upd]);
      // rows 0 and 1 go to row 2, row 2 is clamped to row 2 as well
      expect([...got]).toEqual([0, 0, 0, 0, 1 + 3 + 5, 2 + 4 + 6, 0, 0, 0, 0, 7 + 9 + 11, 8 + 10 + 12]);
    });

    it('rand gives exactly the bits of the shared TypeScript definition', async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 0, max: 1 << 20 }),
          async (seed, n, offset) => {
            const kernel: Kernel = { kind: 'map', name: 'rand', inputs: [], out: { dtype: 'f32', shape: [n] }, expr: { k: 'rand', seed, at: iadd(ivar('i0'), iconst(offset)), dtype: 'f32' } };
            const got = await runOn(be, kernel, []);
            for (let i = 0; i < n; i++) if (got[i] !== randUniform(seed, i + offset)) expect.fail(`seed ${seed} index ${i + offset}: ${got[i]} vs ${randUniform(seed, i + offset)}`);
          }),
        { numRuns: 100 },
      );
      const many = await runOn(be, { kind: 'map', name: 'rand_mean', inputs: [], out: { dtype: 'f32', shape: [1 << 16] }, expr: { k: 'rand', seed: 1, at: ivar('i0'), dtype: 'f32' } }, []);
      const mean = (many as Float32Array).reduce((a, b) => a + b, 0) / many.length;
      expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
      expect(Math.min(...many)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...many)).toBeLessThan(1);
    });

    it('splits dispatches of more than 65535 workgroups over two dimensions', async () => {
      // one element per invocation, 64 per workgroup: 65535 workgroups cover fewer elements than this
      const narrow = new WebGpuBackend(gpu!, { workgroupSize: 64, vectorize: false });
      const n = 65535 * 64 + 1001;
      const kernel: Kernel = { kind: 'map', name: 'iota', inputs: [], out: { dtype: 'i32', shape: [n] }, expr: { k: 'index', at: ivar('i0'), dtype: 'i32' } };
      expect(narrow.render(kernel).passes[0]!.workgroups[1]).toBeGreaterThan(1);
      const got = await runOn(narrow, kernel, []);
      narrow.dispose();
      expect(got.length).toBe(n);
      for (let i = 0; i < n; i += 997) if (got[i] !== i) expect.fail(`element ${i} is ${got[i]}`);
      expect(got[n - 1]).toBe(n - 1);
    });

    it('map kernels compute four outputs per invocation where the last axis allows, with the same results', async () => {
      const scalar = new WebGpuBackend(gpu!, { vectorize: false });
      await fc.assert(
        fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 2 }), fc.integer({ min: 1, max: 5 }), fc.integer(),
          fc.constantFrom<DType>('f32', 'f32', 'i32', 'bool'), fc.integer({ min: 1, max: 4 }),
          async (outer, quads, seed, dtype, depth) => {
            const { kernel, arrays } = mapKernel(seed, [...outer, 4 * quads], dtype, depth);
            const code = be.render(kernel).passes[0]?.code ?? '';
            if (!JSON.stringify(kernel).includes('"reduce"')) expect(code).toContain('out[quad]');
            const got = await runOn(be, kernel, arrays);
            expectMatch(kernel, got, reference(kernel, arrays));
            expectMatch(kernel, got, await runOn(scalar, kernel, arrays), 1e-6, 1e-6);
          }),
        { numRuns: 150 },
      );
      scalar.dispose();
    });

    it('bool and i32 tensors round-trip through u32/i32 storage', async () => {
      const b = be.upload(new Uint8Array([0, 1, 1, 0, 2]));
      expect([...(await be.read(b))]).toEqual([0, 1, 1, 0, 1]);
      const i = be.upload(new Int32Array([-5, 0, 2147483647, -2147483648]));
      expect([...(await be.read(i))]).toEqual([-5, 0, 2147483647, -2147483648]);
    });

    it('batches dispatches into one submit and reads back only when asked', async () => {
      const kernel: Kernel = { kind: 'map', name: 'inc', inputs: [{ dtype: 'f32', size: 4 }], out: { dtype: 'f32', shape: [4] },
        expr: { k: 'binary', op: 'add', a: { k: 'load', buf: 0, at: ivar('i0'), dtype: 'f32' }, b: { k: 'const', v: 1, dtype: 'f32' }, dtype: 'f32' } };
      let x = be.upload(new Float32Array([0, 1, 2, 3]));
      await be.read(x);
      const before = { ...be.stats };
      for (let s = 0; s < 10; s++) {
        const y = be.alloc('f32', 4);
        be.run(kernel, [x], y);
        be.release(x);
        x = y;
      }
      expect(be.stats.dispatches - before.dispatches).toBe(10);
      expect(be.stats.submits - before.submits).toBe(0);
      expect([...(await be.read(x))]).toEqual([10, 11, 12, 13]);
      expect(be.stats.submits - before.submits).toBe(1);
      // the ping-pong above reuses two pooled buffers instead of creating ten
      expect(be.stats.buffersCreated - before.buffersCreated).toBeLessThanOrEqual(3);
    });

    it('reuses a compiled pipeline for kernels that differ only by name', async () => {
      const k = (name: string): Kernel => ({ kind: 'map', name, inputs: [], out: { dtype: 'f32', shape: [3] }, expr: { k: 'const', v: 2, dtype: 'f32' } });
      await runOn(be, k('a'), []);
      const n = be.stats.pipelines;
      expect([...(await runOn(be, k('b'), []))]).toEqual([2, 2, 2]);
      expect(be.stats.pipelines).toBe(n);
    });

    it('a kernel WGSL rejects is a KernelCompileError naming the kernel and showing the source', async () => {
      // an index coefficient beyond i32 is valid IR but not valid WGSL
      const bad: Kernel = { kind: 'map', name: 'too_wide', inputs: [], out: { dtype: 'i32', shape: [2] }, expr: { k: 'index', at: imul(ivar('i0'), 3e9), dtype: 'i32' } };
      const err = await be.compile(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KernelCompileError);
      expect((err as KernelCompileError).kernel).toBe('too_wide');
      expect((err as Error).message).toContain('fn main');
      // the same error surfaces from run + read, and the backend keeps working afterwards
      const bad2 = { ...bad, name: 'too_wide_2', out: { dtype: 'i32' as const, shape: [3] } };
      await expect(runOn(be, bad2, [])).rejects.toBeInstanceOf(KernelCompileError);
      expect([...(await runOn(be, { kind: 'map', name: 'ok', inputs: [], out: { dtype: 'i32', shape: [1] }, expr: { k: 'const', v: 7, dtype: 'i32' } }, []))]).toEqual([7]);
    });

    it('rejects kernels with more inputs than the device has storage bindings, and mismatched buffers', () => {
      const n = gpu!.limits.maxStorageBuffersPerShaderStage;
      const inputs = Array.from({ length: n }, () => ({ dtype: 'f32' as const, size: 1 }));
      const wide: Kernel = { kind: 'map', name: 'wide', inputs, out: { dtype: 'f32', shape: [1] }, expr: { k: 'const', v: 0, dtype: 'f32' } };
      const t = be.alloc('f32', 1);
      expect(() => be.run(wide, inputs.map(() => t), be.alloc('f32', 1))).toThrow(KernelLaunchError);
      const one: Kernel = { ...wide, name: 'one', inputs: [{ dtype: 'f32', size: 8 }] };
      expect(() => be.run(one, [t], be.alloc('f32', 1))).toThrow(/8/);
      expect(() => be.run({ ...one, inputs: [{ dtype: 'f32', size: 1 }] }, [t], t)).toThrow(/also an input/);
    });

    it('a lost device turns into a DeviceError', async () => {
      const other = await acquireWebGpu();
      const b2 = new WebGpuBackend(other!, {}, true);
      const x = b2.upload(new Float32Array([1]));
      other!.destroy();
      await new Promise((r) => setTimeout(r, 50));
      expect(other!.lost).toBeInstanceOf(DeviceError);
      await expect(b2.read(x)).rejects.toBeInstanceOf(DeviceError);
    });
  });
});
