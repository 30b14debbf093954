// Fusion grouping: which nodes get a buffer of their own (are "materialized") and which are
// inlined into the kernel that reads them. Elementwise chains and views inline into their
// consumer; a reduction inlines its prologue and, when read once at its own index, its
// epilogue; a matmul absorbs an elementwise epilogue (bias, activation). What an op allows is
// asked of its OpDef, never of its name. A kernel that would bind more buffers than the device
// allows gives its best producer a buffer (scheduler/limits.ts). Kernel construction
// (scheduler/kernels.ts) may still ask for more buffers when a view cannot be folded.

import type { Graph } from '../graphs/graph.js';
import { consumersOf } from '../graphs/graph.js';
import { opDef, type OpDef, type OpKind } from '../ops/registry.js';
import { numel } from '../graphs/types.js';
import { HOST_CAPS, type DeviceCaps } from './caps.js';
import { chooseCut, isSuppliedSource, kernelReads } from './limits.js';
import { normalizeAxes } from '../ops/shape.js';

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
  /** the device's limits (default: the host's) */
  readonly caps?: DeviceCaps;
}

export function kindOf(g: Graph, id: number): OpKind {
  return opDef(g.nodes[id]!.op).kind;
}

export function chooseMaterialized(f: FusionInput): Set<number> {
  const g = f.graph;
  const neededSet = new Set(f.needed);
  const consumers = consumersOf(g).map((cs) => cs.filter((c) => neededSet.has(c)));
  const mat = new Set<number>(f.forced);
  const kind = (id: number) => kindOf(g, id);
  const def = (id: number) => opDef(g.nodes[id]!.op);
  // a consumer that reads its operands at its own output index (gather reads its table by index)
  const readsAtOwnIndex = (c: number) => (kind(c) === 'elementwise' || kind(c) === 'view') && !def(c).indexOperands?.length;

  for (const id of f.needed) {
    const k = kind(id);
    const d = def(id);
    if (f.roots.has(id)) mat.add(id);
    else if (k === 'source') {
      if (isSuppliedSource(g, id)) mat.add(id);
    } else if (!f.fuse && k !== 'view') mat.add(id);
    else if (!d.lower && k !== 'matmul') mat.add(id);
    // inputs that kernels read as plain buffers or as indices
    const n = g.nodes[id]!;
    for (const j of [...(d.bufferOperands ?? []), ...(d.indexOperands ?? [])]) mat.add(n.inputs[j]!);
    if (k === 'matmul') for (const j of n.inputs) mat.add(firstStridedSource(g, j, f.caps?.implicitGemm === true));
  }
  if (f.fuse) fuseHeavy(f, mat, consumers, kind, readsAtOwnIndex);
  fitBindings(g, f.needed, mat, f.caps ?? HOST_CAPS);
  return mat;
}

/** Matmuls and reductions inline only where they are computed once: read once, at their own index. */
function fuseHeavy(
  f: FusionInput, mat: Set<number>, consumers: readonly number[][], kind: (id: number) => OpKind, readsAtOwnIndex: (c: number) => boolean,
): void {
  const { graph: g, shapes } = f;
  const reducesProduct = (c: number) => f.caps?.matmulReduce === true && reducesTrailingDims(g, shapes, c);

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
      const ok = cs.length === 1 && ((kind(c!) === 'elementwise' && readsAtOwnIndex(c!) && sameIndex(id, c!)) || reducesProduct(c!));
      if (!ok) mat.add(id);
    }
  }
  // A value that carries a reduction (or matmul) must be read once, at its own index, by an
  // elementwise consumer; otherwise the reduction would be recomputed per read. A matmul product
  // (through its epilogue) may also be read once by a reduction of its trailing dims, where the
  // device fuses those into the matmul.
  let changed = true;
  while (changed) {
    changed = false;
    const heavy = new Set<number>();
    // values that carry a matmul and no reduction yet
    const product = new Set<number>();
    for (const id of f.needed) {
      if (mat.has(id)) continue;
      const k = kind(id);
      const ins = g.nodes[id]!.inputs;
      if (k === 'reduce' || k === 'matmul' || ins.some((j) => heavy.has(j))) heavy.add(id);
      if (k === 'matmul' || (k === 'elementwise' && ins.some((j) => product.has(j)) && !ins.some((j) => heavy.has(j) && !product.has(j)))) product.add(id);
    }
    for (const id of heavy) {
      const cs = consumers[id]!;
      const ok = cs.length === 1 && ((readsAtOwnIndex(cs[0]!) && sameIndex(id, cs[0]!)) || (product.has(id) && reducesProduct(cs[0]!)));
      if (!ok) {
        mat.add(id);
        changed = true;
      }
    }
  }
}

/**
 * Every kernel binds at most `caps.maxKernelBuffers` buffers: while one would bind more, the
 * inlined producer that cuts its reads the most (and fits itself) gets a buffer. A kernel no
 * cut can shrink is left for kernel construction to refuse with a DeviceLimitError.
 */
function fitBindings(g: Graph, needed: readonly number[], mat: Set<number>, caps: DeviceCaps): void {
  if (!Number.isFinite(caps.maxKernelBuffers)) return;
  // consumers first: a producer given a buffer here is then fitted as a kernel of its own
  for (const root of [...needed].reverse()) {
    if (!mat.has(root) || isSuppliedSource(g, root)) continue;
    while (kernelReads(g, root, mat).size + 1 > caps.maxKernelBuffers) {
      const cut = chooseCut(g, root, mat, caps.maxKernelBuffers);
      if (cut === null) break;
      mat.add(cut);
    }
  }
}

/**
 * The buffer a matmul operand's strides index: through views that only re-stride, or with
 * implicit GEMM through every view that only moves elements (pad, windows), which the matmul
 * then gathers in its loads (kernel construction asks for a buffer where it cannot).
 */
function firstStridedSource(g: Graph, id: number, gather: boolean): number {
  let cur = id;
  const through = (d: OpDef) => d.stridedView || (gather && d.kind === 'view' && !d.indexOperands?.length && d.lower !== undefined);
  while (through(opDef(g.nodes[cur]!.op))) cur = g.nodes[cur]!.inputs[0]!;
  return cur;
}

const FUSABLE_REDUCTIONS = new Set(['sum', 'reduce_max', 'reduce_min']);

/**
 * Whether node `c` is a reduction a matmul can take into itself (MatmulKernel.reduce): an f32
 * sum, max or min over its input's trailing dims, the last one included.
 */
function reducesTrailingDims(g: Graph, shapes: readonly (readonly number[])[], c: number): boolean {
  const n = g.nodes[c]!;
  if (!FUSABLE_REDUCTIONS.has(n.op) || n.dtype !== 'f32') return false;
  const rank = shapes[n.inputs[0]!]!.length;
  const axes = normalizeAxes(n.op, n.attrs['axes'] as number[] | null, rank, [shapes[n.inputs[0]!]!]);
  const sorted = [...new Set(axes)].sort((a, b) => a - b);
  return sorted.length > 0 && sorted.every((a, i) => a === rank - sorted.length + i);
}
