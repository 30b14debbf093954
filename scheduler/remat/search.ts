// Local search over evaluation sequences, judged exactly by the papers' memory model. Any
// sequence whose first evaluations follow a topological order is valid (a value stays resident
// while a later step reads it), so a plan can be edited freely: insert a recomputation before
// a read, drop a repeated evaluation. `repair` shaves memory peaks by insertions until the
// budget holds; `improve` is ruin-and-recreate around it. The greedy in heuristic.ts supplies
// the starting plans; this module never builds one from nothing except via `repair`.

import type { Context } from './context.js';

/** Copy intervals of a sequence: the value made at step j is resident for steps j..end[j]. */
export interface Analysis {
  memory: Float64Array;
  end: Int32Array;
  /** Steps reading the copy made at step j: readList[readStart[j] .. readStart[j+1]), ascending. */
  readStart: Int32Array;
  readList: Int32Array;
  /** Steps evaluating node v: evalList[evalStart[v] .. evalStart[v+1]), ascending. */
  evalStart: Int32Array;
  evalList: Int32Array;
  /** Bytes of the copies whose last step is k (released right after step k). */
  released: Float64Array;
  /** Max-segment tree over `memory` (leaves at size..2*size-1). */
  tree: Float64Array;
  size: number;
  cost: number;
  peak: number;
  overflow: number;
}

export function analyze(ctx: Context, seq: readonly number[], budget: number): Analysis {
  const { n, adj, bytes, compute } = ctx;
  const L = seq.length;
  const copyAt = new Int32Array(n).fill(-1);
  const end = new Int32Array(L);
  const readCount = new Int32Array(L + 1);
  const evalStart = new Int32Array(n + 1);
  let events = 0;
  for (let j = 0; j < L; j++) {
    const v = seq[j]!;
    end[j] = j;
    evalStart[v + 1]++;
    events += adj.preds[v]!.length;
  }
  const readEvents = new Int32Array(events); // [copy] per event, step order
  const readSteps = new Int32Array(events);
  events = 0;
  for (let j = 0; j < L; j++) {
    const v = seq[j]!;
    for (const p of adj.preds[v]!) {
      const c = copyAt[p]!;
      end[c] = j;
      readCount[c + 1]++;
      readEvents[events] = c;
      readSteps[events++] = j;
    }
    copyAt[v] = j;
  }
  const readStart = new Int32Array(L + 1);
  for (let j = 0; j < L; j++) readStart[j + 1] = readStart[j]! + readCount[j + 1]!;
  const fill = readStart.slice(0, L);
  const readList = new Int32Array(events);
  for (let e = 0; e < events; e++) readList[fill[readEvents[e]!]!++] = readSteps[e]!;
  for (let v = 0; v < n; v++) evalStart[v + 1]! += evalStart[v]!;
  const evalFill = evalStart.slice(0, n);
  const evalList = new Int32Array(L);
  for (let j = 0; j < L; j++) evalList[evalFill[seq[j]!]!++] = j;

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
  let size = 1;
  while (size < L) size *= 2;
  const tree = new Float64Array(2 * size).fill(-Infinity);
  tree.set(memory, size);
  for (let i = size - 1; i >= 1; i--) tree[i] = Math.max(tree[2 * i]!, tree[2 * i + 1]!);
  return { memory, end, readStart, readList, evalStart, evalList, released, tree, size, cost, peak, overflow };
}

/** Peak memory of a sequence (papers' model), without the rest of the analysis. */
export function peakOf(ctx: Context, seq: readonly number[]): number {
  const { n, adj, bytes } = ctx;
  const L = seq.length;
  const copyAt = new Int32Array(n).fill(-1);
  const end = new Int32Array(L);
  for (let j = 0; j < L; j++) {
    end[j] = j;
    for (const p of adj.preds[seq[j]!]!) end[copyAt[p]!] = j;
    copyAt[seq[j]!] = j;
  }
  const diff = new Float64Array(L + 1);
  for (let j = 0; j < L; j++) {
    diff[j]! += bytes[seq[j]!]!;
    diff[end[j]! + 1]! -= bytes[seq[j]!]!;
  }
  let cur = 0;
  let peak = 0;
  for (let j = 0; j < L; j++) {
    cur += diff[j]!;
    if (cur > peak) peak = cur;
  }
  return peak;
}

/** Last element of list[from..to) below `bound`, or -1 (the list is ascending). */
function lastBelow(list: Int32Array, from: number, to: number, bound: number): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < bound) lo = mid + 1;
    else hi = mid;
  }
  return lo > from ? list[lo - 1]! : -1;
}

/** First element of list[from..to) above `bound`, or -1. */
function firstAbove(list: Int32Array, from: number, to: number, bound: number): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! <= bound) lo = mid + 1;
    else hi = mid;
  }
  return lo < to ? list[lo]! : -1;
}

/** Latest evaluation of v before step r, or -1. */
const copyBefore = (a: Analysis, v: number, r: number) => lastBelow(a.evalList, a.evalStart[v]!, a.evalStart[v + 1]!, r);
/** Latest read of the copy made at c before step r, or -1. */
const readBefore = (a: Analysis, c: number, r: number) => lastBelow(a.readList, a.readStart[c]!, a.readStart[c + 1]!, r);

/**
 * Change in excess over steps s..e when each step's memory grows by delta: visits only the
 * parts of the segment tree where some step can be above budget before or after.
 */
function excessChange(a: Analysis, s: number, e: number, delta: number, budget: number): number {
  if (delta === 0 || s > e) return 0;
  return excessVisit(a, 1, 0, a.size - 1, s, e, delta, budget, budget - Math.max(delta, 0));
}

function excessVisit(a: Analysis, node: number, lo: number, hi: number, s: number, e: number, delta: number, budget: number, threshold: number): number {
  if (hi < s || lo > e || a.tree[node]! <= threshold) return 0;
  if (lo === hi) {
    const m = a.memory[lo]!;
    return Math.max(0, m + delta - budget) - Math.max(0, m - budget);
  }
  const mid = (lo + hi) >> 1;
  return excessVisit(a, 2 * node, lo, mid, s, e, delta, budget, threshold) + excessVisit(a, 2 * node + 1, mid + 1, hi, s, e, delta, budget, threshold);
}

/**
 * Change in total excess (sum over steps of memory above budget) from inserting the
 * evaluations `chain` (topologically ordered) just before step r, without rebuilding the
 * sequence. Old steps before r change by the copies that now end earlier (the chain's nodes
 * are rebuilt) or later (inputs read by the chain); steps from r on are unchanged.
 */
function insertionDelta(ctx: Context, a: Analysis, r: number, chain: readonly number[], budget: number): number {
  const { adj, bytes } = ctx;
  const k = chain.length;
  let cross = a.memory[r - 1]! - a.released[r - 1]!;
  // Memory changes on old steps from..r-1, as [from, delta] pairs.
  const changes: [number, number][] = [];
  // The chain's own nodes: their current copies stop at their last read before r; the new
  // copy is released after its last reader in the chain unless later steps read it.
  const freeAt = new Float64Array(k);
  const lastReader = new Int32Array(k);
  for (let i = 0; i < k; i++) lastReader[i] = i;
  for (let i = 0; i < k; i++) {
    for (const p of adj.preds[chain[i]!]!) {
      const at = chain.indexOf(p);
      if (at >= 0 && at < i) lastReader[at] = i;
    }
  }
  for (let i = 0; i < k; i++) {
    const x = chain[i]!;
    const c = copyBefore(a, x, r);
    if (c >= 0 && a.end[c]! >= r) {
      changes.push([Math.max(c, readBefore(a, c, r)) + 1, -bytes[x]!]);
      cross -= bytes[x]!;
    } else freeAt[lastReader[i]!]! += bytes[x]!;
  }
  // Inputs from outside the chain: kept alive up to their last reader in the chain when their
  // copy ends before r.
  const seen = new Set<number>();
  for (let i = k - 1; i >= 0; i--) {
    for (const p of adj.preds[chain[i]!]!) {
      if (seen.has(p) || chain.includes(p)) continue;
      seen.add(p);
      const c = copyBefore(a, p, r);
      if (a.end[c]! >= r) continue;
      changes.push([a.end[c]! + 1, bytes[p]!]);
      cross += bytes[p]!;
      freeAt[i]! += bytes[p]!;
    }
  }
  changes.sort((x, y) => x[0] - y[0]);
  let delta = 0;
  let cum = 0;
  for (let i = 0; i < changes.length; i++) {
    cum += changes[i]![1];
    const next = i + 1 < changes.length ? changes[i + 1]![0] : r;
    delta += excessChange(a, changes[i]![0], next - 1, cum, budget);
  }
  // The new steps: what crosses into r, plus the chain's outputs so far, minus what the chain
  // has released.
  let held = cross;
  for (let i = 0; i < k; i++) {
    held += bytes[chain[i]!]!;
    delta += Math.max(0, held - budget);
    held -= freeAt[i]!;
  }
  return delta;
}

/**
 * Edits the sequence until the peak fits the budget. At the step of largest excess, for each
 * value resident there but not read there: move its evaluation to just before its next read
 * (free, when nothing reads it earlier), move that reader to before the peak (free, when it
 * releases more inputs than its output holds), or rebuild the value just before the read,
 * alone or with the inputs whose copies would otherwise have to live longer. Takes the edit
 * with the most excess removed per unit of compute. Null when no edit helps.
 */
export function repair(ctx: Context, seq: number[], budget: number, deadline = Infinity, maxSteps = 4 * ctx.n + 100): number[] | null {
  const { adj, compute } = ctx;
  let cur = seq;
  let a = analyze(ctx, cur, budget);
  // Insert `chain` before step `at`, after removing step `from` when given.
  type Edit = { score: number; at: number; chain: number[]; from?: number };
  const apply = (e: Edit) => {
    const base = e.from === undefined ? cur : cur.filter((_, k) => k !== e.from);
    const at = e.from !== undefined && e.from < e.at ? e.at - 1 : e.at;
    return [...base.slice(0, at), ...e.chain, ...base.slice(at)];
  };
  for (let step = 0; a.overflow > 0; step++) {
    if (step >= maxSteps || performance.now() > deadline) return null;
    let j = 0;
    for (let k = 1; k < cur.length; k++) if (a.memory[k]! > a.memory[j]!) j = k;
    const readsAtJ = new Set(adj.preds[cur[j]!]);
    const edits: Edit[] = [];
    const pulled = new Set<number>();
    for (let c = 0; c < j; c++) {
      const v = cur[c]!;
      if (a.end[c]! <= j || readsAtJ.has(v)) continue;
      const r = firstAbove(a.readList, a.readStart[c]!, a.readStart[c + 1]!, j);
      if (a.readList[a.readStart[c]!] === r) {
        // Nothing reads this copy before r: evaluate it just before r instead, at no cost.
        // Scored as a rebuild at r that also drops step c; checked exactly before use.
        const gain = Math.max(0, a.memory[c]! - budget) - insertionDelta(ctx, a, r, [v], budget);
        if (gain > 0) edits.push({ score: gain * 1e12, at: r, chain: [v], from: c });
      }
      // Or evaluate its next reader before the peak, if that releases more than it adds.
      const w = cur[r]!;
      if (!pulled.has(r) && adj.preds[w]!.every((p) => copyBefore(a, p, j) >= 0)) {
        pulled.add(r);
        let gain = -ctx.bytes[w]!;
        for (const p of adj.preds[w]!) {
          const pc = copyBefore(a, p, j);
          if (a.end[pc]! === r && !readsAtJ.has(p)) gain += ctx.bytes[p]!;
        }
        if (gain > 0) edits.push({ score: gain * 1e12, at: j, chain: [w], from: r });
      }
      let previous = 0;
      for (const depth of [0, 1, 3]) {
        const chain = rebuildChain(ctx, a, r, v, depth);
        if (chain.length === previous) break;
        previous = chain.length;
        const gain = -insertionDelta(ctx, a, r, chain, budget);
        if (gain <= 0) continue;
        const added = chain.reduce((s, x) => s + compute[x]!, 0);
        edits.push({ score: gain / (added + 1e-9), at: r, chain });
      }
    }
    edits.sort((x, y) => y.score - x.score);
    let next: number[] | null = null;
    let nextA: Analysis | null = null;
    for (const e of edits) {
      const trial = apply(e);
      const ta = analyze(ctx, trial, budget);
      if (ta.overflow < a.overflow) {
        next = trial;
        nextA = ta;
        break;
      }
    }
    if (!next || !nextA) return null;
    cur = next;
    a = nextA;
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
      const c = copyBefore(a, p, r);
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
      if (peakOf(ctx, trial) <= budget) changed = true;
      else removed[j] = 0;
    }
    if (!changed) return cur;
    cur = dropUnread(ctx, cur.filter((_, i) => !removed[i]));
  }
}

/**
 * Ruin and recreate: move one evaluation within its window, drop a few recomputations or add
 * one at random; repair the excess, prune, and keep the result when it costs no more (so the
 * search walks plateaus). `step`
 * runs one round; `offer` hands it a plan found elsewhere.
 */
export class RuinAndRecreate {
  cur: number[];
  curCost: number;
  best: number[];
  bestCost: number;

  constructor(
    private readonly ctx: Context,
    start: number[],
    private readonly budget: number,
    private readonly random: () => number,
  ) {
    this.cur = this.best = start;
    this.curCost = this.bestCost = analyze(ctx, start, budget).cost;
  }

  offer(seq: number[], cost: number): void {
    if (cost > this.curCost) return;
    this.cur = seq;
    this.curCost = cost;
    if (cost < this.bestCost) {
      this.best = seq;
      this.bestCost = cost;
    }
  }

  step(deadline: number): void {
    const { ctx, random, cur } = this;
    const repeats: number[] = [];
    const seen = new Uint8Array(ctx.n);
    for (let j = 0; j < cur.length; j++) {
      if (seen[cur[j]!]) repeats.push(j);
      seen[cur[j]!] = 1;
    }
    let ruined: number[];
    const kind = random();
    if (kind < 0.3) {
      // Reorder: move one evaluation anywhere between its inputs and its first reader.
      const a = analyze(ctx, cur, this.budget);
      const k = Math.floor(random() * cur.length);
      let lo = 0;
      for (const p of ctx.adj.preds[cur[k]!]!) lo = Math.max(lo, copyBefore(a, p, k) + 1);
      const first = a.readStart[k]! < a.readStart[k + 1]! ? a.readList[a.readStart[k]!]! : cur.length;
      const to = lo + Math.floor(random() * (first - lo)); // insert before `to` (original index)
      if (to === k || to === k + 1) return;
      ruined = cur.filter((_, j) => j !== k);
      const at = to > k ? to - 1 : to;
      ruined.splice(at, 0, cur[k]!);
    } else if (repeats.length > 0 && kind < 0.8) {
      const k = 1 + Math.floor(random() * Math.min(3, repeats.length));
      const drop = new Set<number>();
      for (let i = 0; i < k; i++) drop.add(repeats[Math.floor(random() * repeats.length)]!);
      ruined = cur.filter((_, j) => !drop.has(j));
    } else {
      // A recomputation at a random read: frees its value before that read.
      const j = 1 + Math.floor(random() * (cur.length - 1));
      const preds = ctx.adj.preds[cur[j]!]!;
      if (preds.length === 0) return;
      const v = preds[Math.floor(random() * preds.length)]!;
      ruined = [...cur.slice(0, j), v, ...cur.slice(j)];
    }
    const repaired = repair(ctx, ruined, this.budget, deadline);
    if (!repaired) return;
    const cand = prune(ctx, repaired, this.budget);
    this.offer(cand, analyze(ctx, cand, this.budget).cost);
  }
}
