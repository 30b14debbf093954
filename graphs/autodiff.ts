// Reverse-mode autodiff as a graph-to-graph transform: `grad(g, 'loss')` returns a new graph
// whose outputs add `grad/<param>` for every parameter the loss depends on (and, asked for by
// name in `wrt`, `grad/<input>` for inputs). Cotangents are
// built with each op's VJP from ops/, so the gradient graph is fused, planned and run like any
// other. It does not compute anything and never looks at values.

import type { Graph, Node } from './graph.js';
import { ancestors, descendants } from './graph.js';
import { extend, type Builder } from './builder.js';
import { GraphError, ShapeError } from './errors.js';
import { lookup } from './dict.js';
import { isFloat, type Tensor } from './types.js';
import { opDef } from '../ops/registry.js';

export interface GradOptions {
  /**
   * names of params and inputs to differentiate with respect to (default: every param). An
   * input named here gets a `grad/<input>` output too; a float input only.
   */
  readonly wrt?: readonly string[];
}

export const gradName = (param: string): string => `grad/${param}`;

export function grad(g: Graph, loss: string, opts: GradOptions = {}): Graph {
  const lossId = lookup(g.outputs, loss);
  if (lossId === undefined) throw new GraphError(`grad: graph '${g.name}' has no output '${loss}' (outputs: ${Object.keys(g.outputs).join(', ')})`);
  const lossNode = g.nodes[lossId]!;
  if (lossNode.shape.length !== 0 || !isFloat(lossNode.dtype)) {
    throw new ShapeError('grad', [lossNode.shape], `the loss '${loss}' must be a float scalar`, lossNode.site);
  }
  const params = g.nodes.filter((n) => (n.op === 'param' || (opts.wrt && n.op === 'input')) && (!opts.wrt || opts.wrt.includes(n.name!)));
  if (opts.wrt) {
    for (const w of opts.wrt) {
      const found = params.filter((p) => p.name === w);
      if (found.length === 0) throw new GraphError(`grad: graph '${g.name}' has no param or input named '${w}'`);
      if (found.length > 1) throw new GraphError(`grad: '${w}' names both a param and an input of graph '${g.name}'`);
      if (!isFloat(found[0]!.dtype)) throw new GraphError(`grad: ${found[0]!.op} '${w}' is ${found[0]!.dtype}; only float tensors have gradients`);
    }
  }
  const needed = ancestors(g, [lossId]);
  const neededSet = new Set(needed);
  // Nodes on a path from a parameter to the loss are the only ones that get cotangents.
  const active = new Set(descendants(g, params.map((p) => p.id)).filter((id) => neededSet.has(id)));

  return extend(g, (b) => {
    const cts = new Map<number, Tensor>();
    b.site = lossNode.site;
    cts.set(lossId, b.ones([], lossNode.dtype));
    for (let i = needed.length - 1; i >= 0; i--) {
      const id = needed[i]!;
      const ct = cts.get(id);
      const node = g.nodes[id]!;
      if (!ct || node.inputs.length === 0 || !active.has(id)) continue;
      b.site = node.site;
      const ins = node.inputs.map((j) => b.tensor(j));
      const out = b.tensor(id);
      const def = opDef(node.op, ins.map((t) => t.shape), node.site);
      if (!def.vjp) throw new GraphError(`grad: op '${node.op}' has no VJP (at ${node.site ?? 'unknown site'})`);
      const inCts = def.vjp(b, ins, out, ct, node);
      node.inputs.forEach((j, k) => {
        const c = inCts[k];
        if (!c || !active.has(j) || !isFloat(g.nodes[j]!.dtype)) return;
        accumulate(b, cts, j, c, g.nodes[j]!);
      });
    }
    b.site = lossNode.site;
    for (const p of params) {
      const c = cts.get(p.id) ?? b.zeros(p.shape, p.dtype);
      b.output(gradName(p.name!), c);
    }
  });
}

function accumulate(b: Builder, cts: Map<number, Tensor>, id: number, c: Tensor, node: Node): void {
  if (c.shape.length !== node.shape.length || c.shape.some((d, i) => d !== node.shape[i])) {
    throw new ShapeError(`grad of ${node.op}`, [node.shape, c.shape], 'VJP produced a cotangent of the wrong shape', node.site);
  }
  const prev = cts.get(id);
  cts.set(id, prev ? b.add(prev, c) : c);
}
