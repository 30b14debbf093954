// Rematerialization schedules over a CostGraph and the memory model they are judged by: the one
// of the Checkmate and Moccasin papers. A schedule is a sequence of evaluations (a node may
// repeat) with the values released after each one; `simulate` replays it, checks it, and
// reports its peak and compute cost. It does not plan anything; see heuristic.ts and exact.ts.

import { adjacency, type Adjacency, type CostGraph } from './cost-graph.js';

export interface RematStep {
  /** Node evaluated at this step; its inputs must be resident. */
  node: number;
  /** Values released right after this step (the step's own output may be among them). */
  free: number[];
}

/** What stays resident after step j is everything evaluated so far minus everything freed. */
export interface RematSchedule {
  steps: RematStep[];
}

export interface SimulationResult {
  /** Largest memory in use over the steps: the step's output plus every value held. */
  peak: number;
  /** Sum of compute over all evaluations. */
  cost: number;
  /** cost / (sum of compute of the graph) - 1; 0 for a graph with no compute at all. */
  overhead: number;
  valid: boolean;
  /** Why the schedule is invalid; the first problem found. */
  error?: string;
  /** Memory in use at each step. */
  memory: number[];
}

/**
 * Replays a schedule. At step j the memory in use is bytes(node at j) plus the bytes of every
 * value that is resident (evaluated and not yet freed) when step j runs. With the frees that
 * `scheduleFromSequence` places (a value is released after its last read) this is exactly the
 * papers' model: the output of step j plus every earlier output that a step >= j still reads.
 * A sink's output is therefore counted at the step that computes it and released right after:
 * nothing reads it later. The schedule is valid when every input is resident when read, every
 * free names a resident value, no node is evaluated while its previous output is still resident,
 * and every node of the graph is evaluated at least once.
 */
export function simulate(graph: CostGraph, schedule: RematSchedule, adj: Adjacency = adjacency(graph)): SimulationResult {
  const n = graph.nodes.length;
  const resident = new Uint8Array(n);
  const evaluated = new Uint8Array(n);
  const memory: number[] = [];
  let held = 0;
  let peak = 0;
  let cost = 0;
  let error: string | undefined;
  const fail = (msg: string) => (error ??= msg);

  schedule.steps.forEach(({ node, free }, j) => {
    if (error) return;
    if (!(Number.isInteger(node) && node >= 0 && node < n)) return fail(`step ${j} evaluates unknown node ${node}`);
    const missing = adj.preds[node]!.find((p) => !resident[p]);
    if (missing !== undefined)
      return fail(`step ${j} evaluates node ${node}${name(graph, node)} but its input ${missing}${name(graph, missing)} is not resident`);
    if (resident[node]) return fail(`step ${j} evaluates node ${node}${name(graph, node)} while its output is still resident`);
    const bytes = graph.nodes[node]!.bytes;
    memory.push(held + bytes);
    peak = Math.max(peak, held + bytes);
    cost += graph.nodes[node]!.compute;
    resident[node] = 1;
    evaluated[node] = 1;
    held += bytes;
    for (const f of free) {
      if (!(f >= 0 && f < n) || !resident[f]) return fail(`step ${j} frees ${f}, which is not resident`);
      resident[f] = 0;
      held -= graph.nodes[f]!.bytes;
    }
  });
  if (!error) {
    const never = evaluated.findIndex((e) => e === 0);
    if (never >= 0) fail(`node ${never}${name(graph, never)} is never evaluated`);
  }
  const base = totalCompute(graph);
  const overhead = base > 0 ? cost / base - 1 : 0;
  return error === undefined ? { peak, cost, overhead, valid: true, memory } : { peak, cost, overhead, valid: false, error, memory };
}

/**
 * A schedule evaluating `sequence` in order, releasing every value right after its last read
 * (or right after it is computed when nothing reads that copy). This is the papers' model.
 */
export function scheduleFromSequence(graph: CostGraph, sequence: readonly number[], adj: Adjacency = adjacency(graph)): RematSchedule {
  const n = graph.nodes.length;
  const copyAt = new Int32Array(n).fill(-1); // step of the node's live copy
  const freeAt = sequence.map((_, j) => j); // step after which the copy made at j is released
  sequence.forEach((v, j) => {
    for (const p of adj.preds[v] ?? []) if (copyAt[p]! >= 0) freeAt[copyAt[p]!] = j;
    if (v >= 0 && v < n) copyAt[v] = j;
  });
  const steps: RematStep[] = sequence.map((node) => ({ node, free: [] }));
  sequence.forEach((v, j) => steps[freeAt[j]!]!.free.push(v));
  return { steps };
}

/** Every node once, in id order: the schedule without rematerialization. */
export function plainSchedule(graph: CostGraph, adj?: Adjacency): RematSchedule {
  return scheduleFromSequence(graph, graph.nodes.map((_, i) => i), adj);
}

/** Peak of the plain schedule: the baseline the papers' budgets are fractions of. */
export function baselinePeak(graph: CostGraph, adj?: Adjacency): number {
  return simulate(graph, plainSchedule(graph, adj), adj).peak;
}

/**
 * No schedule can use less memory than this: every node is evaluated at least once, and at
 * that step its output and all its inputs are resident.
 */
export function memoryLowerBound(graph: CostGraph, adj: Adjacency = adjacency(graph)): number {
  let bound = 0;
  graph.nodes.forEach((node, v) => {
    bound = Math.max(bound, adj.preds[v]!.reduce((s, p) => s + graph.nodes[p]!.bytes, node.bytes));
  });
  return bound;
}

export function totalCompute(graph: CostGraph): number {
  return graph.nodes.reduce((s, node) => s + node.compute, 0);
}

/** The evaluation order of a schedule. */
export function sequenceOf(schedule: RematSchedule): number[] {
  return schedule.steps.map((s) => s.node);
}

function name(graph: CostGraph, v: number): string {
  const nm = graph.nodes[v]?.name;
  return nm !== undefined ? ` (${nm})` : '';
}
