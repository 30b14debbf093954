// Tensor-network structure search: the fewest parameters whose network fits a target within a
// relative error ε. The topology (tensor train, ring, Tucker, or any graph) is given; the search
// chooses a rank per edge. Three strategies: greedy rank increments (Hashemizadeh et al.,
// "Adaptive Learning of Tensor Network Structures"), alternating local enumeration (TnALE), and
// a one-shot read of the ranks from unfolding spectra. Candidates are fitted by an injected
// TnFitter (runtime/tn-fit.ts fits them with rheo); this module never runs a graph itself.

import type { TnFit, TnFitter } from './fit-types.js';
import { coreShape, edgesOf, paramCount, ranksOf, withRanks, type TensorNetwork } from './network.js';
import { numericalRank, symmetricEigenvalues } from './linalg.js';

export type SearchStrategy = 'greedy' | 'tnale' | 'one-shot';

export interface SearchOptions {
  /** the largest acceptable RSE, ‖X − X̂‖ / ‖X‖ */
  readonly target: number;
  /** a cap on every edge's rank (besides the bound a bridge edge's cut gives; default 32) */
  readonly maxRank?: number;
  /** stop after this many candidate fits (default 500) */
  readonly maxEvaluations?: number;
  /** sweeps of a full fit (default 30) */
  readonly fullSweeps?: number;
  /** never consider networks with more parameters than this (e.g. a compression budget) */
  readonly maxParams?: number;
  /** one line per step, for progress output */
  readonly log?: (line: string) => void;
  /** called with the fit after each step of the greedy search */
  readonly onStep?: (fit: TnFit) => void;
}

export interface SearchResult {
  readonly strategy: SearchStrategy;
  /** the fewest-parameter fit found with RSE ≤ target, or null */
  readonly best: TnFit | null;
  /** the last fit the search made (the closest it came when `best` is null) */
  readonly last: TnFit;
  /** candidate fits started */
  readonly evaluations: number;
}

const fullFit = (o: SearchOptions) => ({ sweeps: o.fullSweeps ?? 30, target: o.target * 0.5, stall: 1e-3 });

/**
 * The largest useful rank of edge i: when removing it splits the network in two, the rank of
 * that unfolding can be no more than the smaller side's size.
 */
export function edgeBound(net: TensorNetwork, i: number, cap = 32): number {
  const K = net.cores.length;
  const seen = new Uint8Array(K);
  const stack = [net.edges[i]!.a];
  while (stack.length) {
    const k = stack.pop()!;
    if (seen[k]) continue;
    seen[k] = 1;
    net.edges.forEach((e, j) => {
      if (j === i) return;
      if (e.a === k) stack.push(e.b);
      if (e.b === k) stack.push(e.a);
    });
  }
  if (seen[net.edges[i]!.b]) return cap;
  let left = 1;
  let right = 1;
  net.cores.forEach((modes, k) => modes.forEach((m) => (seen[k] ? (left *= net.dims[m]!) : (right *= net.dims[m]!))));
  return Math.min(cap, left, right);
}

/** Cores of `from` resized to `to`'s ranks: bond axes cut short or padded with zeros. */
export function resizeCores(from: TensorNetwork, cores: readonly Float64Array[], to: TensorNetwork): Float64Array[] {
  return cores.map((c, k) => {
    const src = coreShape(from, k);
    const dst = coreShape(to, k);
    if (src.every((d, i) => d === dst[i])) return c;
    const out = new Float64Array(dst.reduce((p, d) => p * d, 1));
    const idx = new Array<number>(dst.length).fill(0);
    for (let o = 0; o < out.length; o++) {
      let s = 0;
      let inside = true;
      for (let a = 0; a < dst.length; a++) {
        if (idx[a]! >= src[a]!) inside = false;
        s = s * src[a]! + Math.min(idx[a]!, src[a]! - 1);
      }
      if (inside) out[o] = c[s]!;
      for (let a = dst.length - 1; a >= 0; a--) {
        if (++idx[a]! < dst[a]!) break;
        idx[a] = 0;
      }
    }
    return out;
  });
}

function better(a: TnFit, b: TnFit | null, target: number): boolean {
  if (!b) return true;
  const fa = a.rse <= target;
  const fb = b.rse <= target;
  if (fa !== fb) return fa;
  // outside ε, lower error wins unless the two are within 1% (then fewer parameters win)
  if (!fa && Math.abs(a.rse - b.rse) > 0.01 * b.rse) return a.rse < b.rse;
  const pa = paramCount(a.net);
  const pb = paramCount(b.net);
  return pa < pb || (pa === pb && a.rse < b.rse);
}

const show = (f: TnFit): string => `ranks [${ranksOf(f.net).join(',')}] ${paramCount(f.net)} params, RSE ${f.rse.toExponential(2)}`;

/**
 * Greedy rank increments (Hashemizadeh et al.): every edge starts at rank 1; each step tries
 * +1 on each edge, fitting only the grown edge's two cores (one two-site least-squares update,
 * the analogue of fitting only the new slices), keeps the edge with the largest error
 * reduction per added parameter, then fits every core. Stops at the first structure within ε.
 * Edges whose rank would be redundant (above the product of their cores' other axes) are not
 * grown.
 */
export function greedySearch(fitter: TnFitter, topology: TensorNetwork, o: SearchOptions): SearchResult {
  const start = fitter.evaluations;
  const maxEval = o.maxEvaluations ?? 500;
  const bounds = topology.edges.map((_, i) => edgeBound(topology, i, o.maxRank));
  let cur = fitter.fit(withRanks(topology, topology.edges.map(() => 1)), null, fullFit(o));
  o.log?.(`greedy start: ${show(cur)}`);
  o.onStep?.(cur);
  const tryGrow = (edges: number[]): { fit: TnFit; gain: number; edges: number[] } | null => {
    const ranks = ranksOf(cur.net).map((r, j) => (edges.includes(j) ? r + 1 : r));
    const net = withRanks(cur.net, ranks);
    if (edges.some((i) => ranks[i]! > bounds[i]! || ranks[i]! > usefulRank(net, i))) return null;
    if (o.maxParams !== undefined && paramCount(net) > o.maxParams) return null;
    const f = fitter.fit(net, resizeCores(cur.net, cur.cores, net), { sweeps: 0, first: edges });
    return { fit: f, gain: (cur.rse ** 2 - f.rse ** 2) / (paramCount(net) - paramCount(cur.net)), edges };
  };
  while (cur.rse > o.target && fitter.evaluations - start < maxEval) {
    const E = topology.edges.length;
    let pick: ReturnType<typeof tryGrow> = null;
    for (let i = 0; i < E; i++) {
      const c = tryGrow([i]);
      if (c && (!pick || c.gain > pick.gain)) pick = c;
    }
    // When no single edge can grow usefully (a Tucker core needs two ranks above 1 before any
    // helps), look one step further: pairs of edges.
    if (!pick || pick.gain * (paramCount(pick.fit.net) - paramCount(cur.net)) < 1e-9 * cur.rse ** 2) {
      for (let i = 0; i < E; i++) for (let j = i + 1; j < E; j++) {
        const c = tryGrow([i, j]);
        if (c && (!pick || c.gain > pick.gain)) pick = c;
      }
    }
    if (!pick) break;
    cur = fitter.fit(pick.fit.net, pick.fit.cores, fullFit(o));
    o.log?.(`greedy +1 on edge ${pick.edges.join(' and ')}: ${show(cur)}`);
    o.onStep?.(cur);
  }
  if (cur.rse > o.target) return { strategy: 'greedy', best: null, last: cur, evaluations: fitter.evaluations - start };
  const best = trim(fitter, cur, o, bounds);
  return { strategy: 'greedy', best, last: best, evaluations: fitter.evaluations - start };
}

/**
 * Backward elimination after a search that reached ε: −1 on each edge in turn, fitted in full
 * from the current cores, kept while the fit stays within ε, until no edge can shrink. It
 * removes the ranks an early, noisy increment overshot.
 */
export function trim(fitter: TnFitter, fit: TnFit, o: SearchOptions, bounds: readonly number[]): TnFit {
  let cur = fit;
  const maxEval = o.maxEvaluations ?? 500;
  const start = fitter.evaluations;
  const failed = new Set<string>();
  let shrunk = true;
  while (shrunk && fitter.evaluations - start < maxEval) {
    shrunk = false;
    // costliest edges first: removing rank there saves the most
    const ranks = ranksOf(cur.net);
    const order = ranks.map((_, i) => i).filter((i) => ranks[i]! > 1).sort((a, b) => saving(cur.net, b) - saving(cur.net, a));
    for (const i of order) {
      const next = ranks.map((r, j) => (j === i ? Math.min(r - 1, bounds[j]!) : r));
      if (failed.has(next.join(','))) continue;
      const net = withRanks(cur.net, next);
      const f = fitter.fit(net, resizeCores(cur.net, cur.cores, net), { ...fullFit(o), first: [i] });
      if (f.rse <= o.target) {
        cur = f;
        shrunk = true;
        o.log?.(`trim −1 on edge ${i}: ${show(cur)}`);
        break;
      }
      failed.add(next.join(','));
    }
  }
  return cur;
}

function saving(net: TensorNetwork, i: number): number {
  return paramCount(net) - paramCount(withRanks(net, ranksOf(net).map((r, j) => (j === i ? r - 1 : r))));
}

/**
 * The largest rank edge i can use given its cores' other axes: a core's slice along the edge
 * lives in the space of its other axes, so a rank above their product is redundant.
 */
export function usefulRank(net: TensorNetwork, i: number): number {
  const e = net.edges[i]!;
  const room = (k: number): number => coreShape(net, k).reduce((p, d) => p * d, 1) / e.rank;
  return Math.min(room(e.a), room(e.b));
}

export interface TnaleOptions extends SearchOptions {
  /** ranks to start from (default 4 on every edge, within each edge's bound) */
  readonly start?: readonly number[];
  /** how far from its current rank each edge is enumerated (default 2) */
  readonly radius?: number;
}

/**
 * Alternating local enumeration (TnALE, Li et al.): sweeping over the edges back and forth, each
 * edge's rank is enumerated within a radius while the others stay fixed, and the best candidate
 * is kept: any fit within ε beats any fit outside it; within ε fewer parameters win, outside it
 * lower error. Candidates start from the current cores resized (a warm start), and a rank vector
 * is fitted at most once. Stops when a sweep there and back changes nothing. It starts from
 * rank 4 on every edge (or `start`), raised together until the fit is within ε.
 */
export function tnaleSearch(fitter: TnFitter, topology: TensorNetwork, o: TnaleOptions): SearchResult {
  const start = fitter.evaluations;
  const maxEval = o.maxEvaluations ?? 500;
  const radius = o.radius ?? 2;
  const bounds = topology.edges.map((_, i) => edgeBound(topology, i, o.maxRank));
  const seen = new Map<string, TnFit>();
  const evaluate = (ranks: number[], from: TnFit | null, edge: number): TnFit => {
    const key = ranks.join(',');
    const hit = seen.get(key);
    if (hit) return hit;
    const net = withRanks(topology, ranks);
    const f = fitter.fit(net, from ? resizeCores(from.net, from.cores, net) : null, { ...fullFit(o), ...(from ? { first: [edge] } : {}) });
    seen.set(key, f);
    return f;
  };
  let cur = evaluate((o.start ?? bounds.map((b) => Math.min(4, b))).map((r, i) => Math.min(r, bounds[i]!)), null, 0);
  o.log?.(`tnale start: ${show(cur)}`);
  // Below ε the enumeration only has to shed rank, which is reliable from a warm start; above
  // it, fits of under-ranked networks stall in poor local minima. So first raise every rank
  // together until the fit is within ε.
  while (cur.rse > o.target && fitter.evaluations - start < maxEval) {
    const ranks = ranksOf(cur.net);
    const up = ranks.map((r, i) => Math.min(r + 1, bounds[i]!));
    if (up.every((r, i) => r === ranks[i])) break;
    cur = evaluate(up, null, 0);
    o.log?.(`tnale raise: ${show(cur)}`);
  }
  let best: TnFit | null = cur.rse <= o.target ? cur : null;
  let forward = true;
  let quiet = 0;
  while (quiet < 2 && fitter.evaluations - start < maxEval) {
    let changed = false;
    const edges = [...topology.edges.keys()];
    for (const i of forward ? edges : edges.reverse()) {
      const ranks = ranksOf(cur.net);
      let pick = cur;
      for (let r = Math.max(1, ranks[i]! - radius); r <= Math.min(bounds[i]!, ranks[i]! + radius); r++) {
        if (r === ranks[i]) continue;
        // within ε, a larger rank cannot win
        if (r > ranks[i]! && cur.rse <= o.target) continue;
        const f = evaluate(ranks.map((x, j) => (j === i ? r : x)), cur, i);
        if (better(f, pick, o.target)) pick = f;
      }
      if (pick !== cur) {
        cur = pick;
        changed = true;
        if (better(cur, best, o.target) && cur.rse <= o.target) best = cur;
        o.log?.(`tnale edge ${i}: ${show(cur)}`);
      }
    }
    quiet = changed ? 0 : quiet + 1;
    forward = !forward;
  }
  return { strategy: 'tnale', best, last: cur, evaluations: fitter.evaluations - start };
}

export interface OneShotOptions extends SearchOptions {
  /** rank vectors fitted, fewest parameters first, before giving up (default 3) */
  readonly tries?: number;
}

/**
 * One shot: the ranks are read off the data, then fitted once. Cutting a network's edges into
 * two parts bounds the rank of the matching unfolding of the tensor by the product of the cut
 * ranks, and generically meets it. So each cut of one or two edges gives a constraint
 * ∏ r_e ≥ rank(unfolding), measured from the spectrum of the unfolding's Gram matrix (computed
 * by the fitter) at tolerance ε/√E; the fewest-parameter rank vector meeting all of them is
 * fitted. On a tree (TT, Tucker) every edge is its own cut and the ranks are exact; on a ring
 * they come from the two-edge cuts. In the spirit of SVDinsTN (one fit, ranks read off rather
 * than searched for), without its regularized fully connected fit.
 */
export function oneShotSearch(fitter: TnFitter, topology: TensorNetwork, o: OneShotOptions): SearchResult {
  const start = fitter.evaluations;
  const E = topology.edges.length;
  const bounds = topology.edges.map((_, i) => edgeBound(topology, i, o.maxRank));
  const tol = o.target / Math.sqrt(E);
  const constraints: { edges: number[]; rank: number }[] = [];
  const size = (ms: readonly number[]): number => ms.reduce((p, m) => p * topology.dims[m]!, 1);
  const cutRows: { edges: number[]; rows: number[] }[] = [];
  for (let i = 0; i < E; i++) for (let j = i; j < E; j++) {
    const cut = i === j ? [i] : [i, j];
    const side = cutSide(topology, cut);
    if (!side) continue;
    const rest = topology.dims.map((_, m) => m).filter((m) => !side.includes(m));
    cutRows.push({ edges: cut, rows: size(side) <= size(rest) ? side : rest });
  }
  const grams = fitter.unfoldingGrams(cutRows.map((c) => c.rows));
  cutRows.forEach((c, k) => {
    constraints.push({ edges: c.edges, rank: numericalRank(symmetricEigenvalues(grams[k]!, size(c.rows)), fitter.normSq, tol) });
  });
  const candidates = fewestParams(topology, constraints, bounds, o.tries ?? 3);
  let last: TnFit | null = null;
  let best: TnFit | null = null;
  for (const ranks of candidates) {
    // Start from cores computed from the data: for a tree of the target's ranks they already fit,
    // and one two-site update (which measures the error) confirms it; otherwise the sweeps go on.
    const net = withRanks(topology, ranks);
    const init = fitter.svdCores?.(net) ?? null;
    const f = fitter.fit(net, init, init ? { ...fullFit(o), first: [0] } : fullFit(o));
    o.log?.(`one-shot: ${show(f)}`);
    last = f;
    if (f.rse <= o.target) { best = f; break; }
  }
  if (!last) throw new RangeError('oneShotSearch: no rank vector meets the cut constraints');
  return { strategy: 'one-shot', best, last, evaluations: fitter.evaluations - start };
}

/** The modes on one side when the edges `cut` are removed, if that leaves exactly two parts each with modes. */
function cutSide(net: TensorNetwork, cut: readonly number[]): number[] | null {
  const K = net.cores.length;
  const comp = new Int32Array(K).fill(-1);
  let parts = 0;
  for (let s = 0; s < K; s++) {
    if (comp[s] !== -1) continue;
    const stack = [s];
    while (stack.length) {
      const k = stack.pop()!;
      if (comp[k] !== -1) continue;
      comp[k] = parts;
      net.edges.forEach((e, j) => {
        if (cut.includes(j)) return;
        if (e.a === k) stack.push(e.b);
        if (e.b === k) stack.push(e.a);
      });
    }
    parts++;
  }
  if (parts !== 2) return null;
  // every cut edge must join the two parts (else it is not needed to separate them)
  if (!cut.every((j) => comp[net.edges[j]!.a] !== comp[net.edges[j]!.b])) return null;
  const side = net.cores.flatMap((modes, k) => (comp[k] === 0 ? [...modes] : []));
  if (side.length === 0 || side.length === net.dims.length) return null;
  return side;
}

/** The `count` rank vectors with the fewest parameters meeting every constraint (depth-first, pruned). */
function fewestParams(net: TensorNetwork, constraints: readonly { edges: number[]; rank: number }[], bounds: readonly number[], count: number): number[][] {
  const E = net.edges.length;
  // No minimal vector needs an edge above the largest constraint it takes part in.
  const upper = bounds.map((b, i) => Math.min(b, Math.max(1, ...constraints.filter((c) => c.edges.includes(i)).map((c) => c.rank))));
  const found: { ranks: number[]; params: number }[] = [];
  const ranks = upper.map(() => 1);
  const worst = (): number => (found.length < count ? Infinity : found[found.length - 1]!.params);
  const incident = net.cores.map((_, k) => edgesOf(net, k));
  const physical = net.cores.map((modes) => modes.reduce((p, m) => p * net.dims[m]!, 1));
  const params = (): number => incident.reduce((s, es, k) => s + es.reduce((p, e) => p * ranks[e]!, physical[k]!), 0);
  // constraints by the last edge they involve: checked once that edge's rank is set
  const byLast = ranks.map((_, i) => constraints.filter((c) => Math.max(...c.edges) === i));
  const ok = (i: number): boolean => byLast[i]!.every((c) => c.edges.reduce((p, e) => p * ranks[e]!, 1) >= c.rank);
  const visit = (i: number): void => {
    // later edges are still at rank 1, so the count only grows from here
    const p = params();
    if (p > worst()) return;
    if (i === E) {
      found.push({ ranks: [...ranks], params: p });
      found.sort((a, b) => a.params - b.params);
      if (found.length > count) found.pop();
      return;
    }
    for (let r = 1; r <= upper[i]!; r++) {
      ranks[i] = r;
      if (ok(i)) visit(i + 1);
    }
    ranks[i] = 1;
  };
  visit(0);
  return found.map((f) => f.ranks);
}

/** Run one strategy by name. */
export function searchStructure(strategy: SearchStrategy, fitter: TnFitter, topology: TensorNetwork, o: TnaleOptions & OneShotOptions): SearchResult {
  return strategy === 'greedy' ? greedySearch(fitter, topology, o) : strategy === 'tnale' ? tnaleSearch(fitter, topology, o) : oneShotSearch(fitter, topology, o);
}
