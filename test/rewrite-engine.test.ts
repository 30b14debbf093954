// The rewrite engine's laws: on random graphs the default passes terminate, keep every output
// value and every input, param, state and output name, and leave no dead node; training steps
// (updates) give the same losses and params after CSE; the log's patches replay; search under a
// FLOP cost picks the cheaper matmul association; DOT marks the rewritten nodes.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyPatches } from 'immer';
import { graph } from '../graphs/builder.js';
import { ancestors, type Graph } from '../graphs/graph.js';
import { f32 } from '../graphs/types.js';
import { grad } from '../graphs/autodiff.js';
import { adam, applyOptimizer } from '../graphs/optim.js';
import { toDot } from '../graphs/dot.js';
import { tensor } from '../runtime/tensor.js';
import { compile } from '../runtime/executor.js';
import { rewriteGraph, rule, searchRewrite } from '../graphs/rewrite/engine.js';
import { pat } from '../graphs/rewrite/pattern.js';
import { matmulAssociationRules } from '../graphs/rewrite/algebra.js';
import { flops } from '../graphs/rewrite/cost.js';
import { defaultPasses, optimizeGraph, simplifyRules } from '../graphs/rewrite/passes.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { arbGraph, arbTensorValues, fcParams } from './arbitraries.js';
import { expectSameOutputs, interfaceOf } from './rewrite-util.js';

function noDeadNodes(g: Graph): void {
  const roots = [...Object.values(g.outputs), ...g.updates.flatMap((u) => [u.target, u.value]),
    ...g.nodes.filter((n) => ['input', 'param', 'state'].includes(n.op)).map((n) => n.id)];
  expect(ancestors(g, roots)).toHaveLength(g.nodes.length);
}

describe('the rewrite engine', () => {
  it('terminates on random graphs and keeps their outputs, names and liveness', () => {
    fc.assert(
      fc.property(arbGraph({ maxOps: 8, params: true }), ({ graph: g, feeds, variables }) => {
        const r = optimizeGraph(g);
        for (const p of r.passes) expect(p.result.converged).toBe(true);
        expect(interfaceOf(r.graph)).toEqual(interfaceOf(g));
        noDeadNodes(r.graph);
        expectSameOutputs(g, r.graph, feeds, variables, 1e-4, 1e-5);
      }),
      fcParams(40),
    );
  });

  it('stops at the step limit on rules that never reach a fixed point', () => {
    // x -> neg(neg(x)) forever: each application makes a new node the rule matches again
    const grow = rule('grow', pat.op('exp', [pat.any('x')]), (b, m) => b.exp(b.neg(b.neg(m.tensor('x')))));
    const g = graph('g', (b) => ({ y: b.exp(b.input('x', f32(2))) }));
    const r = rewriteGraph(g, [grow], { maxSteps: 25 });
    expect(r.converged).toBe(false);
    expect(r.log).toHaveLength(25);
    noDeadNodes(r.graph);
  });

  it('keeps training steps (updates) the same after CSE removes duplicated optimizer scalars', () => {
    const step = applyOptimizer(grad(mlpGraph([6, 5, 3]), 'loss'), adam(0.05));
    const r = optimizeGraph(step);
    expect(r.passes.flatMap((p) => p.result.log).filter((x) => x.rule === 'cse').length).toBeGreaterThan(0);
    expect(interfaceOf(r.graph)).toEqual(interfaceOf(step));
    expect(r.graph.updates).toHaveLength(step.updates.length);
    const outputs = ['loss'];
    const a = compile(step, { backend: 'reference', outputs }), b = compile(r.graph, { backend: 'reference', outputs });
    fc.assert(
      fc.property(arbTensorValues([4, 6]), arbTensorValues([4, 3], { min: 0, max: 1 }), (x, y) => {
        const feeds = { x: tensor(x, [4, 6]), y: tensor(y, [4, 3]) };
        for (let i = 0; i < 3; i++) {
          const la = a.runSync(feeds)['loss']!.data[0]!, lb = b.runSync(feeds)['loss']!.data[0]!;
          expect(Math.abs(la - lb)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(la)));
        }
        const va = a.variables(), vb = b.variables();
        expect(Object.keys(vb).sort()).toEqual(Object.keys(va).sort());
        for (const [k, v] of Object.entries(va)) {
          v.data.forEach((e, i) => expect(Math.abs(e - vb[k]!.data[i]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(e))));
        }
      }),
      fcParams(3),
    );
  });

  it('logs each application with patches that replay and undo it', () => {
    const g = graph('g', (b) => {
      const x = b.input('x', f32(3));
      return { y: b.add(b.mul(b.exp(x), 1), b.exp(x)) };
    });
    const r = optimizeGraph(g, { passes: [{ name: 'simplify', rules: simplifyRules }] });
    const log = r.passes[0]!.result.log;
    expect(log.map((x) => x.rule).sort()).toEqual(['cse', 'mul-one']);
    let cur: Graph = g;
    for (const rec of log) {
      const next = applyPatches(cur, rec.patches as never) as Graph;
      expect(applyPatches(next, rec.inversePatches as never)).toEqual(cur);
      cur = next;
    }
    expect(r.graph.nodes.map((n) => n.op)).toEqual(['input', 'exp', 'add']);
  });

  it('search under a FLOP cost picks the cheaper matmul association and keeps the value', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 4, maxLength: 4 }), (d) => {
        const [m, k, n, p] = d as [number, number, number, number];
        const g = graph('chain', (b) => {
          const a = b.input('a', f32(m, k)), bb = b.input('b', f32(k, n)), c = b.input('c', f32(n, p));
          return { y: b.op('matmul', [b.op('matmul', [a, bb]), c]) };
        });
        const r = searchRewrite(g, matmulAssociationRules, { cost: (x) => flops(x), depth: 2 });
        const best = Math.min(2 * m * k * n + 2 * m * n * p, 2 * k * n * p + 2 * m * k * p);
        expect(flops(r.graph)).toBe(best);
        const feeds = { a: tensor(new Float32Array(m * k).map((_, i) => (i % 5) - 2), [m, k]), b: tensor(new Float32Array(k * n).map((_, i) => (i % 3) - 1), [k, n]), c: tensor(new Float32Array(n * p).map((_, i) => (i % 4) / 4), [n, p]) };
        expectSameOutputs(g, r.graph, feeds);
      }),
      fcParams(20),
    );
  });

  it('DOT export marks the nodes a rewrite made with the rule that made them', () => {
    const g = graph('g', (b) => ({ y: b.neg(b.mul(b.exp(b.input('x', f32(2))), -1)) }));
    const r = optimizeGraph(g, { passes: defaultPasses });
    const dot = toDot(r.graph, { highlight: r.highlight });
    expect(r.graph.nodes.map((n) => n.op)).toEqual(['input', 'exp']);
    expect(dot).toContain('[neg-neg]');
    expect(dot).toContain('color="#d62728"');
  });
});
