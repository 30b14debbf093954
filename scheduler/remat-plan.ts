// Rematerialization of an execution plan: the plan's kernel steps become a cost graph (compute
// estimated from each kernel, bytes of each computed value), the planner in scheduler/remat/
// chooses which values to recompute instead of keeping, and the result is a plan whose steps
// may repeat kernels and that releases each value after its last read. Recomputed values are
// bit-identical: kernels are deterministic and dropout draws from (seed, index).

import type { DType } from '../graphs/types.js';
import { linearize, outVars, type Kernel } from '../ops/kernel-ir.js';
import { bufferBytes } from './caps.js';
import { planLaunches, residentBuffers, type Plan } from './plan.js';
import type { RematInfo } from './remat-info.js';
import { validateSteps, type LaunchStep, type PlanStep } from './steps.js';
import { chenSchedule } from './remat/chen.js';
import type { CostGraph } from './remat/cost-graph.js';
import { BudgetError } from './remat/plan-types.js';
import { minimumPlan, planRematerialization, type PlannerOptions, type RematResult } from './remat/planner.js';
import { baselinePeak, memoryLowerBound, simulate, type RematSchedule } from './remat/schedule.js';

export interface RematOptions extends PlannerOptions {
  /**
   * 'planner' (default): the schedule planRematerialization finds for the budget. 'chen': Chen's
   * √n checkpointing of the forward pass (remat/chen.ts), whatever the budget; a BudgetError
   * when its peak does not fit.
   */
  schedule?: 'planner' | 'chen';
}

export type { RematInfo } from './remat-info.js';

/** Rough cost of a kernel in scalar operations: enough to rank recomputations. */
export function kernelCost(k: Kernel): number {
  const numel = k.out.shape.reduce((a, b) => a * b, 1);
  if (k.kind === 'matmul') return 2 * k.m * k.n * k.k * k.batch.reduce((a, b) => a * b, 1) + numel;
  if (k.kind === 'scatterAdd') return numel + k.rows * k.inner;
  let work = 0;
  const walk = (e: unknown, mult: number): void => {
    if (!e || typeof e !== 'object') return;
    const x = e as { k?: string; vars?: { size: number }[]; body?: unknown };
    if (x.k === 'reduce') {
      walk(x.body, mult * x.vars!.reduce((a, v) => a * v.size, 1));
      return;
    }
    if (x.k) work += mult;
    for (const v of Object.values(x)) if (v && typeof v === 'object') walk(v, mult);
  };
  walk(k.expr, 1);
  return numel * Math.max(1, work);
}

function valueBytes(plan: Plan, node: number): number {
  const b = plan.buffers.get(node)!;
  return bufferBytes(plan.caps, b.dtype as DType, b.elements);
}

/**
 * The plan as a cost graph: node i is step i; a final zero-cost node reads every output and
 * update value, so those stay resident (or are recomputed) until the run ends.
 */
export function planCostGraph(plan: Plan, inPlace: ReadonlyMap<number, number> = new Map()): CostGraph {
  const kernels = planLaunches(plan);
  const stepOf = new Map(kernels.map((s, i) => [s.node, i]));
  const nodes = kernels.map((s, i) => ({ id: i, name: s.kernel.name, compute: kernelCost(s.kernel), bytes: inPlace.has(s.node) ? 0 : valueBytes(plan, s.node) }));
  const edges: [number, number][] = [];
  kernels.forEach((s, i) => {
    for (const j of new Set(s.inputs)) {
      const p = stepOf.get(j);
      if (p !== undefined) edges.push([p, i]);
    }
  });
  const end = nodes.length;
  nodes.push({ id: end, name: 'end of run', compute: 0, bytes: 0 });
  const kept = new Set([...Object.values(plan.outputs), ...plan.graph.updates.map((u) => u.value).filter((v) => !inPlace.has(v))]);
  for (const id of kept) {
    const p = stepOf.get(id);
    if (p !== undefined) edges.push([p, end]);
  }
  // every other sink (e.g. an update computed in place) precedes the end too, so the end is
  // the last step of any schedule and what it keeps is resident until the run is over
  const hasSucc = new Set(edges.map(([a]) => a));
  for (let i = 0; i < end; i++) if (!hasSucc.has(i)) edges.push([i, end]);
  return { nodes, edges };
}

/**
 * A plan that fits `budgetBytes` in all (fixed bytes plus the peak of computed values), or a
 * BudgetError stating the smallest budget the planner can meet.
 */
export function rematerializePlan(plan: Plan, budgetBytes: number, fixedBytes: number, opts: RematOptions = {}): Plan & { remat: RematInfo } {
  // a device that cannot write a buffer it reads (WebGPU) keeps update values apart from their targets
  let inPlace = plan.caps.inPlace ? inPlaceCandidates(plan) : new Map<number, number>();
  const candidates = inPlace;
  const graphs = costGraphs(plan);
  for (;;) {
    let result;
    try {
      result = scheduleFor(plan, graphs(inPlace), budgetBytes - fixedBytes, opts);
    } catch (e) {
      // Each retry below plans a different problem (fewer updates in place, more bytes), so
      // the minimum a failing attempt would name depends on the budget asked: name the
      // budget-independent one instead, and plan at it when it fits.
      if (!(e instanceof BudgetError)) throw e;
      return atSmallestPeak(plan, budgetBytes, fixedBytes, opts, candidates, graphs);
    }
    const unsafe = unsafeInPlace(plan, result.plan.schedule, inPlace);
    if (!unsafe.length) return planWith(plan, budgetBytes, fixedBytes, inPlace, result);
    inPlace = new Map([...inPlace].filter(([v]) => !unsafe.includes(v)));
  }
}

type Scheduled = RematResult | ReturnType<typeof chenResult>;

/** The planner's schedule (or Chen's) within `budget` bytes of computed values, or a BudgetError. */
function scheduleFor(plan: Plan, cg: CostGraph, budget: number, opts: RematOptions): Scheduled {
  return opts.schedule === 'chen' ? chenResult(plan, cg, budget) : planRematerialization(cg, budget, opts);
}

/** Updates a schedule computes in place although it recomputes them or later reads their target. */
function unsafeInPlace(plan: Plan, schedule: RematSchedule, inPlace: ReadonlyMap<number, number>): number[] {
  const kernels = planLaunches(plan);
  const launched = schedule.steps.filter((s) => s.node < kernels.length).map((s) => kernels[s.node]!);
  return [...inPlace.keys()].filter((v) => !inPlaceSafe(launched, v, inPlace.get(v)!));
}

/** One cost graph per set of in-place updates, so that a search over it is made once. */
function costGraphs(plan: Plan): (inPlace: ReadonlyMap<number, number>) => CostGraph {
  const made = new Map<string, CostGraph>();
  return (inPlace) => {
    const key = [...inPlace.keys()].sort((a, b) => a - b).join(',');
    let cg = made.get(key);
    if (!cg) made.set(key, (cg = planCostGraph(plan, inPlace)));
    return cg;
  };
}

/**
 * The plan of least peak the planner knows (minimumPlan, or Chen's schedule), or a BudgetError
 * naming that peak plus the fixed bytes when even it does not fit. It starts from every
 * in-place candidate and computes apart the updates its schedule makes unsafe, until none is:
 * the result depends on the plan alone, never on the budget asked nor on the attempts that
 * failed, so every infeasible budget names the same minimum, and asking at it succeeds.
 */
function atSmallestPeak(
  plan: Plan, budgetBytes: number, fixedBytes: number, opts: RematOptions,
  candidates: ReadonlyMap<number, number>, graphs: (inPlace: ReadonlyMap<number, number>) => CostGraph,
): Plan & { remat: RematInfo } {
  const lowerBound = memoryLowerBound(graphs(candidates)) + fixedBytes;
  let inPlace = candidates;
  for (;;) {
    const cg = graphs(inPlace);
    const min = opts.schedule === 'chen' ? { ...chenResult(plan, cg, Infinity), exact: true } : minimumPlan(cg);
    const unsafe = unsafeInPlace(plan, min.plan.schedule, inPlace);
    if (unsafe.length) {
      inPlace = new Map([...inPlace].filter(([v]) => !unsafe.includes(v)));
      continue;
    }
    const peak = min.plan.stats.peak + fixedBytes;
    if (peak <= budgetBytes) return planWith(plan, budgetBytes, fixedBytes, inPlace, min);
    const detail = [
      `${fixedBytes} bytes are params, state, constants and inputs; the rest is the peak of computed values`,
      ...(opts.schedule === 'chen' ? ["Chen's √n schedule peaks there"] : []),
      ...(min.exact ? [] : ['the search for the smallest budget ran out of time; the number is an upper estimate']),
    ];
    throw new BudgetError(budgetBytes, peak, lowerBound, detail.join('; '));
  }
}

/** Update values whose kernel reads the target only at the element it writes. */
function inPlaceCandidates(plan: Plan): Map<number, number> {
  const out = new Map<number, number>();
  const stepOf = new Map(planLaunches(plan).map((s) => [s.node, s]));
  for (const u of plan.graph.updates) {
    const s = stepOf.get(u.value);
    if (!s || s.kernel.kind !== 'map' || Object.values(plan.outputs).includes(u.value)) continue;
    const j = s.inputs.indexOf(u.target);
    if (j >= 0 && !loadsOnlyAtOutputIndex(s.kernel.expr, j, s.kernel.out.shape)) continue;
    out.set(u.value, u.target);
  }
  return out;
}

function loadsOnlyAtOutputIndex(e: unknown, buf: number, shape: readonly number[]): boolean {
  const want = JSON.stringify(linearize(outVars(shape.length), shape));
  let ok = true;
  const walk = (x: unknown): void => {
    if (!ok || !x || typeof x !== 'object') return;
    const n = x as { k?: string; buf?: number; at?: unknown };
    if (n.k === 'load' && n.buf === buf && JSON.stringify(n.at) !== want) ok = false;
    if (n.k === 'loadIndex' && n.buf === buf) ok = false;
    for (const v of Object.values(n)) walk(v);
  };
  walk(e);
  return ok;
}

/** Computed once, and no later step reads the target's old value. */
function inPlaceSafe(steps: readonly LaunchStep[], value: number, target: number): boolean {
  const at = steps.map((s, i) => (s.node === value ? i : -1)).filter((i) => i >= 0);
  if (at.length !== 1) return false;
  return !steps.slice(at[0]! + 1).some((s) => s.inputs.includes(target));
}

/**
 * Steps of the forward pass: those the outputs other than gradients depend on (with an optimizer
 * the plan's outputs are the forward ones). Every step when no output is a gradient.
 */
export function forwardSteps(plan: Plan): number[] {
  const kernels = planLaunches(plan);
  const stepOf = new Map(kernels.map((s, i) => [s.node, i]));
  const stack = Object.entries(plan.outputs).filter(([name]) => !name.startsWith('grad/')).map(([, id]) => id);
  const seen = new Set<number>();
  while (stack.length) {
    const id = stack.pop()!;
    const i = stepOf.get(id);
    if (i === undefined || seen.has(i)) continue;
    seen.add(i);
    stack.push(...kernels[i]!.inputs);
  }
  return [...seen].sort((a, b) => a - b);
}

/** Chen's schedule of the plan's cost graph, in the planner's result shape. */
function chenResult(plan: Plan, cg: CostGraph, budget: number) {
  const t0 = performance.now();
  const { schedule } = chenSchedule(cg, { forward: forwardSteps(plan) });
  const sim = simulate(cg, schedule);
  const lowerBound = memoryLowerBound(cg);
  if (sim.peak > budget) throw new BudgetError(budget, sim.peak, lowerBound, "Chen's √n schedule peaks there");
  const stats = { peak: sim.peak, cost: sim.cost, overhead: sim.overhead, solveMs: performance.now() - t0, solver: 'chen-sqrt-n' };
  return { plan: { schedule, stats }, baseline: baselinePeak(cg), lowerBound };
}

/** The plan of a schedule of the plan's cost graph, with the updates `inPlace` computed into their targets. */
function planWith(plan: Plan, budgetBytes: number, fixedBytes: number, inPlace: ReadonlyMap<number, number>, result: Scheduled): Plan & { remat: RematInfo } {
  // The schedule becomes steps: each evaluation a launch (a recomputation when the value was
  // computed before), then a free of what the schedule releases after it. Values computed in
  // place live in their param/state buffer and are never freed; the end node's step is dropped,
  // so outputs and update values stay live for the interpreter to hand over.
  const kernels = planLaunches(plan);
  const end = kernels.length;
  const steps: PlanStep[] = [];
  const computed = new Set<number>();
  for (const s of result.plan.schedule.steps) {
    if (s.node === end) break;
    const k = kernels[s.node]!;
    const target = inPlace.get(k.node);
    steps.push({ ...k, output: target ?? k.node, recompute: computed.has(k.node) });
    computed.add(k.node);
    const freed = s.free.filter((v) => v !== end).map((v) => kernels[v]!.node).filter((id) => !inPlace.has(id));
    if (freed.length) steps.push({ kind: 'free', buffers: freed });
  }
  const kept = new Set([...Object.values(plan.outputs), ...plan.graph.updates.map((u) => u.value)].filter((id) => computed.has(id) && !inPlace.has(id)));
  const bytes = (id: number) => (inPlace.has(id) ? 0 : valueBytes(plan, id));
  validateSteps(steps, { resident: residentBuffers(plan.buffers), kept, bytes });
  return {
    ...plan,
    steps,
    kernelCount: steps.filter((s) => s.kind === 'launch').length,
    peakBytes: result.plan.stats.peak,
    remat: {
      inPlace,
      peakBytes: result.plan.stats.peak,
      baselineBytes: result.baseline,
      fixedBytes,
      budgetBytes,
      overhead: result.plan.stats.overhead,
      solver: result.plan.stats.solver,
    },
  };
}
