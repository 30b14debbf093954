// A pipeline step equals the single-device step: random small MLPs cut into random stage counts,
// run over random micro-batch counts by every schedule on host devices (gradients accumulated,
// then one SGD update per stage), give the loss and the updated params of one step over the whole
// batch within float32 tolerance. Stage graphs and send/recv pairs are checked on the way, and
// the backward split into B and W plans no more work than the fused one.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { fcParams } from './arbitraries.js';
import { graph } from '../graphs/builder.js';
import type { Graph } from '../graphs/graph.js';
import type { Tensor } from '../graphs/types.js';
import { sgd } from '../graphs/optim.js';
import { grad } from '../graphs/autodiff.js';
import { compile } from '../runtime/executor.js';
import { HostPipeline } from '../runtime/pipeline-host.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';
import { partitionPipeline, stageTransfers, PipelineError } from '../scheduler/parallel/pipeline-partition.js';
import { gpipe, interleaved1F1B, oneFOneB, zbH1, type PipelineSchedule } from '../scheduler/parallel/pipeline-schedule.js';
import { planMeshPipeline } from '../scheduler/parallel/pipeline-mesh.js';
import { planLaunches } from '../scheduler/plan.js';
import { kernelCost } from '../scheduler/remat-plan.js';

function mlp(batch: number, widths: readonly number[], act: 'tanh' | 'relu'): Graph {
  return graph('mlp', (b) => {
    const x = b.input('x', { dtype: 'f32', shape: [batch, widths[0]!] });
    const y = b.input('y', { dtype: 'f32', shape: [batch, widths.at(-1)!] });
    let h: Tensor = x;
    for (let i = 1; i < widths.length; i++) {
      const w = b.param(`w${i}`, { dtype: 'f32', shape: [widths[i - 1]!, widths[i]!] }, b.init.glorot());
      const bias = b.param(`b${i}`, { dtype: 'f32', shape: [widths[i]!] }, b.init.uniform(-0.1, 0.1));
      h = b.add(b.matmul(h, w), bias);
      if (i < widths.length - 1) h = act === 'tanh' ? b.tanh(h) : b.relu(h);
    }
    const d = b.sub(h, y);
    return { loss: b.mean(b.mul(d, d)) };
  });
}

const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 7919 + i * 12.9898) * 0.9);

const schedules = (p: number, m: number): PipelineSchedule[] => [gpipe(p, m), oneFOneB(p, m), zbH1(p, m), ...(m % p === 0 ? [interleaved1F1B(p, m, 2)] : [])];

describe('pipeline execution on host devices', () => {
  it('a pipeline step with accumulation equals the single-device step on the same global batch, for every schedule', () => {
    const arb = fc.record({
      widths: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 3, maxLength: 5 }),
      act: fc.constantFrom('tanh' as const, 'relu' as const),
      p: fc.integer({ min: 1, max: 3 }),
      m: fc.integer({ min: 1, max: 4 }),
      micro: fc.integer({ min: 1, max: 3 }),
      seed: fc.integer({ min: 1, max: 1000 }),
    });
    fc.assert(fc.property(arb, ({ widths, act, p, m, micro, seed }) => {
      const batch = m * micro;
      const whole = compile(grad(mlp(batch, widths, act), 'loss'), { optimizer: sgd(0.1), seed });
      const params = Object.fromEntries(Object.entries(whole.variables()).filter(([k]) => k.startsWith('param:')).map(([k, v]) => [k.slice(6), v.data]));
      const x = rand(batch * widths[0]!, seed);
      const y = rand(batch * widths.at(-1)!, seed + 1);
      const ref = whole.runSync({ x: { dtype: 'f32', shape: [batch, widths[0]!], data: x }, y: { dtype: 'f32', shape: [batch, widths.at(-1)!], data: y } });
      const after = whole.variables();
      const micros = Array.from({ length: m }, (_, i) => ({
        x: x.slice(i * micro * widths[0]!, (i + 1) * micro * widths[0]!) as CpuArray,
        y: y.slice(i * micro * widths.at(-1)!, (i + 1) * micro * widths.at(-1)!) as CpuArray,
      }));
      const g = mlp(micro, widths, act);
      for (const s of schedules(p, m)) {
        const program = partitionPipeline(g, { stages: s.stages, optimizer: sgd(0.1) });
        const run = new HostPipeline(program, s, { params });
        const res = run.step(micros);
        expect(res.loss).toBeCloseTo(ref['loss']!.data[0]!, 4);
        const now = run.paramValues();
        for (const [k, v] of Object.entries(now)) {
          const want = after[`param:${k}`]!.data;
          for (let i = 0; i < v.length; i++) expect(Math.abs(v[i]! - want[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(want[i]!)));
        }
      }
    }), fcParams(25));
  });

  it('stages balance compute and pair every cut tensor with a send and a recv', () => {
    const g = mlp(4, [8, 16, 16, 16, 4], 'tanh');
    const program = partitionPipeline(g, { stages: 3, bandwidth: Infinity });
    expect(program.stages).toHaveLength(3);
    const slowest = (pr: typeof program) => Math.max(...pr.stages.map((s) => s.cost.forward + s.cost.backward + s.cost.weight));
    const ops = program.stages.reduce((a, s) => a + s.nodes.length, 0);
    const even = partitionPipeline(g, { stages: 3, starts: [0, Math.floor(ops / 3), Math.floor((2 * ops) / 3)] });
    expect(slowest(program)).toBeLessThanOrEqual(slowest(even));
    const steps = stageTransfers(program, [0, 1, 2]);
    const sends = steps.flatMap((s, i) => s.forward.filter((x) => x.kind === 'send').map((x) => `${i}->${x.kind === 'send' ? x.peer : -1}:${x.kind === 'send' ? x.buffer : -1}`));
    const recvs = steps.flatMap((s, i) => s.forward.filter((x) => x.kind === 'recv').map((x) => `${x.kind === 'recv' ? x.peer : -1}->${i}:${x.kind === 'recv' ? x.buffer : -1}`));
    expect(sends.sort()).toEqual(recvs.sort());
    expect(sends.length).toBeGreaterThan(0);
    // B is the part on the path to the stage's inputs: the first stage has none
    expect(program.stages[0]!.cost.backward).toBe(0);
    expect(program.stages[2]!.cost.weight).toBeGreaterThan(0);
  });

  it('splitting the backward adds no work: per stage, the planned B and W passes launch as many kernels and FLOPs as the fused backward', () => {
    const arb = fc.record({
      widths: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 3, maxLength: 6 }),
      act: fc.constantFrom('tanh' as const, 'relu' as const),
      p: fc.integer({ min: 1, max: 3 }),
      batch: fc.integer({ min: 1, max: 5 }),
    });
    fc.assert(fc.property(arb, ({ widths, act, p, batch }) => {
      const program = partitionPipeline(mlp(batch, widths, act), { stages: Math.min(p, widths.length - 1), bandwidth: Infinity });
      const S = program.stages.length;
      const work = (s: PipelineSchedule) => new Map(planMeshPipeline(program, s).devices.flatMap((d) => d.passes.map((q): [string, { launches: number; flops: number }] => {
        const ls = planLaunches(q.plan);
        return [`${q.stage}:${q.pass}`, { launches: ls.length, flops: ls.reduce((a, l) => a + kernelCost(l.kernel), 0) }];
      })));
      const split = work(zbH1(S, S)), joined = work(oneFOneB(S, S));
      for (let st = 0; st < S; st++) {
        const b = split.get(`${st}:B`)!, w = split.get(`${st}:W`)!, bw = joined.get(`${st}:BW`)!;
        expect(b.launches + w.launches).toBe(bw.launches);
        expect(b.flops + w.flops).toBeCloseTo(bw.flops, 6);
      }
    }), fcParams(25));
  });

  it('1F1B keeps at most p micro-batches of activations per device, GPipe m, as the devices’ allocators count them', () => {
    const p = 3, m = 6;
    const g = mlp(2, [4, 8, 8, 8, 2], 'tanh');
    const params = Object.fromEntries(Object.entries(compile(g).variables()).map(([k, v]) => [k.slice(6), v.data]));
    const micros = Array.from({ length: m }, (_, i) => ({ x: rand(8, i) as CpuArray, y: rand(4, i + 9) as CpuArray }));
    const program = partitionPipeline(g, { stages: p });
    const one = new HostPipeline(program, oneFOneB(p, m), { params }).step(micros);
    const gp = new HostPipeline(program, gpipe(p, m), { params }).step(micros);
    program.stages.forEach((st, d) => {
      expect(one.devices[d]!.peakKeptBytes).toBe(Math.min(p - d, m) * st.cost.activationBytes);
      expect(gp.devices[d]!.peakKeptBytes).toBe(m * st.cost.activationBytes);
    });
  });

  it('refuses more stages than ops and weights shared across stages', () => {
    expect(() => partitionPipeline(mlp(2, [2, 2], 'tanh'), { stages: 9 })).toThrow(PipelineError);
    const tied = graph('tied', (b) => {
      const x = b.input('x', { dtype: 'f32', shape: [2, 2] });
      const w = b.param('w', { dtype: 'f32', shape: [2, 2] });
      const h = b.tanh(b.matmul(b.tanh(b.matmul(x, w)), w));
      return { loss: b.sum(h) };
    });
    expect(() => partitionPipeline(tied, { stages: 4 })).toThrow(/shared weights/);
  });
});
