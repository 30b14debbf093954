// Random layered cost graphs, as in Appendix A of "Neural Topological Ordering for Computation
// Graphs" (Gagrani et al., NeurIPS 2022), the synthetic family the Moccasin paper also plans:
// nodes in layers, edges from each layer to the following ones with a probability that decays
// with the distance, random compute and memory costs. Inputs for tests and benchmarks; seeded,
// so a graph is reproducible from its options. Plans nothing.

import type { CostGraph } from './cost-graph.js';
import { rng } from './heuristic.js';

export interface RandomLayeredOptions {
  nodes: number;
  /** default: about √nodes layers */
  layers?: number;
  /** probability of an edge to a node of the next layer (default 0.1) */
  edgeProbability?: number;
  /** factor applied to that probability per further layer (default 0.5) */
  decay?: number;
  /** costs are uniform integers in [1, max] (defaults 100 and 1000) */
  maxCompute?: number;
  maxBytes?: number;
  seed?: number;
}

/**
 * A random layered DAG with ids in topological (layer) order. Every node after the first layer
 * reads at least one node of the layer before it, so the graph has no isolated layers.
 *
 * @example
 *   const g = randomLayeredGraph({ nodes: 100, seed: 1 });
 *   planRematerialization(g, Math.ceil(0.8 * baselinePeak(g)));
 */
export function randomLayeredGraph(options: RandomLayeredOptions): CostGraph {
  const { nodes: n, edgeProbability = 0.1, decay = 0.5, maxCompute = 100, maxBytes = 1000, seed = 1 } = options;
  const layers = Math.max(1, Math.min(n, options.layers ?? Math.round(Math.sqrt(n))));
  const random = rng(seed);
  const int = (max: number) => 1 + Math.floor(random() * max);
  // layer l holds ids start[l] .. start[l+1]-1: sizes as even as n allows
  const start = Array.from({ length: layers + 1 }, (_, l) => Math.round((l * n) / layers));
  const nodes = Array.from({ length: n }, (_, id) => ({ id, compute: int(maxCompute), bytes: int(maxBytes) }));
  const edges: [number, number][] = [];
  for (let l = 1; l < layers; l++) {
    for (let v = start[l]!; v < start[l + 1]!; v++) {
      let any = false;
      for (let k = 1; k <= l; k++) {
        const p = edgeProbability * decay ** (k - 1);
        if (p < 1e-4) break;
        for (let u = start[l - k]!; u < start[l - k + 1]!; u++) {
          if (random() < p) {
            edges.push([u, v]);
            if (k === 1) any = true;
          }
        }
      }
      if (!any) edges.push([start[l - 1]! + Math.floor(random() * (start[l]! - start[l - 1]!)), v]);
    }
  }
  edges.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  return { nodes, edges };
}
