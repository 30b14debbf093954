// Tensor networks as data: physical modes, cores that carry some of them, and edges between cores
// with a rank each. Constructors for the usual families (tensor train, tensor ring, Tucker, a
// fully connected graph), parameter counts, and the einsum that contracts a network back to the
// dense tensor. Nothing here fits or runs anything: see graphs/tn/search.ts and runtime/tn-fit.ts.

import type { Builder } from '../builder.js';
import type { Tensor } from '../types.js';

export type TnFamily = 'tt' | 'tr' | 'tucker' | 'general';

export interface TnEdge {
  readonly a: number;
  readonly b: number;
  readonly rank: number;
}

/**
 * A network of cores. Core k's axes are its physical modes (in the order listed in `cores[k]`)
 * followed by its edges (in the order of `edges`).
 */
export interface TensorNetwork {
  readonly family: TnFamily;
  /** sizes of the dense tensor's modes */
  readonly dims: readonly number[];
  /** the physical modes each core carries */
  readonly cores: readonly (readonly number[])[];
  readonly edges: readonly TnEdge[];
}

/** Tensor train: cores in mode order, `ranks[k]` between cores k and k+1 (d-1 ranks). */
export function tensorTrain(dims: readonly number[], ranks: readonly number[]): TensorNetwork {
  if (ranks.length !== dims.length - 1) throw new RangeError(`tensorTrain: ${dims.length} modes need ${dims.length - 1} ranks, got ${ranks.length}`);
  return checked({ family: 'tt', dims: [...dims], cores: dims.map((_, k) => [k]), edges: ranks.map((rank, k) => ({ a: k, b: k + 1, rank })) });
}

/** Tensor ring: `ranks[k]` between cores k and k+1 (mod d), d ranks. */
export function tensorRing(dims: readonly number[], ranks: readonly number[]): TensorNetwork {
  if (ranks.length !== dims.length || dims.length < 3) throw new RangeError(`tensorRing: ${dims.length} modes need ${dims.length} ranks (and at least 3 modes), got ${ranks.length}`);
  return checked({ family: 'tr', dims: [...dims], cores: dims.map((_, k) => [k]), edges: ranks.map((rank, k) => ({ a: k, b: (k + 1) % dims.length, rank })) });
}

/** Tucker: core 0 is the core tensor (no physical mode), core k+1 the factor of mode k, rank `ranks[k]`. */
export function tucker(dims: readonly number[], ranks: readonly number[]): TensorNetwork {
  if (ranks.length !== dims.length) throw new RangeError(`tucker: ${dims.length} modes need ${dims.length} ranks, got ${ranks.length}`);
  return checked({ family: 'tucker', dims: [...dims], cores: [[], ...dims.map((_, k) => [k])], edges: ranks.map((rank, k) => ({ a: 0, b: k + 1, rank })) });
}

/** One core per mode and an edge between every pair, ranks listed pair by pair (0-1, 0-2, …, 1-2, …). */
export function fullyConnected(dims: readonly number[], ranks: readonly number[] | number = 1): TensorNetwork {
  const edges: TnEdge[] = [];
  for (let a = 0; a < dims.length; a++) for (let b = a + 1; b < dims.length; b++) {
    edges.push({ a, b, rank: typeof ranks === 'number' ? ranks : ranks[edges.length] ?? NaN });
  }
  return checked({ family: 'general', dims: [...dims], cores: dims.map((_, k) => [k]), edges });
}

/** Any graph: cores carrying the listed modes, edges `[a, b, rank]`. */
export function generalNetwork(dims: readonly number[], cores: readonly (readonly number[])[], edges: readonly (readonly [number, number, number])[]): TensorNetwork {
  return checked({ family: 'general', dims: [...dims], cores: cores.map((c) => [...c]), edges: edges.map(([a, b, rank]) => ({ a, b, rank })) });
}

function checked(net: TensorNetwork): TensorNetwork {
  const seen = new Set<number>();
  for (const c of net.cores) for (const m of c) {
    if (!(m >= 0 && m < net.dims.length) || seen.has(m)) throw new RangeError(`tensor network: mode ${m} is out of range or carried twice`);
    seen.add(m);
  }
  if (seen.size !== net.dims.length) throw new RangeError('tensor network: every mode must be carried by exactly one core');
  const pairs = new Set<string>();
  for (const e of net.edges) {
    const key = `${Math.min(e.a, e.b)}-${Math.max(e.a, e.b)}`;
    if (pairs.has(key)) throw new RangeError(`tensor network: two edges join cores ${key} (merge them into one)`);
    pairs.add(key);
    if (!Number.isInteger(e.rank) || e.rank < 1) throw new RangeError(`tensor network: edge ${e.a}-${e.b} has rank ${e.rank}`);
    if (e.a === e.b || !net.cores[e.a] || !net.cores[e.b]) throw new RangeError(`tensor network: edge ${e.a}-${e.b} does not join two cores`);
  }
  return net;
}

export function ranksOf(net: TensorNetwork): number[] {
  return net.edges.map((e) => e.rank);
}

export function withRanks(net: TensorNetwork, ranks: readonly number[]): TensorNetwork {
  if (ranks.length !== net.edges.length) throw new RangeError(`withRanks: ${net.edges.length} edges, ${ranks.length} ranks`);
  return checked({ ...net, edges: net.edges.map((e, i) => ({ ...e, rank: ranks[i]! })) });
}

/** Edge ids incident to core k, in edge order (the order of its bond axes). */
export function edgesOf(net: TensorNetwork, k: number): number[] {
  return net.edges.flatMap((e, i) => (e.a === k || e.b === k ? [i] : []));
}

export function coreShape(net: TensorNetwork, k: number): number[] {
  return [...net.cores[k]!.map((m) => net.dims[m]!), ...edgesOf(net, k).map((i) => net.edges[i]!.rank)];
}

export function paramCount(net: TensorNetwork): number {
  return net.cores.reduce((s, _, k) => s + coreShape(net, k).reduce((p, d) => p * d, 1), 0);
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Letters for modes and edges (and a second set of edge letters, for two copies of a network). */
export function letters(net: TensorNetwork): { mode: string[]; edge: string[]; edge2: string[] } {
  const d = net.dims.length;
  const E = net.edges.length;
  if (d + 2 * E > LETTERS.length) throw new RangeError(`tensor network: ${d} modes and ${E} edges need more than ${LETTERS.length} einsum letters`);
  return { mode: [...LETTERS.slice(0, d)], edge: [...LETTERS.slice(d, d + E)], edge2: [...LETTERS.slice(d + E, d + 2 * E)] };
}

/** Subscripts of core k: its modes then its edges. */
export function coreSubscripts(net: TensorNetwork, k: number, edgeLetters = letters(net).edge): string {
  const { mode } = letters(net);
  return net.cores[k]!.map((m) => mode[m]).join('') + edgesOf(net, k).map((i) => edgeLetters[i]).join('');
}

/**
 * An operand order for left-to-right pairwise contraction that keeps intermediates small:
 * greedily, the next operand is the one whose contraction with the running product is smallest.
 */
export function contractionOrder(subs: readonly string[], size: (c: string) => number, output: string): number[] {
  const n = subs.length;
  if (n <= 2) return subs.map((_, i) => i);
  const count = (set: Iterable<string>): number => [...set].reduce((p, c) => p * size(c), 1);
  const after = (acc: Set<string>, j: number, left: number[]): Set<string> => {
    const needed = new Set([...output, ...left.filter((i) => i !== j).flatMap((i) => [...subs[i]!])]);
    return new Set([...acc, ...subs[j]!].filter((c) => needed.has(c)));
  };
  let best: { order: number[]; cost: number } | null = null;
  for (let s = 0; s < n; s++) {
    let left = subs.map((_, i) => i).filter((i) => i !== s);
    let acc = after(new Set(), s, subs.map((_, i) => i));
    const order = [s];
    let cost = count(acc);
    while (left.length) {
      let pick = left[0]!;
      let pickSize = Infinity;
      for (const j of left) {
        const sz = count(new Set([...acc, ...subs[j]!])) ;
        const shared = [...subs[j]!].some((c) => acc.has(c));
        const score = shared ? sz : sz * 1e6;
        if (score < pickSize) { pickSize = score; pick = j; }
      }
      acc = after(acc, pick, left);
      left = left.filter((i) => i !== pick);
      order.push(pick);
      cost += pickSize;
    }
    if (!best || cost < best.cost) best = { order, cost };
  }
  return best!.order;
}

/** `einsum` of operands in the order `contractionOrder` picks. */
export function orderedEinsum(g: Builder, subs: readonly string[], operands: readonly Tensor[], output: string, size: (c: string) => number): Tensor {
  const order = contractionOrder(subs, size, output);
  return g.einsum(`${order.map((i) => subs[i]).join(',')}->${output}`, ...order.map((i) => operands[i]!));
}

/** The dense tensor a network represents, contracted with `g.einsum` from the given cores. */
export function contractNetwork(g: Builder, net: TensorNetwork, cores: readonly Tensor[]): Tensor {
  const L = letters(net);
  const sizes = sizeOf(net, L);
  return orderedEinsum(g, net.cores.map((_, k) => coreSubscripts(net, k)), cores, L.mode.join(''), sizes);
}

/** Letter → size for a network's mode and edge letters (both copies). */
export function sizeOf(net: TensorNetwork, L = letters(net)): (c: string) => number {
  const m = new Map<string, number>();
  L.mode.forEach((c, i) => m.set(c, net.dims[i]!));
  L.edge.forEach((c, i) => m.set(c, net.edges[i]!.rank));
  L.edge2.forEach((c, i) => m.set(c, net.edges[i]!.rank));
  return (c) => m.get(c) ?? 1;
}

/** Dense reconstruction on the host by direct summation over every bond index (a reference). */
export function denseReconstruct(net: TensorNetwork, cores: readonly ArrayLike<number>[]): Float64Array {
  const d = net.dims.length;
  const E = net.edges.length;
  const N = net.dims.reduce((p, x) => p * x, 1);
  const R = net.edges.reduce((p, e) => p * e.rank, 1);
  const out = new Float64Array(N);
  const modeIdx = new Array<number>(d).fill(0);
  const edgeIdx = new Array<number>(E).fill(0);
  const shapes = net.cores.map((_, k) => coreShape(net, k));
  const axes = net.cores.map((c, k) => [...c.map((m) => ({ mode: m })), ...edgesOf(net, k).map((e) => ({ edge: e }))]);
  for (let n = 0; n < N; n++) {
    let r = n;
    for (let m = d - 1; m >= 0; m--) { modeIdx[m] = r % net.dims[m]!; r = Math.floor(r / net.dims[m]!); }
    let s = 0;
    for (let q = 0; q < R; q++) {
      let t = q;
      for (let e = E - 1; e >= 0; e--) { edgeIdx[e] = t % net.edges[e]!.rank; t = Math.floor(t / net.edges[e]!.rank); }
      let p = 1;
      for (let k = 0; k < net.cores.length; k++) {
        let off = 0;
        axes[k]!.forEach((ax, i) => { off = off * shapes[k]![i]! + ('mode' in ax ? modeIdx[ax.mode]! : edgeIdx[ax.edge]!); });
        p *= cores[k]![off]!;
      }
      s += p;
    }
    out[n] = s;
  }
  return out;
}

export function describeNetwork(net: TensorNetwork): string {
  return `${net.family}[${ranksOf(net).join(',')}] (${paramCount(net)} params)`;
}
