// What a plan fitted to a memory budget states about itself: the planned peak the device's
// instrumented allocator is checked against, the budget, and the cost of recomputation.

export interface RematInfo {
  /**
   * update value node -> the param/state node it is computed into, in place: the kernel reads
   * its target only at the element it writes, and nothing later reads the old value
   */
  readonly inPlace: ReadonlyMap<number, number>;
  /** planned peak of computed values, bytes (what the device's allocator measures) */
  readonly peakBytes: number;
  /** the peak of the same plan without recomputation */
  readonly baselineBytes: number;
  /** bytes outside the planner's reach: params, state, constants and fed inputs */
  readonly fixedBytes: number;
  readonly budgetBytes: number;
  /** estimated extra compute, fraction of the plain plan's */
  readonly overhead: number;
  readonly solver: string;
}
