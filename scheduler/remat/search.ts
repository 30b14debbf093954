// Local search over evaluation sequences, judged exactly by the papers' memory model. Any
// sequence whose first evaluations follow a topological order is valid (a value stays resident
// while a later step reads it), so a plan can be edited freely: insert a recomputation before
// a read, drop a repeated evaluation. `repair` shaves memory peaks by insertions until the
// budget holds; `improve` is ruin-and-recreate around it. The greedy in heuristic.ts supplies
// the starting plans; this module never builds one from nothing except via `repair`.

import type { Context } from './heuristic.js';

/** Copy intervals of a sequence: the value made at step j is resident for steps j..end[j]. */
export interface Analysis {
  memory: Float64Array;
  end: Int32Array;
  /** Steps reading the copy made at step j, ascending. */
  reads: number[][];
  /** Steps evaluating each node, ascending. */
  evals: number[][];
  /** Bytes of the copies whose last step is k (released right after step k). */
  released: Float64Array;
  cost: number;
  peak: number;
  overflow: number;
}

export function analyze(ctx: Context, seq: readonly number[], budget: number): Analysis {
  const { n, adj, bytes, compute } = ctx;
  const L = seq.length;
  const copyAt = new Int32Array(n).fill(-1);
  const end = new Int32Array(L);
  const reads: number[][] = new Array(L);
  const evals: number[][] = Array.from({ length: n }, () => []);
  for (let j = 0; j < L; j++) {
    const v = seq[j]!;
    end[j] = j;
    reads[j] = [];
    for (const p of adj.preds[v]!) {
      const c = copyAt[p]!;
      end[c] = j;
      reads[c]!.push(j);
    }
    copyAt[v] = j;
    evals[v]!.push(j);
  }
  const diff = new Float64Array(L + 1);
  const released = new Float64Array(L);
  let cost = 0;
  for (let j = 0; j < L; j++) {
    const b = bytes[seq[j]!]!;
    diff[j]! += b;
    diff[end[j]! + 1]! -= b;
    released[end[j]!]! += b;
    cost += compute[seq[j]!]!;
  }
  const memory = new Float64Array(L);
  let cur = 0;
  let peak = 0;
  let overflow = 0;
  for (let j = 0; j < L; j++) {
    cur += diff[j]!;
    memory[j] = cur;
    if (cur > peak) peak = cur;
    if (cur > budget) overflow += cur - budget;
  }
  return { memory, end, reads, evals, released, cost, peak, overflow };
}

/** Last element of a sorted list below `bound`, or -1. */
function lastBelow(list: readonly number[], bound: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < bound) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? list[lo - 1]! : -1;
}

/**
 * Change in total excess (sum over steps of memory above budget) from inserting the
 * evaluations `chain` (topologically ordered) just before step r, without rebuilding the
 * sequence. Old steps before r change by the copies that now end earlier (the chain's nodes
 * are rebuilt) or later (inputs read by the chain); steps from r on are unchanged.
 */
function insertionDelta(ctx: Context, seq: readonly number[], a: Analysis, r: number, chain: readonly number[], budget: number, scratch: Float64Array): number {
  const { adj, bytes } = ctx;
  const inChain = new Map<number, number>();
  chain.forEach((x, i) => inChain.set(x, i));
  let lo = r;
  let cross = a.memory[r - 1]! - a.released[r - 1]!;
  const touch = (from: number, delta: number) => {
    for (let k = from; k < r; k++) scratch[k]! += delta;
    if (from < lo) lo = from;
  };
  // The chain's own nodes: their current copies stop at their last read before r.
  const liveAfter = new Uint8Array(chain.length);
  chain.forEach((x, i) => {
    const c = lastBelow(a.evals[x]!, r);
    if (c >= 0 && a.end[c]! >= r) {
      liveAfter[i] = 1;
      const lastBefore = Math.max(c, lastBelow(a.reads[c]!, r));
      touch(lastBefore + 1, -bytes[x]!);
      cross -= bytes[x]!;
    }
  });
  // Inputs from outside the chain: extended up to the chain when their copy ends before r.
  const lastChainRead = new Map<number, number>();
  chain.forEach((x, i) => {
    for (const p of adj.preds[x]!) if (!inChain.has(p) || inChain.get(p)! < i) lastChainRead.set(p, i);
  });
  const extended: [number, number][] = []; // [bytes, last chain step reading it]
  for (const [p, last] of lastChainRead) {
    if (inChain.has(p)) continue;
    const c = lastBelow(a.evals[p]!, r);
    if (a.end[c]! >= r) continue;
    touch(a.end[c]! + 1, bytes[p]!);
    cross += bytes[p]!;
    extended.push([bytes[p]!, last]);
  }
  let delta = 0;
  for (let k = lo; k < r; k++) {
    const m = a.memory[k]!;
    delta += Math.max(0, m + scratch[k]! - budget) - Math.max(0, m - budget);
    scratch[k] = 0;
  }
  // The new steps: what crosses into r, plus chain outputs so far, minus what the chain
  // released already (extended inputs and chain values read by nobody after their last reader).
  let held = cross;
  const freeAt: number[] = new Array(chain.length).fill(0);
  for (const [b, last] of extended) freeAt[last]! += b;
  chain.forEach((x, i) => {
    if (liveAfter[i]) return;
    freeAt[Math.max(i, lastChainRead.get(x) ?? i)]! += bytes[x]!;
  });
  chain.forEach((x, i) => {
    held += bytes[x]!;
    delta += Math.max(0, held - budget);
    held -= freeAt[i]!;
  });
  return delta;
}

/**
 * Edits the sequence until the peak fits the budget: at the step of largest excess, some value
 * resident there but not read there is evaluated later, just before its next read, either by
 * moving its evaluation there (free, when nothing reads it earlier) or by rebuilding it there,
 * alone or with the inputs whose copies would otherwise have to live longer. Picks the edit
 * with the most excess removed per unit of compute. Null when no edit helps.
 */
export function repair(ctx: Context, seq: number[], budget: number, deadline = Infinity, maxSteps = 4 * ctx.n + 100): number[] | null {
  const { adj, compute } = ctx;
  let cur = seq;
  let a = analyze(ctx, cur, budget);
  let scratch = new Float64Array(cur.length);
  for (let step = 0; a.overflow > 0; step++) {
    if (step >= maxSteps || performance.now() > deadline) return null;
    let j = 0;
    for (let k = 1; k < cur.length; k++) if (a.memory[k]! > a.memory[j]!) j = k;
    const readsAtJ = new Set(adj.preds[cur[j]!]);
    let best: { r: number; chain: number[]; from?: number } | null = null;
    let bestScore = 0;
    for (let c = 0; c < j; c++) {
      const v = cur[c]!;
      if (a.end[c]! <= j || readsAtJ.has(v)) continue;
      const r = a.reads[c]!.find((x) => x > j)!;
      if (a.reads[c]![0] === r) {
        // Nothing reads this copy before r: evaluate it just before r instead, at no cost.
        const trial = [...cur.slice(0, c), ...cur.slice(c + 1, r), v, ...cur.slice(r)];
        const gain = a.overflow - analyze(ctx, trial, budget).overflow;
        if (gain > 0 && gain * 1e12 > bestScore) {
          bestScore = gain * 1e12;
          best = { r, chain: [v], from: c };
        }
      }
      let previous = 0;
      for (const depth of [0, 1, 3]) {
        const chain = rebuildChain(ctx, a, r, v, depth);
        if (chain.length === previous) break;
        previous = chain.length;
        const gain = -insertionDelta(ctx, cur, a, r, chain, budget, scratch);
        if (gain <= 0) continue;
        const added = chain.reduce((s, x) => s + compute[x]!, 0);
        const score = gain / (added + 1e-9);
        if (score > bestScore) {
          bestScore = score;
          best = { r, chain };
        }
      }
    }
    if (!best) return null;
    const from = best.from;
    const moved = from === undefined ? cur : cur.filter((_, k) => k !== from);
    const at = from === undefined ? best.r : best.r - 1;
    cur = [...moved.slice(0, at), ...best.chain, ...moved.slice(at)];
    a = analyze(ctx, cur, budget);
    if (scratch.length < cur.length) scratch = new Float64Array(2 * cur.length);
  }
  return cur;
}

/**
 * The evaluations that rebuild v just before step r: v itself, preceded (up to `depth`
 * levels) by rebuilds of inputs whose current copy is not read at or after r, in topological
 * (id) order.
 */
function rebuildChain(ctx: Context, a: Analysis, r: number, v: number, depth: number): number[] {
  const { adj } = ctx;
  const want = new Set<number>([v]);
  const visit = (x: number, d: number) => {
    if (d <= 0) return;
    for (const p of adj.preds[x]!) {
      if (want.has(p)) continue;
      const c = lastBelow(a.evals[p]!, r);
      if (c >= 0 && a.end[c]! >= r) continue; // alive anyway
      want.add(p);
      visit(p, d - 1);
    }
  };
  visit(v, depth);
  return [...want].sort((x, y) => x - y);
}

/** Removes evaluations whose output nobody reads, keeping each node's last evaluation. */
export function dropUnread(ctx: Context, seq: number[]): number[] {
  const { n, adj } = ctx;
  let cur = seq;
  for (;;) {
    const copyAt = new Int32Array(n).fill(-1);
    const read = new Uint8Array(cur.length);
    const count = new Int32Array(n);
    cur.forEach((v, j) => {
      for (const p of adj.preds[v]!) read[copyAt[p]!] = 1;
      copyAt[v] = j;
      count[v]++;
    });
    const drop = new Uint8Array(cur.length);
    let any = false;
    for (let j = cur.length - 1; j >= 0; j--) {
      const v = cur[j]!;
      if (!read[j] && count[v]! > 1) {
        drop[j] = 1;
        count[v]--;
        any = true;
      }
    }
    if (!any) return cur;
    cur = cur.filter((_, j) => !drop[j]);
  }
}

/**
 * Drops repeated evaluations while the budget allows: the earlier copy then serves the later
 * reads. The most expensive go first. Never makes a feasible sequence infeasible.
 */
export function prune(ctx: Context, seq: number[], budget: number): number[] {
  const { compute } = ctx;
  let cur = dropUnread(ctx, seq);
  for (;;) {
    const seen = new Uint8Array(ctx.n);
    const repeats: number[] = [];
    cur.forEach((v, j) => {
      if (seen[v]) repeats.push(j);
      seen[v] = 1;
    });
    repeats.sort((x, y) => compute[cur[y]!]! - compute[cur[x]!]!);
    const removed = new Uint8Array(cur.length);
    let changed = false;
    for (const j of repeats) {
      if (compute[cur[j]!]! <= 0) continue;
      removed[j] = 1;
      const trial = cur.filter((_, i) => !removed[i]);
      if (analyze(ctx, trial, budget).peak <= budget) changed = true;
      else removed[j] = 0;
    }
    if (!changed) return cur;
    cur = dropUnread(ctx, cur.filter((_, i) => !removed[i]));
  }
}

/**
 * Ruin and recreate: drop a few recomputations (or add one at random), repair the excess,
 * prune, and keep the result when it costs no more. Runs until `deadline` (performance.now())
 * or for `rounds` rounds.
 */
export function improve(ctx: Context, start: number[], budget: number, deadline: number, random: () => number, rounds = Infinity): number[] {
  let cur = start;
  let curCost = analyze(ctx, cur, budget).cost;
  let best = cur;
  let bestCost = curCost;
  for (let round = 0; round < rounds && performance.now() < deadline; round++) {
    const repeats: number[] = [];
    const seen = new Uint8Array(ctx.n);
    cur.forEach((v, j) => {
      if (seen[v]) repeats.push(j);
      seen[v] = 1;
    });
    let ruined: number[];
    if (repeats.length > 0 && random() < 0.75) {
      const k = 1 + Math.floor(random() * Math.min(3, repeats.length));
      const drop = new Set<number>();
      for (let i = 0; i < k; i++) drop.add(repeats[Math.floor(random() * repeats.length)]!);
      ruined = cur.filter((_, j) => !drop.has(j));
    } else {
      // A recomputation at a random read: frees its value before that read.
      const j = 1 + Math.floor(random() * (cur.length - 1));
      const preds = ctx.adj.preds[cur[j]!]!;
      if (preds.length === 0) continue;
      const v = preds[Math.floor(random() * preds.length)]!;
      ruined = [...cur.slice(0, j), v, ...cur.slice(j)];
    }
    const repaired = repair(ctx, ruined, budget, deadline);
    if (!repaired) continue;
    const cand = prune(ctx, repaired, budget);
    const cost = analyze(ctx, cand, budget).cost;
    if (cost <= curCost) {
      cur = cand;
      curCost = cost;
      if (cost < bestCost) {
        best = cand;
        bestCost = cost;
      }
    }
  }
  return best;
}
