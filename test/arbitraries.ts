// fast-check arbitraries for rheo's property tests, exported for anyone testing their own passes
// or backends against the same laws: shapes, broadcastable pairs, tensor values, and random
// well-typed graphs with feeds for their inputs. Values stay where ops are well conditioned
// (positive before log/sqrt, bounded before exp and products). Nothing here runs a graph.

import fc from 'fast-check';
import { extend, graph, type Builder } from '../graphs/builder.js';
import { randUniform } from '../ops/rand.js';
import type { Graph } from '../graphs/graph.js';
import { f32, i32, numel, type Tensor } from '../graphs/types.js';
import { f16roundArray } from '../ops/f16.js';
import { tensor, type HostTensor } from '../runtime/tensor.js';

export interface ShapeOptions {
  readonly minRank?: number;
  readonly maxRank?: number;
  readonly minDim?: number;
  readonly maxDim?: number;
  /** dims are lowered (largest first) until the shape has at most this many elements */
  readonly maxElements?: number;
}

/**
 * A concrete shape.
 *
 * ```ts
 * fc.assert(fc.property(arbShape({ maxRank: 3, maxDim: 4 }), (s) => s.length <= 3));
 * ```
 */
export function arbShape(opts: ShapeOptions = {}): fc.Arbitrary<number[]> {
  const { minRank = 0, maxRank = 3, minDim = 1, maxDim = 4, maxElements = Infinity } = opts;
  return fc
    .array(fc.integer({ min: minDim, max: maxDim }), { minLength: minRank, maxLength: maxRank })
    .map((s) => {
      const out = [...s];
      while (numel(out) > maxElements) {
        const i = out.indexOf(Math.max(...out));
        if (out[i]! <= Math.max(1, minDim)) break;
        out[i]!--;
      }
      return out;
    });
}

/**
 * A shape that broadcasts to `target` under NumPy rules: some leading dims dropped, some dims 1.
 *
 * ```ts
 * fc.assert(fc.property(arbBroadcastableTo([2, 3]), (s) => s.length <= 2));
 * ```
 */
export function arbBroadcastableTo(target: readonly number[]): fc.Arbitrary<number[]> {
  const r = target.length;
  return fc
    .record({
      drop: fc.integer({ min: 0, max: 3 }).map((k) => (k === 3 ? r : Math.min(k, r))),
      ones: fc.array(fc.integer({ min: 0, max: 2 }).map((k) => k === 0), { minLength: r, maxLength: r }),
    })
    .map(({ drop, ones }) => target.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d)));
}

/**
 * Two shapes that broadcast together (NumPy rules), with size-1 and missing leading dims.
 *
 * ```ts
 * fc.assert(fc.property(arbBroadcastPair({ maxRank: 3 }), ([a, b]) => broadcasts(a, b)));
 * ```
 */
export function arbBroadcastPair(opts: ShapeOptions = {}): fc.Arbitrary<[number[], number[]]> {
  return arbShape(opts).chain((out) => fc.tuple(arbBroadcastableTo(out), arbBroadcastableTo(out)));
}

/** Whether two shapes broadcast together under NumPy rules. */
export function broadcasts(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 1; i <= Math.min(a.length, b.length); i++) {
    const x = a[a.length - i]!, y = b[b.length - i]!;
    if (x !== y && x !== 1 && y !== 1) return false;
  }
  return true;
}

/** The broadcast shape of two shapes (assumed compatible). */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  return Array.from({ length: r }, (_, i) => {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    return x === 1 ? y : x;
  });
}

export interface ValueOptions {
  readonly min?: number;
  readonly max?: number;
}

/**
 * Float32 values for a tensor of `shape`: multiples of 2^-12 in [min, max] (default [-2, 2]), so
 * they are exact in f32, free of subnormals, and equal values (ties) do occur.
 *
 * ```ts
 * fc.assert(fc.property(arbTensorValues([2, 3]), (v) => v.length === 6));
 * ```
 */
export function arbTensorValues(shape: readonly number[], opts: ValueOptions = {}): fc.Arbitrary<Float32Array> {
  const { min = -2, max = 2 } = opts;
  const n = numel(shape);
  const q = 4096;
  return fc
    .array(fc.integer({ min: Math.ceil(min * q), max: Math.floor(max * q) }), { minLength: n, maxLength: n })
    .map((a) => Float32Array.from(a, (v) => v / q));
}

/**
 * `fc.assert` parameters: `numRuns`, plus the seed (and path) to replay from FC_SEED (and FC_PATH)
 * when set, as printed by a failing run.
 *
 * ```ts
 * // FC_SEED=-123 FC_PATH=4:1 npx vitest run test/grad.test.ts
 * fc.assert(fc.property(arbShape(), (s) => s.length >= 0), fcParams(100));
 * ```
 */
export function fcParams(numRuns: number): fc.Parameters<unknown> {
  const seed = process.env['FC_SEED'];
  const path = process.env['FC_PATH'];
  return { numRuns, ...(seed ? { seed: Number(seed) } : {}), ...(path ? { path } : {}) };
}

// ------------------------------------------------------------------------------ random graphs

/** Families of steps `arbGraph` draws from; each family picks its exact op and operands. */
export const GRAPH_OPS = [
  'unary', 'binary', 'mod', 'where', 'cast', 'reduce', 'matmul', 'einsum', 'transpose', 'reshape',
  'slice', 'pad', 'concat', 'broadcastTo', 'softmax', 'logSoftmax', 'layerNorm', 'gather',
  'scatterAdd', 'dropout', 'conv2d',
] as const;
export type GraphOp = (typeof GRAPH_OPS)[number];

export interface GraphOptions {
  /** most steps (each adds one to a few nodes); default 8 */
  readonly maxOps?: number;
  readonly maxRank?: number;
  readonly maxDim?: number;
  /** no tensor in the graph gets more elements than this; default 48 */
  readonly maxElements?: number;
  readonly ops?: readonly GraphOp[];
  /** make some leaves params (values in `variables`) instead of inputs; the first leaf is one */
  readonly params?: boolean;
  /**
   * the float dtype of the graph's leaves (and so of most of its values); default 'f32'. With
   * 'f16', leaf values are binary16 and casts through f32 and back appear among the steps.
   */
  readonly float?: 'f32' | 'f16';
}

export interface RandomGraph {
  readonly graph: Graph;
  /** a value for every input */
  readonly feeds: Record<string, HostTensor>;
  /** a value for every param, by the names `Executable.setVariables` takes */
  readonly variables: Record<string, HostTensor>;
}

interface Step {
  readonly op: GraphOp;
  readonly picks: readonly number[];
}

interface Leaf {
  readonly name: string;
  readonly kind: 'input' | 'param';
  readonly dtype: 'f32' | 'i32';
  readonly shape: number[];
  /** i32 leaves: values in [-1, hi] (out-of-range indices are clamped by gather/scatterAdd) */
  readonly hi?: number;
}

/** A value in the graph under construction, with a bound on its magnitude. */
interface Val {
  readonly t: Tensor;
  readonly bound: number;
  /** a leaf: its f32 values are the same on every backend, so comparisons of it are stable */
  readonly exact: boolean;
}

const UNARIES = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'recip', 'square'] as const;
const BINARIES = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min'] as const;
const COMPARISONS = ['lt', 'le', 'gt', 'ge', 'eq', 'ne'] as const;
const REDUCTIONS = ['sum', 'max', 'min', 'mean', 'logsumexp'] as const;

const shapeOf = (v: Val): number[] => v.t.shape as number[];

/** Interprets a list of steps with a builder; every choice comes from the step's picks. */
class GraphMaker {
  readonly leaves: Leaf[] = [];
  readonly pool: Val[] = [];
  private picks: readonly number[] = [];
  private k = 0;

  constructor(private readonly g: Builder, private readonly o: Required<Omit<GraphOptions, 'ops'>>) {}

  pick(n: number): number {
    const v = this.picks[this.k++ % this.picks.length] ?? 0;
    return n <= 1 ? 0 : v % n;
  }

  leaf(shape: readonly number[], dtype: 'f32' | 'i32' = 'f32', hi?: number): Val {
    const asParam = dtype === 'f32' && this.o.params && (this.leaves.length === 0 || this.pick(2) === 0);
    const name = `${asParam ? 'p' : 'x'}${this.leaves.length}`;
    this.leaves.push({ name, kind: asParam ? 'param' : 'input', dtype, shape: [...shape], ...(hi !== undefined ? { hi } : {}) });
    const fl = { dtype: this.o.float, shape: [...shape] };
    const t = asParam ? this.g.param(name, fl) : this.g.input(name, dtype === 'f32' ? fl : i32(...shape));
    const v = { t, bound: 2, exact: true };
    if (dtype === 'f32') this.pool.push(v);
    return v;
  }

  private fits(shape: readonly number[]): boolean {
    return numel(shape) <= this.o.maxElements;
  }

  /** a value of the pool, recent ones more likely */
  private any(): Val {
    const n = this.pool.length;
    const i = this.pick(n + 3);
    return this.pool[i >= n ? n - 1 : i]!;
  }

  private tame(v: Val, limit: number): Val {
    return v.bound <= limit ? v : { t: this.g.tanh(v.t), bound: 1, exact: false };
  }

  private positive(v: Val): Val {
    const x = this.tame(v, 2);
    return { t: this.g.add(this.g.square(x.t), 0.5), bound: x.bound * x.bound + 0.5, exact: false };
  }

  /** a shape that broadcasts with `s`: dims dropped, set to 1, 1s expanded, or a new leading dim */
  private variant(s: readonly number[]): number[] {
    const drop = this.pick(3) === 0 ? this.pick(s.length + 1) : 0;
    let out = s.slice(drop).map((d) => (d === 1 ? 1 + this.pick(3) : this.pick(3) === 0 ? 1 : d));
    if (drop === 0 && this.pick(4) === 0) out = [2 + this.pick(2), ...out];
    return this.fits(broadcastShape(s, out)) ? out : s.slice();
  }

  /** a partner broadcasting with shape `s`: from the pool, a new leaf, or (rarely) one of shape `s` */
  private partner(s: readonly number[]): Val {
    const cands = this.pool.filter((v) => broadcasts(s, shapeOf(v)) && this.fits(broadcastShape(s, shapeOf(v))));
    const i = this.pick(cands.length + 2);
    return i < cands.length ? cands[i]! : this.leaf(this.variant(s));
  }

  private exactLeaf(like: readonly number[]): Val {
    const cands = this.pool.filter((v) => v.exact && broadcasts(like, shapeOf(v)) && this.fits(broadcastShape(like, shapeOf(v))));
    const i = this.pick(cands.length + 1);
    return i < cands.length ? cands[i]! : this.leaf(this.variant(like));
  }

  /** a bool condition of exact leaves (so every backend takes the same branches), broadcasting with `like` */
  private condition(like: readonly number[]): Tensor<'bool'> {
    const g = this.g;
    const a = this.exactLeaf(like);
    let acc = broadcastShape(like, shapeOf(a));
    const cmp = COMPARISONS[this.pick(COMPARISONS.length)]!;
    let b: Tensor | number = this.pick(3) / 4 - 0.25;
    if (this.pick(2) === 0) {
      b = this.exactLeaf(acc).t;
      acc = broadcastShape(acc, b.shape as number[]);
    }
    let c = g[cmp](a.t, b) as Tensor<'bool'>;
    const how = this.pick(4);
    if (how === 1) c = g.not(c);
    else if (how >= 2) {
      const d = this.exactLeaf(acc);
      const c2 = g.gt(d.t, 0) as Tensor<'bool'>;
      c = how === 2 ? g.and(c, c2) : g.or(c, c2);
    }
    return c;
  }

  private as2d(v: Val): Val {
    const s = shapeOf(v);
    if (s.length === 2) return v;
    const last = s.length ? s[s.length - 1]! : 1;
    return { ...v, t: this.g.reshape(v.t, [numel(s) / last, last]) };
  }

  step(s: Step): void {
    this.picks = s.picks;
    this.k = 0;
    const v = this.make(s.op, this.any());
    if (v && this.fits(shapeOf(v))) this.pool.push(v);
  }

  private make(op: GraphOp, x: Val): Val | null {
    const g = this.g;
    const sx = shapeOf(x);
    const r = sx.length;
    switch (op) {
      case 'unary': {
        const u = UNARIES[this.pick(UNARIES.length)]!;
        if (u === 'log' || u === 'sqrt' || u === 'rsqrt' || u === 'recip') {
          const p = this.positive(x);
          const bound = { log: Math.max(0.7, Math.log(p.bound)), sqrt: Math.sqrt(p.bound), rsqrt: 1.5, recip: 2 }[u];
          return { t: g[u](p.t), bound, exact: false };
        }
        const a = u === 'exp' || u === 'square' ? this.tame(x, 3) : x;
        const bound = { neg: a.bound, abs: a.bound, relu: a.bound, exp: Math.exp(a.bound), square: a.bound ** 2 }[u as string] ?? 1;
        return { t: g[u](a.t), bound, exact: false };
      }
      case 'binary': {
        const op2 = BINARIES[this.pick(BINARIES.length)]!;
        let a = x;
        let b: Val = this.pick(5) === 0 ? { t: g.scalar(this.pick(5) / 2 - 1, x.t), bound: 1, exact: true } : this.partner(sx);
        if (op2 === 'mul') [a, b] = [this.tame(a, 4), this.tame(b, 4)];
        if (op2 === 'div') b = this.positive(b);
        if (op2 === 'pow') [a, b] = [this.positive(a), { t: g.tanh(b.t), bound: 1, exact: false }];
        const bound = {
          add: a.bound + b.bound, sub: a.bound + b.bound, mul: a.bound * b.bound, div: a.bound * 2,
          pow: Math.max(a.bound, 2), max: Math.max(a.bound, b.bound), min: Math.max(a.bound, b.bound),
        }[op2];
        return { t: g[op2 === 'max' ? 'maximum' : op2 === 'min' ? 'minimum' : op2](a.t, b.t), bound, exact: false };
      }
      case 'mod': {
        // mod jumps where a/b is an integer: only exact leaves, so every backend jumps alike
        const a = this.exactLeaf(sx);
        return { t: g.mod(a.t, 0.5 + this.pick(4) / 4), bound: 1.25, exact: false };
      }
      case 'where': {
        const c = this.condition(sx);
        const b = this.partner(broadcastShape(sx, c.shape as number[]));
        return { t: g.where(c, x.t, b.t), bound: Math.max(x.bound, b.bound), exact: false };
      }
      case 'cast': {
        const fl = this.o.float;
        const how = this.pick(fl === 'f16' ? 3 : 2);
        if (how === 0) return { t: g.cast(this.condition(sx), fl), bound: 1, exact: false };
        // f16 -> f32, math in f32, f32 -> f16 (a rounding cast inside a kernel)
        if (how === 2) return { t: g.cast(g.mul(g.cast(x.t, 'f32'), 1.37), 'f16'), bound: x.bound * 1.37, exact: false };
        const a = this.exactLeaf(sx); // truncation jumps at integers: exact leaves only
        return { t: g.cast(g.cast(g.mul(a.t, 2), 'i32'), fl), bound: 4, exact: false };
      }
      case 'reduce': {
        if (r === 0) return null;
        const red = REDUCTIONS[this.pick(REDUCTIONS.length)]!;
        const axes = this.pick(4) === 0 ? null : [...new Set([this.pick(r), this.pick(r), this.pick(r)].slice(0, 1 + this.pick(3)))].map((a) => (this.pick(2) ? a - r : a));
        const keep = this.pick(2) === 0;
        const count = axes === null ? numel(sx) : numel(axes.map((a) => sx[(a + r) % r]!));
        const bound = red === 'sum' ? x.bound * count : red === 'logsumexp' ? x.bound + Math.log(count) : x.bound;
        return { t: g[red](x.t, axes, keep), bound, exact: false };
      }
      case 'matmul': {
        const a = this.tame(this.as2dOrBatched(x), 3);
        const sa = shapeOf(a);
        const K = sa[sa.length - 1]!;
        const batch = sa.slice(0, -2);
        const cands = this.pool.filter((v) => {
          const s = shapeOf(v);
          return s.length >= 2 && s[s.length - 2] === K && broadcasts(batch, s.slice(0, -2));
        });
        const i = this.pick(cands.length + 2);
        const N = 1 + this.pick(4);
        const b = this.tame(i < cands.length ? cands[i]! : this.leaf([...(this.pick(2) ? [] : this.variant(batch)), K, N]), 3);
        const sb = shapeOf(b);
        if (!broadcasts(batch, sb.slice(0, -2))) return null;
        const out = [...broadcastShape(batch, sb.slice(0, -2)), sa[sa.length - 2]!, sb[sb.length - 1]!];
        if (!this.fits(out)) return null;
        return { t: g.matmul(a.t, b.t as never), bound: K * a.bound * b.bound, exact: false };
      }
      case 'einsum': {
        const a = this.tame(this.as2d(x), 3);
        const [I, J] = shapeOf(a) as [number, number];
        const n = 1 + this.pick(3);
        const specs: [string, number[][]][] = [
          ['ij,jk->ik', [[J, n]]], ['ij,kj->ik', [[n, J]]], ['ij,ik->jk', [[I, n]]], ['ij,j->i', [[J]]],
          ['ij->ji', []], ['ij->j', []], ['ij,jk,kl->il', [[J, n], [n, 2]]], ['ij,ik,j->k', [[I, n], [J]]],
        ];
        const [spec, others] = specs[this.pick(specs.length)]!;
        const bs = others.map((s) => this.leaf(s));
        const t = g.einsum(spec, a.t, ...bs.map((b) => b.t));
        const bound = [a, ...bs].reduce((p, v) => p * v.bound, 1) * Math.max(I, J, n) ** (bs.length + 1);
        return { t, bound, exact: false };
      }
      case 'transpose': {
        const perm = [...sx.keys()];
        for (let i = r - 1; i > 0; i--) {
          const j = this.pick(i + 1);
          [perm[i], perm[j]] = [perm[j]!, perm[i]!];
        }
        return { t: g.transpose(x.t, perm), bound: x.bound, exact: x.exact };
      }
      case 'reshape': {
        let rest = numel(sx);
        const to: number[] = [];
        const rank = this.pick(4);
        for (let i = 0; i < rank - 1; i++) {
          const divs = [...Array(rest).keys()].map((d) => d + 1).filter((d) => rest % d === 0);
          const d = divs[this.pick(divs.length)]!;
          to.push(d);
          rest /= d;
        }
        if (rank > 0 || rest !== 1) to.push(rest);
        return { t: g.reshape(x.t, this.pick(3) === 0 && to.length ? [...to.slice(0, -1), -1] : to), bound: x.bound, exact: x.exact };
      }
      case 'slice': {
        const starts = sx.map((d) => this.pick(d));
        const ends = sx.map((d, i) => starts[i]! + 1 + this.pick(d - starts[i]!));
        return { t: g.slice(x.t, starts, ends), bound: x.bound, exact: x.exact };
      }
      case 'pad': {
        const before = sx.map(() => (this.pick(3) === 0 ? this.pick(3) : 0));
        const after = sx.map(() => (this.pick(3) === 0 ? this.pick(3) : 0));
        if (!this.fits(sx.map((d, i) => d + before[i]! + after[i]!))) return null;
        const value = this.pick(3) / 2 - 0.5;
        return { t: g.pad(x.t, before, after, value), bound: Math.max(x.bound, 0.5), exact: false };
      }
      case 'concat': {
        if (r === 0) return null;
        const axis = this.pick(r);
        const same = (v: Val) => shapeOf(v).length === r && shapeOf(v).every((d, i) => i === axis || d === sx[i]);
        const cands = this.pool.filter(same);
        const parts = [x];
        for (let k = 0, n = 1 + this.pick(2); k < n; k++) {
          const i = this.pick(cands.length + 1);
          parts.push(i < cands.length ? cands[i]! : this.leaf(sx.map((d, j) => (j === axis ? 1 + this.pick(3) : d))));
        }
        const total = parts.reduce((p, v) => p + shapeOf(v)[axis]!, 0);
        if (!this.fits(sx.map((d, i) => (i === axis ? total : d)))) return null;
        return { t: g.concat(parts.map((v) => v.t), this.pick(2) ? axis - r : axis), bound: Math.max(...parts.map((v) => v.bound)), exact: false };
      }
      case 'broadcastTo': {
        const to = [...(this.pick(2) ? [2 + this.pick(2)] : []), ...sx.map((d) => (d === 1 ? 1 + this.pick(3) : d))];
        if (!this.fits(to)) return null;
        return { t: g.broadcastTo(x.t, to), bound: x.bound, exact: x.exact };
      }
      case 'softmax':
      case 'logSoftmax': {
        if (r === 0) return null;
        const axis = this.pick(r) - (this.pick(2) ? r : 0);
        return op === 'softmax' ? { t: g.softmax(x.t, axis), bound: 1, exact: false } : { t: g.logSoftmax(x.t, axis), bound: 2 * x.bound + Math.log(sx[(axis + r) % r]!), exact: false };
      }
      case 'layerNorm': {
        if (r === 0) return null;
        const last = sx[r - 1]!;
        const gamma = this.pick(2) ? this.leaf([last]) : undefined;
        const beta = this.pick(2) ? this.leaf([last]) : undefined;
        // eps well above rounding error: a nearly constant row would otherwise amplify it by
        // 1/sqrt(eps). In f16 the mean's rounding (half an ulp, ~1e-3 of the values) times the
        // 10 of eps 1e-2 already reaches the f16 tolerance, so f16 graphs take 1e-1
        const t = g.layerNorm(x.t, gamma?.t, beta?.t, this.o.float === 'f16' ? 1e-1 : 1e-2);
        return { t, bound: Math.sqrt(last) * (gamma?.bound ?? 1) + (beta?.bound ?? 0), exact: false };
      }
      case 'gather': {
        const table = r === 0 ? { ...x, t: g.reshape(x.t, [1]) } : x;
        const st = shapeOf(table);
        const idxShape = [...Array(this.pick(3)).keys()].map(() => 1 + this.pick(3));
        if (!this.fits([...idxShape, ...st.slice(1)])) return null;
        const idx = this.leaf(idxShape, 'i32', st[0]!);
        return { t: g.gather(table.t, idx.t), bound: table.bound, exact: table.exact };
      }
      case 'scatterAdd': {
        const base = r === 0 ? { ...x, t: g.reshape(x.t, [1]) } : x;
        const sb = shapeOf(base);
        const rows = 1 + this.pick(4);
        const idx = this.leaf([rows], 'i32', sb[0]!);
        const want = [rows, ...sb.slice(1)];
        const cands = this.pool.filter((v) => shapeOf(v).length === want.length && shapeOf(v).every((d, i) => d === want[i]));
        const i = this.pick(cands.length + 1);
        const upd = i < cands.length ? cands[i]! : this.leaf(want);
        return { t: g.scatterAdd(base.t, idx.t, upd.t), bound: base.bound + rows * upd.bound, exact: false };
      }
      case 'dropout': {
        const rate = [0.25, 0.5][this.pick(2)]!;
        return { t: g.dropout(x.t, rate, this.pick(1000)), bound: x.bound / (1 - rate), exact: false };
      }
      case 'conv2d': {
        const s4 = r === 4 ? sx : [1, 1, ...shapeOf(this.as2d(x))];
        const xin = this.tame({ ...x, t: g.reshape(x.t, s4) }, 3);
        const [, C, H, W] = s4 as [number, number, number, number];
        const padding = this.pick(2), stride = 1 + this.pick(2);
        const kh = Math.min(1 + this.pick(3), H + 2 * padding), kw = Math.min(1 + this.pick(3), W + 2 * padding);
        const O = 1 + this.pick(2);
        const out = [s4[0]!, O, Math.floor((H + 2 * padding - kh) / stride) + 1, Math.floor((W + 2 * padding - kw) / stride) + 1];
        if (!this.fits(out) || !this.fits([s4[0]!, C, kh, kw, out[2]!, out[3]!])) return null;
        const w = this.tame(this.leaf([O, C, kh, kw]), 3);
        return { t: g.conv2d(xin.t, w.t, { stride, padding }), bound: C * kh * kw * xin.bound * w.bound, exact: false };
      }
    }
  }

  /** rank >= 2 for matmul: vectors become rows */
  private as2dOrBatched(v: Val): Val {
    const s = shapeOf(v);
    return s.length >= 2 ? v : { ...v, t: this.g.reshape(v.t, [1, s[0] ?? 1]) };
  }
}

/** A compact listing of a graph's nodes, for counterexamples. */
export function describeGraph(gr: Graph): string {
  const lines = gr.nodes.map((n) => {
    const what = n.name ?? (n.inputs.length ? `${n.op}(${n.inputs.map((i) => `%${i}`).join(', ')})` : n.op);
    const attrs = Object.entries(n.attrs).filter(([k]) => !['dtype', 'shape', 'init', 'data'].includes(k) || n.op === 'reshape' || n.op === 'broadcastTo');
    return `%${n.id} = ${n.name ? `${n.op} ${what}` : what}${attrs.length ? ` ${JSON.stringify(Object.fromEntries(attrs))}` : ''}: ${n.dtype}[${n.shape.join(',')}]`;
  });
  const outs = Object.entries(gr.outputs).map(([k, v]) => `${k}=%${v}`).join(' ');
  return `${lines.join('\n')}\noutputs: ${outs}`;
}

/**
 * A random well-typed graph with values for its inputs (and params), ready to run. Outputs are
 * `y` (the last value made) and sometimes `z` (an earlier one).
 *
 * ```ts
 * fc.assert(fc.property(arbGraph({ maxOps: 6 }), ({ graph, feeds }) => {
 *   const out = compile(graph, { backend: 'cpu' }).runSync(feeds);
 *   return Object.values(out).every((t) => t.data.every(Number.isFinite));
 * }));
 * ```
 */
export function arbGraph(opts: GraphOptions = {}): fc.Arbitrary<RandomGraph> {
  const o = { maxOps: 8, maxRank: 3, maxDim: 4, maxElements: 48, params: false, float: 'f32' as const, ...opts };
  // elementwise math is most of a real graph: by default it is drawn twice as often
  const ops = opts.ops ?? [...GRAPH_OPS, 'unary', 'binary'];
  const step = fc.record({ op: fc.constantFrom(...ops), picks: fc.array(fc.nat({ max: 1 << 16 }), { minLength: 16, maxLength: 16 }) });
  const recipe = fc.record({
    base: arbShape({ minRank: 0, maxRank: o.maxRank, maxDim: o.maxDim, maxElements: o.maxElements }),
    steps: fc.array(step, { minLength: 1, maxLength: o.maxOps }),
    second: fc.nat({ max: 1 << 16 }),
  });
  return recipe.chain(({ base, steps, second }) => {
    let maker!: GraphMaker;
    const gr = graph('random', (g) => {
      maker = new GraphMaker(g, o);
      maker.leaf(base);
      for (const s of steps) maker.step(s);
      const pool = maker.pool;
      const y = pool[pool.length - 1]!.t;
      const z = pool[second % pool.length]!.t;
      const outs: Record<string, Tensor> = { y };
      if (z.id !== y.id && second % 2 === 0) outs['z'] = z;
      return outs;
    });
    const leafValues = maker.leaves.map((l) =>
      l.dtype === 'i32'
        ? fc.array(fc.integer({ min: -1, max: l.hi! }), { minLength: numel(l.shape), maxLength: numel(l.shape) }).map((a) => tensor(Int32Array.from(a), l.shape))
        : arbTensorValues(l.shape).map((v) => (o.float === 'f16' ? tensor(f16roundArray(v), l.shape, 'f16') : tensor(v, l.shape))),
    );
    return fc.tuple(...leafValues).map((vals) => {
      const feeds: Record<string, HostTensor> = {};
      const variables: Record<string, HostTensor> = {};
      maker.leaves.forEach((l, i) => {
        if (l.kind === 'param') variables[`param:${l.name}`] = vals[i]!;
        else feeds[l.name] = vals[i]!;
      });
      const shown = (h: HostTensor) => `${h.dtype}[${h.shape.join(',')}] ${JSON.stringify(Array.from(h.data))}`;
      const text = () =>
        `${describeGraph(gr)}\n` +
        Object.entries({ ...feeds, ...variables }).map(([k, v]) => `${k}: ${shown(v)}`).join('\n');
      return { graph: gr, feeds, variables, [fc.toStringMethod]: text };
    });
  });
}

/**
 * A scalar `loss` output added to a graph: the sum over its outputs of sum(output * R) with a
 * fixed random R, so every element of every output matters to the gradient.
 *
 * ```ts
 * const gg = grad(withRandomLoss(graph), 'loss');
 * ```
 */
export function withRandomLoss(g: Graph): Graph {
  return extend(g, (b) => {
    let loss = null;
    for (const [name, id] of Object.entries(g.outputs)) {
      const t = b.tensor(id);
      const shape = t.shape as number[];
      const r = Array.from({ length: numel(shape) }, (_, i) => 2 * randUniform(name.length, i) - 1);
      const term = b.sum(b.mul(t, b.constant(r, f32(...shape))));
      loss = loss ? b.add(loss, term) : term;
    }
    b.output('loss', loss!);
  });
}
