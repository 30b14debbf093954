// The typed builder: the API users write graphs with, and the one passes (autodiff, optimizers)
// extend graphs with. Each method validates through the op's rule in ops/ and records the
// user's call site. Literal shapes flow through the method types where TypeScript can follow.
// It builds plain nodes; `graph()` freezes them into an immutable Graph with immer.

import { produce } from 'immer';
import type { Attrs, AttrValue, Graph, Node, Update } from './graph.js';
import { emptyGraph, nodeType } from './graph.js';
import { callSite, GraphError, ShapeError } from './errors.js';
import { dictOf, hasName } from './dict.js';
import type { BroadcastShape, Dim, DType, MatmulCheck, MatmulShape, Shape, Tensor, TensorType } from './types.js';
import { opDef } from '../ops/registry.js';
import '../ops/index.js';
import * as nn from '../ops/nn.js';
import { einsum } from '../ops/einsum.js';

/** How a parameter or state tensor gets its first value. */
export type Init =
  | { readonly kind: 'zeros' }
  | { readonly kind: 'constant'; readonly value: number }
  | { readonly kind: 'normal'; readonly std: number; readonly mean?: number }
  | { readonly kind: 'uniform'; readonly low: number; readonly high: number }
  | { readonly kind: 'he' }
  | { readonly kind: 'glorot' };

export const init = {
  zeros: (): Init => ({ kind: 'zeros' }),
  ones: (): Init => ({ kind: 'constant', value: 1 }),
  constant: (value: number): Init => ({ kind: 'constant', value }),
  normal: (std = 1, mean = 0): Init => ({ kind: 'normal', std, mean }),
  uniform: (low = -0.05, high = 0.05): Init => ({ kind: 'uniform', low, high }),
  /** He (Kaiming) normal: std = sqrt(2 / fan_in); fan_in is the product of all but the last dim. */
  he: (): Init => ({ kind: 'he' }),
  /** Glorot (Xavier) uniform. */
  glorot: (): Init => ({ kind: 'glorot' }),
};

declare module '../ops/registry.js' {
  // VJP rules and op compositions in ops/ build with the whole builder. (A line comment: the
  // declaration in ops/registry.ts carries OpBuilder's doc comment.)
  interface OpBuilder extends Builder {}
}

type Bool<S extends Shape> = Tensor<'bool', S>;
type Operand<D extends DType, S extends Shape> = Tensor<D, S> | number;

/** Name of the state counting training steps for random ops (see `Builder.rngStep`). */
export const RNG_STEP = 'rng/step';

export class Builder {
  readonly init = init;
  private readonly nodes: Node[];
  private readonly added: Node[] = [];
  readonly outputs: Record<string, number>;
  readonly updates: Update[];
  /** the call site recorded on new nodes (passes set it to the forward node's site) */
  site: string | undefined | null = null;

  constructor(base: Graph) {
    this.nodes = [...base.nodes];
    this.outputs = dictOf(base.outputs);
    this.updates = [...base.updates];
  }

  /** Nodes added since construction. */
  get newNodes(): readonly Node[] {
    return this.added;
  }

  node(id: number): Node {
    const n = this.nodes[id];
    if (!n) throw new GraphError(`no node ${id}`);
    return n;
  }

  tensor(id: number): Tensor {
    const n = this.node(id);
    return { id, dtype: n.dtype, shape: n.shape };
  }

  /** Append a node for any registered op; validates with the op's rule. */
  op(name: string, inputs: readonly Tensor[], attrs: Attrs = {}, extra: { name?: string } = {}): Tensor {
    const site = this.site === null ? callSite() : this.site;
    const ins = inputs.map((t) => nodeType(this.node(t.id)));
    const def = opDef(name, ins.map((t) => t.shape), site);
    const t = def.infer(ins, attrs, site);
    const node: Node = {
      id: this.nodes.length,
      op: name,
      inputs: inputs.map((x) => x.id),
      attrs,
      dtype: t.dtype,
      shape: [...t.shape],
      ...(extra.name !== undefined ? { name: extra.name } : {}),
      ...(site !== undefined ? { site } : {}),
    };
    this.nodes.push(node);
    this.added.push(node);
    return { id: node.id, dtype: node.dtype, shape: node.shape };
  }

  // ------------------------------------------------------------------ sources

  input<D extends DType, const S extends Shape>(name: string, type: TensorType<D, S>): Tensor<D, S> {
    this.requireFresh('input', name);
    return this.op('input', [], { dtype: type.dtype, shape: [...type.shape] }, { name }) as Tensor<D, S>;
  }

  param<D extends DType, const S extends Shape>(name: string, type: TensorType<D, S>, initializer: Init = init.he()): Tensor<D, S> {
    this.requireFresh('param', name);
    if (!type.shape.every((d) => typeof d === 'number')) {
      throw new ShapeError('param', [type.shape], `parameter '${name}' must have a literal shape`, this.site ?? callSite());
    }
    return this.op('param', [], { dtype: type.dtype, shape: [...type.shape], init: initializer as unknown as AttrValue }, { name }) as Tensor<D, S>;
  }

  state<D extends DType, const S extends Shape>(name: string, type: TensorType<D, S>, initializer: Init = init.zeros()): Tensor<D, S> {
    this.requireFresh('state', name);
    return this.op('state', [], { dtype: type.dtype, shape: [...type.shape], init: initializer as unknown as AttrValue }, { name }) as Tensor<D, S>;
  }

  /** A constant tensor from row-major values. */
  constant<D extends DType, const S extends Shape>(values: readonly number[] | ArrayLike<number>, type: TensorType<D, S>): Tensor<D, S> {
    return this.op('const', [], { dtype: type.dtype, shape: [...type.shape], data: Array.from(values as ArrayLike<number>) }) as Tensor<D, S>;
  }

  fill<D extends DType, const S extends Shape>(value: number, shape: S, dtype: D): Tensor<D, S> {
    return this.op('const', [], { dtype, shape: [...shape], fill: value }) as Tensor<D, S>;
  }

  /** A rank-0 constant with the dtype of `like`. */
  scalar<D extends DType>(value: number, like: { readonly dtype: D }): Tensor<D, readonly []> {
    return this.fill(value, [] as const, like.dtype);
  }

  zeros<D extends DType, const S extends Shape>(shape: S, dtype: D): Tensor<D, S> {
    return this.fill(0, shape, dtype);
  }

  ones<D extends DType, const S extends Shape>(shape: S, dtype: D): Tensor<D, S> {
    return this.fill(1, shape, dtype);
  }

  iota<const S extends Shape>(shape: S, axis: number, dtype: DType = 'i32'): Tensor<DType, S> {
    return this.op('iota', [], { dtype, shape: [...shape], axis }) as Tensor<DType, S>;
  }

  /**
   * Uniform [0, 1) values from a counter-based generator: the same numbers whenever recomputed
   * within a run. By default the stream is keyed by the graph's step counter (`rngStep()`), which
   * optimizers advance every training step, so each step draws fresh numbers; `key: null` keeps
   * one fixed stream, or pass any i32 scalar.
   */
  rand<const S extends Shape>(shape: S, seed: number, key: Tensor<'i32', readonly []> | null = this.rngStep()): Tensor<'f32', S> {
    return this.op('rand', key ? [key] : [], { dtype: 'f32', shape: [...shape], seed }) as Tensor<'f32', S>;
  }

  /**
   * The graph's random-stream counter: the i32 state `rng/step` (0 at first), declared on first
   * use. Random ops mix it into their seeds; `applyOptimizer` adds it 1 every step, and
   * checkpoints save it with the other state, so a resumed run draws what an unbroken one would.
   */
  rngStep(): Tensor<'i32', readonly []> {
    const n = this.nodes.find((x) => x.op === 'state' && x.name === RNG_STEP);
    if (n) return this.tensor(n.id) as Tensor<'i32', readonly []>;
    return this.state(RNG_STEP, { dtype: 'i32', shape: [] as const }, init.zeros());
  }

  // ------------------------------------------------------------------ elementwise

  private lift<D extends DType>(x: Tensor | number, like: { readonly dtype: D }): Tensor {
    return typeof x === 'number' ? this.scalar(x, like) : x;
  }

  private bin<D extends DType, SA extends Shape, SB extends Shape>(op: string, a: Operand<D, SA>, b: Operand<D, SB>): Tensor<D, BroadcastShape<SA, SB>> {
    if (typeof a === 'number' && typeof b === 'number') throw new ShapeError(op, [], 'needs at least one tensor operand', this.site ?? callSite());
    const like = typeof a === 'number' ? (b as Tensor) : a;
    return this.op(op, [this.lift(a, like), this.lift(b, like)]) as Tensor<D, BroadcastShape<SA, SB>>;
  }

  add<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('add', a, b); }
  sub<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('sub', a, b); }
  mul<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('mul', a, b); }
  div<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('div', a, b); }
  pow<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('pow', a, b); }
  maximum<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('max', a, b); }
  minimum<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('min', a, b); }
  mod<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('mod', a, b); }
  lt<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('lt', a, b) as unknown as Bool<BroadcastShape<SA, SB>>; }
  le<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('le', a, b) as unknown as Bool<BroadcastShape<SA, SB>>; }
  gt<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('gt', a, b) as unknown as Bool<BroadcastShape<SA, SB>>; }
  ge<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('ge', a, b) as unknown as Bool<BroadcastShape<SA, SB>>; }
  eq<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('eq', a, b) as unknown as Bool<BroadcastShape<SA, SB>>; }
  ne<D extends DType, SA extends Shape, SB extends Shape = readonly []>(a: Operand<D, SA>, b: Operand<D, SB>) { return this.bin('ne', a, b) as unknown as Bool<BroadcastShape<SA, SB>>; }
  and<SA extends Shape, SB extends Shape>(a: Bool<SA>, b: Bool<SB>) { return this.bin('and', a, b); }
  or<SA extends Shape, SB extends Shape>(a: Bool<SA>, b: Bool<SB>) { return this.bin('or', a, b); }

  private un<D extends DType, S extends Shape>(op: string, x: Tensor<D, S>): Tensor<D, S> {
    return this.op(op, [x]) as Tensor<D, S>;
  }
  neg<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('neg', x); }
  exp<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('exp', x); }
  log<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('log', x); }
  sqrt<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('sqrt', x); }
  rsqrt<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('rsqrt', x); }
  abs<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('abs', x); }
  sin<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('sin', x); }
  cos<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('cos', x); }
  tanh<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('tanh', x); }
  sigmoid<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('sigmoid', x); }
  relu<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('relu', x); }
  recip<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('recip', x); }
  square<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('square', x); }
  floor<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('floor', x); }
  ceil<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('ceil', x); }
  round<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('round', x); }
  sign<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('sign', x); }
  step<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('step', x); }
  not<S extends Shape>(x: Bool<S>) { return this.un('not', x); }
  stopGradient<D extends DType, S extends Shape>(x: Tensor<D, S>) { return this.un('stopGradient', x); }

  where<D extends DType, S extends Shape>(cond: Tensor<'bool', Shape>, a: Operand<D, S>, b: Operand<D, Shape>): Tensor<D, S> {
    const like = typeof a === 'number' ? (b as Tensor<D>) : a;
    return this.op('where', [cond, this.lift(a, like), this.lift(b, like)]) as Tensor<D, S>;
  }

  cast<D2 extends DType, S extends Shape>(x: Tensor<DType, S>, dtype: D2): Tensor<D2, S> {
    if (x.dtype === dtype) return x as Tensor<D2, S>;
    return this.op('cast', [x], { dtype }) as Tensor<D2, S>;
  }

  // ------------------------------------------------------------------ reductions

  sum<D extends DType>(x: Tensor<D>, axes: number | readonly number[] | null = null, keepdims = false): Tensor<D> {
    return this.op('sum', [x], { axes: axesAttr(axes), keepdims }) as Tensor<D>;
  }
  max<D extends DType>(x: Tensor<D>, axes: number | readonly number[] | null = null, keepdims = false): Tensor<D> {
    return this.op('reduce_max', [x], { axes: axesAttr(axes), keepdims }) as Tensor<D>;
  }
  min<D extends DType>(x: Tensor<D>, axes: number | readonly number[] | null = null, keepdims = false): Tensor<D> {
    return this.op('reduce_min', [x], { axes: axesAttr(axes), keepdims }) as Tensor<D>;
  }
  mean<D extends DType>(x: Tensor<D>, axes: number | readonly number[] | null = null, keepdims = false): Tensor<D> {
    return nn.mean(this, x, axesAttr(axes), keepdims) as Tensor<D>;
  }
  logsumexp<D extends DType>(x: Tensor<D>, axes: number | readonly number[] | null = null, keepdims = false): Tensor<D> {
    return nn.logsumexp(this, x, axesAttr(axes), keepdims) as Tensor<D>;
  }
  argmax(x: Tensor, axis = -1, keepdims = false): Tensor<'i32'> {
    return this.op('argmax', [x], { axis, keepdims }) as Tensor<'i32'>;
  }
  argmin(x: Tensor, axis = -1, keepdims = false): Tensor<'i32'> {
    return this.op('argmin', [x], { axis, keepdims }) as Tensor<'i32'>;
  }

  /** Sum a broadcast result back down to `shape` (the adjoint of broadcasting). */
  sumTo<D extends DType>(x: Tensor<D>, shape: Shape): Tensor<D> {
    if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
    const lead = x.shape.length - shape.length;
    const axes: number[] = [];
    x.shape.forEach((d, i) => {
      if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
    });
    let y: Tensor<D> = axes.length ? this.sum(x, axes, true) : x;
    if (lead > 0 || y.shape.length !== shape.length) y = this.reshape(y, shape) as Tensor<D>;
    return y;
  }

  // ------------------------------------------------------------------ contraction

  matmul<D extends DType, SA extends Shape, SB extends Shape>(a: Tensor<D, SA>, b: Tensor<D, SB> & MatmulCheck<SA, SB>): Tensor<D, MatmulShape<SA, SB>> {
    return this.op('matmul', [a, b]) as Tensor<D, MatmulShape<SA, SB>>;
  }

  /** General n-ary contraction, e.g. `einsum('bij,bjk->bik', a, b)`, via pairwise matmuls. */
  einsum<D extends DType>(spec: string, ...operands: Tensor<D>[]): Tensor<D> {
    return einsum(this, spec, operands) as Tensor<D>;
  }

  // ------------------------------------------------------------------ layout (views)

  reshape<D extends DType, const S extends Shape>(x: Tensor<D>, shape: S): Tensor<D, S> {
    const neg = shape.indexOf(-1);
    let to: Dim[] = [...shape];
    if (neg >= 0) {
      const known = shape.filter((_, i) => i !== neg);
      const pin = prodParts(x.shape), pk = prodParts(known);
      const syms = [...pin.syms];
      for (const s of pk.syms) {
        const j = syms.indexOf(s);
        if (j < 0) throw new ShapeError('reshape', [x.shape, shape], 'cannot infer -1', this.site ?? callSite());
        syms.splice(j, 1);
      }
      if (syms.length > 1 || pin.n % pk.n !== 0) throw new ShapeError('reshape', [x.shape, shape], 'cannot infer -1', this.site ?? callSite());
      const inferred: Dim = syms.length ? (pin.n / pk.n === 1 ? syms[0]! : NaN) : pin.n / pk.n;
      if (Number.isNaN(inferred)) throw new ShapeError('reshape', [x.shape, shape], 'cannot infer -1', this.site ?? callSite());
      to = [...shape];
      to[neg] = inferred;
    }
    if (to.length === x.shape.length && to.every((d, i) => d === x.shape[i])) return x as Tensor<D, S>;
    return this.op('reshape', [x], { shape: to }) as Tensor<D, S>;
  }

  transpose<D extends DType>(x: Tensor<D>, perm?: readonly number[]): Tensor<D> {
    const p = perm ?? x.shape.map((_, i) => x.shape.length - 1 - i);
    if (p.every((v, i) => v === i)) return x;
    return this.op('transpose', [x], { perm: [...p] }) as Tensor<D>;
  }

  transposeLast2<D extends DType>(x: Tensor<D>): Tensor<D> {
    const r = x.shape.length;
    return this.transpose(x, x.shape.map((_, i) => (i < r - 2 ? i : i === r - 2 ? r - 1 : r - 2)));
  }

  broadcastTo<D extends DType, const S extends Shape>(x: Tensor<D>, shape: S): Tensor<D, S> {
    if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x as Tensor<D, S>;
    return this.op('broadcastTo', [x], { shape: [...shape] }) as Tensor<D, S>;
  }

  /** Slice with per-axis starts and (exclusive) ends; ends beyond the axis are clamped. */
  slice<D extends DType>(x: Tensor<D>, starts: readonly number[], ends: readonly number[]): Tensor<D> {
    const e = x.shape.map((d, i) => (typeof d === 'number' ? Math.min(ends[i] ?? d, d) : -1));
    return this.op('slice', [x], { starts: [...starts], ends: e }) as Tensor<D>;
  }

  pad<D extends DType>(x: Tensor<D>, before: readonly number[], after: readonly number[], value = 0): Tensor<D> {
    if ([...before, ...after].every((p) => p === 0)) return x;
    return this.op('pad', [x], { before: [...before], after: [...after], value }) as Tensor<D>;
  }

  /**
   * Concatenation along `axis`. More than two operands become a balanced tree of two-operand
   * concats (checked together first): fusion joins the tree back into one kernel as far as the
   * device's buffer bindings allow, and splits it where they do not.
   */
  concat<D extends DType>(xs: readonly Tensor<D>[], axis: number): Tensor<D> {
    if (xs.length === 1) return xs[0]!;
    if (xs.length <= 2) return this.op('concat', xs, { axis }) as Tensor<D>;
    const site = this.site === null ? callSite() : this.site;
    const types = xs.map((t) => nodeType(this.node(t.id)));
    opDef('concat', types.map((t) => t.shape), site).infer(types, { axis }, site);
    const saved = this.site;
    this.site = site ?? undefined;
    try {
      const half = Math.ceil(xs.length / 2);
      return this.op('concat', [this.concat(xs.slice(0, half), axis), this.concat(xs.slice(half), axis)], { axis }) as Tensor<D>;
    } finally {
      this.site = saved;
    }
  }

  gather<D extends DType>(table: Tensor<D>, indices: Tensor<'i32'> | Tensor): Tensor<D> {
    return this.op('gather', [table, indices]) as Tensor<D>;
  }

  scatterAdd<D extends DType, S extends Shape>(base: Tensor<D, S>, indices: Tensor, updates: Tensor<D>): Tensor<D, S> {
    return this.op('scatterAdd', [base, indices, updates]) as Tensor<D, S>;
  }

  // ------------------------------------------------------------------ neural-network composites

  softmax<D extends DType, S extends Shape>(x: Tensor<D, S>, axis = -1): Tensor<D, S> { return nn.softmax(this, x, axis) as Tensor<D, S>; }
  logSoftmax<D extends DType, S extends Shape>(x: Tensor<D, S>, axis = -1): Tensor<D, S> { return nn.logSoftmax(this, x, axis) as Tensor<D, S>; }
  layerNorm<D extends DType, S extends Shape>(x: Tensor<D, S>, gamma?: Tensor<D>, beta?: Tensor<D>, eps = 1e-5): Tensor<D, S> {
    return nn.layerNorm(this, x, gamma, beta, eps) as Tensor<D, S>;
  }
  /** Mean over the batch of the cross-entropy between softmax(logits) and (one-hot or soft) labels. */
  softmaxCrossEntropy<D extends DType>(logits: Tensor<D>, labels: Tensor<D>): Tensor<D, readonly []> {
    return nn.softmaxCrossEntropy(this, logits, labels) as Tensor<D, readonly []>;
  }
  mse<D extends DType>(pred: Tensor<D>, target: Tensor<D>): Tensor<D, readonly []> { return nn.mse(this, pred, target) as Tensor<D, readonly []>; }
  dropout<D extends DType, S extends Shape>(x: Tensor<D, S>, rate: number, seed: number): Tensor<D, S> { return nn.dropout(this, x, rate, seed) as Tensor<D, S>; }
  conv2d<D extends DType>(x: Tensor<D>, w: Tensor<D>, opts: { stride?: number; padding?: number } = {}): Tensor<D> {
    return nn.conv2d(this, x, w, opts.stride ?? 1, opts.padding ?? 0) as Tensor<D>;
  }
  oneHot(labels: Tensor, classes: number, dtype: DType = 'f32'): Tensor { return nn.oneHot(this, labels, classes, dtype); }

  // ------------------------------------------------------------------ graph wiring

  output(name: string, t: Tensor): void {
    this.outputs[name] = t.id;
  }

  update(target: Tensor, value: Tensor): void {
    this.updates.push({ target: target.id, value: value.id });
  }

  private requireFresh(op: string, name: string): void {
    if (this.nodes.some((n) => n.op === op && n.name === name)) {
      throw new GraphError(`${op} '${name}' is declared twice (at ${this.site ?? callSite() ?? 'unknown site'})`);
    }
  }

  /** Write the builder's additions into an immer draft of the graph it started from. */
  commitTo(draft: { nodes: Node[]; outputs: Record<string, number>; updates: Update[] }): void {
    draft.nodes.push(...this.added);
    for (const k of Object.keys(draft.outputs)) if (!hasName(this.outputs, k)) delete draft.outputs[k];
    for (const [k, id] of Object.entries(this.outputs)) draft.outputs[k] = id;
    draft.updates.length = 0;
    draft.updates.push(...this.updates);
  }
}

function axesAttr(axes: number | readonly number[] | null): number[] | null {
  return axes === null ? null : typeof axes === 'number' ? [axes] : [...axes];
}

function prodParts(s: Shape): { n: number; syms: string[] } {
  let n = 1;
  const syms: string[] = [];
  for (const d of s) typeof d === 'number' ? (n *= d) : syms.push(d);
  return { n, syms };
}

/** Build a graph: `fn` receives a builder and returns the named outputs. */
export function graph<O extends Record<string, Tensor>>(name: string, fn: (g: Builder) => O | void): Graph {
  return produce(emptyGraph(name), (draft) => {
    const b = new Builder(emptyGraph(name));
    const outs = fn(b);
    if (outs) for (const [k, t] of Object.entries(outs)) b.output(k, t);
    b.commitTo(draft as unknown as { nodes: Node[]; outputs: Record<string, number>; updates: Update[] });
  });
}

/** Extend an existing graph with a builder (how passes add nodes); returns a new graph. */
export function extend(g: Graph, fn: (b: Builder) => void): Graph {
  return produce(g, (draft) => {
    const b = new Builder(g);
    fn(b);
    b.commitTo(draft as unknown as { nodes: Node[]; outputs: Record<string, number>; updates: Update[] });
  });
}

