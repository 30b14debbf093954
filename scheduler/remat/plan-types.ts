// Result types shared by the rematerialization solvers, and the typed error for a budget that
// no plan meets. Kept apart so the solvers do not import each other for their types.

import { RheoError } from '../../graphs/errors.js';
import type { RematSchedule } from './schedule.js';

export interface RematStats {
  /** Peak memory of the schedule, as `simulate` measures it (never the solver's own claim). */
  peak: number;
  /** Sum of compute over all evaluations. */
  cost: number;
  /** cost / (sum of compute) - 1. */
  overhead: number;
  solveMs: number;
  /** True only when the MILP proved this schedule optimal for its (stage) formulation. */
  optimal?: boolean;
  /** Relative MIP gap (cost - bound) / cost reported for this schedule, when a bound is known. */
  gap?: number;
  /** Which solver produced the schedule that was returned. */
  solver: 'exact' | 'heuristic' | 'plain';
  /** Solver status in words, e.g. "Optimal", "Time limit reached", "no incumbent". */
  status?: string;
}

export interface RematPlan {
  schedule: RematSchedule;
  stats: RematStats;
}

/**
 * The budget is below what the planner can meet. `minimumFeasible` is the smallest budget the
 * planner is known to meet on this graph; `lowerBound` is a budget no schedule at all can meet
 * below (max over nodes of output plus inputs).
 */
export class BudgetError extends RheoError {
  constructor(
    readonly budget: number,
    readonly minimumFeasible: number,
    readonly lowerBound: number,
    detail = '',
  ) {
    super(
      `memory budget ${budget} bytes is infeasible: the smallest budget the planner meets on this graph is ` +
        `${minimumFeasible} bytes` +
        (lowerBound < minimumFeasible ? ` (no schedule at all fits in less than ${lowerBound} bytes)` : '') +
        (detail ? `; ${detail}` : ''),
    );
  }
}

/** A BudgetError from the result of a minimum-budget search. */
export function budgetError(budget: number, min: { budget: number; exact: boolean }, lowerBound: number, detail = ''): BudgetError {
  const how = min.exact ? '' : 'the search for the smallest budget ran out of time; the number is an upper estimate';
  return new BudgetError(budget, min.budget, lowerBound, [detail, how].filter(Boolean).join('; '));
}
