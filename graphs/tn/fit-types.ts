// What a structure search needs from whoever fits candidate networks: the search lives in
// graphs/ and never runs anything itself, so the fitter (runtime/tn-fit.ts fits with rheo) is
// passed in. A fitter is bound to one target tensor.

import type { TensorNetwork } from './network.js';

/** Cores of a network (row-major, each in `coreShape` order) and how well they fit. */
export interface TnFit {
  readonly net: TensorNetwork;
  readonly cores: readonly Float64Array[];
  /** relative squared error's square root: ‖X − X̂‖ / ‖X‖ */
  readonly rse: number;
  /** sweeps run */
  readonly sweeps: number;
}

export interface FitOptions {
  /** at most this many sweeps over the edges (0: only the `first` updates) */
  readonly sweeps: number;
  /** stop once the RSE is at most this */
  readonly target?: number;
  /** stop when a sweep improves the RSE by less than this fraction */
  readonly stall?: number;
  /** edges updated once before the sweeps (e.g. the one whose rank just changed) */
  readonly first?: readonly number[];
}

export interface TnFitter {
  /** the target's modes */
  readonly dims: readonly number[];
  /** ‖X‖² */
  readonly normSq: number;
  /** Fit `net` starting from `init` (cores shaped for `net`), or from random cores. */
  fit(net: TensorNetwork, init: readonly Float64Array[] | null, opts: FitOptions): TnFit;
  /** For each set S of modes, the Gram matrix X_(S)·X_(S)ᵀ of the unfolding with S as rows (row-major). */
  unfoldingGrams(rows: readonly (readonly number[])[]): Float64Array[];
  /**
   * Cores for `net` computed from the target (truncated SVDs: HOSVD, TT-SVD, TR-SVD), a start
   * near the solution, or null where the family has none.
   */
  svdCores?(net: TensorNetwork): Float64Array[] | null;
  /** candidate fits started so far */
  readonly evaluations: number;
}
