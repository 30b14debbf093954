// Optimal rematerialization for small graphs: solves the Checkmate MILP of milp.ts with HiGHS
// (WebAssembly) under a time limit, reads the schedule out of the solution and replays it with
// `simulate`; the solver's own memory claim is never trusted. The MILP fixes the order in which
// nodes are first evaluated; we give it the order of the heuristic's plan, whose schedule then
// also serves as the starting incumbent. Graphs beyond a few hundred nodes are too big for it.

import type { Highs } from 'highs';
import { adjacency, topologicallyOrdered, type Adjacency, type CostGraph } from './cost-graph.js';
import { makeContext, profile } from './context.js';
import { discardExactSolver, exactSolver } from './highs.js';
import { defaultTimeLimit, MINIMUM_SEARCH_MS, minimumHeuristicBudget, solveHeuristicSequence, type HeuristicOptions } from './heuristic.js';
import { buildMilp, milpToLp, sequenceFromSolution, stageStart } from './milp.js';
import { budgetError, type RematPlan, type RematStats } from './plan-types.js';
import { memoryLowerBound, plainSchedule, scheduleFromSequence, simulate, totalCompute } from './schedule.js';

export interface ExactOptions {
  /** Wall-clock limit for the whole solve, heuristic start included (default 60 s). */
  timeLimitMs?: number;
  /** Relative MIP gap at which HiGHS stops and calls the result optimal (default 1e-6). */
  mipRelGap?: number;
  /** Options of the heuristic run that supplies the order and the start (default: a fifth of the time). */
  heuristic?: HeuristicOptions;
  /**
   * 'heuristic' (default): the MILP keeps the order in which the heuristic's plan first
   * evaluates nodes. 'graph': the graph's own id order, as in the Checkmate paper; the
   * heuristic then only serves as a fallback.
   */
  order?: 'heuristic' | 'graph';
}

/** Models above this many nonzeros exhaust the 2 GB of the WebAssembly build (ResNet-50 does). */
export const MAX_MILP_NONZEROS = 2_000_000;

export interface MilpResult {
  /** Best sequence found (verified), in the graph's ids; null when there is no incumbent. */
  seq: number[] | null;
  /** HiGHS model status in words, e.g. "optimal", "timeLimit", "infeasible". */
  status: string;
  optimal: boolean;
  /** Lower bound on total cost (sum of compute plus recomputation) proved by HiGHS. */
  costLowerBound?: number;
  /** Whether HiGHS accepted the starting sequence. */
  started: boolean;
  /** False when the model was not given to HiGHS (too large, or the solver still loading). */
  ran?: boolean;
}

/**
 * Solves the MILP for `graph` in its own id order, optionally starting from a stage-form
 * sequence. The returned sequence has been replayed and is within budget.
 */
export function solveMilp(
  graph: CostGraph,
  budget: number,
  options: { timeLimitMs: number; mipRelGap?: number; start?: readonly number[] },
  adj: Adjacency = adjacency(graph),
): MilpResult {
  const t0 = performance.now();
  const milp = buildMilp(graph, budget, adj);
  const nonzeros = milp.rows.reduce((sum, row) => sum + row.terms.length, 0);
  if (nonzeros > MAX_MILP_NONZEROS) return { seq: null, status: `model too large (${nonzeros} nonzeros)`, optimal: false, started: false, ran: false };
  // loaded on first use (highs.ts); null only where it loads asynchronously and is not ready yet
  const h = exactSolver();
  if (!h) return { seq: null, status: 'MILP solver still loading', optimal: false, started: false, ran: false };
  let created: ReturnType<Highs['createModel']> | null = null;
  try {
    const model = h.createModel({ format: 'lp', data: milpToLp(milp) });
    created = model;
    model.options.set({
      output_flag: false,
      time_limit: Math.max(0.05, (options.timeLimitMs - (performance.now() - t0)) / 1000),
      mip_rel_gap: options.mipRelGap ?? 1e-6,
    });
    const numCols = model.getDimensions().numCols;
    const names = Array.from({ length: numCols }, (_, c) => model.getColName(c));
    let started = false;
    const start = options.start ? stageStart(graph, options.start, milp, adj) : null;
    if (start) {
      const indices: number[] = [];
      const values: number[] = [];
      names.forEach((name, c) => {
        const v = start.get(name);
        if (v !== undefined) {
          indices.push(c);
          values.push(v);
        }
      });
      try {
        model.setSolution({ indices, values });
        started = true;
      } catch {
        // A start HiGHS rejects only costs the warm start.
      }
    }
    const run = model.run();
    const ran = true;
    const status = statusName(h, run.modelStatus);
    const optimal = run.modelStatus === h.constants.modelStatus.optimal;
    const dual = Number(model.info.get('mip_dual_bound'));
    const base = totalCompute(graph);
    const bound = Number.isFinite(dual) ? { costLowerBound: base + dual * (base || 1) } : {};
    if (Number(model.info.get('primal_solution_status')) !== 2) return { seq: null, status, optimal: false, started, ran, ...bound };
    const sol = model.getSolution().colValue;
    const value = new Map<string, number>();
    names.forEach((name, c) => name[0] === 'r' && value.set(name, sol[c]!));
    const seq = sequenceFromSolution(graph.nodes.length, (name) => value.get(name) ?? 0, milp.hasR);
    const sim = simulate(graph, scheduleFromSequence(graph, seq, adj), adj);
    if (!sim.valid || sim.peak > budget)
      return { seq: null, status: `${status}; solution rejected: ${sim.error ?? `peak ${sim.peak} > budget ${budget}`}`, optimal: false, started, ran, ...bound };
    return { seq, status, optimal, started, ran, ...bound };
  } catch (e) {
    // an abort (out of WebAssembly memory) leaves the instance unusable: the next solve loads a
    // fresh one. Checked by name: the solver's objects come from another realm (highs.ts).
    const err = e as { name?: unknown; message?: unknown } | null;
    if (err?.name !== 'RuntimeError') throw e;
    discardExactSolver(h);
    created = null;
    return { seq: null, status: `solver aborted (${String(err.message).split('.')[0]})`, optimal: false, started: false, ran: true };
  } finally {
    created?.dispose();
  }
}

/**
 * Rematerialization plan of least compute for `budget` bytes: the heuristic's plan fixes the
 * order in which nodes are first evaluated, and the MILP then picks the recomputations
 * optimally for that order, starting from the heuristic's schedule. `optimal` means HiGHS
 * proved optimality for that order and the stage formulation; `gap` is relative to its bound.
 * When HiGHS finds nothing better, or times out without an incumbent, the heuristic's plan is
 * returned (solver "heuristic"). Throws BudgetError when no plan is found and the budget is
 * provably or by search infeasible, RematSearchError when nothing was found in time.
 */
export function solveExact(graph: CostGraph, budget: number, options: ExactOptions = {}): RematPlan {
  const t0 = performance.now();
  const limit = options.timeLimitMs ?? 60_000;
  const ctx = makeContext(graph);
  const lower = memoryLowerBound(graph, ctx.adj);
  if (budget < lower) throw budgetError(budget, minimumHeuristicBudget(ctx, performance.now() + MINIMUM_SEARCH_MS), lower, 'one node with its inputs alone exceeds it');
  const plain = graph.nodes.map((_, i) => i);
  if (profile(ctx, plain).peak <= budget) return plainPlan(graph, t0);
  const heuristicMs = Math.min(Math.max(defaultTimeLimit(ctx.n), 5000), 0.25 * limit);
  let heuristic = solveHeuristicSequence(ctx, budget, options.heuristic ?? { timeLimitMs: heuristicMs });
  if (!heuristic) {
    // solveHeuristic's own fallback: the plan at the smallest budget the heuristic meets, where it
    // fits. It is the MILP's warm start and the plan to beat, so the exact plan is never costlier
    // than the heuristic's, even when the MILP stops at its time limit.
    const min = minimumHeuristicBudget(ctx, performance.now() + MINIMUM_SEARCH_MS);
    if (min.budget <= budget) heuristic = min.seq;
  }
  if (heuristic && profile(ctx, heuristic).cost <= totalCompute(graph)) {
    // Nothing computed twice (or only free nodes): no plan can cost less.
    return finish(graph, heuristic, budget, t0, { optimal: true, gap: 0, solver: 'heuristic', status: 'no recomputation needed' });
  }
  // Relabel so that the heuristic's first evaluations are in id order.
  const order = heuristic && options.order !== 'graph' ? firstEvaluationOrder(heuristic, ctx.n) : graph.nodes.map((_, i) => i);
  const relabeled = topologicallyOrdered(graph.nodes, graph.edges, order);
  const toNew = new Int32Array(ctx.n);
  order.forEach((old, i) => (toNew[old] = i));
  const start = heuristic ? toStageForm(heuristic.map((v) => toNew[v]!)) : undefined;
  const relAdj = adjacency(relabeled);
  const startOk = start && profile(makeContext(relabeled, relAdj), start).peak <= budget ? start : undefined;
  const milp = solveMilp(
    relabeled,
    budget,
    { timeLimitMs: Math.max(50, limit - (performance.now() - t0)), ...(options.mipRelGap ? { mipRelGap: options.mipRelGap } : {}), ...(startOk ? { start: startOk } : {}) },
    relAdj,
  );
  const milpSeq = milp.seq ? milp.seq.map((v) => order[v]!) : null;
  const cost = (seq: number[] | null) => (seq ? profile(ctx, seq).cost : Infinity);
  const useMilp = milpSeq !== null && cost(milpSeq) <= cost(heuristic);
  let seq = useMilp ? milpSeq : heuristic;
  if (!seq) {
    const min = minimumHeuristicBudget(ctx, performance.now() + MINIMUM_SEARCH_MS);
    if (min.budget > budget) throw budgetError(budget, min, lower, `the MILP found no plan either (status ${milp.status})`);
    seq = min.seq;
  }
  const sim = simulate(graph, scheduleFromSequence(graph, seq, ctx.adj), ctx.adj);
  const gap = milp.costLowerBound !== undefined && sim.cost > 0 ? Math.max(0, (sim.cost - milp.costLowerBound) / sim.cost) : undefined;
  const optimal = useMilp && milp.optimal;
  return finish(graph, seq, budget, t0, {
    optimal,
    ...(gap !== undefined ? { gap: optimal ? Math.min(gap, options.mipRelGap ?? 1e-6) : gap } : {}),
    solver: useMilp ? 'exact' : 'heuristic',
    status: milp.status + (milp.started || !milp.ran ? '' : '; no warm start'),
  });
}

/** The plan of a sequence, replayed and checked against the budget. */
function finish(graph: CostGraph, seq: readonly number[], budget: number, t0: number, extra: Omit<RematStats, 'peak' | 'cost' | 'overhead' | 'solveMs'>): RematPlan {
  const schedule = scheduleFromSequence(graph, seq);
  const sim = simulate(graph, schedule);
  if (!sim.valid || sim.peak > budget) throw new Error(`internal: exact solver produced an invalid plan: ${sim.error ?? `peak ${sim.peak} > ${budget}`}`);
  return { schedule, stats: { peak: sim.peak, cost: sim.cost, overhead: sim.overhead, solveMs: performance.now() - t0, ...extra } };
}

/** The schedule without recomputation, which is optimal whenever it fits. */
export function plainPlan(graph: CostGraph, t0: number): RematPlan {
  const schedule = plainSchedule(graph);
  const sim = simulate(graph, schedule);
  return {
    schedule,
    stats: { peak: sim.peak, cost: sim.cost, overhead: sim.overhead, solveMs: performance.now() - t0, optimal: true, gap: 0, solver: 'plain', status: 'fits without recomputation' },
  };
}

/** Nodes in the order of their first evaluation in `seq` (a topological order for a valid plan). */
export function firstEvaluationOrder(seq: readonly number[], n: number): number[] {
  const seen = new Uint8Array(n);
  const order: number[] = [];
  for (const v of seq)
    if (!seen[v]) {
      seen[v] = 1;
      order.push(v);
    }
  return order;
}

/**
 * The stage form of a sequence whose first evaluations are 0, 1, 2, ...: the recomputations
 * before each first evaluation sorted by id without repeats; trailing ones (read by nobody)
 * dropped. The result may use more memory than the input.
 */
export function toStageForm(seq: readonly number[]): number[] {
  const out: number[] = [];
  let pending = new Set<number>();
  let next = 0;
  for (const v of seq) {
    if (v === next) {
      out.push(...[...pending].sort((a, b) => a - b), v);
      pending = new Set();
      next++;
    } else pending.add(v);
  }
  return out;
}

function statusName(h: Highs, code: number): string {
  const entry = Object.entries(h.constants.modelStatus).find(([, v]) => v === code);
  return entry ? entry[0] : `status ${code}`;
}
