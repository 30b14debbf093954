// Fast rematerialization planner for graphs of any size. A first plan comes from shaving the
// peaks of the plain schedule (search.ts) or from greedy eviction (greedy.ts), whichever is
// cheaper; it is then refined for a time allowance by the greedy under perturbed per-node
// biases and by ruin-and-recreate. Also finds the smallest budget it can meet. Not optimal;
// exact.ts solves small graphs optimally for a given evaluation order.

import type { CostGraph } from './cost-graph.js';
import { makeContext, profile, type Context } from './context.js';
import { greedyEviction, VARIANTS, type Variant } from './greedy.js';
import { scheduleFromSequence, simulate, totalCompute } from './schedule.js';
import { budgetError, type RematPlan } from './plan-types.js';
import { prune, repair, RuinAndRecreate } from './search.js';

export interface HeuristicOptions {
  /** Wall-clock allowance for the refinement search after the first plan (default scales with n). */
  timeLimitMs?: number;
  /**
   * Refinement rounds instead of (or within) a time allowance: with `timeLimitMs: Infinity`
   * the plan depends on the graph, budget and seed only.
   */
  iterations?: number;
  /** Seed of the refinement search. */
  seed?: number;
}

export interface Candidate {
  seq: number[];
  cost: number;
}

function runVariant(ctx: Context, budget: number, variant: Variant): Candidate | null {
  const seq = greedyEviction(ctx, budget, variant);
  if (!seq) return null;
  const pruned = prune(ctx, seq, budget);
  return { seq: pruned, cost: profile(ctx, pruned).cost };
}

/** Small deterministic generator (mulberry32) so that plans are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A first plan within `budget`, or null: peak shaving from the plain order, then the greedy
 * variants. Deterministic, so that the smallest budget it meets is a well-defined number.
 */
export function construct(ctx: Context, budget: number, deadline = Infinity): Candidate | null {
  const plain = Array.from({ length: ctx.n }, (_, i) => i);
  if (profile(ctx, plain).peak <= budget) return { seq: plain, cost: profile(ctx, plain).cost };
  let best: Candidate | null = null;
  const consider = (c: Candidate | null) => {
    if (c && (!best || c.cost < best.cost)) best = c;
  };
  const shaved = repair(ctx, plain, budget, deadline);
  if (shaved) {
    const seq = prune(ctx, shaved, budget);
    consider({ seq, cost: profile(ctx, seq).cost });
  }
  // The greedy is weaker than shaving on large graphs but finds other plans, and plans where
  // shaving gets stuck; on small graphs it is cheap, so all variants run.
  const variants = ctx.n <= 300 || !best ? VARIANTS : VARIANTS.slice(0, 1);
  for (const v of variants) consider(runVariant(ctx, budget, v));
  return best;
}

/**
 * Plans a schedule whose peak (papers' model) is at most `budget`, or returns null when this
 * heuristic cannot meet the budget. For a budget at or above the plain peak it returns the
 * plain schedule. Otherwise `construct`'s plan, refined until the time allowance is spent:
 * first by the greedy under perturbed per-node eviction biases (mostly on the nodes the best
 * plan recomputes), then by ruin-and-recreate.
 */
export function solveHeuristicSequence(ctx: Context, budget: number, options: HeuristicOptions = {}): number[] | null {
  const t0 = performance.now();
  const limit = options.timeLimitMs ?? defaultTimeLimit(ctx.n);
  const best = construct(ctx, budget, t0 + 10 * limit + 10_000);
  if (!best || best.cost <= totalCompute(ctx.graph)) return best?.seq ?? null;
  const random = rng(options.seed ?? 1);
  const search = new RuinAndRecreate(ctx, best.seq, budget, random);
  let bias = new Float64Array(ctx.n).fill(1);
  let variant = VARIANTS[0]!;
  // Two searches share the time: first the greedy under perturbed per-node eviction biases
  // (mostly on the nodes the best plan recomputes), strong on small graphs, then
  // ruin-and-recreate from the best plan so far.
  const share = ctx.n <= 300 ? 0.3 : 0.15;
  const rounds = options.iterations ?? Infinity;
  for (let round = 0; round < rounds; round++) {
    const now = performance.now();
    if (now - t0 >= limit) break;
    const greedyTurn = options.iterations !== undefined ? round < share * rounds : now - t0 < share * limit;
    if (greedyTurn) {
      const trial = bias.slice();
      const recomputed = recomputedNodes(ctx, search.best);
      const kicks = 1 + Math.floor(random() * 3);
      for (let k = 0; k < kicks; k++) {
        const u = recomputed.length && random() < 0.7 ? recomputed[Math.floor(random() * recomputed.length)]! : Math.floor(random() * ctx.n);
        trial[u] = trial[u]! * Math.exp((random() * 2 - 1) * 2.5);
      }
      const v = random() < 0.25 ? VARIANTS[Math.floor(random() * VARIANTS.length)]! : variant;
      const c = runVariant(ctx, budget, { ...v, bias: trial });
      if (c && c.cost <= search.bestCost) {
        search.offer(c.seq, c.cost);
        bias = trial;
        variant = v;
      }
    } else search.step(t0 + limit);
  }
  return search.best;
}

/** Default refinement time: about 4 ms per node, between 2.5 s and 5 s. */
export function defaultTimeLimit(n: number): number {
  return Math.min(5000, Math.max(2500, 4 * n));
}

/**
 * The smallest budget `construct` meets, by bisection between the lower bound (output plus
 * inputs of the largest node) and the plain peak; with its plan. `construct` is not monotone
 * in the budget in general, so this is the boundary the bisection finds: met at `budget`,
 * missed at `budget - 1` (or `budget` is the lower bound, which nothing beats).
 */
export function minimumHeuristicBudget(ctx: Context, deadline = Infinity): MinimumSchedule {
  const known = minimumCache.get(ctx.graph);
  if (known) return known;
  const plain = Array.from({ length: ctx.n }, (_, i) => i);
  let hi = profile(ctx, plain).peak;
  let hiSeq = plain;
  const missed: number[] = [memoryLowerBoundOf(ctx) - 1]; // nothing is feasible below the bound
  let lo = missed[0]!;
  let exact = true;
  while (hi - lo > 1) {
    if (performance.now() > deadline) {
      exact = false;
      break;
    }
    const mid = Math.floor((lo + hi) / 2);
    const c = construct(ctx, mid);
    if (c) {
      // The plan found may beat `mid`, even budgets already missed: resume below its peak.
      hi = profile(ctx, c.seq).peak;
      hiSeq = c.seq;
      lo = Math.max(...missed.filter((m) => m < hi));
    } else {
      missed.push(mid);
      lo = mid;
    }
  }
  const min = { budget: hi, seq: hiSeq, exact };
  // a finished search depends on the graph alone: asked again (another budget, a retry at the
  // budget it named) it answers the same without searching again
  if (exact) minimumCache.set(ctx.graph, min);
  return min;
}

export interface MinimumSchedule {
  /** peak of `seq`: met at `budget`, missed by `construct` at `budget - 1` */
  budget: number;
  seq: number[];
  /** false when the bisection ran out of time and `budget` is only an upper estimate */
  exact: boolean;
}

/** Finished minimum searches by graph object (cost graphs are not mutated once planned). */
const minimumCache = new WeakMap<CostGraph, MinimumSchedule>();

/**
 * Time allowed to the search for the smallest budget. Fixed, not derived from a solve's time
 * limit, so that every infeasible budget names the same minimum; it bounds only searches on
 * very large graphs.
 */
export const MINIMUM_SEARCH_MS = 60_000;

function memoryLowerBoundOf(ctx: Context): number {
  let bound = 0;
  for (let v = 0; v < ctx.n; v++) {
    let s = ctx.bytes[v]!;
    for (const p of ctx.adj.preds[v]!) s += ctx.bytes[p]!;
    bound = Math.max(bound, s);
  }
  return bound;
}

function recomputedNodes(ctx: Context, seq: readonly number[]): number[] {
  const seen = new Uint8Array(ctx.n);
  const out = new Set<number>();
  for (const v of seq) {
    if (seen[v]) out.add(v);
    seen[v] = 1;
  }
  return [...out];
}

/**
 * Rematerialization plan for `budget` bytes from the heuristic (see the module header).
 * Throws BudgetError, stating the smallest budget it meets, when it cannot meet `budget`.
 *
 * @example
 *   const plan = solveHeuristic(graph, Math.ceil(0.8 * baselinePeak(graph)));
 *   plan.stats.overhead; // extra compute, e.g. 0.02 for 2%
 */
export function solveHeuristic(graph: CostGraph, budget: number, options: HeuristicOptions = {}): RematPlan {
  const t0 = performance.now();
  const ctx = makeContext(graph);
  const lower = memoryLowerBoundOf(ctx);
  let seq = budget >= lower ? solveHeuristicSequence(ctx, budget, options) : null;
  if (!seq) {
    const min = minimumHeuristicBudget(ctx, performance.now() + MINIMUM_SEARCH_MS);
    if (min.budget > budget) throw budgetError(budget, min, lower);
    seq = min.seq;
  }
  const schedule = scheduleFromSequence(graph, seq, ctx.adj);
  const sim = simulate(graph, schedule, ctx.adj);
  if (!sim.valid || sim.peak > budget) throw new Error(`internal: heuristic produced an invalid plan: ${sim.error ?? `peak ${sim.peak} > ${budget}`}`);
  return {
    schedule,
    stats: { peak: sim.peak, cost: sim.cost, overhead: sim.overhead, solveMs: performance.now() - t0, solver: 'heuristic' },
  };
}
