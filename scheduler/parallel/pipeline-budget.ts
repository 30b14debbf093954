// Memory budgets for pipeline programs (pipeline-mesh.ts): what a device holds at each pass besides
// the pass's own values (its store of params, optimizer state and accumulators, the values kept
// for later passes of in-flight micro-batches, feeds and received tensors), the peak that predicts,
// and each pass rematerialized (scheduler/remat-plan.ts) into what a per-device budget leaves it.
// It plans; it runs nothing.

import type { DType } from '../../graphs/types.js';
import { numel } from '../../graphs/types.js';
import { bufferBytes, type DeviceCaps } from '../caps.js';
import type { Plan, PlannedBuffer } from '../plan.js';
import { rematerializePlan, type RematOptions } from '../remat-plan.js';
import { BudgetError } from '../remat/plan-types.js';
import type { DeviceId, PlanStep } from '../steps.js';
import { PipelineError } from './pipeline-partition.js';
import type { DeviceOp, MeshPipelinePlan, PassProgram, StoreEntry } from './pipeline-mesh.js';

const bytesOfEntry = (caps: DeviceCaps, dtype: string, elements: number) => bufferBytes(caps, dtype as DType, elements);

/** Per op: bytes held outside the pass's own computed values (store, kept values, feeds). */
function fixedPerOp(passes: readonly PassProgram[], ops: readonly DeviceOp[], store: readonly StoreEntry[], caps: DeviceCaps): number[] {
  const storeBytes = store.reduce((a, e) => a + bytesOfEntry(caps, e.dtype, numel(e.shape as number[])), 0);
  const held = new Map<string, number>();
  let keptBytes = 0;
  return ops.map((o) => {
    const p = passes[o.pass]!;
    const feeds = p.inputs.filter((x) => x.kind === 'feed').reduce((a, x) => a + bytesOfEntry(caps, p.plan.buffers.get(x.node)!.dtype, p.plan.buffers.get(x.node)!.elements), 0);
    const fixed = storeBytes + keptBytes + feeds;
    const hold = (name: string, key: string) => {
      const id = p.plan.outputs[name]!;
      const b = p.plan.buffers.get(id) ?? { dtype: p.plan.graph.nodes[id]!.dtype, elements: numel(p.plan.shapes[id] as number[]) };
      const bytes = bytesOfEntry(caps, b.dtype, b.elements);
      held.set(key, bytes);
      keptBytes += bytes;
    };
    for (const name of p.keep) hold(name, `${o.stage}#${o.micro}/${name}`);
    for (const [name, stage, as] of p.handoff) hold(name, `${stage}#${o.micro}/${as}`);
    for (const name of o.release) {
      keptBytes -= held.get(`${o.stage}#${o.micro}/${name}`) ?? 0;
      held.delete(`${o.stage}#${o.micro}/${name}`);
    }
    return fixed;
  });
}

/** The most a device holds at once by its plans: fixed bytes at each op plus the pass's peak. */
export function predictPeak(passes: readonly PassProgram[], ops: readonly DeviceOp[], store: readonly StoreEntry[], caps: DeviceCaps): number {
  const fixed = fixedPerOp(passes, ops, store, caps);
  return ops.reduce((a, o, i) => Math.max(a, fixed[i]! + recvBytes(passes[o.pass]!.plan, caps) + passes[o.pass]!.plan.peakBytes), 0);
}

/** Bytes of received buffers a plan creates (counted beside its peak: they are not launches). */
function recvBytes(plan: Plan, caps: DeviceCaps): number {
  return plan.steps.filter((s) => s.kind === 'recv').reduce((a, s) => a + bytesOfEntry(caps, plan.buffers.get((s as { buffer: number }).buffer)!.dtype, plan.buffers.get((s as { buffer: number }).buffer)!.elements), 0);
}

/**
 * Rematerializes each device's passes so that the device holds at most its budget: a pass's
 * computed values get what the budget leaves after the store, the values kept for other passes
 * and the feeds and received tensors at the op where those are largest. An infeasible budget is
 * a BudgetError naming the smallest budget every device could meet (and each failing device's).
 */
export function fitBudget(plan: MeshPipelinePlan, budget: number | readonly number[], caps: DeviceCaps, remat: RematOptions): MeshPipelinePlan {
  const failures: { device: DeviceId; budget: number; least: number; fixed: number }[] = [];
  const devices = plan.devices.map((dp) => {
    const b = typeof budget === 'number' ? budget : budget[dp.device];
    if (b === undefined) throw new PipelineError(`pipeline: no memory budget for device ${dp.device}`);
    const fixed = fixedPerOp(dp.passes, dp.ops, dp.store, caps);
    const worst = dp.passes.map((p, i) => Math.max(0, ...dp.ops.map((o, j) => (o.pass === i ? fixed[j]! + recvBytes(p.plan, caps) : 0))));
    const fitted: PassProgram[] = [];
    let failed = false;
    dp.passes.forEach((p, i) => {
      try {
        fitted.push(fitPass(p, b, worst[i]!, remat));
      } catch (e) {
        if (!(e instanceof BudgetError)) throw e;
        failed = true;
      }
    });
    if (failed) {
      // the smallest budget at which every pass fits: each pass at its least peak
      const least = dp.passes.map((p, i) => {
        try {
          return fitPass(p, 0, worst[i]!, remat).plan.peakBytes + worst[i]!;
        } catch (e) {
          if (e instanceof BudgetError) return e.minimumFeasible;
          throw e;
        }
      });
      failures.push({ device: dp.device, budget: b, least: Math.max(...least), fixed: Math.max(...worst) });
    }
    return { ...dp, passes: fitted, predictedPeakBytes: failed ? Infinity : predictPeak(fitted, dp.ops, dp.store, caps) };
  });
  if (failures.length) {
    const worst = failures.reduce((a, f) => (f.least > a.least ? f : a));
    const detail = failures.map((f) => `device ${f.device} needs ${f.least} bytes, ${f.fixed} of them params, optimizer state, accumulated gradients, kept activations, feeds and received tensors`).join('; ');
    throw new BudgetError(worst.budget, worst.least, Math.max(...failures.map((f) => f.fixed)), `${plan.schedule.kind} pipeline: ${detail}`);
  }
  return { ...plan, devices };
}

/** One pass planned again within `budget - fixed` bytes of computed values, transfers kept in place. */
function fitPass(p: PassProgram, budget: number, fixed: number, remat: RematOptions): PassProgram {
  if (p.plan.peakBytes + fixed <= budget) return p;
  // plan the launches alone (transfers and the final free come back after)
  const transfers = p.plan.steps.filter((s) => s.kind === 'send' || s.kind === 'recv');
  const received = new Set(transfers.filter((s) => s.kind === 'recv').map((s) => (s as { buffer: number }).buffer));
  const sentNodes = transfers.filter((s) => s.kind === 'send').map((s) => s as { buffer: number; peer: number });
  const outputs = { ...p.plan.outputs };
  for (const s of sentNodes) outputs[`sent/${s.buffer}`] = s.buffer;
  const buffers = new Map([...p.plan.buffers].map(([id, b]) => [id, received.has(id) ? { ...b, role: 'input' as const } : sentNodes.some((s) => s.buffer === id) ? { ...b, role: 'output' as const } : b]));
  const launchesOnly = p.plan.steps.filter((s) => s.kind === 'launch');
  const bare: Plan = { ...p.plan, caps: { ...p.plan.caps, inPlace: false }, steps: freesAfterLastUse(launchesOnly, buffers, new Set(Object.values(outputs))), buffers, outputs };
  const fitted = rematerializePlan(bare, budget, fixed, remat);
  const steps: PlanStep[] = [...transfers.filter((s) => s.kind === 'recv'), ...fitted.steps, ...transfers.filter((s) => s.kind === 'send')];
  const ends = new Set(Object.values(p.plan.outputs));
  const live = new Set<number>();
  for (const s of steps) {
    if (s.kind === 'launch' && s.output === s.node) live.add(s.node);
    if (s.kind === 'recv') live.add(s.buffer);
    if (s.kind === 'free') for (const b of s.buffers) live.delete(b);
  }
  const dead = [...live].filter((id) => !ends.has(id));
  if (dead.length) steps.push({ kind: 'free', buffers: dead });
  return { ...p, plan: { ...fitted, steps, buffers: p.plan.buffers, outputs: p.plan.outputs } };
}

/** Launches with a free after each computed buffer's last read (outputs stay to the end). */
function freesAfterLastUse(launches: readonly PlanStep[], buffers: ReadonlyMap<number, PlannedBuffer>, ends: ReadonlySet<number>): PlanStep[] {
  const last = new Map<number, number>();
  launches.forEach((s, i) => { if (s.kind === 'launch') for (const j of s.inputs) last.set(j, i); });
  const computed = (id: number) => buffers.get(id)?.role === 'intermediate' || buffers.get(id)?.role === 'output';
  const out: PlanStep[] = [];
  launches.forEach((s, i) => {
    out.push(s);
    if (s.kind !== 'launch') return;
    const dead = [...new Set(s.inputs)].filter((j) => last.get(j) === i && computed(j) && !ends.has(j));
    if (dead.length) out.push({ kind: 'free', buffers: dead });
  });
  return out;
}

