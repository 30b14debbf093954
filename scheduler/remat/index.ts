// Rematerialization planning over an abstract cost graph (see plan.ts for the entry point).

export { CostGraphError, loadNetworkxGraph, validateCostGraph, topologicallyOrdered, adjacency } from './cost-graph.js';
export type { CostGraph, CostNode, Adjacency } from './cost-graph.js';
export { simulate, scheduleFromSequence, plainSchedule, baselinePeak, memoryLowerBound, totalCompute, sequenceOf } from './schedule.js';
export type { RematSchedule, RematStep, SimulationResult } from './schedule.js';
export { BudgetError } from './plan-types.js';
export type { RematPlan, RematStats } from './plan-types.js';
export { solveHeuristic } from './heuristic.js';
export type { HeuristicOptions } from './heuristic.js';
export { solveExact } from './exact.js';
export { loadExactSolver } from './highs.js';
export type { ExactOptions } from './exact.js';
export { planRematerialization, minimumBudget, minimumPlan } from './planner.js';
export type { PlannerOptions, RematResult, MinimumBudget } from './planner.js';
export { chenSchedule } from './chen.js';
export { randomLayeredGraph } from './random-layered.js';
export type { RandomLayeredOptions } from './random-layered.js';
