// The abstract graph the rematerialization planner works on: per node a compute cost and the
// bytes of its output, edges from producer to consumer, node ids 0..n-1 in a topological order.
// It also loads the networkx node-link JSON files of the remat benchmarks. It knows nothing of
// tensors, ops or executors; lowering a rheo graph to a CostGraph is the caller's business.

import { RheoError } from '../../graphs/errors.js';

export interface CostNode {
  id: number;
  name?: string;
  /** Cost of one evaluation (any unit: time, FLOPs); the sum over a schedule is its cost. */
  compute: number;
  /** Bytes of the node's output while it is resident. */
  bytes: number;
}

export interface CostGraph {
  /** nodes[i].id === i, and the ids are a topological order of the edges. */
  nodes: CostNode[];
  /** [from, to]: `to` reads the output of `from`. */
  edges: [number, number][];
}

/** A CostGraph that is not a DAG over 0..n-1 in topological order, or a bench file that cannot be read. */
export class CostGraphError extends RheoError {
  constructor(
    readonly kind: 'id' | 'edge' | 'cycle' | 'order' | 'cost' | 'format',
    detail: string,
  ) {
    super(`cost graph (${kind}): ${detail}`);
  }
}

/** Predecessor and successor lists (deduplicated, ascending), built once per graph. */
export interface Adjacency {
  preds: number[][];
  succs: number[][];
}

/**
 * Checks that ids are 0..n-1 in place, costs and sizes are finite and non-negative, edges name
 * existing nodes and go forward (from < to), which makes the graph acyclic and the ids a
 * topological order. Throws CostGraphError.
 */
export function validateCostGraph(graph: CostGraph): void {
  const n = graph.nodes.length;
  graph.nodes.forEach((node, i) => {
    if (node.id !== i) throw new CostGraphError('id', `nodes[${i}] has id ${node.id}; ids must be 0..${n - 1} in order`);
    if (!(Number.isFinite(node.compute) && node.compute >= 0))
      throw new CostGraphError('cost', `node ${i}${label(node)} has compute ${node.compute}`);
    if (!(Number.isFinite(node.bytes) && node.bytes >= 0))
      throw new CostGraphError('cost', `node ${i}${label(node)} has bytes ${node.bytes}`);
  });
  for (const [from, to] of graph.edges) {
    for (const end of [from, to])
      if (!Number.isInteger(end) || end < 0 || end >= n)
        throw new CostGraphError('edge', `edge ${from} -> ${to} names a node outside 0..${n - 1}`);
    if (from === to) throw new CostGraphError('cycle', `self-loop on node ${from}${label(graph.nodes[from]!)}`);
    if (from > to)
      throw new CostGraphError(
        'order',
        `edge ${from} -> ${to} goes backwards: ids must be a topological order (use loadNetworkxGraph or renumber)`,
      );
  }
}

export function adjacency(graph: CostGraph): Adjacency {
  const n = graph.nodes.length;
  const preds: Set<number>[] = Array.from({ length: n }, () => new Set());
  const succs: Set<number>[] = Array.from({ length: n }, () => new Set());
  for (const [from, to] of graph.edges) {
    preds[to]!.add(from);
    succs[from]!.add(to);
  }
  const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);
  return { preds: preds.map(sorted), succs: succs.map(sorted) };
}

/**
 * Renumbers an arbitrary DAG so that ids follow a topological order (Kahn's algorithm, smallest
 * original index first, so an already ordered graph keeps its ids). Throws CostGraphError on a
 * cycle. `order`, when given, is used instead and must be a permutation that respects the edges.
 */
export function topologicallyOrdered(
  nodes: Omit<CostNode, 'id'>[],
  edges: [number, number][],
  order?: number[],
): CostGraph {
  const n = nodes.length;
  for (const [a, b] of edges)
    if (!(Number.isInteger(a) && Number.isInteger(b) && a >= 0 && b >= 0 && a < n && b < n))
      throw new CostGraphError('edge', `edge ${a} -> ${b} names a node outside 0..${n - 1}`);
  let perm: number[];
  if (order) {
    if (order.length !== n || new Set(order).size !== n || order.some((v) => !(v >= 0 && v < n)))
      throw new CostGraphError('order', `order has ${order.length} entries but must be a permutation of 0..${n - 1}`);
    perm = order;
  } else {
    const indeg = new Array<number>(n).fill(0);
    const out: number[][] = Array.from({ length: n }, () => []);
    for (const [a, b] of edges) {
      indeg[b]!++;
      out[a]!.push(b);
    }
    // A binary heap would be asymptotically better; n is small and this keeps the code short.
    const ready = indeg.flatMap((d, i) => (d === 0 ? [i] : []));
    perm = [];
    while (ready.length > 0) {
      ready.sort((x, y) => y - x);
      const v = ready.pop()!;
      perm.push(v);
      for (const w of out[v]!) if (--indeg[w]! === 0) ready.push(w);
    }
    if (perm.length < n) {
      const stuck = indeg.flatMap((d, i) => (d > 0 ? [i] : [])).slice(0, 8);
      throw new CostGraphError('cycle', `the edges contain a cycle through nodes ${stuck.join(', ')}…`);
    }
  }
  const newId = new Array<number>(n);
  perm.forEach((old, i) => (newId[old] = i));
  const graph: CostGraph = {
    nodes: perm.map((old, i) => ({ ...nodes[old]!, id: i })),
    edges: edges.map(([a, b]) => [newId[a]!, newId[b]!] as [number, number]),
  };
  if (order) {
    const bad = graph.edges.find(([a, b]) => a >= b);
    if (bad) throw new CostGraphError('order', `the given order puts node ${perm[bad[1]]} before its input ${perm[bad[0]]}`);
  }
  return graph;
}

/**
 * Reads a networkx node-link JSON graph as used by the Checkmate and Moccasin benchmark data.
 * Node ids come from `id` (or `name` when there is no `id`); memory from `cost_ram` or
 * `out_cost`; compute from `cost_cpu` or `duration`; edges are `links` (or `edges`) with keys
 * `source`/`target` or `"0"`/`"1"`. Nodes are renumbered to 0..n-1 in the graph's `order` field
 * when present, else in a topological order that keeps already-ordered ids; `name` keeps the
 * node's name (or its original id).
 *
 * @example
 *   const g = loadNetworkxGraph(JSON.parse(readFileSync('random_layered_n100.json', 'utf8')));
 */
export function loadNetworkxGraph(json: unknown): CostGraph {
  const doc = json as Record<string, unknown>;
  if (typeof doc !== 'object' || doc === null || !Array.isArray(doc.nodes))
    throw new CostGraphError('format', 'expected a node-link object with a "nodes" array');
  const rawNodes = doc.nodes as Record<string, unknown>[];
  const rawLinks = (Array.isArray(doc.links) ? doc.links : Array.isArray(doc.edges) ? doc.edges : null) as
    | Record<string, unknown>[]
    | null;
  if (!rawLinks) throw new CostGraphError('format', 'expected a "links" (or "edges") array');

  const index = new Map<string, number>();
  const nodes = rawNodes.map((raw, i) => {
    const key = raw.id ?? raw.name;
    if (key === undefined) throw new CostGraphError('format', `node #${i} has neither "id" nor "name"`);
    if (index.has(String(key))) throw new CostGraphError('id', `node id ${String(key)} appears twice`);
    index.set(String(key), i);
    const bytes = pickNumber(raw, ['cost_ram', 'out_cost', 'bytes'], i);
    const compute = pickNumber(raw, ['cost_cpu', 'duration', 'compute'], i);
    const name = raw.name !== undefined ? String(raw.name) : String(key);
    return { name, compute, bytes };
  });
  const lookup = (key: unknown, where: string): number => {
    const i = index.get(String(key));
    if (i === undefined) throw new CostGraphError('edge', `${where} names unknown node ${String(key)}`);
    return i;
  };
  const edges = rawLinks.map((link, e): [number, number] => {
    const from = link.source ?? link['0'];
    const to = link.target ?? link['1'];
    if (from === undefined || to === undefined)
      throw new CostGraphError('format', `link #${e} has neither source/target nor "0"/"1" keys`);
    return [lookup(from, `link #${e}`), lookup(to, `link #${e}`)];
  });
  const meta = (doc.graph ?? {}) as Record<string, unknown>;
  const order = Array.isArray(meta.order) ? (meta.order as unknown[]).map((k) => lookup(k, 'graph.order')) : undefined;
  const graph = topologicallyOrdered(nodes, dedupe(edges), order);
  validateCostGraph(graph);
  return graph;
}

function dedupe(edges: [number, number][]): [number, number][] {
  const seen = new Set<string>();
  return edges.filter(([a, b]) => {
    const k = `${a},${b}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function pickNumber(raw: Record<string, unknown>, keys: string[], i: number): number {
  for (const k of keys) {
    const v = raw[k];
    if (typeof v === 'number') return v;
  }
  throw new CostGraphError('format', `node #${i} has none of the numeric fields ${keys.join(', ')}`);
}

function label(node: CostNode): string {
  return node.name !== undefined ? ` (${node.name})` : '';
}
