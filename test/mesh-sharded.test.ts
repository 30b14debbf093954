// Sharded training steps on a mesh of 2 worker devices (each the single-threaded wasm device):
// on random small MLPs, tensor-parallel steps (random weight shardings) and data-parallel steps
// (batch split, with and without ZeRO's sharded optimizer state), and both at once on a 2 × 2
// mesh, run 3 times in a row, params updated in place on the workers, and equal the
// single-device steps within float32 tolerance.
// Also: what a sharded program refuses (a plan for another mesh or another device kind).
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Graph } from '../graphs/graph.js';
import { planSharded } from '../scheduler/parallel/sbp-lower.js';
import { dataParallel } from '../scheduler/parallel/sbp-data.js';
import { broadcast, split, type NdSbp, type Sbp } from '../scheduler/parallel/sbp.js';
import { Mesh, MeshError, ShardedProgram } from '../runtime/mesh/index.js';
import { timeKernels } from '../runtime/mesh/calibrate.js';
import { kernelSignature } from '../ops/kernel-ir.js';
import { concrete, expectSameSteps as sameSteps, randomValues, trainMlp } from './sbp-util.js';

const TOL = 1e-3;
const STEPS = 3;

const mesh = new Mesh([2], { axes: ['x'] });
afterAll(() => mesh.close());

const arbMlp = fc.record({
  batch: fc.constantFrom(4, 8),
  widths: fc.array(fc.constantFrom(4, 8, 16), { minLength: 2, maxLength: 4 }),
  opt: fc.constantFrom('sgd', 'adam'),
  seed: fc.integer({ min: 1, max: 1e6 }),
});

const train = trainMlp;

/** `STEPS` steps on the mesh and on one device, new inputs each step: same outputs, same variables after. */
const expectSameSteps = (g: Graph, annotations: Map<string, NdSbp>, seed: number, on: Mesh = mesh): Promise<void> => sameSteps(on, g, annotations, seed, STEPS, TOL);

describe('sharded training steps on a 2-worker mesh equal single-device steps', () => {
  it('tensor parallel: random MLPs with random weight shardings', async () => {
    const arb = arbMlp.chain((c) => {
      const g = train(c);
      const params = g.nodes.filter((n) => n.op === 'param');
      return fc.array(fc.integer({ min: -1, max: 1 }), { minLength: params.length, maxLength: params.length }).map((picks) => ({
        ...c,
        g,
        ann: new Map<string, NdSbp>(params.map((n, i): [string, NdSbp] => {
          const k = picks[i]!;
          const s: Sbp = k < 0 || k >= n.shape.length ? broadcast : split(k);
          return [n.name!, [s]];
        })),
      }));
    });
    await fc.assert(fc.asyncProperty(arb, ({ g, ann, seed }) => expectSameSteps(g, ann, seed)), { numRuns: 6 });
  }, 600_000);

  it('data parallel: the batch split, gradients all-reduced, with and without ZeRO', async () => {
    const arb = fc.record({ c: arbMlp, zero: fc.boolean() });
    await fc.assert(fc.asyncProperty(arb, async ({ c, zero }) => {
      const g = train(c);
      const shapes = concrete(g);
      await expectSameSteps(g, dataParallel(g, shapes, { shape: [2] }, { axis: 0, zero }), c.seed);
    }), { numRuns: 6 });
  }, 600_000);

  it('data parallelism composed with tensor parallelism on a 2 × 2 mesh: the batch split on one axis (with and without ZeRO), Megatron weights on the other', async () => {
    const grid = new Mesh([2, 2], { axes: ['data', 'model'] });
    try {
      const arb = fc.record({ c: arbMlp.filter((c) => c.widths.length >= 3), zero: fc.boolean() });
      await fc.assert(fc.asyncProperty(arb, async ({ c, zero }) => {
        const g = train(c);
        const shapes = concrete(g);
        const base = new Map<string, NdSbp>([['w0', [broadcast, split(1)]], ['b0', [broadcast, split(0)]], ['w1', [broadcast, split(0)]]]);
        await expectSameSteps(g, dataParallel(g, shapes, { shape: [2, 2] }, { axis: 0, zero, base }), c.seed, grid);
      }), { numRuns: 4 });
    } finally {
      await grid.close();
    }
  }, 600_000);

  it('a Megatron MLP (W1 by columns, W2 by rows) trained with Adam', async () => {
    const g = train({ batch: 8, widths: [8, 16, 8], opt: 'adam' });
    await expectSameSteps(g, new Map<string, NdSbp>([['w0', [split(1)]], ['w1', [split(0)]]]), 11);
  }, 600_000);
});

describe('kernels timed one by one on the mesh (for the simulator)', () => {
  it('every distinct kernel of every device plan gets a time, on a data-parallel and a tensor-parallel step', async () => {
    for (const ann of [(g: Graph) => dataParallel(g, concrete(g), { shape: [2] }, { axis: 0, zero: true }), () => new Map<string, NdSbp>([['w0', [split(1)]], ['w1', [split(0)]]])]) {
      const g = train({ batch: 8, widths: [8, 16, 8], opt: 'adam' });
      const plans = planSharded(g, concrete(g), { shape: [2] }, ann(g), { caps: mesh.caps }).devices.map((d) => d.plan);
      const times = await timeKernels(mesh, plans, { repeat: 2, runs: 1 });
      const want = new Set(plans.flatMap((p) => p.steps.flatMap((s) => (s.kind === 'launch' ? [kernelSignature(s.kernel)] : []))));
      expect(new Set(times.keys())).toEqual(want);
      for (const t of times.values()) expect(Number.isFinite(t) && t >= 0).toBe(true);
    }
    await expect(timeKernels(mesh, [])).rejects.toThrow(MeshError);
  }, 300_000);
});

describe('a sharded program refuses', () => {
  it('(the mesh devices are single-threaded wasm devices, and plans are made for their caps)', async () => {
    for (const d of await mesh.ready()) expect(d).toMatch(/^wasm \(1 thread/);
    expect(mesh.caps.kind).toBe('wasm');
  }, 60_000);

  it('plans for another mesh shape or another device kind, missing inputs, and steps once dropped, with a MeshError', async () => {
    const g = train({ batch: 4, widths: [4, 8], opt: 'sgd' });
    const shapes = concrete(g);
    const { vars, feeds } = randomValues(g, 1, shapes);
    const other = planSharded(g, shapes, { shape: [4] }, new Map(), { caps: mesh.caps });
    await expect(ShardedProgram.load(mesh, other, vars)).rejects.toThrow(/mesh of shape \[4\] loaded on a mesh of shape \[2\]/);
    const js = planSharded(g, shapes, { shape: [2] }, new Map(), { caps: { ...mesh.caps, kind: 'webgpu' } });
    await expect(ShardedProgram.load(mesh, js, vars)).rejects.toThrow(MeshError);
    const ok = await ShardedProgram.load(mesh, planSharded(g, shapes, { shape: [2] }, new Map(), { caps: mesh.caps }), vars);
    await expect(ok.step(new Map())).rejects.toThrow(/no value for input 'x'/);
    expect(Object.keys(await ok.step(feeds))).toContain('loss');
    await ok.drop();
    await expect(ok.step(feeds)).rejects.toThrow(/has no program \d+ loaded/);
  }, 120_000);
});
