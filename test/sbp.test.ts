import { describe, expect, it } from 'vitest';
import { graph } from '../graphs/builder.js';
import { f32 } from '../graphs/types.js';
import { grad } from '../graphs/autodiff.js';
import { applyOptimizer, sgd } from '../graphs/optim.js';
import { planSharded, collectiveCounts } from '../scheduler/parallel/sbp-lower.js';
import { split, broadcast } from '../scheduler/parallel/sbp.js';
import { runSharded } from '../runtime/sbp-runner.js';
import { maxRelErr, randomValues, runSingle } from './sbp-util.js';

const shapesOf = (g: { nodes: readonly { shape: readonly (number | string)[] }[] }) => g.nodes.map((n) => n.shape.map(Number));

function mlp(B: number, D: number, F: number) {
  return graph('mlp', (g) => {
    const x = g.input('x', f32(B, D));
    const y = g.input('y', f32(B, D));
    const h = g.relu(g.add(g.matmul(x, g.param('w1', f32(D, F))), g.param('b1', f32(F))));
    const out = g.add(g.matmul(h, g.param('w2', f32(F, D))), g.param('b2', f32(D)));
    return { out, loss: g.mean(g.square(g.sub(out, y))) };
  });
}

describe('SBP tensor parallelism', () => {
  it('Megatron MLP: W1 split on columns, W2 on rows gives one all-reduce forward', () => {
    const g = mlp(4, 8, 16);
    const sp = planSharded(g, shapesOf(g), { shape: [2] }, new Map([['w1', [split(1)]], ['w2', [split(0)]]]));
    expect(collectiveCounts(sp.devices[0]!.plan)).toEqual({ 'all-reduce': 1 });
    const { feeds, vars } = randomValues(g, 1);
    const ref = runSingle(g, feeds, vars);
    const got = runSharded(sp, feeds, vars);
    expect(maxRelErr(got.outputs['out']!, ref.outputs['out']!)).toBeLessThan(1e-5);
  });

  it('Megatron MLP training step equals the single-device step', () => {
    const g = applyOptimizer(grad(mlp(4, 8, 16), 'loss'), sgd(0.1));
    const sp = planSharded(g, shapesOf(g), { shape: [2] }, new Map([['w1', [split(1)]], ['w2', [split(0)]], ['x', [broadcast]]]));
    console.log(collectiveCounts(sp.devices[0]!.plan));
    const { feeds, vars } = randomValues(g, 2);
    const ref = runSingle(g, feeds, vars);
    const got = runSharded(sp, feeds, vars);
    for (const [k, v] of ref.variables) expect(maxRelErr(got.variables.get(k)!, v), k).toBeLessThan(1e-4);
  });
});
