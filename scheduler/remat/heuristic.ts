// Fast rematerialization planner for graphs of any size. Runs the graph in id order and, when
// the next evaluation would exceed the budget, evicts the resident value that is cheapest to
// rebuild per byte and per step until its next use (the future is known, so this is Belady's
// rule weighted by cost); evicted inputs are recomputed recursively when needed. Several
// scoring variants are tried, each plan is pruned of recomputations the budget can afford to
// avoid, and a perturbation search refines the best. Not optimal; exact.ts is.

import { adjacency, type Adjacency, type CostGraph } from './cost-graph.js';
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

/** Knobs of one greedy run: score = rebuild^1 / (bytes^alpha * distance^beta) * bias[node]. */
interface Variant {
  alpha: number;
  beta: number;
  /** 0: own compute plus evicted inputs; 1: whole evicted ancestry. */
  depth: 0 | 1;
  /** Keep the values a rebuild starts from alive until the rebuild (see `promised`). */
  commit: boolean;
  bias?: Float64Array;
}

export interface Context {
  graph: CostGraph;
  adj: Adjacency;
  n: number;
  bytes: Float64Array;
  compute: Float64Array;
}

export function makeContext(graph: CostGraph, adj: Adjacency = adjacency(graph)): Context {
  return {
    graph,
    adj,
    n: graph.nodes.length,
    bytes: Float64Array.from(graph.nodes, (v) => v.bytes),
    compute: Float64Array.from(graph.nodes, (v) => v.compute),
  };
}

/**
 * One greedy pass. Returns the evaluation sequence, or null when the budget cannot be met this
 * way (every resident value is pinned by the evaluation in progress, or the recomputation
 * blows past a sanity cap).
 *
 * Step `now` first recomputes its evicted ancestry (up to resident values) in a depth-first
 * post-order fixed up front, so every value's next read is known to the sub-step: a value the
 * step still reads is "near" (distance below 1) and is evicted only under real pressure.
 */
export function greedyEviction(ctx: Context, budget: number, variant: Variant): number[] | null {
  const { n, adj, bytes, compute } = ctx;
  const resident = new Uint8Array(n);
  const pinned = new Int32Array(n);
  const nextSucc = new Int32Array(n); // index into succs[u] of its first not-yet-computed successor
  const list: number[] = []; // resident values, unordered
  const where = new Int32Array(n).fill(-1);
  const seq: number[] = [];
  const cap = 4 * n + 100;
  const bias = variant.bias;
  let held = 0;
  let now = 0;
  // Reads by the recomputations of the current step: positions in `stage`, per value.
  let stage: number[] = [];
  let pos = 0;
  const useStart = new Int32Array(n);
  const useEnd = new Int32Array(n);
  let usePos: number[] = [];
  const useStamp = new Int32Array(n).fill(-1);

  const add = (v: number) => {
    resident[v] = 1;
    held += bytes[v]!;
    where[v] = list.length;
    list.push(v);
  };
  const drop = (v: number) => {
    resident[v] = 0;
    held -= bytes[v]!;
    const i = where[v]!;
    const last = list.pop()!;
    if (last !== v) {
      list[i] = last;
      where[last] = i;
    }
    where[v] = -1;
  };
  const stageUse = (u: number): number => {
    if (useStamp[u] !== now) return -1;
    while (useStart[u]! < useEnd[u]! && usePos[useStart[u]!]! < pos) useStart[u]++;
    return useStart[u]! < useEnd[u]! ? usePos[useStart[u]!]! : -1;
  };
  // Reads promised to recomputations: evicting u with next read T commits to rebuilding it at
  // T from the resident values its rebuild starts from, so those stay alive until T.
  const promised: number[][] = Array.from({ length: n }, () => []);
  const lastSucc = Int32Array.from(adj.succs, (s) => (s.length ? s[s.length - 1]! : -1));
  const futurePromise = (u: number): number => {
    const a = promised[u]!;
    let m = Infinity;
    let w = 0;
    for (const t of a)
      if (t >= now) {
        a[w++] = t;
        if (t > now && t < m) m = t;
      }
    a.length = w;
    return m;
  };
  const lastNeed = (u: number): number => {
    let m = lastSucc[u]!;
    for (const t of promised[u]!) if (t > m) m = t;
    return m;
  };
  const nextRead = (u: number): number => {
    const s = adj.succs[u]!;
    const orig = nextSucc[u]! < s.length ? s[nextSucc[u]!]! : Infinity;
    return Math.min(orig, futurePromise(u));
  };
  const dead = (v: number) => pinned[v] === 0 && stageUse(v) < 0 && nextRead(v) === Infinity;

  // Rebuilding u at T: u and its evicted ancestry are recomputed, starting from resident
  // values. `cost` is their compute; `extra` the bytes-steps of keeping resident starting
  // points alive beyond their own last read, up to T. Stops early once `cost` passes `limit`.
  const mark = new Int32Array(n);
  let stamp = 0;
  const stack: number[] = [];
  const frontier: number[] = [];
  let extra = 0;
  const rebuild = (u: number, T: number, limit: number): number => {
    stamp++;
    let c = 0;
    extra = 0;
    stack.length = 0;
    frontier.length = 0;
    stack.push(u);
    mark[u] = stamp;
    while (stack.length) {
      const x = stack.pop()!;
      c += compute[x]!;
      if (c > limit) return c;
      for (const p of adj.preds[x]!) {
        if (mark[p] === stamp) continue;
        mark[p] = stamp;
        if (resident[p]) {
          frontier.push(p);
          const last = lastNeed(p);
          if (last < T) extra += bytes[p]! * (T - Math.max(last, now));
        } else if (variant.depth === 0) {
          c += compute[p]!;
        } else stack.push(p);
      }
    }
    return c;
  };

  const evictOne = (): boolean => {
    let best = -1;
    let bestScore = Infinity;
    let bestT = 0;
    for (const u of list) {
      if (pinned[u]! > 0) continue;
      const b = bytes[u]!;
      if (b <= 0) continue;
      const q = stageUse(u);
      const T = q >= 0 ? now : nextRead(u);
      const dist = q >= 0 ? (q - pos + 1) / (stage.length + 1) : T - now + 1;
      const scale = Math.pow(dist, variant.beta) * (bias ? 1 / bias[u]! : 1);
      // Net relief: u's bytes until T minus what keeping its starting points alive costs.
      const c = rebuild(u, T, Infinity);
      const net = q >= 0 || !variant.commit ? b : b - extra / Math.max(1, T - now);
      const score = net > 0 ? (c + 1e-9) / (Math.pow(net, variant.alpha) * scale) : 1e200 + c / b;
      if (score < bestScore) {
        bestScore = score;
        best = u;
        bestT = q >= 0 ? -1 : T;
      }
    }
    if (best < 0) return false;
    if (variant.commit && bestT >= 0) {
      rebuild(best, bestT, Infinity);
      for (const p of frontier) promised[p]!.push(bestT);
    }
    drop(best);
    return true;
  };

  // Evaluates x, first recomputing (recursively) any input that is not resident.
  const materialize = (x: number): boolean => {
    const preds = adj.preds[x]!;
    for (const p of preds) if (resident[p]) pinned[p]++;
    for (const p of preds) {
      if (resident[p]) continue;
      if (!materialize(p)) return false;
      pinned[p]++;
    }
    while (held + bytes[x]! > budget) if (!evictOne()) return false;
    if (seq.length >= cap) return false;
    seq.push(x);
    add(x);
    for (const p of preds) {
      pinned[p]--;
      if (resident[p] && dead(p)) drop(p);
    }
    return true;
  };

  const visit = new Int32Array(n).fill(-1);
  const postOrder = (root: number): number[] => {
    const out: number[] = [];
    const stack: [number, number][] = [[root, 0]];
    visit[root] = root;
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const preds = adj.preds[top[0]]!;
      if (top[1] < preds.length) {
        const p = preds[top[1]++]!;
        if (!resident[p] && visit[p] !== root) {
          visit[p] = root;
          stack.push([p, 0]);
        }
      } else {
        out.push(top[0]);
        stack.pop();
      }
    }
    return out;
  };

  for (now = 0; now < n; now++) {
    stage = postOrder(now);
    const reads: [number, number][] = [];
    stage.forEach((x, k) => {
      for (const p of adj.preds[x]!) reads.push([p, k]);
    });
    reads.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    usePos = reads.map((r) => r[1]);
    for (let i = 0; i < reads.length; i++) {
      const u = reads[i]![0];
      if (useStamp[u] !== now) {
        useStamp[u] = now;
        useStart[u] = i;
      }
      useEnd[u] = i + 1;
    }
    for (pos = 0; pos < stage.length; pos++) {
      const x = stage[pos]!;
      if (resident[x]) continue; // recomputed on demand earlier in this step
      if (!materialize(x)) return null;
    }
    pos = stage.length;
    for (const p of adj.preds[now]!) {
      const s = adj.succs[p]!;
      while (nextSucc[p]! < s.length && s[nextSucc[p]!]! <= now) nextSucc[p]++;
    }
    for (let i = list.length - 1; i >= 0; i--) {
      const v = list[i]!;
      if (i < list.length && dead(v)) drop(v);
    }
    if (resident[now] && adj.succs[now]!.length === 0) drop(now);
  }
  return seq;
}

/** Peak and cost of a sequence under the papers' model, computed without building a schedule. */
export function profile(ctx: Context, seq: readonly number[]): { peak: number; cost: number; memory: Float64Array } {
  const { n, adj, bytes, compute } = ctx;
  const L = seq.length;
  const copyAt = new Int32Array(n).fill(-1);
  const lastRead = new Int32Array(L);
  for (let j = 0; j < L; j++) {
    const v = seq[j]!;
    lastRead[j] = j;
    for (const p of adj.preds[v]!) lastRead[copyAt[p]!] = j;
    copyAt[v] = j;
  }
  // Difference array: the copy made at j occupies steps j..lastRead[j].
  const diff = new Float64Array(L + 1);
  let cost = 0;
  for (let j = 0; j < L; j++) {
    const b = bytes[seq[j]!]!;
    diff[j]! += b;
    diff[lastRead[j]! + 1]! -= b;
    cost += compute[seq[j]!]!;
  }
  const memory = new Float64Array(L);
  let cur = 0;
  let peak = 0;
  for (let j = 0; j < L; j++) {
    cur += diff[j]!;
    memory[j] = cur;
    if (cur > peak) peak = cur;
  }
  return { peak, cost, memory };
}

const VARIANTS: Variant[] = [
  { alpha: 1, beta: 1, depth: 1, commit: true },
  { alpha: 1, beta: 0, depth: 1, commit: true },
  { alpha: 1, beta: 2, depth: 1, commit: true },
  { alpha: 1, beta: 0.5, depth: 1, commit: true },
  { alpha: 0.5, beta: 1, depth: 1, commit: true },
  { alpha: 2, beta: 1, depth: 1, commit: true },
  { alpha: 1, beta: 1, depth: 0, commit: true },
];

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
export function minimumHeuristicBudget(ctx: Context, deadline = Infinity): { budget: number; seq: number[]; exact: boolean } {
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
  return { budget: hi, seq: hiSeq, exact };
}

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
    const min = minimumHeuristicBudget(ctx, t0 + 10 * (options.timeLimitMs ?? defaultTimeLimit(ctx.n)) + 10_000);
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
