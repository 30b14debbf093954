// The smallest budget a BudgetError names is met: it is the peak of a schedule the planner found
// (plus the fixed bytes), the same whatever infeasible budget was asked, and compiling at it
// succeeds and runs within it. Random training graphs: gradients of random graphs (arbitraries),
// MLPs, and random layered graphs, with and without an optimizer.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { adam, compile, grad, graph, f32, type Graph, type HostTensor, type Tensor } from '../index.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { tensor } from '../runtime/tensor.js';
import type { RematInfo, RematOptions } from '../scheduler/remat-plan.js';
import { BudgetError } from '../scheduler/remat/plan-types.js';
import { arbGraph, fcParams, withRandomLoss } from './arbitraries.js';

interface Case {
  kind: string;
  graph: Graph;
  feeds: Record<string, HostTensor>;
  variables: Record<string, HostTensor>;
  optimizer: boolean;
  /** where in [1, named minimum) the second infeasible budget lies */
  frac: number;
}

const values = (n: number, f: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * f + 0.3));

const arbMlp = fc.record({
  sizes: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 3, maxLength: 6 }),
  batch: fc.integer({ min: 1, max: 4 }),
}).map(({ sizes, batch }) => {
  const out = sizes[sizes.length - 1]!;
  const feeds = { x: tensor(values(batch * sizes[0]!, 0.7), [batch, sizes[0]!]), y: tensor(values(batch * out, 1.3).map((v) => (v > 0 ? 1 : 0)), [batch, out]) };
  return { kind: `mlp ${sizes.join('-')} batch ${batch}`, graph: grad(mlpGraph(sizes), 'loss'), feeds, variables: {} };
});

/**
 * A layered graph of tensor ops: each layer's values read one or two values of earlier layers,
 * the previous layer more often than older ones, through a matmul with a param or elementwise
 * math, and the loss sums the last layer.
 */
const arbLayered = fc.record({
  layers: fc.array(fc.array(fc.record({ op: fc.integer({ min: 0, max: 3 }), a: fc.nat(), b: fc.nat(), back: fc.nat({ max: 7 }) }), { minLength: 1, maxLength: 3 }), { minLength: 2, maxLength: 5 }),
  width: fc.integer({ min: 1, max: 5 }),
  batch: fc.integer({ min: 1, max: 4 }),
}).map(({ layers, width, batch }) => {
  const gr = graph('layered', (g) => {
    const x = g.input('x', f32(batch, width));
    const made: Tensor[][] = [[x]];
    layers.forEach((layer, l) => {
      made.push(layer.map((spec, k) => {
        // the previous layer with probability 1/2, the one before 1/4, ...
        const from = (pick: number) => {
          const back = Math.min(l, Math.floor(Math.log2(1 + spec.back)));
          const src = made[l - back]!;
          return src[pick % src.length]!;
        };
        const a = from(spec.a);
        const b = from(spec.b);
        if (spec.op === 0) return g.matmul(a, g.param(`w${l}_${k}`, f32(width, width), g.init.he()));
        if (spec.op === 1) return g.tanh(g.add(a, b));
        if (spec.op === 2) return g.mul(a, g.sigmoid(b));
        return g.relu(g.add(g.matmul(a, g.param(`v${l}_${k}`, f32(width, width), g.init.he())), b));
      }));
    });
    const last = made[made.length - 1]!;
    const loss = last.reduce((s: Tensor | null, t) => (s ? g.add(s, g.sum(g.square(t))) : g.sum(g.square(t))), null)!;
    return { loss };
  });
  const kind = `layered ${layers.map((l) => l.map((s) => s.op).join('')).join('/')} width ${width} batch ${batch}`;
  return { kind, graph: grad(gr, 'loss'), feeds: { x: tensor(values(batch * width, 0.9), [batch, width]) }, variables: {} };
});

const arbRandom = arbGraph({ maxOps: 6, params: true }).map(({ graph: g, feeds, variables }) => ({
  kind: `random graph of ${g.nodes.length} nodes`,
  graph: grad(withRandomLoss(g), 'loss'),
  feeds,
  variables,
}));

const arbCase: fc.Arbitrary<Case> = fc
  .tuple(fc.oneof(arbMlp, arbLayered, arbRandom), fc.boolean(), fc.double({ min: 0, max: 1, noNaN: true }))
  // an optimizer needs a gradient to apply: a graph without params (e.g. only elementwise layers) trains nothing
  .map(([c, wanted, frac]) => {
    const optimizer = wanted && Object.keys(c.graph.outputs).some((n) => n.startsWith('grad/'));
    return { ...c, optimizer, frac, [fc.toStringMethod]: () => `${c.kind}${optimizer ? ' with adam' : ''}, frac ${frac}` };
  });

type Planned = { remat: RematInfo };

function exeAt(c: Case, budget: number, remat: RematOptions) {
  const exe = compile(c.graph, { ...(c.optimizer ? { optimizer: adam(1e-2) } : {}), seed: 3, memoryBudget: budget, remat });
  if (Object.keys(c.variables).length) exe.setVariables(c.variables);
  return exe;
}

const shapesOf = (c: Case) => Object.fromEntries(Object.entries(c.feeds).map(([k, v]) => [k, v.shape]));

/** The BudgetError planning at `budget` throws, or the plan when it finds one. */
function attempt(c: Case, budget: number, remat: RematOptions): BudgetError | Planned {
  try {
    return exeAt(c, budget, remat).plan(shapesOf(c)) as unknown as Planned;
  } catch (e) {
    if (e instanceof BudgetError) return e;
    throw e;
  }
}

function checkNamedMinimum(c: Case, remat: RematOptions): void {
  const first = attempt(c, 1, remat);
  if (!(first instanceof BudgetError)) throw new Error(`a budget of 1 byte was met: ${c.kind}`);
  const named = first.minimumFeasible;
  expect(named).toBeGreaterThan(1);
  expect(first.message).toContain(`${named} bytes`);
  expect(first.lowerBound).toBeLessThanOrEqual(named);

  // another infeasible budget names the same minimum (or the planner meets that budget)
  const other = 1 + Math.floor(c.frac * (named - 2));
  const second = attempt(c, other, remat);
  if (second instanceof BudgetError) expect(second.minimumFeasible).toBe(named);
  else expect(second.remat.peakBytes + second.remat.fixedBytes).toBeLessThanOrEqual(other);

  // planning at the named minimum succeeds, and the run stays within it
  const exe = exeAt(c, named, remat);
  const plan = exe.plan(shapesOf(c)) as unknown as Planned;
  expect(plan.remat.peakBytes + plan.remat.fixedBytes).toBeLessThanOrEqual(named);
  exe.runSync(c.feeds);
  expect(exe.stats.measuredPeakBytes).toBeLessThanOrEqual(plan.remat.peakBytes);
  expect(exe.stats.measuredPeakBytes + plan.remat.fixedBytes).toBeLessThanOrEqual(named);
}

describe('the smallest budget a BudgetError names', () => {
  it('is the same for every infeasible budget, and planning at it succeeds within it (heuristic)', () => {
    fc.assert(fc.property(arbCase, (c) => checkNamedMinimum(c, { solver: 'heuristic', timeLimitMs: 0 })), fcParams(100));
  });

  it('is the same for every infeasible budget, and planning at it succeeds within it (exact, short time limit)', () => {
    fc.assert(fc.property(arbCase, (c) => checkNamedMinimum(c, { solver: 'exact', timeLimitMs: 200 })), fcParams(10));
  });

  it('is the same for every infeasible budget, and planning at it succeeds within it (default options)', () => {
    fc.assert(fc.property(arbCase, (c) => checkNamedMinimum(c, {})), fcParams(3));
  }, 120_000);

  it('a 6-layer MLP trained with Adam: the budget named at 1 byte is met', () => {
    const g = grad(mlpGraph([16, 16, 16, 16, 16, 16, 16]), 'loss');
    const c: Case = { kind: 'mlp', graph: g, feeds: { x: tensor(values(32 * 16, 0.7), [32, 16]), y: tensor(values(32 * 16, 1.1).map((v) => (v > 0 ? 1 : 0)), [32, 16]) }, variables: {}, optimizer: true, frac: 0.5 };
    checkNamedMinimum(c, { solver: 'heuristic', timeLimitMs: 100 });
  });
});
