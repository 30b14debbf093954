// Device limits a plan must respect: how many buffers a fused kernel binds, which inlined
// producer to give a buffer of its own when that is more than the device allows, and the error
// for a kernel or a value that cannot fit at all. It reads the graph's structure only; kernel
// construction (scheduler/kernels.ts) checks the kernels it actually builds.

import type { Graph } from '../graphs/graph.js';
import { RheoError } from '../graphs/errors.js';
import { opDef } from '../ops/registry.js';

/** A kernel or a buffer exceeds what the device can bind or hold. */
export class DeviceLimitError extends RheoError {
  constructor(
    readonly node: number,
    readonly op: string,
    readonly limit: 'maxKernelBuffers' | 'maxBufferBytes',
    readonly needed: number,
    readonly allowed: number,
    readonly device: string,
    site?: string,
  ) {
    const what = limit === 'maxKernelBuffers'
      ? `its kernel binds ${needed} buffers (inputs and output), and no fused producer can be split off`
      : `its value takes ${needed} bytes`;
    super(`${op} (node ${node}): ${what}; the ${device} device allows ${allowed} (${limit})${site ? ` at ${site}` : ''}`);
  }
}

/** A source that is a buffer (fed, initialized or embedded data), not computed by a kernel. */
export function isSuppliedSource(g: Graph, id: number): boolean {
  const n = g.nodes[id]!;
  const def = opDef(n.op);
  return def.kind === 'source' && !def.computedSource?.(n.attrs);
}

/**
 * The buffers the kernel of `root` reads, found through the producers inlined into it: every
 * materialized node (or `cut`, treated as one) met before a materialized one. Fill constants
 * are inlined and read nothing.
 */
export function kernelReads(g: Graph, root: number, mat: ReadonlySet<number>, cut = -1): Set<number> {
  const reads = new Set<number>();
  const seen = new Set<number>();
  const walk = (id: number) => {
    for (const j of g.nodes[id]!.inputs) {
      if (mat.has(j) || j === cut) reads.add(j);
      else if (!seen.has(j)) {
        seen.add(j);
        walk(j);
      }
    }
  };
  walk(root);
  return reads;
}

/** Nodes inlined into the kernel of `root`: the candidates for a buffer of their own. */
export function inlinedInto(g: Graph, root: number, mat: ReadonlySet<number>): number[] {
  const seen = new Set<number>();
  const walk = (id: number) => {
    for (const j of g.nodes[id]!.inputs) {
      if (mat.has(j) || seen.has(j)) continue;
      seen.add(j);
      walk(j);
    }
  };
  walk(root);
  return [...seen].filter((id) => opDef(g.nodes[id]!.op).kind !== 'source');
}

/**
 * The inlined producer of `root` to materialize so that root's kernel binds fewer buffers: among
 * producers whose own kernel then fits in `maxBuffers`, the one that leaves root the fewest
 * reads (the largest cut that fits; ties go to the producer absorbing more reads); when none
 * fits on its own, the one that cuts most, to be split in turn. When no single producer reduces
 * root's reads (two operands read the same buffers), the producer reading the most, so that a
 * next cut does. Null when root inlines nothing.
 */
export function chooseCut(g: Graph, root: number, mat: ReadonlySet<number>, maxBuffers: number, candidates = inlinedInto(g, root, mat)): number | null {
  const now = kernelReads(g, root, mat).size;
  const score = (id: number): number[] => {
    const left = kernelReads(g, root, mat, id).size;
    const own = kernelReads(g, id, mat).size;
    return left < now ? [1, own + 1 <= maxBuffers ? 1 : 0, -left, own] : [0, own];
  };
  let best: { id: number; score: number[] } | null = null;
  for (const id of candidates) {
    const sc = score(id);
    if (!best || before(sc, best.score)) best = { id, score: sc };
  }
  return best ? best.id : null;
}

/** a ranks before b: lexicographically greater */
function before(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return false;
}
