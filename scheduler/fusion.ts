// Fusion grouping: which nodes get a buffer of their own (are "materialized") and which are
// inlined into the kernel that reads them. Elementwise chains and views inline into their
// consumer; a reduction inlines its prologue and, when read once at its own index, its
// epilogue; a matmul absorbs an elementwise epilogue (bias, activation). Kernel construction
// (scheduler/kernels.ts) may still ask for more buffers when a view cannot be folded.

import type { Graph } from '../graphs/graph.js';
import { consumersOf } from '../graphs/graph.js';
import { opDef, type OpKind } from '../ops/registry.js';
import { numel } from '../graphs/types.js';

export interface FusionInput {
  readonly graph: Graph;
  readonly shapes: readonly (readonly number[])[];
  /** nodes that must be computed */
  readonly needed: readonly number[];
  /** nodes whose values must be kept (outputs, update values) */
  readonly roots: ReadonlySet<number>;
  /** nodes already known to need a buffer (from an earlier attempt) */
  readonly forced: ReadonlySet<number>;
  /** false disables fusion: every op gets its own kernel (for comparisons and tests) */
  readonly fuse: boolean;
}

export function kindOf(g: Graph, id: number): OpKind {
  return opDef(g.nodes[id]!.op).kind;
}

export function chooseMaterialized(f: FusionInput): Set<number> {
  const { graph: g, shapes } = f;
  const neededSet = new Set(f.needed);
  const consumers = consumersOf(g).map((cs) => cs.filter((c) => neededSet.has(c)));
  const mat = new Set<number>(f.forced);
  const kind = (id: number) => kindOf(g, id);
  const isFill = (id: number) => g.nodes[id]!.op === 'const' && !Array.isArray(g.nodes[id]!.attrs['data']);

  for (const id of f.needed) {
    const k = kind(id);
    if (f.roots.has(id)) mat.add(id);
    else if (k === 'source') {
      if (!isFill(id)) mat.add(id);
    } else if (!f.fuse && k !== 'view') mat.add(id);
    else if (k === 'scatterAdd') mat.add(id);
    // inputs that kernels read as plain buffers
    const n = g.nodes[id]!;
    if (k === 'scatterAdd') n.inputs.forEach((j) => mat.add(j));
    if (n.op === 'gather') mat.add(n.inputs[1]!);
    if (k === 'matmul') for (const j of n.inputs) mat.add(firstNonView(g, j, kind));
  }
  if (!f.fuse) return mat;

  // Uses counted through inlined views: a value read by two kernels is computed once.
  const uses = (id: number): number =>
    consumers[id]!.reduce((s, c) => s + (kind(c) === 'view' && !mat.has(c) ? uses(c) : 1), 0);
  const sameIndex = (id: number, c: number) => numel(shapes[id]!) === numel(shapes[c]!);

  // The largest domain a value is read in, through inlined views: a value computed in a small
  // domain and broadcast into a larger one is computed once, not once per element read.
  const readDomain = (id: number): number =>
    Math.max(0, ...consumers[id]!.map((c) => (kind(c) === 'view' && !mat.has(c) ? readDomain(c) : numel(shapes[c]!))));

  for (const id of f.needed) {
    if (mat.has(id)) continue;
    const k = kind(id);
    const cs = consumers[id]!;
    if (k === 'elementwise' && (uses(id) > 1 || readDomain(id) > numel(shapes[id]!))) mat.add(id);
    if (k === 'matmul') {
      const c = cs[0];
      const ok = cs.length === 1 && kind(c!) === 'elementwise' && sameIndex(id, c!) && g.nodes[c!]!.op !== 'gather';
      if (!ok) mat.add(id);
    }
  }
  // A value that carries a reduction (or matmul) must be read once, at its own index, by an
  // elementwise consumer; otherwise the reduction would be recomputed per read.
  let changed = true;
  while (changed) {
    changed = false;
    const heavy = new Set<number>();
    for (const id of f.needed) {
      if (mat.has(id)) continue;
      const k = kind(id);
      if (k === 'reduce' || k === 'matmul' || g.nodes[id]!.inputs.some((j) => heavy.has(j))) heavy.add(id);
    }
    for (const id of heavy) {
      const cs = consumers[id]!;
      const ok = cs.length === 1 && (kind(cs[0]!) === 'elementwise' || kind(cs[0]!) === 'view') && sameIndex(id, cs[0]!) && g.nodes[cs[0]!]!.op !== 'gather';
      if (!ok) {
        mat.add(id);
        changed = true;
      }
    }
  }
  return mat;
}

function firstNonView(g: Graph, id: number, kind: (id: number) => OpKind): number {
  let cur = id;
  while (kind(cur) === 'view' && ['transpose', 'reshape', 'broadcastTo'].includes(g.nodes[cur]!.op)) cur = g.nodes[cur]!.inputs[0]!;
  return cur;
}
