// Pipeline parallelism on the worker mesh: a step whose stages run on worker threads in a
// schedule's order (activations and gradients as send/recv steps) equals the single-device step on
// the same global batch, for every schedule, with tensors that skip stages (on a channel that
// arrives in another order than it is read, messages are set aside until read); 1F1B keeps at most p micro-batches of activations per
// stage as the workers' allocators count them; a per-device memory budget rematerializes the
// passes, is met as measured and leaves the results unchanged, and an impossible one names the
// smallest feasible budget; a 2 (pipeline) × 2 (tensor) mesh trains a transformer as one device
// does; a worker that dies ends the step with a MeshError naming it; a device computing passes back
// to back still hands each send on before its next pass.

import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { fcParams } from './arbitraries.js';
import { graph } from '../graphs/builder.js';
import type { Graph } from '../graphs/graph.js';
import type { Tensor } from '../graphs/types.js';
import { sgd } from '../graphs/optim.js';
import { grad } from '../graphs/autodiff.js';
import { compile } from '../runtime/executor.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';
import { Mesh, MeshError } from '../runtime/mesh/index.js';
import { MeshPipeline } from '../runtime/mesh/pipeline.js';
import { PipelineDevice } from '../runtime/mesh/pipeline-device.js';
import type { Communicator } from '../runtime/mesh/communicator.js';
import { HostDevice } from '../runtime/device.js';
import { partitionPipeline } from '../scheduler/parallel/pipeline-partition.js';
import { planMeshPipeline } from '../scheduler/parallel/pipeline-mesh.js';
import { gpipe, interleaved1F1B, oneFOneB, zbH1, type PipelineSchedule } from '../scheduler/parallel/pipeline-schedule.js';
import { BudgetError } from '../scheduler/remat/plan-types.js';
import { split, type NdSbp } from '../scheduler/parallel/sbp.js';
import { transformerGraph } from '../examples/transformer-model.js';

const meshes = new Map<string, Mesh>();
/** One mesh per shape for the whole file (starting workers costs seconds). */
const meshOf = (shape: number[]): Mesh => {
  const key = shape.join('x');
  let m = meshes.get(key);
  if (!m) meshes.set(key, (m = new Mesh(shape, { stepDeadlineMs: 120_000, deadlineMs: 60_000 })));
  return m;
};
afterAll(() => Promise.all([...meshes.values()].map((m) => m.close())));

/** An MLP; with `skip`, the first hidden layer is added to the last one of the same width (a tensor that may cross several stages). */
function mlp(batch: number, widths: readonly number[], act: 'tanh' | 'relu', skip = false): Graph {
  return graph('mlp', (b) => {
    const x = b.input('x', { dtype: 'f32', shape: [batch, widths[0]!] });
    const y = b.input('y', { dtype: 'f32', shape: [batch, widths.at(-1)!] });
    let h: Tensor = x;
    let first: Tensor | undefined;
    for (let i = 1; i < widths.length; i++) {
      const w = b.param(`w${i}`, { dtype: 'f32', shape: [widths[i - 1]!, widths[i]!] }, b.init.glorot());
      const bias = b.param(`b${i}`, { dtype: 'f32', shape: [widths[i]!] }, b.init.uniform(-0.1, 0.1));
      h = b.add(b.matmul(h, w), bias);
      if (i < widths.length - 1) h = act === 'tanh' ? b.tanh(h) : b.relu(h);
      if (i === 1) first = h;
      else if (skip && i === widths.length - 2 && first!.shape[1] === h.shape[1]) h = b.add(h, first!);
    }
    const d = b.sub(h, y);
    return { loss: b.mean(b.mul(d, d)) };
  });
}

const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7919 + i * 12.9898) * 0.9);

/** The single-device step on the whole batch, and the micro-batches of the same data. */
function reference(widths: readonly number[], act: 'tanh' | 'relu', m: number, micro: number, seed: number, skip = false) {
  const batch = m * micro;
  const whole = compile(grad(mlp(batch, widths, act, skip), 'loss'), { optimizer: sgd(0.1), seed });
  const params = Object.fromEntries(Object.entries(whole.variables()).filter(([k]) => k.startsWith('param:')).map(([k, v]) => [k.slice(6), v.data]));
  const [i0, o0] = [widths[0]!, widths.at(-1)!];
  const x = rand(batch * i0, seed), y = rand(batch * o0, seed + 1);
  const loss = whole.runSync({ x: { dtype: 'f32', shape: [batch, i0], data: x }, y: { dtype: 'f32', shape: [batch, o0], data: y } })['loss']!.data[0]!;
  const after = Object.fromEntries(Object.entries(whole.variables()).filter(([k]) => k.startsWith('param:')).map(([k, v]) => [k.slice(6), v.data]));
  const micros = Array.from({ length: m }, (_, i) => ({
    x: x.slice(i * micro * i0, (i + 1) * micro * i0) as CpuArray,
    y: y.slice(i * micro * o0, (i + 1) * micro * o0) as CpuArray,
  }));
  return { params, loss, after, micros };
}

function expectClose(got: Readonly<Record<string, CpuArray>>, want: Readonly<Record<string, CpuArray>>): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const [k, v] of Object.entries(want)) {
    const g = got[k]!;
    for (let i = 0; i < v.length; i++) expect(Math.abs(g[i]! - v[i]!), `${k}[${i}]`).toBeLessThan(1e-4 * (1 + Math.abs(v[i]!)));
  }
}

const schedules = (p: number, m: number): PipelineSchedule[] => [gpipe(p, m), oneFOneB(p, m), zbH1(p, m), ...(m % p === 0 ? [interleaved1F1B(p, m, 2)] : [])];

describe('pipeline parallelism on the worker mesh', () => {
  it('a step with accumulation equals the single-device step on the same global batch, for every schedule', async () => {
    const arb = fc.record({
      widths: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 4, maxLength: 6 }),
      act: fc.constantFrom('tanh' as const, 'relu' as const),
      skip: fc.boolean(),
      p: fc.integer({ min: 2, max: 3 }),
      m: fc.integer({ min: 1, max: 4 }),
      micro: fc.integer({ min: 1, max: 3 }),
      seed: fc.integer({ min: 1, max: 1000 }),
    });
    await fc.assert(fc.asyncProperty(arb, async ({ widths, act, skip, p, m, micro, seed }) => {
      const mesh = meshOf([p]);
      const ref = reference(widths, act, m, micro, seed, skip);
      for (const s of schedules(p, m)) {
        // skipped tensors may cross to a later stage of the same device (interleaved): kept there, not sent
        const program = partitionPipeline(mlp(micro, widths, act, skip), { stages: s.stages, bandwidth: Infinity });
        const pipe = await MeshPipeline.load(mesh, planMeshPipeline(program, s, { optimizer: sgd(0.1), caps: mesh.caps }), ref.params);
        try {
          const step = await pipe.step(ref.micros);
          expect(Math.abs(step.loss - ref.loss), s.kind).toBeLessThan(1e-5 * (1 + Math.abs(ref.loss)));
          expectClose(await pipe.params(), ref.after);
        } finally {
          await pipe.drop();
        }
      }
    }), fcParams(6));
  }, 600_000);

  it('interleaved stages whose skip connections make a channel arrive in another order than it is read set messages aside, and equal the single-device step', async () => {
    // stages 0..3 on devices 0, 1, 0, 1: device 1 reads a skipped tensor of micro-batch 0 before
    // the activation sent ahead of it on the same channel
    const widths = [1, 2, 3, 1, 2, 1], m = 2, micro = 1, seed = 1;
    const mesh = meshOf([2]);
    const ref = reference(widths, 'tanh', m, micro, seed, true);
    const s = interleaved1F1B(2, m, 2);
    const plan = planMeshPipeline(partitionPipeline(mlp(micro, widths, 'tanh', true), { stages: s.stages, bandwidth: Infinity }), s, { optimizer: sgd(0.1), caps: mesh.caps });
    expect(plan.devices.some((d) => d.arrivals !== undefined), 'some channel arrives out of read order').toBe(true);
    const pipe = await MeshPipeline.load(mesh, plan, ref.params);
    try {
      for (let i = 0; i < 2; i++) {
        const step = await pipe.step(ref.micros);
        if (i === 0) expect(Math.abs(step.loss - ref.loss)).toBeLessThan(1e-5 * (1 + Math.abs(ref.loss)));
      }
      const once = await MeshPipeline.load(mesh, plan, ref.params);
      try {
        await once.step(ref.micros);
        expectClose(await once.params(), ref.after);
      } finally {
        await once.drop();
      }
    } finally {
      await pipe.drop();
    }
  }, 600_000);

  it('without an optimizer the step returns the accumulated gradients of the whole batch', async () => {
    const widths = [3, 6, 6, 2], m = 4, micro = 2;
    const batch = m * micro;
    const whole = compile(grad(mlp(batch, widths, 'tanh'), 'loss'), { seed: 5 });
    const params = Object.fromEntries(Object.entries(whole.variables()).map(([k, v]) => [k.slice(6), v.data]));
    const x = rand(batch * 3, 5), y = rand(batch * 2, 6);
    const out = whole.runSync({ x: { dtype: 'f32', shape: [batch, 3], data: x }, y: { dtype: 'f32', shape: [batch, 2], data: y } });
    const want = Object.fromEntries(Object.entries(out).filter(([k]) => k.startsWith('grad/')).map(([k, v]) => [k.slice(5), v.data]));
    const micros = Array.from({ length: m }, (_, i) => ({ x: x.slice(i * micro * 3, (i + 1) * micro * 3), y: y.slice(i * micro * 2, (i + 1) * micro * 2) }));
    const mesh = meshOf([2]);
    const pipe = await MeshPipeline.load(mesh, planMeshPipeline(partitionPipeline(mlp(micro, widths, 'tanh'), { stages: 2, bandwidth: Infinity }), zbH1(2, m), { caps: mesh.caps }), params);
    try {
      const step = await pipe.step(micros);
      expect(step.loss).toBeCloseTo(out['loss']!.data[0]!, 5);
      expectClose(step.grads, want);
    } finally {
      await pipe.drop();
    }
  }, 120_000);

  it('1F1B keeps at most p micro-batches of activations per stage, GPipe all m, as the workers’ allocators count them', async () => {
    const p = 3, m = 6, micro = 2;
    const widths = [4, 8, 8, 8, 8, 8, 2];
    const ref = reference(widths, 'tanh', m, micro, 9);
    const program = partitionPipeline(mlp(micro, widths, 'tanh'), { stages: p, bandwidth: Infinity });
    const mesh = meshOf([p]);
    const run = async (s: PipelineSchedule) => {
      const pipe = await MeshPipeline.load(mesh, planMeshPipeline(program, s, { optimizer: sgd(0.1), caps: mesh.caps }), ref.params);
      try {
        return (await pipe.step(ref.micros)).devices;
      } finally {
        await pipe.drop();
      }
    };
    const gp = await run(gpipe(p, m));
    const one = await run(oneFOneB(p, m));
    for (let d = 0; d < p; d++) {
      // one micro-batch's kept values, as GPipe holds all m of them at once
      const perMicro = gp[d]!.peakKeptBytes / m;
      expect(perMicro).toBeGreaterThan(0);
      expect(gp[d]!.peakInFlight).toBe(m);
      expect(one[d]!.peakInFlight).toBe(Math.min(p - d, m));
      expect(one[d]!.peakKeptBytes).toBe(Math.min(p - d, m) * perMicro);
      expect(one[d]!.peakKeptBytes).toBeLessThanOrEqual(p * perMicro);
    }
  }, 180_000);

  it('a per-device memory budget is met as the allocators measure it, and the step is unchanged', async () => {
    // activations outweigh the params, so that recomputing them saves memory
    const p = 2, m = 2, micro = 32;
    const widths = [4, 16, 16, 16, 16, 16, 2];
    const ref = reference(widths, 'relu', m, micro, 21);
    const program = partitionPipeline(mlp(micro, widths, 'relu'), { stages: p, bandwidth: Infinity });
    // a mesh of its own: its allocators have seen nothing else
    const mesh = new Mesh([p], { stepDeadlineMs: 120_000, deadlineMs: 60_000 });
    try {
      const free = planMeshPipeline(program, oneFOneB(p, m), { optimizer: sgd(0.1), caps: mesh.caps });
      const peaks = free.devices.map((d) => d.predictedPeakBytes);
      let least = 0;
      try {
        planMeshPipeline(program, oneFOneB(p, m), { optimizer: sgd(0.1), caps: mesh.caps, memoryBudget: 1 });
      } catch (e) {
        expect(e).toBeInstanceOf(BudgetError);
        least = (e as BudgetError).minimumFeasible;
      }
      expect(least).toBeGreaterThan(0);
      expect(least).toBeLessThan(Math.max(...peaks));
      // the tightest budget: the smallest one named
      const budget = least;
      const fitted = planMeshPipeline(program, oneFOneB(p, m), { optimizer: sgd(0.1), caps: mesh.caps, memoryBudget: budget });
      expect(fitted.devices.some((d) => d.passes.some((x) => x.plan.remat !== undefined))).toBe(true);
      for (const d of fitted.devices) expect(d.predictedPeakBytes).toBeLessThanOrEqual(budget);
      const pipe = await MeshPipeline.load(mesh, fitted, ref.params);
      const step = await pipe.step(ref.micros);
      for (const d of step.devices) {
        expect(d.stepPeakBytes).toBeLessThanOrEqual(budget);
        expect(d.allocatorPeakBytes).toBeLessThanOrEqual(budget);
      }
      expect(Math.abs(step.loss - ref.loss)).toBeLessThan(1e-5 * (1 + ref.loss));
      expectClose(await pipe.params(), ref.after);
    } finally {
      await mesh.close();
    }
  }, 300_000);

  it('2 (pipeline) × 2 (tensor): Megatron-sharded stages train a transformer as one device does', async () => {
    const cfg = { blocks: 2, seq: 4, dModel: 8, heads: 2, dFF: 16, classes: 3 };
    const arb = fc.record({ m: fc.integer({ min: 1, max: 3 }), seed: fc.integer({ min: 1, max: 1000 }), kind: fc.constantFrom('gpipe' as const, '1f1b' as const, 'zb-h1' as const) });
    const ann = new Map<string, NdSbp>();
    for (let i = 0; i < cfg.blocks; i++) {
      for (const w of ['wq', 'wk', 'wv', 'w1']) ann.set(`blk${i}/${w}`, [split(1)]);
      for (const w of ['wo', 'w2']) ann.set(`blk${i}/${w}`, [split(0)]);
      ann.set(`blk${i}/b1`, [split(0)]);
    }
    const mesh = meshOf([2, 2]);
    await fc.assert(fc.asyncProperty(arb, async ({ m, seed, kind }) => {
      const micro = 2, batch = m * micro;
      const whole = compile(grad(transformerGraph({ ...cfg, batch }), 'loss'), { optimizer: sgd(0.1), seed });
      const params = Object.fromEntries(Object.entries(whole.variables()).filter(([k]) => k.startsWith('param:')).map(([k, v]) => [k.slice(6), v.data]));
      const x = rand(batch * cfg.seq * cfg.dModel, seed);
      const y = Float32Array.from({ length: batch * cfg.classes }, (_, i) => (i % cfg.classes === (Math.floor(i / cfg.classes) + seed) % cfg.classes ? 1 : 0));
      const loss = whole.runSync({ x: { dtype: 'f32', shape: [batch, cfg.seq, cfg.dModel], data: x }, y: { dtype: 'f32', shape: [batch, cfg.classes], data: y } })['loss']!.data[0]!;
      const after = Object.fromEntries(Object.entries(whole.variables()).filter(([k]) => k.startsWith('param:')).map(([k, v]) => [k.slice(6), v.data]));
      const xs = cfg.seq * cfg.dModel * micro, ys = cfg.classes * micro;
      const micros = Array.from({ length: m }, (_, i) => ({ x: x.slice(i * xs, (i + 1) * xs) as CpuArray, y: y.slice(i * ys, (i + 1) * ys) as CpuArray }));
      const s = kind === 'gpipe' ? gpipe(2, m) : kind === '1f1b' ? oneFOneB(2, m) : zbH1(2, m);
      const program = partitionPipeline(transformerGraph({ ...cfg, batch: micro }), { stages: 2 });
      const plan = planMeshPipeline(program, s, { optimizer: sgd(0.1), caps: mesh.caps, tensor: { degree: 2, annotations: ann } });
      // each stage's weights are split over its two devices, which all-reduce among themselves
      for (const d of plan.devices) {
        const wq = d.store.find((e) => /blk\d\/wq$/.test(e.key))!;
        expect(wq.shape).toEqual([cfg.dModel, cfg.dModel / 2]);
        const groups = d.passes.flatMap((p) => p.plan.steps.flatMap((st) => (st.kind === 'collective' ? [st.group.join()] : [])));
        expect(groups.length).toBeGreaterThan(0);
        const pair = d.device < 2 ? '0,1' : '2,3';
        expect(new Set(groups)).toEqual(new Set([pair]));
      }
      const pipe = await MeshPipeline.load(mesh, plan, params);
      try {
        const step = await pipe.step(micros);
        expect(Math.abs(step.loss - loss)).toBeLessThan(1e-5 * (1 + loss));
        expectClose(await pipe.params(), after);
      } finally {
        await pipe.drop();
      }
    }), fcParams(4));
  }, 600_000);

  it('a send whose peer is ready is handed on before the device starts its next pass, though no pass of the device waits', async () => {
    // the first stage's forwards under GPipe receive nothing, so its device never waits between
    // them; its peer takes each message one turn of the event loop after it is offered, as a
    // shared-memory channel wakes a sender whose last message was taken
    const arb = fc.record({ widths: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 4, maxLength: 5 }), m: fc.integer({ min: 2, max: 5 }), seed: fc.integer({ min: 1, max: 1000 }) });
    await fc.assert(fc.asyncProperty(arb, async ({ widths, m, seed }) => {
      const { params, micros } = reference(widths, 'tanh', m, 2, seed);
      const plan = planMeshPipeline(partitionPipeline(mlp(2, widths, 'tanh'), { stages: 2, bandwidth: Infinity }), gpipe(2, m), { optimizer: sgd(0.1) });
      const dp = plan.devices[0]!;
      let taken = 0;
      /** messages taken when each micro-batch's input was uploaded (as a pass that reads it starts) */
      const takenAtUpload: number[] = [];
      const host = new HostDevice('cpu');
      const upload = host.upload.bind(host);
      host.upload = (dtype, data) => { takenAtUpload.push(taken); return upload(dtype, data); };
      const comm: Communicator = {
        rank: 0, size: 2,
        send: () => new Promise<void>((resolve) => setImmediate(() => { taken++; resolve(); })),
        recv: async () => {},
        allReduce: async () => {}, reduceScatter: async () => {}, allGather: async () => {}, allToAll: async () => {},
      };
      const values = new Map(dp.store.map((e): [string, CpuArray] => {
        if (e.init.kind === 'param') return [e.key, params[e.init.name]!];
        const a = new Float32Array(e.shape.reduce((x, y) => x * y, 1));
        if (e.init.kind === 'const') a.set(e.init.data);
        return [e.key, a];
      }));
      const device = new PipelineDevice(host, comm, dp, values);
      takenAtUpload.length = 0;
      await device.step(micros.map((x) => ({ x: { dtype: 'f32' as const, data: x.x } })));
      expect(taken).toBe(m);
      // the first m uploads are the forwards' inputs: forward k starts after k activations were taken
      expect(takenAtUpload.slice(0, m)).toEqual(Array.from({ length: m }, (_, k) => k));
      device.dispose();
    }), fcParams(10));
  });

  it('a worker that dies mid-step ends the step with a MeshError naming it', async () => {
    const mesh = new Mesh([2], { stepDeadlineMs: 60_000, deadlineMs: 20_000 });
    try {
      const ref = reference([3, 4, 4, 2], 'tanh', 2, 1, 3);
      const pipe = await MeshPipeline.load(mesh, planMeshPipeline(partitionPipeline(mlp(1, [3, 4, 4, 2], 'tanh'), { stages: 2 }), oneFOneB(2, 2), { optimizer: sgd(0.1), caps: mesh.caps }), ref.params);
      await mesh.terminate(1);
      const err = await pipe.step(ref.micros).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MeshError);
      expect((err as MeshError).device).toBe(1);
    } finally {
      await mesh.close();
    }
  }, 120_000);
});
