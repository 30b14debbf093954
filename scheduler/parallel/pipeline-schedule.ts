// Pipeline schedules as data: for each device, the ordered list of passes (forward F, backward B,
// and with a split backward the weight-gradient pass W) over micro-batches and stages that the
// runtime executes. GPipe, 1F1B, interleaved 1F1B (v virtual stages per device, Megatron-LM's
// order) and zero-bubble ZB-H1 (Qi et al., ICLR 2024). `validateSchedule` checks that a schedule
// runs every pass once, on its stage's device, without a deadlock. It does not time anything
// (simulator.ts does) and knows nothing of graphs (pipeline-partition.ts makes the stages).

import { RheoError } from '../../graphs/errors.js';

/** F: forward; B: backward (input gradients only when the schedule splits the backward); W: weight gradients. */
export type PipelinePass = 'F' | 'B' | 'W';

export interface PipelineOp {
  readonly op: PipelinePass;
  readonly micro: number;
  readonly stage: number;
}

export type ScheduleKind = 'gpipe' | '1f1b' | 'interleaved-1f1b' | 'zb-h1';

export interface PipelineSchedule {
  readonly kind: ScheduleKind;
  /** pipeline devices p */
  readonly devices: number;
  /** stages p·v (v virtual stages per device) */
  readonly stages: number;
  /** micro-batches m per step (gradients accumulate over them) */
  readonly micros: number;
  /** B computes input gradients only and W the weight gradients (else B does both) */
  readonly splitBackward: boolean;
  /** the device each stage runs on */
  readonly stageDevice: readonly number[];
  /** per device, its passes in the order it runs them */
  readonly ops: readonly (readonly PipelineOp[])[];
}

/** A schedule that cannot run as given: names the device, the pass and what is wrong. */
export class ScheduleError extends RheoError {}

const F = (micro: number, stage: number): PipelineOp => ({ op: 'F', micro, stage });
const B = (micro: number, stage: number): PipelineOp => ({ op: 'B', micro, stage });
const W = (micro: number, stage: number): PipelineOp => ({ op: 'W', micro, stage });

function checkSizes(p: number, m: number, v = 1): void {
  for (const [what, n] of [['devices', p], ['micro-batches', m], ['virtual stages', v]] as const) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`pipeline schedule: ${what} must be a positive integer, got ${n}`);
  }
}

const identity = (p: number) => Array.from({ length: p }, (_, d) => d);

/** GPipe: every forward, then every backward; keeps all m micro-batches' activations. */
export function gpipe(p: number, m: number): PipelineSchedule {
  checkSizes(p, m);
  const ops = identity(p).map((d) => [...Array.from({ length: m }, (_, i) => F(i, d)), ...Array.from({ length: m }, (_, i) => B(i, d))]);
  return { kind: 'gpipe', devices: p, stages: p, micros: m, splitBackward: false, stageDevice: identity(p), ops };
}

/** 1F1B (PipeDream-Flush): p−d−1 warm-up forwards on device d, then one forward, one backward. */
export function oneFOneB(p: number, m: number): PipelineSchedule {
  checkSizes(p, m);
  const ops = identity(p).map((d) => {
    const warm = Math.min(p - d - 1, m);
    const list: PipelineOp[] = [];
    for (let i = 0; i < warm; i++) list.push(F(i, d));
    for (let i = 0; i < m - warm; i++) list.push(F(warm + i, d), B(i, d));
    for (let i = m - warm; i < m; i++) list.push(B(i, d));
    return list;
  });
  return { kind: '1f1b', devices: p, stages: p, micros: m, splitBackward: false, stageDevice: identity(p), ops };
}

/**
 * Interleaved 1F1B (Narayanan et al., 2021): device d holds the v stages d, d+p, …, d+(v−1)p and
 * runs micro-batches in groups of p through one chunk after another. m must be a multiple of p.
 */
export function interleaved1F1B(p: number, m: number, v: number): PipelineSchedule {
  checkSizes(p, m, v);
  if (m % p !== 0) throw new RangeError(`interleaved 1F1B: micro-batches (${m}) must be a multiple of devices (${p})`);
  const total = m * v;
  // the k-th forward (backward) of a device: its chunk and micro-batch, in Megatron-LM's order
  const fwd = (d: number, k: number) => F(Math.floor(k / (p * v)) * p + (k % p), Math.floor(k / p) % v * p + d);
  const bwd = (d: number, k: number) => B(Math.floor(k / (p * v)) * p + (k % p), (v - 1 - (Math.floor(k / p) % v)) * p + d);
  const ops = identity(p).map((d) => {
    const warm = v === 1 ? Math.min(p - d - 1, m) : Math.min((p - d - 1) * 2 + (v - 1) * p, total);
    const list: PipelineOp[] = [];
    for (let k = 0; k < warm; k++) list.push(fwd(d, k));
    for (let k = 0; k < total - warm; k++) list.push(fwd(d, warm + k), bwd(d, k));
    for (let k = total - warm; k < total; k++) list.push(bwd(d, k));
    return list;
  });
  const stageDevice = Array.from({ length: p * v }, (_, s) => s % p);
  return { kind: 'interleaved-1f1b', devices: p, stages: p * v, micros: m, splitBackward: false, stageDevice, ops };
}

/**
 * ZB-H1 (Qi et al., 2024): the backward split into B (input gradients, on the critical path) and
 * W (weight gradients, free to move). Each device runs its F and B passes in 1F1B's order and
 * puts a pending W wherever its next F or B would wait, or where a forward would otherwise hold
 * more than p micro-batches (1F1B's peak, on its first device) between F and W. Where to wait is
 * found by list-scheduling with equal F, B and W times.
 */
export function zbH1(p: number, m: number): PipelineSchedule {
  checkSizes(p, m);
  const order = oneFOneB(p, m).ops;
  const ops: PipelineOp[][] = identity(p).map(() => []);
  const fDone: number[][] = identity(p).map(() => []); // finish time of F(i) on stage d
  const bDone: number[][] = identity(p).map(() => []);
  const st = identity(p).map(() => ({ k: 0, f: 0, b: 0, w: 0, free: 0 }));
  const readyAt = (d: number, o: PipelineOp): number =>
    o.op === 'F' ? (d === 0 ? 0 : fDone[d - 1]![o.micro] ?? Infinity) : d === p - 1 ? fDone[d]![o.micro]! : bDone[d + 1]![o.micro] ?? Infinity;
  /** what device d does next and when it can start */
  const choice = (d: number): [number, PipelineOp] | null => {
    const s = st[d]!;
    const o = order[d]![s.k];
    const w: PipelineOp | null = s.w < s.b ? W(s.w, d) : null;
    if (!o) return w ? [s.free, w] : null;
    if (o.op === 'F' && s.f - s.w >= p && w) return [s.free, w];
    const r = Math.max(s.free, readyAt(d, o));
    return r > s.free && w ? [s.free, w] : [r, o];
  };
  for (let left = 3 * m * p; left > 0; left--) {
    let best = -1;
    let pick: [number, PipelineOp] | null = null;
    for (let d = p - 1; d >= 0; d--) {
      const c = choice(d);
      if (c && c[0] < (pick?.[0] ?? Infinity)) [best, pick] = [d, c];
    }
    if (!pick || pick[0] === Infinity) throw new ScheduleError(`ZB-H1: no device can proceed (p=${p}, m=${m})`);
    const [t, o] = pick;
    const s = st[best]!;
    s.free = t + 1;
    ops[best]!.push(o);
    if (o.op === 'W') s.w++;
    else {
      s.k++;
      if (o.op === 'F') fDone[best]![s.f++] = t + 1;
      else bDone[best]![s.b++] = t + 1;
    }
  }
  return { kind: 'zb-h1', devices: p, stages: p, micros: m, splitBackward: true, stageDevice: identity(p), ops };
}

/** The passes an op waits for (other than the ones before it on its own device). */
export function dependencies(s: Pick<PipelineSchedule, 'stages' | 'splitBackward'>, o: PipelineOp): PipelineOp[] {
  if (o.op === 'F') return o.stage === 0 ? [] : [F(o.micro, o.stage - 1)];
  if (o.op === 'B') return o.stage === s.stages - 1 ? [F(o.micro, o.stage)] : [F(o.micro, o.stage), B(o.micro, o.stage + 1)];
  return [B(o.micro, o.stage)];
}

export const opKey = (o: PipelineOp): string => `${o.op}${o.micro}@${o.stage}`;

/**
 * Checks that each pass of every (micro-batch, stage) appears exactly once, on its stage's device,
 * and that the devices can run their lists in order without waiting on each other forever.
 * Returns an order in which a single thread may run all the passes (a topological order).
 */
export function validateSchedule(s: PipelineSchedule): PipelineOp[] {
  if (s.ops.length !== s.devices) throw new ScheduleError(`schedule ${s.kind}: ${s.ops.length} op lists for ${s.devices} devices`);
  if (s.stageDevice.length !== s.stages) throw new ScheduleError(`schedule ${s.kind}: stageDevice names ${s.stageDevice.length} stages, not ${s.stages}`);
  const passes: PipelinePass[] = s.splitBackward ? ['F', 'B', 'W'] : ['F', 'B'];
  const seen = new Set<string>();
  s.ops.forEach((list, d) => {
    for (const o of list) {
      if (!passes.includes(o.op)) throw new ScheduleError(`schedule ${s.kind}, device ${d}: pass ${o.op} in a schedule ${s.splitBackward ? 'with' : 'without'} a split backward`);
      if (!(o.micro >= 0 && o.micro < s.micros && o.stage >= 0 && o.stage < s.stages)) throw new ScheduleError(`schedule ${s.kind}, device ${d}: ${opKey(o)} is out of range`);
      if (s.stageDevice[o.stage] !== d) throw new ScheduleError(`schedule ${s.kind}, device ${d}: ${opKey(o)} belongs to device ${s.stageDevice[o.stage]}`);
      if (seen.has(opKey(o))) throw new ScheduleError(`schedule ${s.kind}, device ${d}: ${opKey(o)} appears twice`);
      seen.add(opKey(o));
    }
  });
  const want = s.micros * s.stages * passes.length;
  if (seen.size !== want) throw new ScheduleError(`schedule ${s.kind}: ${seen.size} passes where ${want} are needed`);
  const done = new Set<string>();
  const pos = s.ops.map(() => 0);
  const order: PipelineOp[] = [];
  for (let progress = true; progress;) {
    progress = false;
    s.ops.forEach((list, d) => {
      while (pos[d]! < list.length && dependencies(s, list[pos[d]!]!).every((x) => done.has(opKey(x)))) {
        const o = list[pos[d]!++]!;
        done.add(opKey(o));
        order.push(o);
        progress = true;
      }
    });
  }
  const stuck = s.ops.map((list, d) => (pos[d]! < list.length ? `device ${d} at ${opKey(list[pos[d]!]!)}` : '')).filter(Boolean);
  if (stuck.length) throw new ScheduleError(`schedule ${s.kind} deadlocks: ${stuck.join('; ')}`);
  return order;
}
