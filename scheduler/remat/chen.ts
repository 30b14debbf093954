// Chen et al. 2016 ("Training Deep Nets with Sublinear Memory Cost") √n checkpointing as a
// schedule over a CostGraph: the reference the planner's schedules are compared with. It needs
// to be told which nodes are the forward pass; it does not look at the budget, and it never
// recomputes a backward value.
//
// The forward nodes, in id order, are cut into about √s segments of equal numbers of stashed
// values (s = forward values the backward reads). A forward value read by a later segment is a
// checkpoint (on a chain: each segment's last output) and is kept until its last read; so is the
// whole last segment, whose backward follows its forward directly. Every other forward value is
// released after its last forward read. The backward nodes then run in id order; when one reads a
// released value, all released values of that segment that the rest of the backward still reads
// are recomputed at once from the checkpoints (the paper's "forward of segment j again, then its
// backward") and kept until their last read. Each segment is recomputed at most once, so the
// extra compute is at most one forward pass; on a chain of n layers the peak holds about √n
// checkpoints plus two segments of about √n values each.

import { adjacency, validateCostGraph, type CostGraph } from './cost-graph.js';
import { scheduleFromSequence, type RematSchedule } from './schedule.js';

export interface ChenOptions {
  /**
   * Nodes of the forward pass (closed under ancestors here). Default: every node, which leaves
   * no backward pass to recompute for: the schedule is then the plain one.
   */
  forward?: Iterable<number>;
  /** Number of segments (default: √ of the number of forward values the backward reads). */
  segments?: number;
}

export interface ChenSchedule {
  schedule: RematSchedule;
  /** Forward values kept from the forward pass to their last read (the last segment included). */
  checkpoints: number[];
  /** Segment of each forward node (-1 for backward nodes). */
  segmentOf: Int32Array;
  segments: number;
  /** Forward nodes evaluated a second time. */
  recomputed: number[];
}

/**
 * Chen's √n schedule for `graph`; `simulate` accepts it (every input is resident when read).
 *
 * @example
 *   const { schedule } = chenSchedule(graph, { forward: forwardIds });
 *   const { peak, overhead } = simulate(graph, schedule);
 */
export function chenSchedule(graph: CostGraph, options: ChenOptions = {}): ChenSchedule {
  validateCostGraph(graph);
  const adj = adjacency(graph);
  const n = graph.nodes.length;
  const isForward = new Uint8Array(n);
  const stack = options.forward ? [...options.forward] : graph.nodes.map((_, i) => i);
  while (stack.length) {
    const v = stack.pop()!;
    if (isForward[v]) continue;
    isForward[v] = 1;
    stack.push(...adj.preds[v]!);
  }
  const forward = graph.nodes.map((_, i) => i).filter((v) => isForward[v]);
  const readByBackward = (v: number) => adj.succs[v]!.some((r) => !isForward[r]);
  const stashed = forward.filter(readByBackward);
  const wanted = Math.max(1, Math.round(options.segments ?? Math.sqrt(stashed.length)));
  const per = Math.max(1, Math.ceil(stashed.length / wanted));
  const segments = Math.max(1, Math.ceil(stashed.length / per));
  const segmentOf = new Int32Array(n).fill(-1);
  let seen = 0; // stashed values before v: a segment ends at its `per`-th stashed value
  for (const v of forward) {
    segmentOf[v] = Math.min(Math.floor(seen / per), segments - 1);
    if (readByBackward(v)) seen++;
  }
  const last = segments - 1;
  const valid = new Uint8Array(n);
  for (const v of forward) {
    const crossing = adj.succs[v]!.some((r) => isForward[r] && segmentOf[r]! > segmentOf[v]!);
    if (segmentOf[v] === last || crossing) valid[v] = 1;
  }
  const checkpoints = forward.filter((v) => valid[v]);

  const sequence = [...forward];
  const recomputed: number[] = [];
  const recompute = (segment: number, from: number) => {
    const need = new Uint8Array(n);
    const pending = forward.filter((v) => segmentOf[v] === segment && !valid[v] && adj.succs[v]!.some((r) => !isForward[r] && r >= from));
    while (pending.length) {
      const v = pending.pop()!;
      if (need[v]) continue;
      need[v] = 1;
      // inputs from earlier segments are checkpoints by construction
      for (const p of adj.preds[v]!) if (!valid[p] && segmentOf[p] === segment) pending.push(p);
    }
    for (const v of forward) {
      if (!need[v]) continue;
      sequence.push(v);
      recomputed.push(v);
      valid[v] = 1;
    }
  };
  for (let b = 0; b < n; b++) {
    if (isForward[b]) continue;
    for (const p of adj.preds[b]!) if (isForward[p] && !valid[p]) recompute(segmentOf[p]!, b);
    sequence.push(b);
  }
  return { schedule: scheduleFromSequence(graph, sequence, adj), checkpoints, segmentOf, segments, recomputed };
}
