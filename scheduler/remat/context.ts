// What the rematerialization solvers share about a graph: typed arrays of sizes and costs, the
// adjacency lists, and the cost and memory profile of an evaluation sequence under the papers'
// model. No planning here.

import { adjacency, type Adjacency, type CostGraph } from './cost-graph.js';

export interface Context {
  graph: CostGraph;
  adj: Adjacency;
  n: number;
  bytes: Float64Array;
  compute: Float64Array;
}

export function makeContext(graph: CostGraph, adj: Adjacency = adjacency(graph)): Context {
  return {
    graph,
    adj,
    n: graph.nodes.length,
    bytes: Float64Array.from(graph.nodes, (v) => v.bytes),
    compute: Float64Array.from(graph.nodes, (v) => v.compute),
  };
}

/** Peak and cost of a sequence under the papers' model, computed without building a schedule. */
export function profile(ctx: Context, seq: readonly number[]): { peak: number; cost: number; memory: Float64Array } {
  const { n, adj, bytes, compute } = ctx;
  const L = seq.length;
  const copyAt = new Int32Array(n).fill(-1);
  const lastRead = new Int32Array(L);
  for (let j = 0; j < L; j++) {
    const v = seq[j]!;
    lastRead[j] = j;
    for (const p of adj.preds[v]!) lastRead[copyAt[p]!] = j;
    copyAt[v] = j;
  }
  // Difference array: the copy made at j occupies steps j..lastRead[j].
  const diff = new Float64Array(L + 1);
  let cost = 0;
  for (let j = 0; j < L; j++) {
    const b = bytes[seq[j]!]!;
    diff[j]! += b;
    diff[lastRead[j]! + 1]! -= b;
    cost += compute[seq[j]!]!;
  }
  const memory = new Float64Array(L);
  let cur = 0;
  let peak = 0;
  for (let j = 0; j < L; j++) {
    cur += diff[j]!;
    memory[j] = cur;
    if (cur > peak) peak = cur;
  }
  return { peak, cost, memory };
}
