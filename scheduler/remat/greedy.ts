// Greedy eviction, the DTR-style half of the heuristic: runs the graph in id order and, when the
// next evaluation would exceed the budget, evicts the resident value that is cheapest to rebuild
// per byte and per step until its next read (the future is known, so this is Belady's rule
// weighted by cost); evicted inputs are recomputed when needed, from values kept alive for the
// purpose. Makes one plan per call; heuristic.ts chooses among variants and refines.

import type { Context } from './context.js';

/** Knobs of one greedy run: score = rebuild^1 / (bytes^alpha * distance^beta) * bias[node]. */
export interface Variant {
  alpha: number;
  beta: number;
  /** 0: own compute plus evicted inputs; 1: whole evicted ancestry. */
  depth: 0 | 1;
  bias?: Float64Array;
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
      const net = q >= 0 ? b : b - extra / Math.max(1, T - now);
      const score = net > 0 ? (c + 1e-9) / (Math.pow(net, variant.alpha) * scale) : 1e200 + c / b;
      if (score < bestScore) {
        bestScore = score;
        best = u;
        bestT = q >= 0 ? -1 : T;
      }
    }
    if (best < 0) return false;
    if (bestT >= 0) {
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

/** The scoring variants the heuristic tries. */
export const VARIANTS: Variant[] = [
  { alpha: 1, beta: 1, depth: 1 },
  { alpha: 1, beta: 0, depth: 1 },
  { alpha: 1, beta: 2, depth: 1 },
  { alpha: 1, beta: 0.5, depth: 1 },
  { alpha: 0.5, beta: 1, depth: 1 },
  { alpha: 2, beta: 1, depth: 1 },
  { alpha: 1, beta: 1, depth: 0 },
];
