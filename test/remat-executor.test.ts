import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { adam, compile, grad, type HostTensor } from '../index.js';
import { BudgetError } from '../scheduler/remat/plan-types.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { tensor } from '../runtime/tensor.js';
import { arbGraph } from './arbitraries.js';

const seed = process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {};
type RematView = { remat: { peakBytes: number; fixedBytes: number; baselineBytes: number } };

function same(a: Record<string, HostTensor>, b: Record<string, HostTensor>): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) expect(Array.from(a[k]!.data)).toEqual(Array.from(b[k]!.data));
}

describe('rematerialization in the executor', () => {
  it('a remat plan never exceeds its budget, its measured peak equals the planned one, and its outputs are bit-identical', () => {
    fc.assert(
      fc.property(arbGraph({ maxOps: 10, params: true }), fc.double({ min: 0.2, max: 1.1, noNaN: true }), ({ graph: g, feeds, variables }, frac) => {
        const shapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.shape]));
        const probe = compile(g, { memoryBudget: 1e12, remat: { solver: 'heuristic' } });
        const base = (probe.plan(shapes) as unknown as RematView).remat;
        const budget = Math.floor(base.fixedBytes + frac * base.baselineBytes);
        const plain = compile(g);
        plain.setVariables(variables);
        let exe;
        try {
          exe = compile(g, { memoryBudget: budget, remat: { solver: 'heuristic' } });
          exe.plan(shapes);
        } catch (e) {
          expect(e).toBeInstanceOf(BudgetError);
          const err = e as BudgetError;
          expect(err.minimumFeasible).toBeGreaterThan(budget);
          expect(err.message).toContain(`${err.minimumFeasible} bytes`);
          // the budget it names is one the planner meets
          const ok = compile(g, { memoryBudget: err.minimumFeasible, remat: { solver: 'heuristic' } });
          ok.setVariables(variables);
          same(ok.runSync(feeds), plain.runSync(feeds));
          return;
        }
        exe.setVariables(variables);
        const plan = exe.plan(shapes) as unknown as RematView;
        expect(plan.remat.peakBytes + plan.remat.fixedBytes).toBeLessThanOrEqual(budget);
        same(exe.runSync(feeds), plain.runSync(feeds));
        expect(exe.stats.measuredPeakBytes).toBe(plan.remat.peakBytes);
      }),
      { numRuns: 100, ...seed },
    );
  });

  it('training under a budget gives the same parameters as without one, step after step', () => {
    const g = grad(mlpGraph([12, 16, 16, 16, 16, 3]), 'loss');
    const x = tensor(Float32Array.from({ length: 8 * 12 }, (_, i) => Math.sin(i * 0.7)), [8, 12]);
    const y = tensor(Float32Array.from({ length: 8 * 3 }, (_, i) => (i % 3 === (i / 3) % 3 ? 1 : 0)), [8, 3]);
    const plain = compile(g, { optimizer: adam(1e-2), seed: 3 });
    const shapes = { x: x.shape, y: y.shape };
    const base = (compile(g, { optimizer: adam(1e-2), memoryBudget: 1e12 }).plan(shapes) as unknown as RematView).remat;
    let budget = Math.floor(base.fixedBytes + 0.6 * base.baselineBytes);
    try {
      compile(g, { optimizer: adam(1e-2), memoryBudget: budget, remat: { solver: 'heuristic' } }).plan(shapes);
    } catch (e) {
      budget = (e as BudgetError).minimumFeasible;
    }
    expect(budget).toBeLessThan(base.fixedBytes + base.baselineBytes);
    const tight = compile(g, { optimizer: adam(1e-2), seed: 3, memoryBudget: budget, remat: { solver: 'heuristic' } });
    const plan = tight.plan(shapes) as unknown as RematView & { steps: unknown[] };
    expect(plan.remat.peakBytes).toBeLessThan(base.baselineBytes);
    for (let i = 0; i < 20; i++) {
      const a = plain.runSync({ x, y }).loss!.data[0];
      const b = tight.runSync({ x, y }).loss!.data[0];
      expect(b).toBe(a);
      expect(tight.stats.measuredPeakBytes + plan.remat.fixedBytes).toBeLessThanOrEqual(budget);
    }
    same(tight.variables(), plain.variables());
  });

  it('an impossible budget is a BudgetError that states the smallest feasible budget', () => {
    const g = grad(mlpGraph([12, 16, 3]), 'loss');
    expect(() => compile(g, { optimizer: adam(), memoryBudget: '1 KB' }).plan({ x: [8, 12], y: [8, 3] })).toThrowError(
      /memory budget 1000 bytes is infeasible: the smallest budget the planner meets on this graph is \d+ bytes/,
    );
  });
});
