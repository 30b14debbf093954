// The pipeline simulator: runs a schedule (pipeline-schedule.ts) against the cost model — a
// pass takes its FLOPs over the device's achieved FLOP/s plus the tensor-parallel collectives it
// waits for, a cut tensor takes latency plus bytes over the link bandwidth — and predicts step
// time, bubble and per-device peak activation memory, in time linear in the number of passes, for
// meshes far larger than this machine. Sends overlap compute (a device is not busy while its
// message travels). It runs nothing and does not choose a layout.

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
