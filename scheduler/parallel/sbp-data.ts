// Data parallelism as SBP annotations: the batch (dim 0 of every graph input) split on one mesh
// axis; gradients then come out as partial sums and are all-reduced into the replicated params.
// With `zero`, optimizer state is split too (ZeRO): the gradients are reduce-scattered into the
// state's shards and the updated params all-gathered. Composes with tensor-parallel annotations
// on the other mesh axes. It only writes annotations; propagation does the rest.

import type { Graph } from '../../graphs/graph.js';
import type { SbpAnnotations } from './sbp-propagate.js';
import { broadcast, split, type Mesh, type NdSbp, type Sbp } from './sbp.js';

export interface DataParallelOptions {
  /** the mesh axis the batch is split on */
  readonly axis: number;
  /** shard optimizer state (names starting `opt/`) on that axis, on its first dim that divides */
  readonly zero?: boolean;
  /** annotations for the other axes (tensor parallelism), merged in */
  readonly base?: SbpAnnotations;
}

/**
 * @example
 *   planSharded(g, shapes, { shape: [2] }, dataParallel(g, shapes, { shape: [2] }, { axis: 0, zero: true }));
 */
export function dataParallel(g: Graph, shapes: readonly (readonly number[])[], mesh: Mesh, opts: DataParallelOptions): Map<string, NdSbp> {
  const n = mesh.shape[opts.axis]!;
  const out = new Map<string, NdSbp>();
  const put = (name: string, s: Sbp) => {
    const base = opts.base?.get(name) ?? mesh.shape.map(() => broadcast);
    out.set(name, base.map((x, a) => (a === opts.axis ? s : x)));
  };
  for (const [name, s] of opts.base ?? []) out.set(name, s);
  for (const node of g.nodes) {
    const shape = shapes[node.id]!;
    if (node.op === 'input' && shape.length > 0 && shape[0]! % n === 0) put(node.name!, split(0));
    if (opts.zero && node.op === 'state' && node.name!.startsWith('opt/')) {
      // dims already split on another axis, by the state's own annotation or its param's ('opt/<param>/m')
      const param = node.name!.split('/').slice(1, -1).join('/');
      const taken = new Set((opts.base?.get(node.name!) ?? opts.base?.get(param) ?? []).flatMap((x) => (x.kind === 'split' ? [x.axis] : [])));
      const k = shape.findIndex((d, i) => d % n === 0 && d >= n && !taken.has(i));
      if (k >= 0) put(node.name!, split(k));
    }
  }
  return out;
}
