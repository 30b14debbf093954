import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { grad } from '../graphs/autodiff.js';
import { adam, applyOptimizer, sgd } from '../graphs/optim.js';
import type { Graph } from '../graphs/graph.js';
import { planSharded } from '../scheduler/parallel/sbp-lower.js';
import { dataParallel } from '../scheduler/parallel/sbp-data.js';
import { broadcast, split, type NdSbp, type Sbp } from '../scheduler/parallel/sbp.js';
import { concreteShapes } from '../scheduler/specialize.js';
import { runSharded } from '../runtime/sbp-runner.js';
import { transformerGraph } from '../examples/transformer-model.js';
import { fcParams } from './arbitraries.js';
import { concrete, maxRelErr, mlp, randomValues, runSingle } from './sbp-util.js';

const TOL = 2e-4;

/** A random annotation for each param: broadcast or split on one of its dims. */
const arbLayouts = (g: Graph) => fc.array(fc.integer({ min: -1, max: 1 }), { minLength: g.nodes.length, maxLength: g.nodes.length })
  .map((picks) => new Map<string, NdSbp>(g.nodes.filter((n) => n.op === 'param').map((n): [string, NdSbp] => {
    const k = picks[n.id]!;
    const s: Sbp = k < 0 || k >= n.shape.length ? broadcast : split(k);
    return [n.name!, [s]];
  })));

function expectSameStep(g: Graph, shapes: number[][], sp: ReturnType<typeof planSharded>, seed: number): void {
  const { feeds, vars } = randomValues(g, seed, shapes);
  const ref = runSingle(g, feeds, vars, shapes), got = runSharded(sp, feeds, vars);
  for (const [k, v] of Object.entries(ref.outputs)) expect(maxRelErr(got.outputs[k]!, v), k).toBeLessThan(TOL);
  for (const [k, v] of ref.variables) expect(maxRelErr(got.variables.get(k)!, v), k).toBeLessThan(TOL);
}

describe('SBP steps equal single-device steps', () => {
  it('tensor parallel: random MLPs, random weight shardings on 2 or 4 devices (forward outputs, gradients, updated params)', () => {
    const arb = fc.record({
      n: fc.constantFrom(2, 4),
      widths: fc.array(fc.constantFrom(4, 8), { minLength: 2, maxLength: 4 }),
      seed: fc.integer({ min: 1, max: 1e6 }),
    }).chain((c) => {
      const g = applyOptimizer(grad(mlp(4, c.widths), 'loss'), sgd(0.1));
      return arbLayouts(g).map((ann) => ({ ...c, g, ann }));
    });
    fc.assert(fc.property(arb, ({ n, g, ann, seed }) => {
      expectSameStep(g, concrete(g), planSharded(g, concrete(g), { shape: [n] }, ann), seed);
    }), fcParams(15));
  });

  it('tensor parallel: a transformer block with random weight shardings', () => {
    const g = applyOptimizer(grad(transformerGraph({ blocks: 1, seq: 4, dModel: 8, heads: 2, dFF: 8, classes: 2 }), 'loss'), sgd(0.05));
    const shapes = concreteShapes(g, new Map([['batch', 2]]));
    fc.assert(fc.property(arbLayouts(g), fc.integer({ min: 1, max: 1e6 }), (ann, seed) => {
      expectSameStep(g, shapes, planSharded(g, shapes, { shape: [2] }, ann), seed);
    }), fcParams(6));
  });

  it('data parallel: random MLPs, batch split on 2 or 4 devices, with and without ZeRO', () => {
    const arb = fc.record({
      n: fc.constantFrom(2, 4),
      widths: fc.array(fc.constantFrom(4, 8), { minLength: 2, maxLength: 3 }),
      zero: fc.boolean(),
      seed: fc.integer({ min: 1, max: 1e6 }),
    });
    fc.assert(fc.property(arb, ({ n, widths, zero, seed }) => {
      const g = applyOptimizer(grad(mlp(8, widths), 'loss'), adam(0.01));
      const mesh = { shape: [n] };
      expectSameStep(g, concrete(g), planSharded(g, concrete(g), mesh, dataParallel(g, concrete(g), mesh, { axis: 0, zero })), seed);
    }), fcParams(12));
  });
});
