// Cores computed from the data, to start a fit near its solution: sequentially truncated HOSVD
// for Tucker, TT-SVD for tensor trains and TR-SVD (Zhao et al., "Tensor Ring Decomposition",
// 2016) for rings. Each step is a truncated SVD of a small unfolding (lowRankSplit: the
// eigenvectors of the smaller Gram matrix), on the host. For a tree with the target's exact
// ranks the cores reproduce the target; a ring's are a close start (its gauge between the two
// bonds of the first core is not recovered).

import { coreShape, edgesOf, ranksOf, type TensorNetwork } from './network.js';
import { lowRankSplit, permuteAxes, symmetricEigen } from './linalg.js';

const prod = (xs: readonly number[]): number => xs.reduce((p, x) => p * x, 1);

/** Cores of `net` computed from `x` (row-major, shape `net.dims`), or null for a general graph. */
export function svdCores(net: TensorNetwork, x: ArrayLike<number>): Float64Array[] | null {
  if (x.length !== prod(net.dims)) throw new RangeError(`svdCores: ${x.length} values for dims [${net.dims.join(', ')}]`);
  if (net.family === 'tucker') return hosvd(net, x);
  if (net.family === 'tt') return ttSvd(net, x);
  if (net.family === 'tr') return trSvd(net, x);
  return null;
}

/** Sequentially truncated HOSVD: factor k spans mode k's leading singular vectors; the core is the projection. */
function hosvd(net: TensorNetwork, x: ArrayLike<number>): Float64Array[] {
  const d = net.dims.length;
  const ranks = ranksOf(net);
  const shape = [...net.dims];
  let t: Float64Array = Float64Array.from(x);
  const factors: Float64Array[] = [];
  for (let k = 0; k < d; k++) {
    // bring mode k to the front, project it onto its leading left singular vectors, put it back
    const perm = [k, ...shape.map((_, i) => i).filter((i) => i !== k)];
    const m = shape[k]!;
    const n = t.length / m;
    const r = ranks[k]!;
    const M = permuteAxes(t, shape, perm);
    const W = new Float64Array(m * m);
    for (let i = 0; i < m; i++) for (let j = i; j < m; j++) {
      let s = 0;
      for (let c = 0; c < n; c++) s += M[i * n + c]! * M[j * n + c]!;
      W[i * m + j] = s;
      W[j * m + i] = s;
    }
    const { vectors } = symmetricEigen(W, m);
    const U = new Float64Array(m * r);
    for (let i = 0; i < m; i++) for (let c = 0; c < Math.min(r, m); c++) U[i * r + c] = vectors[i * m + c]!;
    const P = new Float64Array(r * n);
    for (let i = 0; i < m; i++) for (let c = 0; c < r; c++) {
      const u = U[i * r + c]!;
      if (u !== 0) for (let q = 0; q < n; q++) P[c * n + q] += u * M[i * n + q]!;
    }
    factors.push(U);
    shape[k] = r;
    t = permuteAxes(P, perm.map((p) => shape[p]!), perm.map((_, i) => perm.indexOf(i)));
  }
  return [t, ...factors];
}

/**
 * Core k of a train or ring from a [left, mode, right] block, in its layout: the mode, then its
 * edges in edge order (on a ring, core 0's edges are [0, d−1]: right before left).
 */
function place(net: TensorNetwork, k: number, block: Float64Array, left: number, right: number): Float64Array {
  const n = net.dims[k]!;
  const es = edgesOf(net, k);
  const out = es.length === 1
    ? permuteAxes(block, [left, n, right], [1, 0, 2]) // an end of a train: one of left/right is 1
    : permuteAxes(block, [left, n, right], es[0] === ((k + net.dims.length - 1) % net.dims.length) ? [1, 0, 2] : [1, 2, 0]);
  if (out.length !== prod(coreShape(net, k))) throw new Error(`svdCores: core ${k} has ${out.length} values, expected ${prod(coreShape(net, k))}`);
  return out;
}

/**
 * Sequential truncated SVDs along a chain: `t` is [left, dims[order[0]], …, dims[order[L-1]], right]
 * (row-major); cores of the chain's modes are split off left to right at the given ranks.
 */
function chain(net: TensorNetwork, t: Float64Array, order: readonly number[], left: number, right: number, ranks: readonly number[], cores: Float64Array[]): void {
  let M = t;
  let rl = left;
  order.forEach((k, j) => {
    const n = net.dims[k]!;
    if (j === order.length - 1) {
      cores[k] = place(net, k, M, rl, right);
      return;
    }
    const r = ranks[j]!;
    const rows = rl * n;
    const { A, B } = lowRankSplit(M, rows, M.length / rows, r);
    cores[k] = place(net, k, A, rl, r);
    M = B;
    rl = r;
  });
}

/** TT-SVD (Oseledets): core k from the rank-r_k split of the remainder reshaped [r_{k−1}·n_k, …]. */
function ttSvd(net: TensorNetwork, x: ArrayLike<number>): Float64Array[] {
  const cores = new Array<Float64Array>(net.dims.length);
  chain(net, Float64Array.from(x), net.dims.map((_, k) => k), 1, 1, ranksOf(net), cores);
  return cores;
}

/**
 * TR-SVD: the unfolding of mode s (the core whose two bonds have the smallest product R) is split
 * at rank R, the R index read as (left bond, right bond); the rest, with the left bond moved to
 * the end, is a train from s+1 round to s−1, split by TT-SVD.
 */
function trSvd(net: TensorNetwork, x: ArrayLike<number>): Float64Array[] {
  const d = net.dims.length;
  const ranks = ranksOf(net);
  // edge k joins cores k and k+1: core s's left bond is edge s−1, its right bond edge s
  const leftOf = (s: number): number => ranks[(s + d - 1) % d]!;
  let s = 0;
  for (let k = 1; k < d; k++) if (leftOf(k) * ranks[k]! < leftOf(s) * ranks[s]!) s = k;
  const order = Array.from({ length: d }, (_, j) => (s + j) % d);
  const t = permuteAxes(x, net.dims, order);
  const n = net.dims[s]!;
  const rest = t.length / n;
  const rl = leftOf(s);
  const rr = ranks[s]!;
  const { A, B } = lowRankSplit(t, n, rest, rl * rr);
  const cores = new Array<Float64Array>(d);
  // A is [n, left, right]
  cores[s] = place(net, s, permuteAxes(A, [n, rl, rr], [1, 0, 2]), rl, rr);
  // B is [left, right, rest]: as a train [right, rest, left]
  const tail = permuteAxes(B, [rl, rr, rest], [1, 2, 0]);
  chain(net, tail, order.slice(1), rr, rl, order.slice(1, -1).map((k) => ranks[k]!), cores);
  return cores;
}
