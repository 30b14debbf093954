// The laws that hold on the CPU hold on WebGPU through the one plan interpreter: plans under a
// memory budget (device-buffer peak measured = planned <= budget, outputs bit-identical to the
// plan without a budget), every plan's measured peak equals its planned one, reactive runs equal
// a full run (to float32 rounding: a partial run reads its cached frontier from a buffer where
// the full run fused it, and the GPU's shader compiler may contract a*b+c into one fused
// multiply-add in one kernel and not in the other, so the last bit can differ), and a training run that fails mid-way and resumes from its checkpoint ends
// bit-identical to an unbroken run. Without an adapter the suite skips, except under CI.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Subject, firstValueFrom, skip } from 'rxjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FeedError, compileAsync, reactive, tensor, type HostTensor, type Outputs } from '../index.js';
import { BudgetError } from '../scheduler/remat/plan-types.js';
import { listCheckpoints, predictWith, train, type Batch as TrainBatch, type Prediction, type Snapshot } from '../runtime/train/index.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';
import { arbGraph } from './arbitraries.js';
import { SIZES, batchSource, makeStep, prepare, trainToEnd } from './fixtures/online-trainer.js';

const gpu = await sharedWebGpuBackend();
if (!gpu) console.warn(`WebGPU plan tests skipped: no adapter (${WebGpuBackend.unavailableReason})`);
const seed = process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {};

const bits = (o: Record<string, HostTensor>) =>
  Object.fromEntries(Object.entries(o).map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex')]));

/** Equal but for float32 rounding: within 1e-5 of the output's largest magnitude (at least 1). */
function expectRounding(name: string, got: HostTensor, want: HostTensor): void {
  expect(got.shape, name).toEqual(want.shape);
  const scale = Math.max(1, ...Array.from(want.data, (x) => Math.abs(Number(x))).filter(Number.isFinite));
  got.data.forEach((x, i) => {
    const w = Number(want.data[i]);
    if (Number.isNaN(w) || !Number.isFinite(w)) expect(Number(x), `${name}[${i}]`).toBe(w);
    else expect(Math.abs(Number(x) - w), `${name}[${i}]: ${x} against ${w}`).toBeLessThanOrEqual(1e-5 * scale);
  });
}

function same(a: Outputs, b: Outputs): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  expect(bits(a)).toEqual(bits(b));
}

describe('plans on WebGPU', () => {
  it('has an adapter when CI is set (skips elsewhere)', () => {
    if (!gpu && process.env['CI']) expect.fail(`CI is set but no WebGPU adapter was found: ${WebGpuBackend.unavailableReason}`);
  });

  describe.skipIf(!gpu && !process.env['CI'])('through the one plan interpreter', () => {
    it('under a random feasible budget the measured device-buffer peak equals the planned one, within the budget, and outputs are bit-identical', async () => {
      await fc.assert(
        fc.asyncProperty(arbGraph({ maxOps: 8, params: true }), fc.double({ min: 0.2, max: 1.1, noNaN: true }), async ({ graph: g, feeds, variables }, frac) => {
          const shapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.shape]));
          const plain = await compileAsync(g, { backend: 'webgpu' });
          plain.setVariables(variables);
          const want = await plain.run(feeds);
          const plainPlan = plain.plan(shapes);
          expect(plain.stats.measuredPeakBytes).toBe(plainPlan.peakBytes);
          const probe = await compileAsync(g, { backend: 'webgpu', memoryBudget: 1e12, remat: { solver: 'heuristic' } });
          const base = probe.plan(shapes).remat!;
          let budget = Math.floor(base.fixedBytes + frac * base.baselineBytes);
          let exe = await compileAsync(g, { backend: 'webgpu', memoryBudget: budget, remat: { solver: 'heuristic' } });
          try {
            exe.plan(shapes);
          } catch (e) {
            if (!(e instanceof BudgetError)) throw e;
            // the smallest budget it names is met
            budget = e.minimumFeasible;
            exe = await compileAsync(g, { backend: 'webgpu', memoryBudget: budget, remat: { solver: 'heuristic' } });
          }
          exe.setVariables(variables);
          const plan = exe.plan(shapes);
          expect(plan.remat!.inPlace.size).toBe(0); // WebGPU cannot write a buffer it reads
          expect(plan.remat!.peakBytes + plan.remat!.fixedBytes).toBeLessThanOrEqual(budget);
          same(await exe.run(feeds), want);
          expect(exe.stats.measuredPeakBytes).toBe(plan.remat!.peakBytes);
        }),
        { numRuns: 100, ...seed },
      );
    }, 600_000);

    it('after one emission a reactive run equals a full run', async () => {
      await fc.assert(
        fc.asyncProperty(arbGraph({ maxOps: 8 }).filter((r) => Object.keys(r.feeds).length >= 2), fc.nat(), async ({ graph: g, feeds }, k) => {
          const exe = await compileAsync(g, { backend: 'webgpu' });
          const names = Object.keys(feeds);
          const subjects = Object.fromEntries(names.map((n) => [n, new Subject<HostTensor>()]));
          const run = reactive(exe, subjects);
          const second = firstValueFrom(run.results$.pipe(skip(1)));
          for (const n of names) subjects[n]!.next(feeds[n]!);
          const name = names[k % names.length]!;
          const changed = { ...feeds, [name]: scaled(feeds[name]!) };
          subjects[name]!.next(changed[name]!);
          const r = await second;
          expect(r.changed).toEqual([name]);
          const full = await exe.run(changed);
          for (const [o, v] of Object.entries(r.outputs)) expectRounding(o, v, full[o]!);
        }),
        { numRuns: 100, ...seed },
      );
    }, 600_000);

    it('a training run that fails at a random step and resumes from its checkpoint ends bit-identical to an unbroken run', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.record({ seed: fc.nat(10_000), batch: fc.integer({ min: 1, max: 4 }), batches: fc.integer({ min: 6, max: 14 }), every: fc.integer({ min: 2, max: 5 }), crash: fc.double({ min: 0, max: 0.999, noNaN: true }) }),
          async (c) => {
            const spec = { seed: c.seed, batch: c.batch, batches: c.batches };
            const opts = { seed: c.seed, prepare };
            const reference = makeStep(c.seed, 'webgpu');
            expect(await trainToEnd(reference, batchSource(spec, 'seek'), opts)).toBe(c.batches);
            const dir = mkdtempSync(join(tmpdir(), 'rheo-gpu-train-'));
            try {
              const checkpoint = { dir, every: c.every };
              const poisonAt = Math.floor(c.crash * c.batches);
              await expect(trainToEnd(makeStep(c.seed, 'webgpu'), batchSource(spec, 'seek', { poisonAt }), { ...opts, checkpoint })).rejects.toThrow(FeedError);
              expect(listCheckpoints(dir)[0]?.step ?? 0).toBe(Math.floor(poisonAt / c.every) * c.every);
              const resumed = makeStep(c.seed, 'webgpu');
              expect(await trainToEnd(resumed, batchSource(spec, 'seek'), { ...opts, checkpoint })).toBe(c.batches);
              expect(bits(await resumed.readVariables())).toEqual(bits(await reference.readVariables()));
            } finally {
              rmSync(dir, { recursive: true, force: true });
            }
          },
        ),
        { numRuns: 20, ...seed },
      );
    }, 600_000);

    it('live predictions on WebGPU use one snapshot each, and equal a WebGPU run on that snapshot', async () => {
      const spec = { seed: 8, batch: 3, batches: 20 };
      const exe = makeStep(8, 'webgpu');
      const run = train(exe, batchSource(spec, 'seek'), { snapshots: { every: 5 } });
      const snaps = new Map<number, Snapshot>();
      run.snapshots$.subscribe((s) => snaps.set(s.version, s));
      const queries = new Subject<TrainBatch>();
      const inference = await compileAsync(mlpGraph(SIZES), { outputs: ['logits'], backend: 'webgpu' });
      const preds: Prediction<TrainBatch>[] = [];
      const predicted = new Promise<void>((done) => predictWith(inference, queries, run.snapshots$, { outputs: ['logits'] }).subscribe({ next: (p) => preds.push(p), complete: done }));
      const query = { x: tensor(Float32Array.from({ length: 8 }, (_, i) => Math.sin(i)), [2, 4]) };
      await new Promise<void>((done) => run.subscribe({ next: (e) => e.step % 3 === 0 && queries.next(query), complete: done }));
      queries.complete();
      await predicted;
      expect(snaps.size).toBe(5); // the start, then every 5 steps
      expect(preds.length).toBeGreaterThan(3);
      for (let i = 1; i < preds.length; i++) expect(preds[i]!.version).toBeGreaterThanOrEqual(preds[i - 1]!.version);
      const check = await compileAsync(mlpGraph(SIZES), { outputs: ['logits'], backend: 'webgpu' });
      for (const p of preds) {
        const snap = snaps.get(p.version)!;
        expect(p.step).toBe(snap.step);
        check.setVariables(snap.variables);
        expect(bits(p.outputs)).toEqual(bits(await check.run(query, ['logits'], { update: false })));
      }
      expect(bits(snaps.get(4)!.variables)).toEqual(bits(Object.fromEntries(Object.entries(await exe.readVariables()).filter(([k]) => k.startsWith('param:')))));
    });

    it('the same training on the CPU and on WebGPU each measure the peak their plan states', async () => {
      for (const backend of ['cpu', 'reference', 'webgpu'] as const) {
        const exe = makeStep(1, backend);
        await exe.ready();
        const feeds = { x: new Float32Array(4 * 4).fill(0.5), y: new Float32Array(4 * 3).fill(1 / 3) };
        await exe.run(feeds);
        expect(exe.stats.measuredPeakBytes, backend).toBe(exe.plan({ x: [4, 4], y: [4, 3] }).peakBytes);
        expect(exe.device.memory.peakBytes, backend).toBeGreaterThan(0);
      }
    });
  });
});

function scaled(t: HostTensor): HostTensor {
  if (t.dtype !== 'f32') return t;
  return { ...t, data: Float32Array.from(t.data, (v, i) => v * 0.75 + (i % 3) * 0.1) };
}
