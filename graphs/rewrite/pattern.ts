// Patterns over graph nodes, the left-hand sides of rewrite rules: an op (or set of ops), input
// patterns, a name that binds the matched node (so a rule can read its shape, dtype, attributes
// and use it as a sub-graph), and a node test. Matching is structural and never changes a graph.
// The same name bound twice must bind the same node (`sub(x, x)`).

import type { Graph, Node } from '../graph.js';
import type { Tensor } from '../types.js';

export interface Pattern {
  /** the op name, or any of several; any op when absent */
  readonly op?: string | readonly string[];
  /** patterns of the inputs, one per input (the arity must match); any inputs when absent */
  readonly inputs?: readonly Pattern[];
  /** bind the matched node under this name */
  readonly bind?: string;
  /** two inputs that may match in either order (add, mul, ...) */
  readonly commutative?: boolean;
  /** a further test of the node (attributes, shapes, dtype) */
  readonly test?: (n: Node) => boolean;
}

/** A successful match: the root node, the bound nodes by name, every node the pattern covered. */
export interface Match {
  readonly graph: Graph;
  readonly root: Node;
  readonly bound: Readonly<Record<string, Node>>;
  /** ids of the nodes the pattern's op and input patterns covered, root first */
  readonly covered: readonly number[];
  /** a bound node as a tensor for the builder; throws on a name the pattern does not bind */
  tensor(name: string): Tensor;
  node(name: string): Node;
}

/** Pattern constructors, tinygrad-style: `pat.op('mul', [pat.any('x'), pat.fill(1)], { commutative: true })`. */
export const pat = {
  /** any node, bound to `bind` */
  any: (bind?: string, test?: (n: Node) => boolean): Pattern => ({ ...(bind ? { bind } : {}), ...(test ? { test } : {}) }),
  op: (op: string | readonly string[], inputs?: readonly Pattern[], opts: { bind?: string; commutative?: boolean; test?: (n: Node) => boolean } = {}): Pattern => ({
    op, ...(inputs ? { inputs } : {}), ...opts,
  }),
  /** a `const` node that holds one value everywhere (`fill`), optionally a given one */
  fill: (value?: number, bind?: string): Pattern => ({
    op: 'const',
    ...(bind ? { bind } : {}),
    test: (n) => fillValue(n) !== undefined && (value === undefined || Object.is(fillValue(n), value)),
  }),
};

/** The value of a constant that holds one value everywhere (a `fill`, or `data` of equal values). */
export function fillValue(n: Node): number | undefined {
  if (n.op !== 'const') return undefined;
  const data = n.attrs['data'];
  if (Array.isArray(data)) {
    if (data.length === 0) return undefined;
    const v = Number(data[0]);
    return data.every((x) => Object.is(Number(x), v)) ? v : undefined;
  }
  return Number(n.attrs['fill']);
}

/** Match `p` at node `id` of `g`; null when it does not match. */
export function match(g: Graph, p: Pattern, id: number): Match | null {
  const bound = new Map<string, Node>();
  const covered: number[] = [];
  if (!matchAt(g, p, id, bound, covered)) return null;
  const root = g.nodes[id]!;
  const node = (name: string): Node => {
    const n = bound.get(name);
    if (!n) throw new Error(`pattern binds no '${name}'`);
    return n;
  };
  return {
    graph: g, root, bound: Object.fromEntries(bound), covered,
    node,
    tensor: (name) => {
      const n = node(name);
      return { id: n.id, dtype: n.dtype, shape: n.shape };
    },
  };
}

function matchAt(g: Graph, p: Pattern, id: number, bound: Map<string, Node>, covered: number[]): boolean {
  const n = g.nodes[id];
  if (!n) return false;
  if (p.op !== undefined && (typeof p.op === 'string' ? p.op !== n.op : !p.op.includes(n.op))) return false;
  if (p.test && !p.test(n)) return false;
  if (p.bind !== undefined) {
    const prev = bound.get(p.bind);
    if (prev && prev.id !== id) return false;
  }
  const saved = new Map(bound);
  const mark = covered.length;
  if (p.bind !== undefined) bound.set(p.bind, n);
  if (p.op !== undefined || p.inputs) covered.push(id);
  if (!p.inputs) return true;
  if (p.inputs.length !== n.inputs.length) return restore(bound, saved, covered, mark);
  const orders = p.commutative && n.inputs.length === 2 ? [[0, 1], [1, 0]] : [n.inputs.map((_, i) => i)];
  for (const order of orders) {
    const inner = new Map(bound);
    const innerMark = covered.length;
    if (p.inputs.every((q, k) => matchAt(g, q, n.inputs[order[k]!]!, inner, covered))) {
      bound.clear();
      for (const [k, v] of inner) bound.set(k, v);
      return true;
    }
    covered.length = innerMark;
  }
  return restore(bound, saved, covered, mark);
}

function restore(bound: Map<string, Node>, saved: Map<string, Node>, covered: number[], mark: number): false {
  bound.clear();
  for (const [k, v] of saved) bound.set(k, v);
  covered.length = mark;
  return false;
}
