// Plan steps: what a device is told to do, in order. A plan is a list of these and nothing else
// decides when a buffer exists: a `launch` creates its output (or writes a variable in place), a
// `free` ends buffers, a recomputation is a launch of a kernel already run. `send`, `recv` and
// `collective` move buffers between devices of a mesh. This module validates a step list and
// computes the memory it holds; it does not run anything (runtime/plan-interpreter.ts does).

import { RheoError } from '../graphs/errors.js';
import type { Kernel } from '../ops/kernel-ir.js';

/** A buffer is named by the graph node whose value it holds. */
export type BufferId = number;
/** A device of a mesh, by its index in the mesh. */
export type DeviceId = number;

export interface LaunchStep {
  readonly kind: 'launch';
  readonly kernel: Kernel;
  /** the node whose value this launch computes */
  readonly node: BufferId;
  /** buffers the kernel reads, in the kernel's input order */
  readonly inputs: readonly BufferId[];
  /**
   * the buffer written: `node` itself (a new buffer), or a param/state node whose buffer the
   * value is computed into in place (only on devices with `caps.inPlace`)
   */
  readonly output: BufferId;
  /** nodes inlined into this kernel (including `node`) */
  readonly fused: readonly number[];
  /** this value was computed before in the same plan and freed: a rematerialization */
  readonly recompute: boolean;
}

export interface FreeStep {
  readonly kind: 'free';
  readonly buffers: readonly BufferId[];
}

export interface SendStep {
  readonly kind: 'send';
  readonly buffer: BufferId;
  readonly peer: DeviceId;
}

export interface RecvStep {
  readonly kind: 'recv';
  readonly buffer: BufferId;
  readonly peer: DeviceId;
}

export type CollectiveOp = 'all-reduce' | 'all-gather' | 'reduce-scatter' | 'all-to-all';

export interface CollectiveStep {
  readonly kind: 'collective';
  readonly op: CollectiveOp;
  readonly buffer: BufferId;
  readonly group: readonly DeviceId[];
}

export type PlanStep = LaunchStep | FreeStep | SendStep | RecvStep | CollectiveStep;

/** A step list that breaks the rules below; names the step and what is wrong. */
export class PlanError extends RheoError {
  constructor(readonly step: number, detail: string) {
    super(`plan step ${step}: ${detail}`);
  }
}

export interface StepContext {
  /** buffers that exist before the first step and are never freed: inputs, params, state, constants */
  readonly resident: ReadonlySet<BufferId>;
  /** buffers that must still exist after the last step (outputs, update values not computed in place) */
  readonly kept: ReadonlySet<BufferId>;
  /** bytes of the buffer of a computed node */
  readonly bytes: (id: BufferId) => number;
  /** this device's id and the mesh size, for send/recv/collective (a single device: 0 of 1) */
  readonly self?: DeviceId;
  readonly devices?: number;
}

/**
 * Checks a step list and returns the peak bytes of computed values it holds at once. Rules: a
 * launch reads only resident or live buffers and writes a buffer that is not live (or, in place,
 * a resident one); a free ends live computed buffers only; a recv makes a buffer live, a send or
 * collective needs it live; peers are other devices of the mesh; at the end exactly the kept
 * buffers are live (nothing leaks).
 */
export function validateSteps(steps: readonly PlanStep[], ctx: StepContext): { peakBytes: number } {
  const live = new Set<BufferId>();
  const seen = new Set<BufferId>();
  /** values computed into a variable's buffer: readable from then on, never freed */
  const inPlace = new Set<BufferId>();
  const self = ctx.self ?? 0;
  const devices = ctx.devices ?? 1;
  let bytes = 0;
  let peak = 0;
  const peer = (i: number, p: DeviceId) => {
    if (!Number.isInteger(p) || p < 0 || p >= devices) throw new PlanError(i, `peer ${p} is not a device of this mesh of ${devices}`);
    if (p === self) throw new PlanError(i, `peer ${p} is this device`);
  };
  const readable = (i: number, id: BufferId, what: string) => {
    if (!live.has(id) && !ctx.resident.has(id) && !inPlace.has(id)) throw new PlanError(i, `${what} buffer ${id}, which is ${seen.has(id) ? 'freed' : 'not computed yet'}`);
  };
  const create = (i: number, id: BufferId) => {
    if (live.has(id)) throw new PlanError(i, `buffer ${id} is written while it is live`);
    if (ctx.resident.has(id)) throw new PlanError(i, `buffer ${id} is an input, param, state or constant`);
    live.add(id);
    seen.add(id);
    bytes += ctx.bytes(id);
    peak = Math.max(peak, bytes);
  };
  steps.forEach((s, i) => {
    switch (s.kind) {
      case 'launch': {
        for (const j of s.inputs) readable(i, j, 'reads');
        if (s.recompute !== seen.has(s.node)) throw new PlanError(i, `node ${s.node} is ${s.recompute ? 'marked a recomputation but was never computed' : 'computed again without being marked a recomputation'}`);
        if (s.output === s.node) create(i, s.node);
        else {
          if (!ctx.resident.has(s.output)) throw new PlanError(i, `writes node ${s.node} in place into ${s.output}, which is not a param or state buffer`);
          seen.add(s.node);
          inPlace.add(s.node);
        }
        break;
      }
      case 'free':
        for (const id of s.buffers) {
          if (!live.has(id)) throw new PlanError(i, `frees buffer ${id}, which is not live`);
          live.delete(id);
          bytes -= ctx.bytes(id);
        }
        break;
      case 'recv':
        peer(i, s.peer);
        create(i, s.buffer);
        break;
      case 'send':
        peer(i, s.peer);
        readable(i, s.buffer, 'sends');
        break;
      case 'collective': {
        if (s.group.length < 2 || new Set(s.group).size !== s.group.length) throw new PlanError(i, `collective group [${s.group.join(', ')}] needs two or more distinct devices`);
        if (!s.group.includes(self)) throw new PlanError(i, `collective group [${s.group.join(', ')}] does not include this device (${self})`);
        for (const d of s.group) if (d !== self) peer(i, d);
        readable(i, s.buffer, `${s.op} of`);
        break;
      }
    }
  });
  for (const id of ctx.kept) if (!live.has(id) && !ctx.resident.has(id) && !seen.has(id)) throw new PlanError(steps.length, `kept buffer ${id} is never computed`);
  for (const id of ctx.kept) if (seen.has(id) && !live.has(id) && !ctx.resident.has(id) && !inPlace.has(id)) throw new PlanError(steps.length, `kept buffer ${id} is freed before the end`);
  const leaked = [...live].filter((id) => !ctx.kept.has(id));
  if (leaked.length) throw new PlanError(steps.length, `buffers ${leaked.join(', ')} are never freed`);
  return { peakBytes: peak };
}

/** The launch steps of a list, in order. */
export function launches(steps: readonly PlanStep[]): LaunchStep[] {
  return steps.filter((s): s is LaunchStep => s.kind === 'launch');
}
