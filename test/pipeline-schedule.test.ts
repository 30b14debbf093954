// Laws of the pipeline schedules and the simulator: every schedule is valid; with unit-cost
// stages the bubble is (p−1)/(m+p−1) for GPipe and 1F1B, divided by v with v virtual stages, a
// third of 1F1B's for ZB-H1 at the same peak activation memory; 1F1B keeps at most p micro-batches
// of activations per stage, GPipe m.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { fcParams } from './arbitraries.js';
import { gpipe, interleaved1F1B, oneFOneB, validateSchedule, zbH1, ScheduleError, type PipelineSchedule } from '../scheduler/parallel/pipeline-schedule.js';
import { simulatePipeline, type StageCost } from '../scheduler/parallel/simulator.js';

const hw = { flops: 1, bandwidth: 1, latency: 0 };
const unit = (stages: number, f: number, b: number, w: number): StageCost[] =>
  Array.from({ length: stages }, () => ({ forward: f, backward: b, weight: w, sendBytes: 0, activationBytes: 1 }));
const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThan(1e-9);
const pm = fc.record({ p: fc.integer({ min: 1, max: 12 }), m: fc.integer({ min: 1, max: 40 }) });

describe('pipeline schedules', () => {
  it('every schedule runs each pass once, on its device, without deadlock', () => {
    fc.assert(fc.property(pm, fc.integer({ min: 1, max: 4 }), ({ p, m }, v) => {
      const all: PipelineSchedule[] = [gpipe(p, m), oneFOneB(p, m), zbH1(p, m), interleaved1F1B(p, p * Math.ceil(m / p), v)];
      for (const s of all) expect(validateSchedule(s)).toHaveLength(s.micros * s.stages * (s.splitBackward ? 3 : 2));
    }), fcParams(60));
  });

  it('rejects a schedule with a missing pass, a pass on the wrong device, or a deadlock', () => {
    const s = oneFOneB(3, 4);
    expect(() => validateSchedule({ ...s, ops: [s.ops[0]!.slice(1), s.ops[1]!, s.ops[2]!] })).toThrow(ScheduleError);
    expect(() => validateSchedule({ ...s, ops: [s.ops[1]!, s.ops[0]!, s.ops[2]!] })).toThrow(/belongs to device/);
    const backwardsFirst = [...s.ops[2]!].sort((a, b) => (a.op === b.op ? 0 : a.op === 'B' ? -1 : 1));
    expect(() => validateSchedule({ ...s, ops: [s.ops[0]!, s.ops[1]!, backwardsFirst] })).toThrow(/deadlocks/);
  });

  it('GPipe and 1F1B with unit-cost stages have bubble (p−1)/(m+p−1)', () => {
    fc.assert(fc.property(pm, ({ p, m }) => {
      for (const s of [gpipe(p, m), oneFOneB(p, m)]) {
        const r = simulatePipeline(s, unit(p, 1, 1, 0), hw);
        close(r.bubble, (p - 1) / (m + p - 1));
        close(r.bubbleRatio, (p - 1) / m);
      }
    }), fcParams(100));
  });

  it('interleaved 1F1B divides the bubble by v', () => {
    fc.assert(fc.property(pm, fc.integer({ min: 1, max: 4 }), ({ p, m }, v) => {
      const mm = p * Math.ceil(m / p);
      const base = simulatePipeline(oneFOneB(p, mm), unit(p, 1, 1, 0), hw);
      const r = simulatePipeline(interleaved1F1B(p, mm, v), unit(p * v, 1 / v, 1 / v, 0), hw);
      close(r.bubbleRatio, base.bubbleRatio / v);
      close(r.bubbleRatio, (p - 1) / (v * mm));
    }), fcParams(100));
  });

  it('ZB-H1 with equal F, B and W costs has a third of 1F1B’s bubble at the same peak activation memory (m ≥ p)', () => {
    fc.assert(fc.property(pm, ({ p, m }) => {
      const mm = Math.max(m, p);
      const costs = unit(p, 1, 1, 1);
      const zb = simulatePipeline(zbH1(p, mm), costs, hw);
      const base = simulatePipeline(oneFOneB(p, mm), costs, hw);
      close(zb.bubbleRatio, base.bubbleRatio / 3);
      const peak = (r: typeof zb) => Math.max(...r.devices.map((d) => d.peakActivationBytes));
      expect(peak(zb)).toBe(peak(base));
    }), fcParams(100));
  });

  it('1F1B keeps at most p micro-batches of activations in flight per stage, GPipe keeps m', () => {
    fc.assert(fc.property(pm, ({ p, m }) => {
      const one = simulatePipeline(oneFOneB(p, m), unit(p, 1, 2, 0), hw);
      one.devices.forEach((d, i) => expect(d.peakInFlight).toBe(Math.min(p - i, m)));
      const g = simulatePipeline(gpipe(p, m), unit(p, 1, 2, 0), hw);
      g.devices.forEach((d) => expect(d.peakInFlight).toBe(m));
    }), fcParams(100));
  });

  it('communication: a cut tensor adds latency plus bytes over bandwidth on each hop', () => {
    const costs = Array.from({ length: 4 }, () => ({ forward: 1, backward: 2, weight: 0, sendBytes: 10, activationBytes: 1 }));
    const r = simulatePipeline(gpipe(4, 1), costs, { flops: 1, bandwidth: 10, latency: 0.5 });
    // 4 forwards, 4 backwards, 3 hops each way of 0.5 + 1 s
    close(r.pipelineTime, 4 + 8 + 6 * 1.5);
    expect(r.p2pBytes).toBe(60);
  });

  it('simulates 1024 devices quickly', () => {
    const t0 = performance.now();
    const r = simulatePipeline(oneFOneB(1024, 1024), unit(1024, 1, 2, 0), hw);
    close(r.bubble, 1023 / (1024 + 1023));
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});
