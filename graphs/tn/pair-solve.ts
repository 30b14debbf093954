// The host half of a two-core ALS update, given the pair's environment: the Gram matrix `gram`
// [R, R] of everything but cores a and b (R = RA·RB, a's other bonds major) and the target
// contracted with it, `rhs` [PA·PB, R]. Cores are taken in the arrangement a: [PA, RA, r],
// b: [r, PB, RB], where r is the rank of the edge between them. Either the merged pair is solved
// and split at rank r (two-site, fast to converge but not monotone), or a and then b are solved
// one at a time (one-site, never increases the error). Contractions of the network itself are
// rheo graphs (runtime/tn-fit.ts); these are the small dense solves.

import { lowRankSplit, permuteAxes, solveSpd } from './linalg.js';

export interface PairDims {
  readonly PA: number;
  readonly PB: number;
  readonly RA: number;
  readonly RB: number;
  readonly r: number;
}

export interface PairUpdate {
  readonly A: Float64Array;
  readonly B: Float64Array;
  /** ‖X − X̂‖² after the update, given ‖X‖² */
  readonly resid: number;
}

/** Solve the merged pair and split it at rank r (truncated in the Euclidean metric). */
export function twoSiteUpdate(gram: Float64Array, rhs: Float64Array, d: PairDims, normSq: number): PairUpdate {
  const { PA, PB, RA, RB, r } = d;
  const R = RA * RB;
  const M = solveSpd(gram, rhs, R); // [PA, PB, RA, RB]
  const Mab = permuteAxes(M, [PA, PB, RA, RB], [0, 2, 1, 3]);
  const { A, B } = lowRankSplit(Mab, PA * RA, PB * RB, r);
  return { A, B, resid: pairResidual(gram, rhs, A, B, d, normSq) };
}

/** Solve a with b fixed, then b with the new a: each a least-squares problem, so the error never grows. */
export function oneSiteUpdate(gram: Float64Array, rhs: Float64Array, Bcur: Float64Array, d: PairDims, normSq: number): PairUpdate {
  const { PA, PB, RA, RB, r } = d;
  const R = RA * RB;
  // a: unknowns (ra, e); Gram Σ_{rb,rb'} gram[(ra,rb),(ra',rb')] · Σ_pb B[e,pb,rb] B[e',pb,rb']
  const BB = new Float64Array(r * r * RB * RB);
  for (let e = 0; e < r; e++) for (let f = 0; f < r; f++) for (let u = 0; u < RB; u++) for (let v = 0; v < RB; v++) {
    let s = 0;
    for (let p = 0; p < PB; p++) s += Bcur[(e * PB + p) * RB + u]! * Bcur[(f * PB + p) * RB + v]!;
    BB[((e * r + f) * RB + u) * RB + v] = s;
  }
  const na = RA * r;
  const Ga = new Float64Array(na * na);
  for (let a = 0; a < RA; a++) for (let a2 = 0; a2 < RA; a2++) for (let e = 0; e < r; e++) for (let f = 0; f < r; f++) {
    let s = 0;
    for (let u = 0; u < RB; u++) for (let v = 0; v < RB; v++) s += gram[(a * RB + u) * R + a2 * RB + v]! * BB[((e * r + f) * RB + u) * RB + v]!;
    Ga[(a * r + e) * na + a2 * r + f] = s;
  }
  const Ha = new Float64Array(PA * na);
  for (let pa = 0; pa < PA; pa++) for (let a = 0; a < RA; a++) for (let e = 0; e < r; e++) {
    let s = 0;
    for (let pb = 0; pb < PB; pb++) for (let u = 0; u < RB; u++) s += rhs[(pa * PB + pb) * R + a * RB + u]! * Bcur[(e * PB + pb) * RB + u]!;
    Ha[pa * na + a * r + e] = s;
  }
  const A = solveSpd(Ga, Ha, na); // [PA, RA, r]
  // b: unknowns (e, rb); Gram Σ_{ra,ra'} gram[(ra,rb),(ra',rb')] · Σ_pa A[pa,ra,e] A[pa,ra',e']
  const AA = new Float64Array(r * r * RA * RA);
  for (let e = 0; e < r; e++) for (let f = 0; f < r; f++) for (let a = 0; a < RA; a++) for (let a2 = 0; a2 < RA; a2++) {
    let s = 0;
    for (let p = 0; p < PA; p++) s += A[(p * RA + a) * r + e]! * A[(p * RA + a2) * r + f]!;
    AA[((e * r + f) * RA + a) * RA + a2] = s;
  }
  const nb = r * RB;
  const Gb = new Float64Array(nb * nb);
  for (let e = 0; e < r; e++) for (let f = 0; f < r; f++) for (let u = 0; u < RB; u++) for (let v = 0; v < RB; v++) {
    let s = 0;
    for (let a = 0; a < RA; a++) for (let a2 = 0; a2 < RA; a2++) s += gram[(a * RB + u) * R + a2 * RB + v]! * AA[((e * r + f) * RA + a) * RA + a2]!;
    Gb[(e * RB + u) * nb + f * RB + v] = s;
  }
  const Hb = new Float64Array(PB * nb);
  for (let pb = 0; pb < PB; pb++) for (let e = 0; e < r; e++) for (let u = 0; u < RB; u++) {
    let s = 0;
    for (let pa = 0; pa < PA; pa++) for (let a = 0; a < RA; a++) s += rhs[(pa * PB + pb) * R + a * RB + u]! * A[(pa * RA + a) * r + e]!;
    Hb[pb * nb + e * RB + u] = s;
  }
  const Bsol = solveSpd(Gb, Hb, nb); // [PB, r, RB]
  const B = permuteAxes(Bsol, [PB, r, RB], [1, 0, 2]);
  // computed from the cores, not as ‖X‖² − ⟨B, Hb⟩: that shortcut holds only for an exact solve,
  // and a singular Gram matrix is solved with a ridge
  return { A, B, resid: pairResidual(gram, rhs, A, B, d, normSq) };
}

/** ‖X − X̂‖² = ‖X‖² − 2⟨M, rhs⟩ + ⟨M, M·gram⟩ for the merged pair M = A·B. */
export function pairResidual(gram: Float64Array, rhs: Float64Array, A: Float64Array, B: Float64Array, d: PairDims, normSq: number): number {
  const { PA, PB, RA, RB, r } = d;
  const R = RA * RB;
  const m = PA * RA;
  const n = PB * RB;
  const Mr = new Float64Array(m * n);
  for (let p = 0; p < m; p++) for (let c = 0; c < r; c++) {
    const a = A[p * r + c]!;
    if (a === 0) continue;
    for (let q = 0; q < n; q++) Mr[p * n + q] = Mr[p * n + q]! + a * B[c * n + q]!;
  }
  const Mt = permuteAxes(Mr, [PA, RA, PB, RB], [0, 2, 1, 3]);
  let resid = normSq;
  for (let p = 0; p < PA * PB; p++) {
    const row = p * R;
    for (let u = 0; u < R; u++) {
      const mu = Mt[row + u]!;
      if (mu === 0) continue;
      let gv = 0;
      for (let v = 0; v < R; v++) gv += gram[u * R + v]! * Mt[row + v]!;
      resid += mu * (gv - 2 * rhs[row + u]!);
    }
  }
  return resid;
}
