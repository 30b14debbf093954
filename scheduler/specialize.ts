// Binding symbolic dims: a graph with `batch` dims becomes concrete shapes per node for one
// set of feed shapes. Plans are made per binding and cached by the executor.

import type { Graph } from '../graphs/graph.js';
import { FeedError, ShapeError } from '../graphs/errors.js';
import type { Dim } from '../graphs/types.js';

export type Bindings = ReadonlyMap<string, number>;

/** Bind each symbolic dim from the shapes of the fed inputs; conflicting sizes are an error. */
export function bindDims(g: Graph, feedShapes: ReadonlyMap<string, readonly number[]>, needed?: ReadonlySet<number>): Map<string, number> {
  const b = new Map<string, number>();
  for (const n of g.nodes) {
    if (n.op !== 'input') continue;
    const got = feedShapes.get(n.name!);
    if (!got && needed && !needed.has(n.id)) continue;
    if (!got) throw new FeedError(n.name!, 'no value was fed', n.shape);
    if (got.length !== n.shape.length) throw new FeedError(n.name!, `rank ${got.length} does not match rank ${n.shape.length}`, n.shape, got);
    n.shape.forEach((d, i) => {
      const v = got[i]!;
      if (typeof d === 'number') {
        if (d !== v) throw new FeedError(n.name!, `axis ${i} has size ${v}, expected ${d}`, n.shape, got);
      } else {
        const prev = b.get(d);
        if (prev !== undefined && prev !== v) {
          throw new FeedError(n.name!, `dim '${d}' is ${v} here but ${prev} in another input`, n.shape, got);
        }
        b.set(d, v);
      }
    });
  }
  return b;
}

export function concreteShape(shape: readonly Dim[], b: Bindings, op = 'bind', site?: string): number[] {
  return shape.map((d) => {
    if (typeof d === 'number') return d;
    const v = b.get(d);
    if (v === undefined) throw new ShapeError(op, [shape], `symbolic dim '${d}' is not bound by any input`, site);
    return v;
  });
}

/** Concrete shape of every node under a binding (of the `needed` nodes only, when given). */
export function concreteShapes(g: Graph, b: Bindings, needed?: ReadonlySet<number>): number[][] {
  return g.nodes.map((n) => (needed && !needed.has(n.id) ? [] : concreteShape(n.shape, b, n.op, n.site)));
}
