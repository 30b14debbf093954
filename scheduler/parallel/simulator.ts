// The pipeline simulator: runs a schedule (pipeline-schedule.ts) against the cost model — a
// pass takes its FLOPs over the device's achieved FLOP/s plus the tensor-parallel collectives it
// waits for, a cut tensor takes latency plus bytes over the link bandwidth — and predicts step
// time, bubble and per-device peak activation memory, in time linear in the number of passes, for
// meshes far larger than this machine. Sends overlap compute (a device is not busy while its
// message travels). The same costs predict a data- or tensor-parallel step from its per-device
// plans (`simulateStep`): kernels by FLOPs or bytes (a roofline), collectives as ring messages,
// each device in its own order, a collective starting once its whole group reaches it. It runs
// nothing and does not choose a layout.

import type { DType } from '../../graphs/types.js';
import { kernelSignature, type Kernel } from '../../ops/kernel-ir.js';
import { bufferBytes } from '../caps.js';
import type { Plan } from '../plan.js';
import { kernelCost } from '../remat-plan.js';
import type { CollectiveOp } from '../steps.js';
import type { PipelineOp, PipelineSchedule } from './pipeline-schedule.js';
import { opKey, ScheduleError } from './pipeline-schedule.js';

/** A device and the link between pipeline neighbours. */
export interface Hardware {
  /** peak FLOP/s of one device */
  readonly flops: number;
  /** fraction of the peak that kernels achieve (default 1) */
  readonly utilization?: number;
  /** bytes/s of the link a cut tensor crosses between two pipeline devices */
  readonly bandwidth: number;
  /** seconds a message takes besides its bytes */
  readonly latency: number;
  /**
   * bytes/s a kernel reads and writes: a kernel takes at least its bytes over this (a roofline;
   * default: no limit, FLOPs alone)
   */
  readonly memoryBandwidth?: number;
  /** seconds a step costs besides its kernels and messages: handing it to the devices, feeds in, outputs back (default 0) */
  readonly stepOverhead?: number;
  /**
   * seconds of kernels timed one by one, by `kernelSignature` (operator profiling, as FlexFlow's
   * simulator does); a kernel found here takes its measured time instead of the roofline's
   */
  readonly kernelTimes?: ReadonlyMap<string, number>;
}

/** Per micro-batch costs of one stage (from the cost model: `stageCosts` in pipeline-partition.ts). */
export interface StageCost {
  /** FLOPs of the forward pass */
  readonly forward: number;
  /** FLOPs of the input-gradient pass (B) */
  readonly backward: number;
  /** FLOPs of the weight-gradient pass (W); a schedule without a split runs B and W as one pass */
  readonly weight: number;
  /** bytes this stage sends to the next per micro-batch (the same bytes of gradient come back) */
  readonly sendBytes: number;
  /** bytes kept from a forward until the micro-batch's last backward pass of this stage */
  readonly activationBytes: number;
  /** bytes a split backward keeps from B until W (default 0) */
  readonly gradientBytes?: number;
  /** seconds of collectives (tensor parallelism) inside each pass, not overlapped with compute */
  readonly forwardCommSeconds?: number;
  readonly backwardCommSeconds?: number;
  readonly weightCommSeconds?: number;
}

export interface DeviceReport {
  /** seconds spent running passes */
  readonly busy: number;
  /** the largest number of micro-batches whose activations a stage of this device held at once */
  readonly peakInFlight: number;
  /** the largest total of activation bytes held at once */
  readonly peakActivationBytes: number;
}

export interface Simulation {
  /** seconds from the first pass to the last, plus `extraSeconds` */
  readonly stepTime: number;
  /** seconds the pipeline runs (the step time without extras) */
  readonly pipelineTime: number;
  /** idle share of device time in the pipeline: 1 − Σ busy / (p · pipelineTime) */
  readonly bubble: number;
  /** idle device time over busy device time (Megatron-LM's bubble ratio, (p−1)/m for 1F1B) */
  readonly bubbleRatio: number;
  /** bytes moved between pipeline devices in the step */
  readonly p2pBytes: number;
  readonly devices: readonly DeviceReport[];
  /** start and end of every pass, by device, in schedule order (for timelines) */
  readonly timeline?: readonly (readonly { readonly op: PipelineOp; readonly start: number; readonly end: number }[])[];
}

export interface SimulateOptions {
  /** seconds added after the pipeline drains (data-parallel gradient all-reduce, optimizer) */
  readonly extraSeconds?: number;
  /** keep per-pass start and end times */
  readonly timeline?: boolean;
}

/**
 * Simulate one training step of `schedule` with per-stage costs `costs` (one per stage) on
 * `hw`. Every pass starts when its device is free and its inputs have arrived.
 *
 * ```ts
 * const unit = { forward: 1, backward: 1, weight: 0, sendBytes: 0, activationBytes: 1 };
 * simulatePipeline(oneFOneB(4, 8), Array(4).fill(unit), { flops: 1, bandwidth: 1, latency: 0 }).bubble; // 3/11
 * ```
 */
export function simulatePipeline(schedule: PipelineSchedule, costs: readonly StageCost[], hw: Hardware, opts: SimulateOptions = {}): Simulation {
  const { devices: p, stages: S, micros: m, stageDevice } = schedule;
  if (costs.length !== S) throw new ScheduleError(`simulate ${schedule.kind}: ${costs.length} stage costs for ${S} stages`);
  const rate = hw.flops * (hw.utilization ?? 1);
  const split = schedule.splitBackward;
  const duration = (o: PipelineOp): number => {
    const c = costs[o.stage]!;
    if (o.op === 'F') return c.forward / rate + (c.forwardCommSeconds ?? 0);
    if (o.op === 'W') return c.weight / rate + (c.weightCommSeconds ?? 0);
    return split ? c.backward / rate + (c.backwardCommSeconds ?? 0) : (c.backward + c.weight) / rate + (c.backwardCommSeconds ?? 0) + (c.weightCommSeconds ?? 0);
  };
  // finish times by pass, stage and micro-batch (flat arrays: O(1) per dependency)
  const idx = (o: PipelineOp) => (o.op === 'F' ? 0 : o.op === 'B' ? 1 : 2) * S * m + o.stage * m + o.micro;
  const finish = new Float64Array(3 * S * m).fill(-1);
  const arrival = (op: number, stage: number, micro: number, toStage: number): number => {
    const t = finish[op * S * m + stage * m + micro]!;
    if (t < 0 || stageDevice[stage] === stageDevice[toStage]) return t;
    // a forward sends the lower stage's output; a backward sends the gradient of the same tensor
    return t + hw.latency + costs[Math.min(stage, toStage)]!.sendBytes / hw.bandwidth;
  };
  const free = new Float64Array(p);
  const busy = new Float64Array(p);
  const pos = new Int32Array(p);
  const held = new Float64Array(p);
  const peakBytes = new Float64Array(p);
  const inFlight = new Int32Array(S);
  const peakInFlight = new Int32Array(p);
  const timeline = opts.timeline ? schedule.ops.map(() => [] as { op: PipelineOp; start: number; end: number }[]) : undefined;
  let p2p = 0;
  let done = 0;
  const total = schedule.ops.reduce((a, l) => a + l.length, 0);
  // a worklist of devices whose next pass may have become ready
  const queue: number[] = [];
  const queued = new Uint8Array(p);
  const wake = (d: number) => {
    if (!queued[d]) {
      queued[d] = 1;
      queue.push(d);
    }
  };
  for (let d = 0; d < p; d++) wake(d);
  while (queue.length) {
    const d = queue.pop()!;
    queued[d] = 0;
    const list = schedule.ops[d]!;
    while (pos[d]! < list.length) {
      const o = list[pos[d]!]!;
      // inputs: the previous stage's forward; the next stage's backward (or the last forward) and
      // this stage's forward; this stage's B for a W
      let start = free[d]!;
      let ready = true;
      const need = (op: 0 | 1 | 2, stage: number) => {
        const t = arrival(op, stage, o.micro, o.stage);
        if (t < 0) ready = false;
        else if (t > start) start = t;
      };
      if (o.op === 'F') {
        if (o.stage > 0) need(0, o.stage - 1);
      } else if (o.op === 'B') {
        need(0, o.stage);
        if (o.stage < S - 1) need(1, o.stage + 1);
      } else need(1, o.stage);
      if (!ready) break;
      const dt = duration(o);
      const end = start + dt;
      finish[idx(o)] = end;
      free[d] = end;
      busy[d] += dt;
      pos[d]!++;
      done++;
      timeline?.[d]!.push({ op: o, start, end });
      const c = costs[o.stage]!;
      if (o.op === 'F') {
        held[d] += c.activationBytes;
        inFlight[o.stage]!++;
        peakBytes[d] = Math.max(peakBytes[d]!, held[d]!);
        peakInFlight[d] = Math.max(peakInFlight[d]!, inFlight[o.stage]!);
        if (o.stage < S - 1) {
          if (stageDevice[o.stage + 1] !== d) p2p += c.sendBytes;
          wake(stageDevice[o.stage + 1]!);
        } else wake(d);
      } else if (o.op === 'B') {
        if (!split) {
          held[d] -= c.activationBytes;
          inFlight[o.stage]!--;
        } else {
          held[d] += c.gradientBytes ?? 0;
          peakBytes[d] = Math.max(peakBytes[d]!, held[d]!);
        }
        if (o.stage > 0) {
          if (stageDevice[o.stage - 1] !== d) p2p += costs[o.stage - 1]!.sendBytes;
          wake(stageDevice[o.stage - 1]!);
        }
      } else {
        held[d] -= c.activationBytes + (c.gradientBytes ?? 0);
        inFlight[o.stage]!--;
      }
    }
  }
  if (done !== total) {
    const stuck = schedule.ops.map((l, d) => (pos[d]! < l.length ? `device ${d} at ${opKey(l[pos[d]!]!)}` : '')).filter(Boolean);
    throw new ScheduleError(`simulate ${schedule.kind}: the schedule deadlocks (${stuck.join('; ')})`);
  }
  const pipelineTime = free.reduce((a, t) => Math.max(a, t), 0);
  const busyTotal = busy.reduce((a, b) => a + b, 0);
  const idle = p * pipelineTime - busyTotal;
  return {
    stepTime: pipelineTime + (opts.extraSeconds ?? 0),
    pipelineTime,
    bubble: pipelineTime > 0 ? idle / (p * pipelineTime) : 0,
    bubbleRatio: busyTotal > 0 ? idle / busyTotal : 0,
    p2pBytes: p2p,
    devices: Array.from({ length: p }, (_, d) => ({ busy: busy[d]!, peakInFlight: peakInFlight[d]!, peakActivationBytes: peakBytes[d]! })),
    ...(timeline ? { timeline } : {}),
  };
}

/**
 * Seconds one kernel takes on `hw`: its measured time when `hw.kernelTimes` has it, else its FLOPs
 * (kernelCost) over the achieved rate or the bytes it reads and writes over the memory bandwidth,
 * whichever is longer.
 */
export function kernelSeconds(kernel: Kernel, bytes: number, hw: Hardware): number {
  const timed = hw.kernelTimes?.get(kernelSignature(kernel));
  if (timed !== undefined) return timed;
  const compute = kernelCost(kernel) / (hw.flops * (hw.utilization ?? 1));
  return hw.memoryBandwidth ? Math.max(compute, bytes / hw.memoryBandwidth) : compute;
}

/**
 * Messages each device sends in a ring collective over `n` devices, and the bytes of each, for a
 * buffer of `bytes` (runtime/mesh/communicator.ts: all-reduce is a reduce-scatter then an
 * all-gather; all-to-all sends one chunk to each other member).
 */
export function ringMessages(op: CollectiveOp, bytes: number, n: number): { messages: number; bytes: number } {
  if (n < 2) return { messages: 0, bytes: 0 };
  return { messages: op === 'all-reduce' ? 2 * (n - 1) : n - 1, bytes: bytes / n };
}

/** Seconds of a ring collective on `hw`: each message its latency plus its bytes over the link. */
export function collectiveSeconds(op: CollectiveOp, bytes: number, n: number, hw: Hardware): number {
  const r = ringMessages(op, bytes, n);
  return r.messages * (hw.latency + r.bytes / hw.bandwidth);
}

export interface StepSimulation {
  /** predicted seconds of the step: the last device's end, plus the step overhead */
  readonly stepTime: number;
  /** per device: seconds in kernels, in collectives and sends (waiting for the group included) */
  readonly devices: readonly { readonly compute: number; readonly communication: number; readonly launches: number }[];
}

/**
 * Simulate one step of per-device plans (`planSharded(...).devices` plans, or one plan for a
 * single device) on devices of `hw`. Each device runs its steps in order: a launch takes
 * `kernelSeconds`; a collective starts when every member of its group has reached it and takes
 * `collectiveSeconds`; a recv ends when its send's message has arrived (a send does not wait).
 *
 * ```ts
 * simulateStep(sp.devices.map((d) => d.plan), { flops: 40e9, memoryBandwidth: 8e9, bandwidth: 2e9, latency: 50e-6 }).stepTime;
 * ```
 */
export function simulateStep(plans: readonly Plan[], hw: Hardware): StepSimulation {
  const p = plans.length;
  const clock = new Float64Array(p), compute = new Float64Array(p), comm = new Float64Array(p), launches = new Int32Array(p);
  const pos = new Int32Array(p);
  /** per ordered pair, arrival times of messages sent and not yet received */
  const inbox = new Map<string, number[]>();
  const bytesOf = (plan: Plan, id: number) => {
    const b = plan.buffers.get(id);
    return b ? bufferBytes(plan.caps, b.dtype as DType, b.elements) : 0;
  };
  const blocked = (d: number): boolean => {
    const s = plans[d]!.steps[pos[d]!];
    return s !== undefined && (s.kind === 'collective' || (s.kind === 'recv' && !inbox.get(`${s.peer}>${d}`)?.length));
  };
  for (let progress = true; progress; ) {
    progress = false;
    for (let d = 0; d < p; d++) {
      const plan = plans[d]!;
      for (let s = plan.steps[pos[d]!]; s !== undefined && !blocked(d); s = plan.steps[++pos[d]!]) {
        progress = true;
        if (s.kind === 'launch') {
          const dt = kernelSeconds(s.kernel, s.inputs.reduce((a, j) => a + bytesOf(plan, j), bytesOf(plan, s.node)), hw);
          clock[d] += dt;
          compute[d] += dt;
          launches[d]!++;
        } else if (s.kind === 'send') {
          const key = `${d}>${s.peer}`;
          inbox.set(key, [...(inbox.get(key) ?? []), clock[d]! + hw.latency + bytesOf(plan, s.buffer) / hw.bandwidth]);
        } else if (s.kind === 'recv') {
          const t = Math.max(clock[d]!, inbox.get(`${s.peer}>${d}`)!.shift()!);
          comm[d] += t - clock[d]!;
          clock[d] = t;
        }
      }
    }
    // collectives whose whole group is waiting at the same one
    for (let d = 0; d < p; d++) {
      const s = plans[d]!.steps[pos[d]!];
      if (s?.kind !== 'collective' || s.group[0] !== d) continue;
      const at = s.group.map((q) => plans[q]!.steps[pos[q]!]);
      if (!at.every((t) => t?.kind === 'collective' && t.op === s.op && t.group.join() === s.group.join())) continue;
      const end = Math.max(...s.group.map((q) => clock[q]!)) + collectiveSeconds(s.op, bytesOf(plans[d]!, s.buffer), s.group.length, hw);
      for (const q of s.group) {
        comm[q] += end - clock[q]!;
        clock[q] = end;
        pos[q]!++;
      }
      progress = true;
    }
  }
  const stuck = plans.flatMap((plan, d) => (pos[d]! < plan.steps.length ? [`device ${d} at step ${pos[d]} (${plan.steps[pos[d]!]!.kind})`] : []));
  if (stuck.length) throw new ScheduleError(`simulate step: the devices' plans deadlock (${stuck.join('; ')})`);
  return {
    stepTime: Math.max(0, ...clock) + (hw.stepOverhead ?? 0),
    devices: Array.from({ length: p }, (_, d) => ({ compute: compute[d]!, communication: comm[d]!, launches: launches[d]! })),
  };
}
