// Constant folding: elementwise ops, layout views and sums over constants are computed at compile
// time with the ops' own scalar semantics (ops/scalar.ts, what the reference interpreter runs),
// rounded to the result's dtype as a buffer would store it. One-value constants fold at any size
// (the result is one value too); constants with data fold only up to FOLD_LIMIT elements, so
// folding never turns a cheap kernel into a large buffer. f16 is left alone (no exact rounding here).

import type { Graph, Node } from '../graph.js';
import type { Dim, DType } from '../types.js';
import { numel } from '../types.js';
import { rule, type Rule } from './engine.js';
import { fillValue, pat } from './pattern.js';
import { BINARY } from '../../ops/binary.js';
import { UNARY } from '../../ops/unary.js';
import { evalBinary, evalCast, evalUnary } from '../../ops/scalar.js';
import { numArr } from '../../ops/shape.js';

/** the most elements a folded constant with data may have */
export const FOLD_LIMIT = 4096;

const FOLDED_DTYPES = new Set<DType>(['f32', 'i32', 'bool']);
const ELEMENTWISE = [...Object.keys(UNARY), ...Object.keys(BINARY), 'where', 'cast'];
const VIEWS = ['reshape', 'broadcastTo', 'transpose'];

function store(v: number, dtype: DType): number {
  return dtype === 'f32' ? Math.fround(v) : dtype === 'i32' ? v | 0 : v ? 1 : 0;
}

function concrete(shape: readonly Dim[]): shape is readonly number[] {
  return shape.every((d) => typeof d === 'number');
}

/** The stored values of a constant, or its one value. */
function valuesOf(n: Node): { one: number } | { data: number[] } {
  const one = fillValue(n);
  if (one !== undefined) return { one: store(one, n.dtype) };
  return { data: (n.attrs['data'] as number[]).map((v) => store(Number(v), n.dtype)) };
}

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1]! * shape[i + 1]!;
  return s;
}

/** Flat index into `inShape` (right-aligned, size-1 dims broadcast) of each output element. */
function broadcastFlat(out: readonly number[], inShape: readonly number[]): number[] {
  const os = strides(out), is = strides(inShape);
  const off = out.length - inShape.length;
  return Array.from({ length: numel(out) }, (_, o) => {
    let f = 0;
    for (let i = 0; i < inShape.length; i++) {
      const k = Math.floor(o / os[i + off]!) % out[i + off]!;
      if (inShape[i] !== 1) f += k * is[i]!;
    }
    return f;
  });
}

function scalarFn(n: Node, ins: readonly Node[]): (vs: readonly number[]) => number {
  if (n.op === 'where') return ([c, a, b]) => (c ? a! : b!);
  if (n.op === 'cast') return ([v]) => evalCast(v!, ins[0]!.dtype, n.dtype);
  if (n.op === 'stopGradient') return ([v]) => v!;
  if (n.op in BINARY) return ([a, b]) => evalBinary(n.op, a!, b!, n.dtype === 'i32');
  return ([v]) => evalUnary(n.op, v!);
}

function allConst(g: Graph, n: Node): boolean {
  return n.inputs.length > 0 && n.inputs.every((i) => g.nodes[i]!.op === 'const');
}

function foldable(g: Graph, n: Node): boolean {
  if (!allConst(g, n) || !FOLDED_DTYPES.has(n.dtype)) return false;
  const ins = n.inputs.map((i) => g.nodes[i]!);
  if (!ins.every((x) => FOLDED_DTYPES.has(x.dtype))) return false;
  if (ins.every((x) => fillValue(x) !== undefined)) return true;
  return concrete(n.shape) && numel(n.shape) <= FOLD_LIMIT && ins.every((x) => concrete(x.shape));
}

const foldElementwise = rule(
  'fold-elementwise',
  pat.op(ELEMENTWISE),
  (b, m) => {
    const n = m.root, g = m.graph;
    const ins = n.inputs.map((i) => g.nodes[i]!);
    const f = scalarFn(n, ins);
    const vals = ins.map(valuesOf);
    if (vals.every((v) => 'one' in v)) return b.fill(store(f(vals.map((v) => (v as { one: number }).one)), n.dtype), n.shape, n.dtype);
    const out = n.shape as number[];
    const reads = ins.map((x, j) => {
      const v = vals[j]!;
      if ('one' in v) return () => v.one;
      const flat = broadcastFlat(out, x.shape as number[]);
      return (o: number) => v.data[flat[o]!]!;
    });
    const data = Array.from({ length: numel(out) }, (_, o) => store(f(reads.map((r) => r(o))), n.dtype));
    return b.constant(data, { dtype: n.dtype, shape: out });
  },
  (m) => foldable(m.graph, m.root),
);

/** Output element -> input flat index of a view over a constant with data. */
function viewFlat(n: Node, x: Node): number[] {
  const out = n.shape as number[], inShape = x.shape as number[];
  if (n.op === 'reshape') return Array.from({ length: numel(out) }, (_, o) => o);
  if (n.op === 'broadcastTo') return broadcastFlat(out, inShape);
  const perm = numArr(n.attrs['perm']);
  const os = strides(out), is = strides(inShape);
  return Array.from({ length: numel(out) }, (_, o) => perm.reduce((f, p, i) => f + (Math.floor(o / os[i]!) % out[i]!) * is[p]!, 0));
}

const foldView = rule(
  'fold-view',
  pat.op([...VIEWS, 'slice'], [pat.op('const', undefined, { bind: 'c' })]),
  (b, m) => {
    const n = m.root, x = m.node('c');
    const one = fillValue(x);
    if (one !== undefined) return b.fill(one, n.shape, n.dtype);
    if (!VIEWS.includes(n.op) || !concrete(n.shape) || !concrete(x.shape) || numel(n.shape) > FOLD_LIMIT) return null;
    const data = x.attrs['data'] as number[];
    return b.constant(viewFlat(n, x).map((i) => data[i]!), { dtype: n.dtype, shape: n.shape as number[] });
  },
);

/** sum of one value v over k elements = k * v */
const foldSum = rule(
  'fold-sum',
  pat.op('sum', [pat.fill(undefined, 'c')]),
  (b, m) => {
    const n = m.root, x = m.node('c');
    const k = numel(x.shape as number[]) / numel(n.shape as number[]);
    if (!Number.isInteger(k) || !FOLDED_DTYPES.has(n.dtype)) return null;
    return b.fill(store(k * store(fillValue(x)!, x.dtype), n.dtype), n.shape, n.dtype);
  },
  (m) => concrete(m.node('c').shape),
);

/** a constant whose data holds one value becomes a one-value constant (no buffer) */
const uniformData = rule(
  'const-uniform',
  pat.op('const', undefined, { test: (n) => Array.isArray(n.attrs['data']) && fillValue(n) !== undefined }),
  (b, m) => b.fill(fillValue(m.root)!, m.root.shape, m.root.dtype),
);

export const foldRules: readonly Rule[] = [uniformData, foldElementwise, foldView, foldSum];
