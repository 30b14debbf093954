// The cost model's prediction of a data- or tensor-parallel step from its per-device plans
// (simulateStep): a single device's step is the sum of its kernels' times, a data-parallel step
// is span by span the slowest device's kernels and then each collective's ring time, a faster
// device or link never makes a step slower, kernels timed one by one replace the roofline, an
// all-reduce costs a reduce-scatter plus an all-gather, and plans that wait on each
// other forever are a ScheduleError.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { graph } from '../graphs/builder.js';
import { f32, type Tensor } from '../graphs/types.js';
import { grad } from '../graphs/autodiff.js';
import { adam, applyOptimizer, sgd } from '../graphs/optim.js';
import type { Graph } from '../graphs/graph.js';
import { planGraph, type Plan } from '../scheduler/plan.js';
import { planSharded } from '../scheduler/parallel/sbp-lower.js';
import { dataParallel } from '../scheduler/parallel/sbp-data.js';
import { collectiveSeconds, kernelSeconds, simulateStep, type Hardware } from '../scheduler/parallel/simulator.js';
import { ScheduleError } from '../scheduler/parallel/pipeline-schedule.js';
import { bufferBytes } from '../scheduler/caps.js';
import type { DType } from '../graphs/types.js';
import { kernelSignature } from '../ops/kernel-ir.js';
import { fcParams } from './arbitraries.js';
import { concrete } from './sbp-util.js';

function mlp(B: number, widths: readonly number[]): Graph {
  return graph('mlp', (g) => {
    let h: Tensor = g.input('x', f32(B, widths[0]!));
    widths.slice(1).forEach((w, i) => {
      const z = g.add(g.matmul(h, g.param(`w${i}`, f32(widths[i]!, w))), g.param(`b${i}`, f32(w)));
      h = i < widths.length - 2 ? g.relu(z) : z;
    });
    return { loss: g.mean(g.square(h)) };
  });
}

const arbStep = fc.record({
  batch: fc.constantFrom(4, 8, 16),
  widths: fc.array(fc.constantFrom(4, 8, 32), { minLength: 2, maxLength: 4 }),
  adam: fc.boolean(),
}).map((c) => applyOptimizer(grad(mlp(c.batch, c.widths), 'loss'), c.adam ? adam(0.01) : sgd(0.1)));

const arbHardware: fc.Arbitrary<Hardware> = fc.record({
  flops: fc.double({ min: 1e8, max: 1e12, noNaN: true }),
  memoryBandwidth: fc.double({ min: 1e8, max: 1e11, noNaN: true }),
  bandwidth: fc.double({ min: 1e7, max: 1e11, noNaN: true }),
  latency: fc.double({ min: 0, max: 1e-3, noNaN: true }),
  stepOverhead: fc.double({ min: 0, max: 1e-2, noNaN: true }),
});

/** Σ kernelSeconds over a plan's launches, counted here from the plan's buffers. */
function kernelsSeconds(plan: Plan, hw: Hardware): number {
  const bytes = (id: number) => {
    const b = plan.buffers.get(id);
    return b ? bufferBytes(plan.caps, b.dtype as DType, b.elements) : 0;
  };
  let t = 0;
  for (const s of plan.steps) if (s.kind === 'launch') t += kernelSeconds(s.kernel, bytes(s.node) + s.inputs.reduce((a, j) => a + bytes(j), 0), hw);
  return t;
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

describe('simulateStep', () => {
  it('one device: the step is its kernels one after another, plus the step overhead', () => {
    fc.assert(fc.property(arbStep, arbHardware, (g, hw) => {
      const plan = planGraph(g, concrete(g), { withUpdates: true });
      const sim = simulateStep([plan], hw);
      expect(close(sim.stepTime, kernelsSeconds(plan, hw) + hw.stepOverhead!)).toBe(true);
      expect(sim.devices[0]!.communication).toBe(0);
    }), fcParams(30));
  });

  it('a data-parallel step on n devices: each collective is a barrier of the group, so the step is, span by span, the slowest device\'s kernels, then the collective\'s ring time', () => {
    fc.assert(fc.property(arbStep, arbHardware, fc.constantFrom(2, 4), fc.boolean(), (g, hw, n, zero) => {
      const shapes = concrete(g);
      const sp = planSharded(g, shapes, { shape: [n] }, dataParallel(g, shapes, { shape: [n] }, { axis: 0, zero }));
      const plans = sp.devices.map((d) => d.plan);
      const sim = simulateStep(plans, hw);
      // each device's kernel seconds between consecutive collectives
      const spans = plans.map((p) => {
        const out: number[] = [0];
        for (const s of p.steps) {
          if (s.kind === 'collective') out.push(0);
          else if (s.kind === 'launch') out[out.length - 1]! += kernelsSeconds({ ...p, steps: [s] }, hw);
        }
        return out;
      });
      const p0 = plans[0]!;
      const comm = p0.steps.reduce((a, s) => a + (s.kind === 'collective' ? collectiveSeconds(s.op, bufferBytes(p0.caps, p0.buffers.get(s.buffer)!.dtype as DType, p0.buffers.get(s.buffer)!.elements), s.group.length, hw) : 0), 0);
      const kernels = spans[0]!.reduce((a, _, k) => a + Math.max(...spans.map((sp) => sp[k]!)), 0);
      expect(close(sim.stepTime, kernels + comm + hw.stepOverhead!)).toBe(true);
      sim.devices.forEach((d, i) => expect(close(d.compute, kernelsSeconds(plans[i]!, hw))).toBe(true));
    }), fcParams(20));
  });

  it('a faster device or a faster link never makes a step slower', () => {
    fc.assert(fc.property(arbStep, arbHardware, fc.double({ min: 1, max: 100, noNaN: true }), (g, hw, k) => {
      const shapes = concrete(g);
      const plans = planSharded(g, shapes, { shape: [2] }, dataParallel(g, shapes, { shape: [2] }, { axis: 0 })).devices.map((d) => d.plan);
      const t = simulateStep(plans, hw).stepTime;
      for (const faster of [{ ...hw, flops: hw.flops * k }, { ...hw, bandwidth: hw.bandwidth * k }, { ...hw, memoryBandwidth: hw.memoryBandwidth! * k }, { ...hw, latency: hw.latency / k }]) {
        expect(simulateStep(plans, faster).stepTime).toBeLessThanOrEqual(t * (1 + 1e-12));
      }
    }), fcParams(20));
  });

  it('kernels timed one by one take their measured time instead of the roofline', () => {
    fc.assert(fc.property(arbStep, arbHardware, fc.double({ min: 1e-6, max: 1, noNaN: true }), (g, hw, each) => {
      const plan = planGraph(g, concrete(g), { withUpdates: true });
      const launches = plan.steps.filter((s) => s.kind === 'launch');
      const kernelTimes = new Map(launches.map((s) => [kernelSignature(s.kernel), each]));
      expect(close(simulateStep([plan], { ...hw, kernelTimes }).stepTime, launches.length * each + hw.stepOverhead!)).toBe(true);
    }), fcParams(20));
  });

  it('an all-reduce costs a reduce-scatter plus an all-gather', () => {
    fc.assert(fc.property(arbHardware, fc.integer({ min: 0, max: 1 << 26 }), fc.integer({ min: 1, max: 64 }), (hw, bytes, n) => {
      expect(close(collectiveSeconds('all-reduce', bytes, n, hw), collectiveSeconds('reduce-scatter', bytes, n, hw) + collectiveSeconds('all-gather', bytes, n, hw))).toBe(true);
    }), fcParams(50));
  });

  it('plans whose collectives never meet are a ScheduleError naming the devices', () => {
    const g = applyOptimizer(grad(mlp(4, [4, 8]), 'loss'), sgd(0.1));
    const shapes = concrete(g);
    const plans = planSharded(g, shapes, { shape: [2] }, dataParallel(g, shapes, { shape: [2] }, { axis: 0 })).devices.map((d) => d.plan);
    const hw: Hardware = { flops: 1e9, bandwidth: 1e9, latency: 0 };
    // device 1 skips its first collective: device 0 waits at it forever
    const first = plans[1]!.steps.findIndex((s) => s.kind === 'collective');
    const broken: Plan = { ...plans[1]!, steps: plans[1]!.steps.filter((_, i) => i !== first) };
    expect(() => simulateStep([plans[0]!, broken], hw)).toThrow(ScheduleError);
    expect(() => simulateStep([plans[0]!, broken], hw)).toThrow(/device 0 at step \d+ \(collective\)/);
  });
});
