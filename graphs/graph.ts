// The graph IR: an immutable (immer-frozen) list of typed nodes in topological order. A node is
// an op name, input node ids, JSON-able attributes and one typed output. Sources (inputs,
// params, constants, state) are nodes too. Passes return new graphs; nothing here runs anything.

import { freeze } from 'immer';
import type { DType, Shape, TensorType } from './types.js';
import { GraphError } from './errors.js';
import { dict } from './dict.js';

export type { AttrValue, Attrs, Node } from '../ops/types.js';
import type { Node } from '../ops/types.js';

/** After a step, `value` is written into the state or param node `target` (optimizer updates). */
export interface Update {
  readonly target: number;
  readonly value: number;
}

export interface Graph {
  readonly name: string;
  readonly nodes: readonly Node[];
  readonly outputs: { readonly [name: string]: number };
  readonly updates: readonly Update[];
}

export const SOURCE_OPS = new Set(['input', 'param', 'state', 'const']);

export function emptyGraph(name: string): Graph {
  return freeze({ name, nodes: [], outputs: dict<number>(), updates: [] }, true);
}

export function nodeType(n: Node): TensorType {
  return { dtype: n.dtype, shape: n.shape };
}

export function inputsOf(g: Graph): Node[] {
  return g.nodes.filter((n) => n.op === 'input');
}
export function paramsOf(g: Graph): Node[] {
  return g.nodes.filter((n) => n.op === 'param');
}
export function stateOf(g: Graph): Node[] {
  return g.nodes.filter((n) => n.op === 'state');
}

export function findNamed(g: Graph, op: string, name: string): Node | undefined {
  return g.nodes.find((n) => n.op === op && n.name === name);
}

/** consumers[i] = ids of nodes that read node i (with multiplicity). */
export function consumersOf(g: Graph): number[][] {
  const c: number[][] = g.nodes.map(() => []);
  for (const n of g.nodes) for (const i of n.inputs) c[i]!.push(n.id);
  return c;
}

/** Ids of the nodes that `roots` depend on (roots included), in topological order. */
export function ancestors(g: Graph, roots: Iterable<number>): number[] {
  const seen = new Uint8Array(g.nodes.length);
  const stack = [...roots];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen[id]) continue;
    seen[id] = 1;
    for (const i of g.nodes[id]!.inputs) stack.push(i);
  }
  const out: number[] = [];
  for (let i = 0; i < seen.length; i++) if (seen[i]) out.push(i);
  return out;
}

/** Ids of nodes that depend on any of `roots` (roots included), in topological order. */
export function descendants(g: Graph, roots: Iterable<number>): number[] {
  const mark = new Uint8Array(g.nodes.length);
  for (const r of roots) mark[r] = 1;
  const out: number[] = [];
  for (const n of g.nodes) {
    if (!mark[n.id] && n.inputs.some((i) => mark[i])) mark[n.id] = 1;
    if (mark[n.id]) out.push(n.id);
  }
  return out;
}

/** Structural checks: ids dense and ordered, inputs defined earlier, outputs and updates valid. */
export function validateGraph(g: Graph): void {
  g.nodes.forEach((n, i) => {
    if (n.id !== i) throw new GraphError(`graph '${g.name}': node at position ${i} has id ${n.id}`);
    for (const j of n.inputs) {
      if (!Number.isInteger(j) || j < 0 || j >= i) {
        throw new GraphError(`graph '${g.name}': node ${i} (${n.op}) reads ${j}, which is not an earlier node`);
      }
    }
  });
  for (const [name, id] of Object.entries(g.outputs)) {
    if (!g.nodes[id]) throw new GraphError(`graph '${g.name}': output '${name}' refers to missing node ${id}`);
  }
  for (const u of g.updates) {
    const t = g.nodes[u.target];
    if (!t || (t.op !== 'state' && t.op !== 'param') || !g.nodes[u.value]) {
      throw new GraphError(`graph '${g.name}': update ${u.target} <- ${u.value} is not a param/state update`);
    }
  }
}
