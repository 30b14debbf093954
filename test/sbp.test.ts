import { describe, expect, it } from 'vitest';
import { graph } from '../graphs/builder.js';
import { f32 } from '../graphs/types.js';
import { grad } from '../graphs/autodiff.js';
import { adam, applyOptimizer, sgd, type Optimizer } from '../graphs/optim.js';
import { dataParallel } from '../scheduler/parallel/sbp-data.js';
import { planSharded, collectiveCounts } from '../scheduler/parallel/sbp-lower.js';
import { split, broadcast, type NdSbp } from '../scheduler/parallel/sbp.js';
import { concreteShapes } from '../scheduler/specialize.js';
import { ancestors, type Graph } from '../graphs/graph.js';
import { transformerGraph } from '../examples/transformer-model.js';
import { runSharded } from '../runtime/sbp-runner.js';
import { concrete, maxRelErr, randomValues, runSingle } from './sbp-util.js';

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
    const { feeds, vars } = randomValues(g, 2);
    const ref = runSingle(g, feeds, vars);
    const got = runSharded(sp, feeds, vars);
    for (const [k, v] of ref.variables) expect(maxRelErr(got.variables.get(k)!, v), k).toBeLessThan(1e-4);
  });
});

describe('SBP Megatron transformer', () => {
  it('a tensor-parallel transformer training step: 2 all-reduces forward and 2 backward per layer, and equals the single-device step', () => {
    const blocks = 2;
    const cfg = { blocks, seq: 4, dModel: 8, heads: 4, dFF: 16, classes: 3 };
    const g = applyOptimizer(grad(transformerGraph(cfg), 'loss'), sgd(0.05));
    const shapes = concreteShapes(g, new Map([['batch', 2]]));
    const ann = new Map<string, NdSbp>();
    for (let i = 0; i < blocks; i++) {
      for (const w of ['wq', 'wk', 'wv', 'w1']) ann.set(`blk${i}/${w}`, [split(1)]);
      for (const w of ['wo', 'w2']) ann.set(`blk${i}/${w}`, [split(0)]);
    }
    const sp = planSharded(g, shapes, { shape: [2] }, ann);
    for (const dp of sp.devices) expect(collectiveCounts(dp.plan)).toEqual({ 'all-reduce': 4 * blocks });
    // forward: the all-reduces before the loss; the rest are in the backward pass
    const fwd = forwardCollectives(sp, g);
    expect(fwd).toBe(2 * blocks);
    const { feeds, vars } = randomValues(g, 3, shapes);
    const ref = runSingle(g, feeds, vars, shapes);
    const got = runSharded(sp, feeds, vars);
    expect(maxRelErr(got.outputs['loss']!, ref.outputs['loss']!)).toBeLessThan(1e-5);
    for (const [k, v] of ref.variables) expect(maxRelErr(got.variables.get(k)!, v), k).toBeLessThan(1e-4);
  });
});

/** Collectives in device 0's plan whose buffers the loss depends on. */
function forwardCollectives(sp: ReturnType<typeof planSharded>, g: Graph): number {
  const dg = sp.devices[0]!.graph;
  const fwd = new Set(ancestors(dg, [sp.localOf[g.outputs['loss']!]!]));
  return sp.devices[0]!.plan.steps.filter((s) => s.kind === 'collective' && fwd.has(s.buffer)).length;
}

describe('SBP data parallelism', () => {
  const train = (opt: Optimizer) => applyOptimizer(grad(mlp(8, 8, 16), 'loss'), opt);
  const params = ['w1', 'b1', 'w2', 'b2'];

  it('batch split: gradients all-reduced, the step equals the single-device step', () => {
    const g = train(adam(0.01));
    const mesh = { shape: [2] };
    const sp = planSharded(g, concrete(g), mesh, dataParallel(g, concrete(g), mesh, { axis: 0 }));
    const c = collectiveCounts(sp.devices[0]!.plan);
    expect(c['all-reduce']).toBeGreaterThanOrEqual(params.length);
    expect(c['reduce-scatter'] ?? 0).toBe(0);
    const { feeds, vars } = randomValues(g, 4);
    const ref = runSingle(g, feeds, vars), got = runSharded(sp, feeds, vars);
    for (const [k, v] of ref.variables) expect(maxRelErr(got.variables.get(k)!, v), k).toBeLessThan(1e-4);
  });

  it('ZeRO: optimizer state split, gradients reduce-scattered and params all-gathered; same step', () => {
    const g = train(adam(0.01));
    const mesh = { shape: [2] };
    const sp = planSharded(g, concrete(g), mesh, dataParallel(g, concrete(g), mesh, { axis: 0, zero: true }));
    const c = collectiveCounts(sp.devices[0]!.plan);
    expect(c['reduce-scatter']).toBe(params.length);
    expect(c['all-gather']).toBe(params.length);
    const { feeds, vars } = randomValues(g, 5);
    const ref = runSingle(g, feeds, vars), got = runSharded(sp, feeds, vars);
    for (const [k, v] of ref.variables) expect(maxRelErr(got.variables.get(k)!, v), k).toBeLessThan(1e-4);
    // each device holds half of every moment
    const m = sp.devices[0]!.graph.nodes.find((x) => x.name === 'opt/w1/m')!;
    expect(m.shape).toEqual([4, 16]);
  });

  it('ZeRO on a 2 × 2 mesh with Megatron weights: optimizer state is split only on dims its param is not split on; same step', () => {
    const g = train(adam(0.01));
    const mesh = { shape: [2, 2] };
    const base = new Map<string, NdSbp>([['w1', [broadcast, split(1)]], ['b1', [broadcast, split(0)]], ['w2', [broadcast, split(0)]]]);
    const ann = dataParallel(g, concrete(g), mesh, { axis: 0, zero: true, base });
    // b1 has one dim, split on the model axis: its moments stay whole on the data axis
    expect(ann.get('opt/b1/m')).toBeUndefined();
    expect(ann.get('opt/w1/m')).toEqual([split(0), broadcast]);
    const sp = planSharded(g, concrete(g), mesh, ann);
    const { feeds, vars } = randomValues(g, 7);
    const ref = runSingle(g, feeds, vars), got = runSharded(sp, feeds, vars);
    for (const [k, v] of ref.variables) expect(maxRelErr(got.variables.get(k)!, v), k).toBeLessThan(1e-4);
  });

  it('a 2 × 2 mesh: batch split on axis 0, Megatron MLP on axis 1; same step', () => {
    const g = train(sgd(0.1));
    const mesh = { shape: [2, 2] };
    const base = new Map<string, NdSbp>([['w1', [broadcast, split(1)]], ['w2', [broadcast, split(0)]]]);
    const sp = planSharded(g, concrete(g), mesh, dataParallel(g, concrete(g), mesh, { axis: 0, base }));
    const { feeds, vars } = randomValues(g, 6);
    const ref = runSingle(g, feeds, vars), got = runSharded(sp, feeds, vars);
    expect(maxRelErr(got.outputs['loss']!, ref.outputs['loss']!)).toBeLessThan(1e-5);
    for (const [k, v] of ref.variables) expect(maxRelErr(got.variables.get(k)!, v), k).toBeLessThan(1e-4);
  });
});
