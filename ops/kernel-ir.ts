// The kernel IR: what backends see instead of ops. A kernel is an iteration domain (the output
// shape) and a scalar expression over loads at integer index expressions; reductions are
// expression nodes with their own loop variables; matmul is a tiled primitive with an epilogue.
// Layout ops never appear here: they have been folded into index expressions by lowering.
// This module defines types and small constructors/simplifiers only, no rendering.

import type { DType } from './types.js';

// ---------------------------------------------------------------- index expressions (integers)

export type IndexExpr =
  | { readonly k: 'var'; readonly name: string }
  | { readonly k: 'const'; readonly v: number }
  | { readonly k: 'add'; readonly a: IndexExpr; readonly b: IndexExpr }
  | { readonly k: 'mul'; readonly a: IndexExpr; readonly c: number }
  /** floor division by a positive constant (operands are never negative here) */
  | { readonly k: 'div'; readonly a: IndexExpr; readonly c: number }
  | { readonly k: 'mod'; readonly a: IndexExpr; readonly c: number }
  /** an integer read from an i32 input buffer, clamped to [0, hi] (gather / scatter indices) */
  | { readonly k: 'loadIndex'; readonly buf: number; readonly at: IndexExpr; readonly hi: number };

/** Index predicates: the validity masks of pad and the branch tests of concat. */
export type IndexPred =
  | { readonly k: 'lt'; readonly a: IndexExpr; readonly c: number }
  | { readonly k: 'ge'; readonly a: IndexExpr; readonly c: number }
  | { readonly k: 'and'; readonly a: IndexPred; readonly b: IndexPred };

export const ivar = (name: string): IndexExpr => ({ k: 'var', name });
export const iconst = (v: number): IndexExpr => ({ k: 'const', v });

export function iadd(a: IndexExpr, b: IndexExpr): IndexExpr {
  if (a.k === 'const' && b.k === 'const') return iconst(a.v + b.v);
  if (a.k === 'const' && a.v === 0) return b;
  if (b.k === 'const' && b.v === 0) return a;
  if (a.k === 'const') return { k: 'add', a: b, b: a };
  // keep constants outermost so they fold: (x + c1) + c2 -> x + (c1 + c2)
  if (b.k === 'const' && a.k === 'add' && a.b.k === 'const') return iadd(a.a, iconst(a.b.v + b.v));
  return { k: 'add', a, b };
}

export function imul(a: IndexExpr, c: number): IndexExpr {
  if (c === 0) return iconst(0);
  if (c === 1) return a;
  if (a.k === 'const') return iconst(a.v * c);
  if (a.k === 'mul') return imul(a.a, a.c * c);
  if (a.k === 'add' && a.b.k === 'const') return iadd(imul(a.a, c), iconst(a.b.v * c));
  return { k: 'mul', a, c };
}

/** Bounds of an index expression given the ranges of its variables (for div/mod folding). */
export function ibounds(e: IndexExpr, sizes: ReadonlyMap<string, number>): [number, number] {
  switch (e.k) {
    case 'var': return [0, (sizes.get(e.name) ?? Infinity) - 1];
    case 'const': return [e.v, e.v];
    case 'add': {
      const [a0, a1] = ibounds(e.a, sizes), [b0, b1] = ibounds(e.b, sizes);
      return [a0 + b0, a1 + b1];
    }
    case 'mul': {
      const [a0, a1] = ibounds(e.a, sizes);
      return e.c >= 0 ? [a0 * e.c, a1 * e.c] : [a1 * e.c, a0 * e.c];
    }
    case 'div': {
      const [a0, a1] = ibounds(e.a, sizes);
      return [Math.floor(a0 / e.c), Math.floor(a1 / e.c)];
    }
    case 'mod': return [0, e.c - 1];
    case 'loadIndex': return [0, e.hi];
  }
}

/** Split a sum into its terms. */
function terms(e: IndexExpr): IndexExpr[] {
  return e.k === 'add' ? [...terms(e.a), ...terms(e.b)] : [e];
}
function coef(t: IndexExpr): number {
  return t.k === 'mul' ? t.c : t.k === 'const' ? t.v : 1;
}
function sum(ts: IndexExpr[]): IndexExpr {
  return ts.reduce((acc, t) => iadd(acc, t), iconst(0));
}

/**
 * floor(a / c), simplified: terms whose coefficient is a multiple of c leave the division, and the
 * rest disappears when it provably stays within [0, c). This is what makes a reshape of a
 * contiguous view cost nothing.
 */
export function idiv(a: IndexExpr, c: number, sizes: ReadonlyMap<string, number>): IndexExpr {
  if (c === 1) return a;
  if (a.k === 'const') return iconst(Math.floor(a.v / c));
  const [lo, hi] = ibounds(a, sizes);
  if (lo >= 0 && hi < c) return iconst(0);
  const ts = terms(a);
  const isWhole = (t: IndexExpr) => t.k !== 'const' && coef(t) % c === 0;
  const whole = ts.filter(isWhole);
  const rest = sum(ts.filter((t) => !isWhole(t)));
  // floor((c*W + R) / c) = W + floor(R / c) for R >= 0
  if (whole.length > 0 && ibounds(rest, sizes)[0] >= 0) {
    return iadd(sum(whole.map((t) => divTerm(t, c))), idiv(rest, c, sizes));
  }
  // floor((d*W + R) / (d*q)) = floor(W / q) for W >= 0 and 0 <= R < d (a row index times the
  // row length plus a column, divided by a multiple of the row length)
  for (const d of new Set(ts.map(coef).filter((x) => x > 1 && c % x === 0))) {
    const w = ts.filter((t) => t.k !== 'const' && coef(t) % d === 0);
    const [r0, r1] = ibounds(sum(ts.filter((t) => !(t.k !== 'const' && coef(t) % d === 0))), sizes);
    if (r0 >= 0 && r1 < d && ibounds(sum(w), sizes)[0] >= 0) return idiv(sum(w.map((t) => divTerm(t, d))), c / d, sizes);
  }
  if (a.k === 'div') return { k: 'div', a: a.a, c: a.c * c };
  return { k: 'div', a, c };
}

export function imod(a: IndexExpr, c: number, sizes: ReadonlyMap<string, number>): IndexExpr {
  if (c === 1) return iconst(0);
  if (a.k === 'const') return iconst(a.v % c);
  const [lo, hi] = ibounds(a, sizes);
  if (lo >= 0 && hi < c) return a;
  // (c*W + R) mod c = R mod c
  const kept = sum(
    terms(a)
      .filter((t) => !(t.k !== 'const' && coef(t) % c === 0))
      .map((t) => (t.k === 'const' ? iconst(t.v % c) : t)),
  );
  const [r0, r1] = ibounds(kept, sizes);
  if (r0 >= 0 && r1 < c) return kept;
  // Backends render mod as a truncating remainder, so the identity only holds for a rest that
  // stays non-negative (e.g. under a pad mask, `2*o + k - 1` is >= 0 but `k - 1` is not).
  if (r0 < 0) return { k: 'mod', a, c };
  return { k: 'mod', a: kept, c };
}

/**
 * A sum of the digits a reshape took an index apart into, read back at the same strides, put
 * together again: (x/d)*d*s + (x%d)*s = x*s and ((x/d)%e)*d*s + (x%d)*s = (x%(d*e))*s, to a fixed
 * point (both hold for truncating division too). A weight reshaped and transposed for a matmul
 * becomes strided again this way.
 */
export function recombine(e: IndexExpr): IndexExpr {
  // the sum's terms with their coefficients, products of sums multiplied out
  const scaled = (x: IndexExpr, k: number): { c: number; b: IndexExpr }[] =>
    x.k === 'add' ? [...scaled(x.a, k), ...scaled(x.b, k)] : x.k === 'mul' ? scaled(x.a, k * x.c) : x.k === 'const' ? [{ c: x.v * k, b: iconst(1) }] : [{ c: k, b: x }];
  const ts = scaled(e, 1);
  const same = (x: IndexExpr, y: IndexExpr) => JSON.stringify(x) === JSON.stringify(y);
  for (let changed = true; changed;) {
    changed = false;
    for (let j = 0; j < ts.length && !changed; j++) {
      const lo = ts[j]!;
      if (lo.b.k !== 'mod') continue;
      const { a: x, c: d } = lo.b;
      for (let i = 0; i < ts.length && !changed; i++) {
        const hi = ts[i]!;
        if (i === j || hi.c !== lo.c * d) continue;
        let b: IndexExpr | null = null;
        if (hi.b.k === 'div' && hi.b.c === d && same(hi.b.a, x)) b = x;
        else if (hi.b.k === 'mod' && hi.b.a.k === 'div' && hi.b.a.c === d && same(hi.b.a.a, x)) b = { k: 'mod', a: x, c: d * hi.b.c };
        if (!b) continue;
        ts[j] = { c: lo.c, b };
        ts.splice(i, 1);
        changed = true;
      }
    }
  }
  return sum(ts.map((t) => imul(t.b, t.c)));
}

function divTerm(t: IndexExpr, c: number): IndexExpr {
  if (t.k === 'mul') return imul(t.a, t.c / c);
  if (t.k === 'const') return iconst(t.v / c);
  return imul(t, 1 / c);
}

// ---------------------------------------------------------------- scalar expressions

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'sin' | 'cos' | 'tanh' | 'sigmoid'
  | 'relu' | 'recip' | 'floor' | 'ceil' | 'round' | 'sign' | 'not' | 'square' | 'step';

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'max' | 'min' | 'mod'
  | 'lt' | 'le' | 'gt' | 'ge' | 'eq' | 'ne' | 'and' | 'or';

export type ReduceOp = 'sum' | 'max' | 'min' | 'argmax' | 'argmin';

export interface LoopVar {
  readonly name: string;
  readonly size: number;
}

export type Expr =
  | { readonly k: 'const'; readonly v: number; readonly dtype: DType }
  | { readonly k: 'load'; readonly buf: number; readonly at: IndexExpr; readonly dtype: DType }
  | { readonly k: 'unary'; readonly op: UnaryOp; readonly a: Expr; readonly dtype: DType }
  | { readonly k: 'binary'; readonly op: BinaryOp; readonly a: Expr; readonly b: Expr; readonly dtype: DType }
  | { readonly k: 'where'; readonly c: Expr; readonly a: Expr; readonly b: Expr; readonly dtype: DType }
  | { readonly k: 'cast'; readonly a: Expr; readonly dtype: DType }
  /** index-based choice, for pad masks and concat: pred ? a : b */
  | { readonly k: 'select'; readonly pred: IndexPred; readonly a: Expr; readonly b: Expr; readonly dtype: DType }
  /** an index used as a value (iota) */
  | { readonly k: 'index'; readonly at: IndexExpr; readonly dtype: DType }
  /**
   * counter-based uniform random number in [0, 1): the same on every backend for a seed; `key`
   * (an i32 value, e.g. a step counter) selects one of the seed's streams: `keyedSeed(seed, key)`
   */
  | { readonly k: 'rand'; readonly seed: number; readonly at: IndexExpr; readonly key?: Expr; readonly dtype: DType }
  /**
   * A reduction over its own loop variables. `argmax`/`argmin` reduce over one variable and yield
   * that variable's index (first occurrence on ties).
   */
  | { readonly k: 'reduce'; readonly op: ReduceOp; readonly vars: readonly LoopVar[]; readonly body: Expr; readonly dtype: DType }
  /** the accumulator of a matmul kernel, inside its epilogue */
  | { readonly k: 'acc'; readonly dtype: DType };

// ---------------------------------------------------------------- kernels

export interface BufferParam {
  readonly dtype: DType;
  /** number of elements */
  readonly size: number;
}

/** out[i0, ..., i{r-1}] = expr, with output variables named `i0`...; a rank-0 output has none. */
export interface MapKernel {
  readonly kind: 'map';
  readonly name: string;
  readonly inputs: readonly BufferParam[];
  readonly out: { readonly dtype: DType; readonly shape: readonly number[] };
  readonly expr: Expr;
}

/** A strided matmul operand: element (batch..., row, col) of a buffer. */
export interface MatmulOperand {
  readonly buf: number;
  readonly offset: number;
  /** one stride per output batch dim (0 where the operand broadcasts) */
  readonly batchStrides: readonly number[];
  readonly rowStride: number;
  readonly colStride: number;
  /**
   * An operand that is not affine (implicit GEMM: conv2d's windows read in place of an im2col
   * copy): element (batch..., row, col) is `buf[at]` where `valid` holds and 0 elsewhere (the
   * padding), with `at` and `valid` over the variables `b0`... (batch dims), `row` and `col`.
   * The strides and offset are then 0 and mean nothing. Only devices whose caps say
   * `implicitGemm` are given such operands.
   */
  readonly gather?: OperandGather;
}

export interface OperandGather {
  readonly at: IndexExpr;
  readonly valid: IndexPred | null;
}

/**
 * out[b..., m, n] = epilogue(acc = sum_k a[b..., m, k] * b[b..., k, n]). The epilogue sees the
 * output variables `i0`... (batch dims, then m, then n) and the `acc` leaf; null means `acc`.
 * With `reduce`, the epilogue's values are reduced over trailing dims instead of stored (see
 * MatmulReduce), so the product is never written.
 */
export interface MatmulKernel {
  readonly kind: 'matmul';
  readonly name: string;
  readonly inputs: readonly BufferParam[];
  readonly out: { readonly dtype: DType; readonly shape: readonly number[] };
  readonly batch: readonly number[];
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly a: MatmulOperand;
  readonly b: MatmulOperand;
  readonly epilogue: Expr | null;
  readonly reduce?: MatmulReduce;
}

/**
 * A reduction fused into a matmul (e.g. sum((x·w + b)²) or a row's max of x·w): the epilogue's
 * f32 values over the product's dims [batch..., m, n] are reduced with `op` over every dim from
 * `keep` on (n always; m too when keep <= batch dims), and `post` is applied to each result. The
 * kernel's `out` is then the kept dims' shape (possibly with trailing 1s, as keepdims leaves
 * them): element (i0, ..., i{keep-1}) = post(reduce(epilogue)). `post` sees the `acc` leaf as the
 * reduced value and the output variables `i0`...; null means the value itself. Only devices whose
 * caps say `matmulReduce` are given such kernels.
 */
export interface MatmulReduce {
  readonly op: 'sum' | 'max' | 'min';
  readonly keep: number;
  readonly post: Expr | null;
}

/**
 * out = base; then for every row r of updates: out[indices[r], ...] += updates[r, ...].
 * Buffers: base (or zeros when base is -1), indices (i32, `rows` entries), updates (rows × inner).
 * Indices out of [0, outRows) are clamped.
 */
export interface ScatterAddKernel {
  readonly kind: 'scatterAdd';
  readonly name: string;
  readonly inputs: readonly BufferParam[];
  readonly out: { readonly dtype: DType; readonly shape: readonly number[] };
  readonly base: number;
  readonly indices: number;
  readonly updates: number;
  readonly rows: number;
  readonly outRows: number;
  /** elements per row, outer dims before the scattered axis are folded into `outer` */
  readonly inner: number;
  readonly outer: number;
}

export type Kernel = MapKernel | MatmulKernel | ScatterAddKernel;

/** A stable key for caching compiled kernels: everything but the name. */
export function kernelSignature(k: Kernel): string {
  const { name: _name, ...rest } = k;
  return JSON.stringify(rest);
}

/** Output variable names of a kernel of the given rank. */
export function outVars(rank: number): IndexExpr[] {
  return Array.from({ length: rank }, (_, i) => ivar(`i${i}`));
}

/** Row-major strides of a concrete shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Linear offset of a multi-index in a row-major shape. */
export function linearize(idx: readonly IndexExpr[], shape: readonly number[]): IndexExpr {
  const st = stridesOf(shape);
  let e: IndexExpr = iconst(0);
  idx.forEach((x, i) => {
    e = iadd(e, imul(x, shape[i] === 1 ? 0 : st[i]!));
  });
  return e;
}

/** Multi-index of a linear offset in a row-major shape (div/mod, simplified where provable). */
export function delinearize(lin: IndexExpr, shape: readonly number[], sizes: ReadonlyMap<string, number>): IndexExpr[] {
  const st = stridesOf(shape);
  return shape.map((d, i) => (d === 1 ? iconst(0) : imod(idiv(lin, st[i]!, sizes), d, sizes)));
}

/** `e` with its variables renamed (names not in `names` are kept). */
export function renameVars(e: IndexExpr, names: ReadonlyMap<string, string>): IndexExpr {
  switch (e.k) {
    case 'var': return ivar(names.get(e.name) ?? e.name);
    case 'const': return e;
    case 'add': return { k: 'add', a: renameVars(e.a, names), b: renameVars(e.b, names) };
    case 'mul': case 'div': case 'mod': return { ...e, a: renameVars(e.a, names) };
    case 'loadIndex': return { ...e, at: renameVars(e.at, names) };
  }
}

export function renamePredVars(p: IndexPred, names: ReadonlyMap<string, string>): IndexPred {
  return p.k === 'and' ? { k: 'and', a: renamePredVars(p.a, names), b: renamePredVars(p.b, names) } : { ...p, a: renameVars(p.a, names) };
}

/** The variables an index expression reads (loadIndex makes it data-dependent: null). */
export function indexVars(e: IndexExpr, into: Set<string> = new Set()): Set<string> | null {
  switch (e.k) {
    case 'var': into.add(e.name); return into;
    case 'const': return into;
    case 'add': return indexVars(e.a, into) && indexVars(e.b, into);
    case 'mul': case 'div': case 'mod': return indexVars(e.a, into);
    case 'loadIndex': return null;
  }
}

/** The comparisons of a predicate's conjunction. */
export function predAtoms(p: IndexPred | null): Exclude<IndexPred, { k: 'and' }>[] {
  if (!p) return [];
  return p.k === 'and' ? [...predAtoms(p.a), ...predAtoms(p.b)] : [p];
}

/** The expressions `e` reads directly (a reduction's body, a random draw's key, ...). */
export function exprChildren(e: Expr): Expr[] {
  switch (e.k) {
    case 'unary': case 'cast': return [e.a];
    case 'binary': case 'select': return [e.a, e.b];
    case 'where': return [e.c, e.a, e.b];
    case 'reduce': return [e.body];
    case 'rand': return e.key ? [e.key] : [];
    default: return [];
  }
}

/** Whether `e` holds a reduction. */
export function hasReduce(e: Expr): boolean {
  return e.k === 'reduce' || exprChildren(e).some(hasReduce);
}

/**
 * `e` rebuilt bottom-up: `node` may replace a node outright (undefined keeps it and maps its
 * children), and `index` maps every index expression and predicate operand. Nodes shared in `e`
 * stay shared in the result.
 */
export function mapExpr(
  e: Expr, node: (x: Expr) => Expr | undefined, index: (i: IndexExpr) => IndexExpr = (i) => i, memo: Map<Expr, Expr> = new Map(),
): Expr {
  let out = memo.get(e);
  if (out) return out;
  out = node(e);
  if (!out) {
    const r = (x: Expr) => mapExpr(x, node, index, memo);
    const pred = (p: IndexPred): IndexPred => (p.k === 'and' ? { k: 'and', a: pred(p.a), b: pred(p.b) } : { ...p, a: index(p.a) });
    switch (e.k) {
      case 'const': case 'acc': out = e; break;
      case 'load': case 'index': out = { ...e, at: index(e.at) }; break;
      case 'rand': out = { ...e, at: index(e.at), ...(e.key ? { key: r(e.key) } : {}) }; break;
      case 'unary': case 'cast': out = { ...e, a: r(e.a) }; break;
      case 'binary': out = { ...e, a: r(e.a), b: r(e.b) }; break;
      case 'where': out = { ...e, c: r(e.c), a: r(e.a), b: r(e.b) }; break;
      case 'select': out = { ...e, pred: pred(e.pred), a: r(e.a), b: r(e.b) }; break;
      case 'reduce': out = { ...e, body: r(e.body) }; break;
    }
  }
  memo.set(e, out);
  return out;
}

/** `e` with the variables of its index expressions renamed (names not in `names` are kept). */
export function renameExprVars(e: Expr, names: ReadonlyMap<string, string>): Expr {
  return mapExpr(e, () => undefined, (i) => renameVars(i, names));
}

/** Calls `f` with every index expression and predicate operand of `e` (shared nodes once). */
export function forEachIndex(e: Expr, f: (i: IndexExpr) => void, seen: Set<Expr> = new Set()): void {
  if (seen.has(e)) return;
  seen.add(e);
  if (e.k === 'load' || e.k === 'index' || e.k === 'rand') f(e.at);
  if (e.k === 'select') for (const p of predAtoms(e.pred)) f(p.a);
  for (const c of exprChildren(e)) forEachIndex(c, f, seen);
}

/** Every variable an expression's indices read (including those of its own reductions and gathered indices). */
export function exprVars(e: Expr): Set<string> {
  const into = new Set<string>();
  const walk = (i: IndexExpr): void => {
    if (i.k === 'var') into.add(i.name);
    else if (i.k === 'add') (walk(i.a), walk(i.b));
    else if (i.k !== 'const') walk(i.k === 'loadIndex' ? i.at : i.a);
  };
  forEachIndex(e, walk);
  return into;
}
