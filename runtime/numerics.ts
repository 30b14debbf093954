// The opt-in numerics check (`compile(g, { checkNumerics: true })`, or `train(..., { checkNumerics:
// true })`): after a run, every float output and every updated param and state is scanned for NaN
// and ±Infinity. When one is found, the run's graph is evaluated again on the CPU one op per
// kernel, from the feeds and the variables as they were before the run, and the first op (in
// topological order) whose value is not finite is named in a NumericsError. It costs a read of
// every variable per run, so it is for finding a bug, not for production training.

import { produce } from 'immer';
import { RheoError } from '../graphs/errors.js';
import type { Graph, Node } from '../graphs/graph.js';
import { ancestors } from '../graphs/graph.js';
import { isFloat } from '../graphs/types.js';
import type { CpuArray } from './cpu/render-js.js';

/** A run produced NaN or ±Infinity: `node` is the first op that did (its inputs were finite). */
export class NumericsError extends RheoError {
  /** the op's node id in the compiled graph (`exe.graph`) */
  readonly nodeId: number;
  readonly op: string;
  /** the node's name (inputs, params, state), if it has one */
  readonly nodeName: string | undefined;
  /** where in the user's code the op was made */
  readonly site: string | undefined;
  /** 'NaN', 'Infinity' or '-Infinity' */
  readonly value: string;
  /** the first offending element, in row-major order */
  readonly element: number;

  constructor(node: Node, value: number, element: number, detail = '') {
    const v = String(value);
    const what = node.name !== undefined ? `${node.op} '${node.name}'` : node.op;
    super(`numerics check: node ${node.id} (${what}${node.site ? `, at ${node.site}` : ''}) produced ${v} at element ${element}${detail}`);
    this.nodeId = node.id;
    this.op = node.op;
    this.nodeName = node.name;
    this.site = node.site;
    this.value = v;
    this.element = element;
  }
}

/** Index of the first element that is NaN or infinite, or -1. */
export function firstNonFinite(a: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

/** A value found not finite after a run: the node that holds it, and where. */
export interface NonFinite {
  readonly node: number;
  readonly element: number;
  readonly value: number;
}

/** The first not-finite value among float outputs and updated variables, if any. */
export function scanRun(g: Graph, outputs: readonly [number, CpuArray][], updated: ReadonlyMap<number, CpuArray>): NonFinite | undefined {
  const candidates: [number, CpuArray][] = [...outputs];
  for (const u of g.updates) {
    const v = updated.get(u.target);
    if (v) candidates.push([u.value, v]);
  }
  for (const [node, data] of candidates) {
    if (!isFloat(g.nodes[node]!.dtype)) continue;
    const i = firstNonFinite(data);
    if (i >= 0) return { node, element: i, value: data[i]! };
  }
  return undefined;
}

const DIAG = 'numerics/';

/**
 * The graph with every float node the roots need as an output `numerics/<id>` and no updates:
 * what the diagnosis evaluates op by op.
 */
export function diagnosisGraph(g: Graph, roots: readonly number[]): { graph: Graph; outputs: string[] } {
  const ids = ancestors(g, roots).filter((id) => isFloat(g.nodes[id]!.dtype));
  const outputs = ids.map((id) => `${DIAG}${id}`);
  const graph = produce(g, (d) => {
    for (const k of Object.keys(d.outputs)) delete d.outputs[k];
    ids.forEach((id, i) => (d.outputs[outputs[i]!] = id));
    d.updates.length = 0;
  });
  return { graph, outputs };
}

/** The first node (topological order) whose value is not finite, from the diagnosis outputs. */
export function firstBadNode(g: Graph, values: Readonly<Record<string, { readonly data: ArrayLike<number> }>>): NumericsError | undefined {
  const found: [number, number, number][] = [];
  for (const [name, t] of Object.entries(values)) {
    if (!name.startsWith(DIAG)) continue;
    const i = firstNonFinite(t.data);
    if (i >= 0) found.push([Number(name.slice(DIAG.length)), i, t.data[i]!]);
  }
  if (found.length === 0) return undefined;
  found.sort((a, b) => a[0] - b[0]);
  const [id, element, value] = found[0]!;
  const node = g.nodes[id]!;
  const detail = node.inputs.length ? '; its inputs were finite' : '';
  return new NumericsError(node, value, element, detail);
}
