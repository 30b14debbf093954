// The law of every rewrite rule: on random shapes and values, a graph the rule applies to computes
// the same outputs (reference backend, float tolerance) after the rule has run to a fixed point,
// and the rule did fire. One property per rule; fast-check prints the seed of a failure.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { graph, type Builder } from '../graphs/builder.js';
import type { Graph } from '../graphs/graph.js';
import { f32, numel, type Tensor } from '../graphs/types.js';
import { tensor, type HostTensor } from '../runtime/tensor.js';
import { rewriteGraph, type Rule } from '../graphs/rewrite/engine.js';
import { algebraRules } from '../graphs/rewrite/algebra.js';
import { foldRules } from '../graphs/rewrite/fold.js';
import { cseRules } from '../graphs/rewrite/cse.js';
import { arbBroadcastPair, arbShape, arbTensorValues, fcParams } from './arbitraries.js';
import { expectSameOutputs } from './rewrite-util.js';

const RUNS = 25;

interface Case {
  readonly graph: Graph;
  readonly feeds: Record<string, HostTensor>;
}

/** x: a random input; `build` makes the outputs, with a random integer to pick variants. */
function withInput(build: (g: Builder, x: Tensor, pick: number) => Record<string, Tensor>, shape = arbShape({ maxRank: 3, maxDim: 4 })): fc.Arbitrary<Case> {
  return fc.tuple(shape, fc.nat({ max: 1 << 16 })).chain(([s, pick]) =>
    arbTensorValues(s).map((v) => ({
      graph: graph('case', (g) => build(g, g.input('x', f32(...s)), pick)),
      feeds: { x: tensor(v, s) },
    })),
  );
}

/** x and a constant that broadcasts with it (either may be the wider one). */
function withBroadcastConst(build: (g: Builder, x: Tensor, c: (v: number) => Tensor) => Tensor): fc.Arbitrary<Case> {
  return arbBroadcastPair({ maxRank: 3, maxDim: 4 }).chain(([sx, sc]) =>
    arbTensorValues(sx).map((v) => ({
      graph: graph('case', (g) => ({ y: build(g, g.input('x', f32(...sx)), (k) => g.fill(k, sc, 'f32')) })),
      feeds: { x: tensor(v, sx) },
    })),
  );
}

function permutation(n: number, pick: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = (pick >> (i * 2)) % (i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

function nonIdentity(n: number, pick: number): number[] {
  const p = permutation(n, pick);
  return p.every((v, i) => v === i) ? p.map((_, i) => (i + 1) % n) : p;
}

function checkRule(name: string, rules: readonly Rule[], cases: fc.Arbitrary<Case>): void {
  fc.assert(
    fc.property(cases, (c) => {
      const r = rewriteGraph(c.graph, rules);
      expect(r.converged).toBe(true);
      expect(r.log.map((x) => x.rule), 'the rule fired').toContain(name);
      expectSameOutputs(c.graph, r.graph, c.feeds);
    }),
    fcParams(RUNS),
  );
}

const identityCases: [string, (g: Builder, x: Tensor, c: (v: number) => Tensor) => Tensor][] = [
  ['mul-one', (g, x, c) => g.mul(c(1), x)],
  ['add-zero', (g, x, c) => g.add(x, c(0))],
  ['add-neg-zero', (g, x, c) => g.add(c(-0), x)],
  ['sub-zero', (g, x, c) => g.sub(x, c(0))],
  ['div-one', (g, x, c) => g.div(x, c(1))],
  ['pow-one', (g, x, c) => g.pow(x, c(1))],
  ['zero-sub', (g, x, c) => g.sub(c(0), x)],
  ['mul-minus-one', (g, x, c) => g.mul(x, c(-1))],
];

describe('algebraic simplification keeps every output', () => {
  for (const [name, build] of identityCases) {
    it(name, () => checkRule(name, algebraRules, withBroadcastConst(build)));
  }
  it('neg-neg', () => checkRule('neg-neg', algebraRules, withInput((g, x) => ({ y: g.exp(g.neg(g.neg(x))) }))));
  it('where-same', () => checkRule('where-same', algebraRules, withInput((g, x) => {
    const s = g.sin(x);
    return { y: g.where(g.gt(x, 0), s, s) };
  })));
  it('cast-same', () => checkRule('cast-same', algebraRules, withInput((g, x) => ({ y: g.op('cast', [g.abs(x)], { dtype: 'f32' }) }))));
  it('abs-neg', () => checkRule('abs-neg', algebraRules, withInput((g, x) => ({ y: g.abs(g.neg(x)) }))));
  for (const op of ['relu', 'abs', 'floor', 'ceil', 'round', 'sign'] as const) {
    it(`${op}-${op}`, () => checkRule(`${op}-${op}`, algebraRules, withInput((g, x) => ({ y: g[op](g[op](g.mul(x, 3))) }))));
  }
  it('transpose-identity', () => checkRule('transpose-identity', algebraRules, withInput((g, x) => ({ y: g.op('transpose', [g.exp(x)], { perm: x.shape.map((_, i) => i) }) }))));
  it('transpose-transpose', () =>
    checkRule('transpose-transpose', algebraRules, withInput((g, x, pick) => {
      const r = x.shape.length;
      return { y: g.op('transpose', [g.op('transpose', [x], { perm: nonIdentity(r, pick) })], { perm: nonIdentity(r, pick >> 7) }) };
    }, arbShape({ minRank: 2, maxRank: 4, maxDim: 3 }))));
  it('reshape-same', () => checkRule('reshape-same', algebraRules, withInput((g, x) => ({ y: g.op('reshape', [g.exp(x)], { shape: [...x.shape] }) }))));
  it('reshape-reshape', () =>
    checkRule('reshape-reshape', algebraRules, withInput((g, x, pick) => {
      const n = numel(x.shape as number[]);
      const divs = Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
      const d = divs[pick % divs.length]!;
      return { y: g.reshape(g.op('reshape', [x], { shape: [n] }), pick % 2 ? [d, n / d] : [n / d, 1, d]) };
    }, arbShape({ minRank: 2, maxRank: 3, maxDim: 4 }))));
  it('broadcast-same', () => checkRule('broadcast-same', algebraRules, withInput((g, x) => ({ y: g.op('broadcastTo', [g.exp(x)], { shape: [...x.shape] }) }))));
  it('broadcast-broadcast', () =>
    checkRule('broadcast-broadcast', algebraRules, withInput((g, x, pick) => ({ y: g.broadcastTo(g.broadcastTo(x, [1 + (pick % 2), ...x.shape]), [3, 1 + (pick % 2), ...x.shape]) }))));
  it('slice-whole', () => checkRule('slice-whole', algebraRules, withInput((g, x) => ({ y: g.op('slice', [g.exp(x)], { starts: x.shape.map(() => 0), ends: [...x.shape] }) }))));
  it('sum-no-axes', () => checkRule('sum-no-axes', algebraRules, withInput((g, x, pick) => ({ y: g.sum(g.exp(x), [], pick % 2 === 0) }))));
});

const FOLD_UNARY = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'recip', 'square', 'floor', 'ceil', 'round', 'sign', 'step'] as const;
const FOLD_BINARY = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'mod'] as const;
const FOLD_COMPARE = ['lt', 'le', 'gt', 'ge', 'eq', 'ne'] as const;

/** A constant of x's shape or a broadcastable one: data (random values) or one value. */
function constants(): fc.Arbitrary<{ sa: number[]; sb: number[]; a: Float32Array; b: Float32Array; fillA: boolean; fillB: boolean; pick: number }> {
  return arbBroadcastPair({ maxRank: 3, maxDim: 4 }).chain(([sa, sb]) =>
    fc.record({ a: arbTensorValues(sa), b: arbTensorValues(sb), fillA: fc.boolean(), fillB: fc.boolean(), pick: fc.nat({ max: 1 << 16 }) }).map((r) => ({ sa, sb, ...r })));
}

function constCase(build: (g: Builder, a: Tensor, b: Tensor, x: Tensor, pick: number) => Tensor): fc.Arbitrary<Case> {
  return constants().chain((c) =>
    arbTensorValues(c.sa).map((xv) => ({
      graph: graph('case', (g) => {
        const a = c.fillA ? g.fill(c.a[0]!, c.sa, 'f32') : g.constant(c.a, f32(...c.sa));
        const b = c.fillB ? g.fill(c.b[0]!, c.sb, 'f32') : g.constant(c.b, f32(...c.sb));
        const x = g.input('x', f32(...c.sa));
        const y = build(g, a, b, x, c.pick);
        return { y, z: g.add(g.sum(g.cast(y, 'f32')), g.sum(x)) };
      }),
      feeds: { x: tensor(xv, c.sa) },
    })),
  );
}

describe('constant folding keeps every output', () => {
  it('fold-elementwise (unary)', () => checkRule('fold-elementwise', foldRules, constCase((g, a, _b, _x, pick) => g.op(FOLD_UNARY[pick % FOLD_UNARY.length]!, [a]))));
  it('fold-elementwise (binary)', () => checkRule('fold-elementwise', foldRules, constCase((g, a, b, _x, pick) => g.op(FOLD_BINARY[pick % FOLD_BINARY.length]!, [a, b]))));
  it('fold-elementwise (comparisons and where)', () =>
    checkRule('fold-elementwise', foldRules, constCase((g, a, b, _x, pick) => g.where(g.op(FOLD_COMPARE[pick % FOLD_COMPARE.length]!, [a, b]) as Tensor<'bool'>, a, b))));
  it('fold-elementwise (casts)', () => checkRule('fold-elementwise', foldRules, constCase((g, a) => g.cast(g.cast(g.mul(a, 3), 'i32'), 'f32'))));
  it('fold-view', () =>
    checkRule('fold-view', foldRules, constCase((g, a, _b, _x, pick) => {
      const r = a.shape.length;
      const v = pick % 3;
      return v === 0 ? g.op('reshape', [a], { shape: [numel(a.shape as number[])] }) : v === 1 ? g.op('transpose', [a], { perm: permutation(r, pick >> 2) }) : g.broadcastTo(a, [2, ...a.shape]);
    })));
  it('fold-sum', () =>
    checkRule('fold-sum', foldRules, withInput((g, x, pick) => {
      const c = g.fill((pick % 17) / 4 - 2, x.shape, 'f32');
      return { y: g.add(x, g.sum(c, x.shape.length ? [pick % x.shape.length] : null, true)) };
    })));
  it('const-uniform', () =>
    checkRule('const-uniform', foldRules, withInput((g, x, pick) => ({ y: g.mul(x, g.constant(new Array(numel(x.shape as number[])).fill((pick % 9) - 4), f32(...x.shape))) }))));
});

describe('common-subexpression elimination keeps every output', () => {
  it('cse merges equal nodes (commuted operands and equal constants too)', () =>
    checkRule('cse', cseRules, withInput((g, x, pick) => {
      const u = (t: Tensor) => (pick % 2 ? g.exp(g.mul(t, 0.5)) : g.tanh(g.add(t, 1)));
      const a = u(x), b = u(x);
      return { y: g.add(g.mul(a, x), g.mul(x, b)), z: g.sub(a, g.sum(b, null, true)) };
    })));
  it('never merges inputs, params or random ops with different seeds', () => {
    const g = graph('case', (b) => {
      const x1 = b.input('x1', f32(3)), x2 = b.input('x2', f32(3));
      const p1 = b.param('p1', f32(3), b.init.ones()), p2 = b.param('p2', f32(3), b.init.ones());
      return { y: b.add(b.add(b.exp(x1), b.exp(x2)), b.add(b.add(p1, p2), b.add(b.rand([3], 1), b.rand([3], 2)))) };
    });
    const r = rewriteGraph(g, cseRules);
    expect(r.log).toHaveLength(0);
    expect(r.graph).toBe(g);
  });
});
