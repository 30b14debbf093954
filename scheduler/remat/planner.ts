// The entry point of rematerialization planning: picks the exact MILP for small graphs and the
// heuristic for large ones, keeps whichever plan is cheaper, and reports the smallest feasible
// budget when the requested one cannot be met. Executing a plan is the executor's business.

import { adjacency, validateCostGraph, type CostGraph } from './cost-graph.js';
import { solveExact } from './exact.js';
import { makeContext } from './context.js';
import { defaultTimeLimit, MINIMUM_SEARCH_MS, minimumHeuristicBudget, solveHeuristic } from './heuristic.js';
import type { RematPlan } from './plan-types.js';
import { baselinePeak, memoryLowerBound, scheduleFromSequence, simulate } from './schedule.js';

export interface PlannerOptions {
  /** 'auto' (default): exact up to `exactMaxNodes` nodes, heuristic beyond. */
  solver?: 'auto' | 'exact' | 'heuristic';
  /**
   * Wall-clock allowance (default 10 s): the exact solver's limit, heuristic start included;
   * the heuristic's refinement time is min(this, its default of 2.5 to 5 s).
   */
  timeLimitMs?: number;
  /** Largest graph 'auto' gives to the MILP (default 300 nodes). */
  exactMaxNodes?: number;
}

export interface RematResult {
  plan: RematPlan;
  /** Peak of the plain schedule (every node once, in id order). */
  baseline: number;
  /** No schedule fits in less: the largest output-plus-inputs of a single node. */
  lowerBound: number;
}

/**
 * Plans which values to recompute so that evaluating `graph` never holds more than `budget`
 * bytes (papers' model: the output being computed plus every earlier output still to be read).
 * The plan's schedule has been replayed by `simulate`: it is valid and its peak is within the
 * budget. Synchronous; the exact solver blocks for up to `timeLimitMs`. Throws BudgetError
 * (with `minimumFeasible`) when the budget cannot be met.
 *
 * @example
 *   const { plan, baseline } = planRematerialization(graph, 8e9, { timeLimitMs: 10_000 });
 *   console.log(plan.stats.peak / baseline, plan.stats.overhead, plan.stats.solver);
 */
export function planRematerialization(graph: CostGraph, budget: number, options: PlannerOptions = {}): RematResult {
  validateCostGraph(graph);
  const adj = adjacency(graph);
  const solver = options.solver ?? 'auto';
  const n = graph.nodes.length;
  const useExact = solver === 'exact' || (solver === 'auto' && n <= (options.exactMaxNodes ?? 300));
  const limit = options.timeLimitMs ?? 10_000;
  const plan = useExact
    ? solveExact(graph, budget, { timeLimitMs: limit })
    : solveHeuristic(graph, budget, { timeLimitMs: Math.min(defaultTimeLimit(n), limit) });
  return { plan, baseline: baselinePeak(graph, adj), lowerBound: memoryLowerBound(graph, adj) };
}

export interface MinimumBudget {
  /** No schedule at all fits in less: the largest output-plus-inputs of a single node. */
  lowerBound: number;
  /** The smallest budget the heuristic meets (bisection; see minimumHeuristicBudget). */
  minimumFeasible: number;
  /** False when the bisection ran out of time and `minimumFeasible` is only an upper estimate. */
  exact: boolean;
}

/** The range in which the smallest feasible budget of `graph` lies, as far as this planner knows. */
export function minimumBudget(graph: CostGraph, timeLimitMs = 60_000): MinimumBudget {
  validateCostGraph(graph);
  const adj = adjacency(graph);
  const min = minimumHeuristicBudget(makeContext(graph, adj), performance.now() + timeLimitMs);
  return { lowerBound: memoryLowerBound(graph, adj), minimumFeasible: min.budget, exact: min.exact };
}

/**
 * The plan of least peak this planner knows for `graph`, whatever budget was asked: the one whose
 * peak a BudgetError names as the smallest feasible budget, and which every solver falls back
 * to when asked at that budget. Deterministic (unless the search runs out of time on a very
 * large graph: then `exact` is false and the peak is an upper estimate).
 *
 * @example
 *   const { plan, exact } = minimumPlan(graph);
 *   planRematerialization(graph, plan.stats.peak); // succeeds
 */
export function minimumPlan(graph: CostGraph, timeLimitMs = MINIMUM_SEARCH_MS): RematResult & { exact: boolean } {
  validateCostGraph(graph);
  const t0 = performance.now();
  const adj = adjacency(graph);
  const min = minimumHeuristicBudget(makeContext(graph, adj), t0 + timeLimitMs);
  const schedule = scheduleFromSequence(graph, min.seq, adj);
  const sim = simulate(graph, schedule, adj);
  const stats = { peak: sim.peak, cost: sim.cost, overhead: sim.overhead, solveMs: performance.now() - t0, solver: 'heuristic' as const, status: 'smallest peak found' };
  return { plan: { schedule, stats }, baseline: baselinePeak(graph, adj), lowerBound: memoryLowerBound(graph, adj), exact: min.exact };
}
