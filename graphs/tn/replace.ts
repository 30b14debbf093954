// The rewrite that puts a tensor network in a graph: a dense parameter is replaced by the
// contraction of small core parameters (`<name>/core<k>`), reshaped back to the parameter's shape,
// so that everything reading it is unchanged and autodiff trains the cores. Which ranks to use is
// the structure search's business (graphs/tn/search.ts); values for the cores come from a fit.

import { graph } from '../builder.js';
import { GraphError } from '../errors.js';
import type { Graph } from '../graph.js';
import { f32, numel, type Tensor } from '../types.js';
import { contractNetwork, coreShape, ranksOf, type TensorNetwork } from './network.js';

/** Param names of the cores that replace `name`. */
export const coreParamName = (name: string, k: number): string => `${name}/core${k}`;

/**
 * `g` with the param `name` replaced by the network `net`, whose modes, in order, are the
 * param's row-major layout reshaped (their product must equal its size). Apply before adding an
 * optimizer: updates of the replaced param cannot be carried over.
 */
export function replaceParamByNetwork(g: Graph, name: string, net: TensorNetwork): Graph {
  const target = g.nodes.find((n) => n.op === 'param' && n.name === name);
  if (!target) throw new GraphError(`replaceParamByNetwork: graph '${g.name}' has no param '${name}'`);
  const shape = target.shape as readonly number[];
  if (numel(shape) !== numel(net.dims)) {
    throw new GraphError(`replaceParamByNetwork: param '${name}' [${shape.join(', ')}] has ${numel(shape)} values, the network's modes [${net.dims.join(', ')}] ${numel(net.dims)}`);
  }
  if (g.updates.some((u) => u.target === target.id)) throw new GraphError(`replaceParamByNetwork: param '${name}' is updated in '${g.name}'; replace it before adding an optimizer`);
  // He-like scale: the reconstruction's entries get about the variance 2 / fan_in.
  const fanIn = shape.length > 1 ? numel(shape.slice(0, -1)) : shape[0]!;
  const varCore = Math.pow(2 / fanIn / ranksOf(net).reduce((p, r) => p * r, 1), 1 / net.cores.length);
  return graph(g.name, (b) => {
    const map = new Map<number, Tensor>();
    for (const n of g.nodes) {
      b.site = n.site;
      if (n.id === target.id) {
        const cores = net.cores.map((_, k) => b.param(coreParamName(name, k), f32(...coreShape(net, k)), b.init.normal(Math.sqrt(varCore))));
        map.set(n.id, b.reshape(contractNetwork(b, net, cores), shape));
      } else {
        map.set(n.id, b.op(n.op, n.inputs.map((i) => map.get(i)!), n.attrs, n.name !== undefined ? { name: n.name } : {}));
      }
    }
    b.site = null;
    for (const [k, id] of Object.entries(g.outputs)) b.output(k, map.get(id)!);
    for (const u of g.updates) b.update(map.get(u.target)!, map.get(u.value)!);
  });
}
