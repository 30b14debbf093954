// Algebraic simplification: identities that hold exactly in floating point (x*1, x+0, x-0, x/1,
// x^1, neg(neg x), idempotent unaries) and layout identities (transpose/reshape/broadcast chains
// collapse, views to the same shape vanish). Where a constant operand broadcasts x to a larger
// shape, x is broadcast instead. Rules that would change NaN or infinity results (x*0 -> 0,
// x-x -> 0, sqrt(x*x) -> |x|) are deliberately absent. Matmul reassociation is a separate rule
// set for cost-driven search: neither direction is always better.

import type { Node } from '../graph.js';
import type { Builder } from '../builder.js';
import type { Shape, Tensor } from '../types.js';
import { rule, type Rule } from './engine.js';
import { pat, type Match } from './pattern.js';
import { numArr } from '../../ops/shape.js';

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** x, broadcast to the shape of the node it replaces when the constant operand widened it */
function widened(b: Builder, m: Match, name = 'x'): Tensor {
  const x = m.tensor(name);
  return sameShape(x.shape, m.root.shape) ? x : b.broadcastTo(x, m.root.shape);
}

const x = pat.any('x');
const sameDType = (m: Match) => m.node('x').dtype === m.root.dtype;

function identity(name: string, op: string, value: number, commutative: boolean): Rule {
  return rule(name, pat.op(op, [x, pat.fill(value)], { commutative }), (b, m) => widened(b, m), sameDType);
}

const identities: Rule[] = [
  identity('mul-one', 'mul', 1, true),
  identity('add-zero', 'add', 0, true),
  identity('add-neg-zero', 'add', -0, true),
  identity('sub-zero', 'sub', 0, false),
  identity('div-one', 'div', 1, false),
  identity('pow-one', 'pow', 1, false),
  rule('zero-sub', pat.op('sub', [pat.fill(0), x]), (b, m) => b.neg(widened(b, m)), sameDType),
  rule('mul-minus-one', pat.op('mul', [x, pat.fill(-1)], { commutative: true }), (b, m) => b.neg(widened(b, m)), sameDType),
  rule('neg-neg', pat.op('neg', [pat.op('neg', [x])]), (_b, m) => m.tensor('x')),
  rule('where-same', pat.op('where', [pat.any(), x, x]), (b, m) => widened(b, m)),
  rule('cast-same', pat.op('cast', [x]), (_b, m) => m.tensor('x'), sameDType),
  rule('abs-neg', pat.op('abs', [pat.op('neg', [x])]), (b, m) => b.abs(m.tensor('x'))),
  ...['relu', 'abs', 'floor', 'ceil', 'round', 'sign'].map((op) =>
    rule(`${op}-${op}`, pat.op(op, [pat.op(op, undefined, { bind: 'inner' })]), (_b, m) => m.tensor('inner'))),
];

const isIdentityPerm = (p: readonly number[]) => p.every((v, i) => v === i);

const layout: Rule[] = [
  rule('transpose-identity', pat.op('transpose', [x], { test: (n) => isIdentityPerm(numArr(n.attrs['perm'])) }), (_b, m) => m.tensor('x')),
  rule('transpose-transpose', pat.op('transpose', [pat.op('transpose', [x], { bind: 'inner' })]), (b, m) => {
    const p1 = numArr(m.node('inner').attrs['perm']), p2 = numArr(m.root.attrs['perm']);
    const perm = p2.map((p) => p1[p]!);
    return isIdentityPerm(perm) ? m.tensor('x') : b.transpose(m.tensor('x'), perm);
  }),
  rule('reshape-same', pat.op('reshape', [x]), (_b, m) => m.tensor('x'), (m) => sameShape(m.node('x').shape, m.root.shape)),
  rule('reshape-reshape', pat.op('reshape', [pat.op('reshape', [x])]), (b, m) =>
    sameShape(m.node('x').shape, m.root.shape) ? m.tensor('x') : b.reshape(m.tensor('x'), m.root.shape)),
  rule('broadcast-same', pat.op('broadcastTo', [x]), (_b, m) => m.tensor('x'), (m) => sameShape(m.node('x').shape, m.root.shape)),
  rule('broadcast-broadcast', pat.op('broadcastTo', [pat.op('broadcastTo', [x])]), (b, m) => b.broadcastTo(m.tensor('x'), m.root.shape)),
  rule('slice-whole', pat.op('slice', [x]), (_b, m) => m.tensor('x'), (m) => {
    const starts = numArr(m.root.attrs['starts']);
    return starts.every((s) => s === 0) && sameShape(m.node('x').shape, m.root.shape);
  }),
  rule('sum-no-axes', pat.op('sum', [x], { test: (n) => Array.isArray(n.attrs['axes']) && (n.attrs['axes'] as unknown[]).length === 0 }),
    (_b, m) => m.tensor('x'), (m) => sameShape(m.node('x').shape, m.root.shape)),
];

export const algebraRules: readonly Rule[] = [...identities, ...layout];

/** A matmul read only by the node being rewritten (so reassociating does not duplicate it). */
const single = (name: string) => pat.op('matmul', undefined, { bind: name });
const onlyReader = (m: Match, name: string) => {
  const inner = m.node(name);
  return m.graph.nodes.filter((n: Node) => n.inputs.includes(inner.id)).length === 1 && !Object.values(m.graph.outputs).includes(inner.id);
};

/** (a·b)·c <-> a·(b·c): for `searchRewrite` with a FLOP cost; at a fixed point they would cycle. */
export const matmulAssociationRules: readonly Rule[] = [
  rule('matmul-assoc-right', pat.op('matmul', [single('ab'), pat.any('c')]), (b, m) => {
    const [a, bb] = m.node('ab').inputs.map((i) => b.tensor(i)) as [Tensor, Tensor];
    return b.op('matmul', [a, b.op('matmul', [bb, m.tensor('c')])]);
  }, (m) => onlyReader(m, 'ab')),
  rule('matmul-assoc-left', pat.op('matmul', [pat.any('a'), single('bc')]), (b, m) => {
    const [bb, c] = m.node('bc').inputs.map((i) => b.tensor(i)) as [Tensor, Tensor];
    return b.op('matmul', [b.op('matmul', [m.tensor('a'), bb]), c]);
  }, (m) => onlyReader(m, 'bc')),
];
