import { describe, expect, it } from 'vitest';
import { adam, compile, grad, planLaunches, type CompileOptions, type Graph, type HostTensor, type Plan } from '../index.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { transformerGraph, type TransformerConfig } from '../examples/transformer-model.js';
import { tensor } from '../runtime/tensor.js';
import type { RematInfo, RematOptions } from '../scheduler/remat-plan.js';
import { BudgetError } from '../scheduler/remat/plan-types.js';

type Planned = Plan & { remat: RematInfo };
type Feeds = { x: HostTensor; y: HostTensor };

const tiny: TransformerConfig = { blocks: 3, seq: 6, dModel: 8, heads: 2, dFF: 16, classes: 3 };
const STEPS = 4;

function wave(n: number, f: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * f) + 0.1 * Math.cos(i * f * 3.1));
}

function oneHot(rows: number, classes: number): Float32Array {
  return Float32Array.from({ length: rows * classes }, (_, i) => (i % classes === Math.floor(i / classes) % classes ? 1 : 0));
}

const transformerFeeds = (): Feeds => ({ x: tensor(wave(4 * tiny.seq * tiny.dModel, 0.37), [4, tiny.seq, tiny.dModel]), y: tensor(oneHot(4, tiny.classes), [4, tiny.classes]) });
const mlpFeeds = (): Feeds => ({ x: tensor(wave(8 * 12, 0.7), [8, 12]), y: tensor(oneHot(8, 3), [8, 3]) });

/**
 * An executable under `fixed + fraction × plain peak`, or under the smallest budget the planner
 * names when that one is infeasible.
 */
function underBudget(g: Graph, feeds: Feeds, fraction: number, remat: RematOptions = { solver: 'heuristic', timeLimitMs: 0 }, extra: CompileOptions = {}) {
  const shapes = { x: feeds.x.shape, y: feeds.y.shape };
  const base = (compile(g, { ...extra, optimizer: adam(1e-2), memoryBudget: 1e12, remat: { solver: 'heuristic', timeLimitMs: 50 } }).plan(shapes) as unknown as Planned).remat;
  let budget = Math.floor(base.fixedBytes + fraction * base.baselineBytes);
  for (let attempt = 0; ; attempt++) {
    const exe = compile(g, { ...extra, optimizer: adam(1e-2), seed: 5, memoryBudget: budget, remat });
    try {
      const plan = exe.plan(shapes) as unknown as Planned;
      return { exe, plan, budget, base };
    } catch (e) {
      if (!(e instanceof BudgetError) || attempt === 3) throw e;
      expect(e.minimumFeasible).toBeGreaterThan(budget);
      budget = e.minimumFeasible;
    }
  }
}

/** Trains both for STEPS steps: every loss bit-identical, the budget held, the same params at the end. */
function expectSameTraining(g: Graph, feeds: Feeds, fraction: number, remat?: RematOptions, extra: CompileOptions = {}) {
  const plain = compile(g, { ...extra, optimizer: adam(1e-2), seed: 5 });
  const tight = underBudget(g, feeds, fraction, remat, extra);
  expect(tight.plan.remat.peakBytes).toBeLessThan(tight.base.baselineBytes);
  const losses: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    const a = plain.runSync(feeds).loss!.data[0]!;
    const b = tight.exe.runSync(feeds).loss!.data[0]!;
    expect(Object.is(b, a)).toBe(true);
    expect(tight.exe.stats.measuredPeakBytes + tight.plan.remat.fixedBytes).toBeLessThanOrEqual(tight.budget);
    losses.push(a);
  }
  const va = plain.variables(), vb = tight.exe.variables();
  for (const k of Object.keys(va)) expect(Array.from(vb[k]!.data)).toEqual(Array.from(va[k]!.data));
  return { losses, plan: tight.plan };
}

/** Node ids of kernels the plan evaluates more than once. */
function recomputedNodes(plan: Planned): number[][] {
  const count = new Map<number, number>();
  const steps = planLaunches(plan);
  for (const s of steps) count.set(s.node, (count.get(s.node) ?? 0) + 1);
  return steps.filter((s, i) => count.get(s.node)! > 1 && steps.findIndex((t) => t.node === s.node) === i).map((s) => [s.node, ...s.fused]);
}

describe('rematerialization on training graphs', () => {
  it('a 3-block transformer trains bit-identically under a tight budget, within the budget', () => {
    const g = grad(transformerGraph(tiny), 'loss');
    const { losses, plan } = expectSameTraining(g, transformerFeeds(), 0.3);
    expect(recomputedNodes(plan).length).toBeGreaterThan(0);
    expect(losses[STEPS - 1]).toBeLessThan(losses[0]!);
  });

  it('a deep MLP trains bit-identically under a tight budget, within the budget', () => {
    const g = grad(mlpGraph([12, 16, 16, 16, 16, 16, 16, 3]), 'loss');
    expectSameTraining(g, mlpFeeds(), 0.3);
  });

  it("Chen's √n schedule trains bit-identically to no remat", () => {
    const g = grad(transformerGraph(tiny), 'loss');
    const { plan } = expectSameTraining(g, transformerFeeds(), 10, { schedule: 'chen' });
    expect(plan.remat.solver).toBe('chen-sqrt-n');
    expect(plan.remat.peakBytes).toBeLessThan(0.7 * plan.remat.baselineBytes);
  });

  it('recomputed dropout masks equal the first ones (counter-based random numbers from a fixed seed)', () => {
    const g = grad(transformerGraph({ ...tiny, dropout: 0.25, dropoutSeed: 11 }), 'loss');
    const feeds = transformerFeeds();
    // dropout is on: the losses differ from the same model without it
    const noDrop = compile(grad(transformerGraph(tiny), 'loss'), { optimizer: adam(1e-2), seed: 5 }).runSync(feeds).loss!.data[0];
    const withDrop = compile(g, { optimizer: adam(1e-2), seed: 5 }).runSync(feeds).loss!.data[0];
    expect(withDrop).not.toBe(noDrop);
    for (const remat of [undefined, { schedule: 'chen' } as RematOptions]) {
      // without rewrites: CSE would let the backward pass share the forward pass's mask, and
      // this test needs a mask drawn by a kernel the plan evaluates twice
      const { plan } = expectSameTraining(g, feeds, remat ? 10 : 0.3, remat, { rewrite: false });
      // some kernel that draws random numbers is evaluated twice
      const drawsTwice = recomputedNodes(plan).some((ids) => ids.some((id) => plan.graph.nodes[id]!.op === 'rand'));
      expect(drawsTwice).toBe(true);
    }
  });
});
