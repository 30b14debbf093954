// The execution plan: an ordered list of typed steps (scheduler/steps.ts) — kernel launches over
// buffers, with fusion applied, and a free after each buffer's last read — made from a graph, the
// concrete shapes of one binding of its symbolic dims, the device's capabilities and options.
// Devices run plans (runtime/plan-interpreter.ts); they never see ops and decide no lifetimes.

import type { Graph } from '../graphs/graph.js';
import { ancestors } from '../graphs/graph.js';
import { dict } from '../graphs/dict.js';
import { numel, type DType } from '../graphs/types.js';
import { opDef } from '../ops/registry.js';
import { HOST_CAPS, bufferBytes, type DeviceCaps } from './caps.js';
import { chooseMaterialized } from './fusion.js';
import { buildKernel, NeedsBuffer } from './kernels.js';
import { isSuppliedSource } from './limits.js';
import { planMemory, type MemoryPlan } from './memory.js';
import type { RematInfo } from './remat-info.js';
import { launches, validateSteps, type LaunchStep, type PlanStep } from './steps.js';

export type BufferRole = 'input' | 'param' | 'state' | 'const' | 'output' | 'intermediate';

export interface PlannedBuffer {
  readonly node: number;
  readonly role: BufferRole;
  readonly dtype: string;
  readonly elements: number;
}

export interface Plan {
  readonly graph: Graph;
  readonly shapes: readonly (readonly number[])[];
  readonly steps: readonly PlanStep[];
  readonly buffers: ReadonlyMap<number, PlannedBuffer>;
  /** what the plan was made for: its limits shaped the kernels, its element sizes count the bytes */
  readonly caps: DeviceCaps;
  /** the largest total of computed values (intermediates, outputs, update values) held at once, bytes */
  readonly peakBytes: number;
  /** arena offsets for the intermediates (best fit), for devices that place buffers in one arena */
  readonly memory: MemoryPlan;
  /** present when the plan was fitted to a memory budget by recomputing values */
  readonly remat?: RematInfo;
  /** outputs by name -> node id; updates as in the graph */
  readonly outputs: { readonly [name: string]: number };
  /** one kernel per op node, as without fusion */
  readonly unfusedKernelCount: number;
  readonly kernelCount: number;
}

export interface PlanOptions {
  /** output names to compute (default: all) */
  readonly outputs?: readonly string[];
  readonly fuse?: boolean;
  /** compute update values too (training steps) */
  readonly withUpdates?: boolean;
  /** the device's limits and element sizes (default: the host's) */
  readonly caps?: DeviceCaps;
}

/**
 * The plan of `g` at these shapes for a device with `opts.caps`. Where the device reads matmul
 * operands as gathers (implicit GEMM) and the plan does, the plan that copies those operands into
 * buffers instead is made too, and the one with the lower peak is kept: gathers are meant to save
 * memory, and for some layers (strided 1x1 convolutions, whose windows are a subsample smaller
 * than their input) the copy is the smaller.
 */
export function planGraph(g: Graph, shapes: readonly (readonly number[])[], opts: PlanOptions = {}): Plan {
  const plan = planOnce(g, shapes, opts);
  if (!opts.caps?.implicitGemm || !plan.steps.some((st) => st.kind === 'launch' && st.kernel.kind === 'matmul' && (st.kernel.a.gather || st.kernel.b.gather))) return plan;
  const copied = planOnce(g, shapes, { ...opts, caps: { ...opts.caps, implicitGemm: false } });
  return copied.peakBytes < plan.peakBytes ? { ...copied, caps: opts.caps } : plan;
}

function planOnce(g: Graph, shapes: readonly (readonly number[])[], opts: PlanOptions): Plan {
  const outNames = opts.outputs ?? Object.keys(g.outputs);
  const outIds = outNames.map((n) => g.outputs[n]!);
  const updates = opts.withUpdates === false ? [] : g.updates;
  const rootIds = [...outIds, ...updates.map((u) => u.value)];
  const needed = ancestors(g, rootIds);
  const roots = new Set(rootIds);
  const forced = new Set<number>();
  const fuse = opts.fuse !== false;
  const caps = opts.caps ?? HOST_CAPS;

  for (let attempt = 0; ; attempt++) {
    const mat = chooseMaterialized({ graph: g, shapes, needed, roots, forced, fuse, caps });
    try {
      const steps: LaunchStep[] = [];
      for (const id of needed) {
        if (!mat.has(id)) continue;
        if (isSuppliedSource(g, id)) continue;
        const built = buildKernel(g, shapes, mat, id, caps);
        steps.push({ kind: 'launch', kernel: built.kernel, node: id, inputs: built.inputs, output: id, fused: built.fused, recompute: false });
      }
      return finish(g, shapes, steps, mat, outNames, new Set(outIds), needed, caps, opts.withUpdates !== false);
    } catch (e) {
      if (!(e instanceof NeedsBuffer) || forced.has(e.id) || attempt > g.nodes.length) throw e;
      forced.add(e.id);
    }
  }
}

function finish(
  g: Graph, shapes: readonly (readonly number[])[], kernels: LaunchStep[], mat: Set<number>,
  outNames: readonly string[], outIds: Set<number>, needed: readonly number[], caps: DeviceCaps, withUpdates: boolean,
): Plan {
  const buffers = new Map<number, PlannedBuffer>();
  const role = (id: number): BufferRole => {
    const op = g.nodes[id]!.op;
    if (op === 'input' || op === 'param' || op === 'state') return op;
    if (op === 'const' && Array.isArray(g.nodes[id]!.attrs['data'])) return 'const';
    return outIds.has(id) ? 'output' : 'intermediate';
  };
  for (const id of mat) {
    const n = g.nodes[id]!;
    buffers.set(id, { node: id, role: role(id), dtype: n.dtype, elements: numel(shapes[id]!) });
  }
  const bytesOf = (id: number) => bufferBytes(caps, buffers.get(id)!.dtype as DType, buffers.get(id)!.elements);
  // outputs and update values are read after the last step: they are handed over or written
  // into params and state
  const kept = new Set<number>([...outIds, ...(withUpdates ? g.updates.map((u) => u.value) : [])].filter((id) => buffers.has(id) && isComputed(buffers.get(id)!.role)));
  const lastUse = new Map<number, number>();
  kernels.forEach((s, i) => s.inputs.forEach((j) => lastUse.set(j, i)));
  for (const id of kept) lastUse.set(id, kernels.length);
  const steps: PlanStep[] = [];
  kernels.forEach((s, i) => {
    steps.push(s);
    const dead = [...new Set(s.inputs)].filter((j) => lastUse.get(j) === i && isComputed(buffers.get(j)!.role));
    if (dead.length) steps.push({ kind: 'free', buffers: dead });
  });
  const lifetimes = kernels
    .map((s, i) => ({ s, i }))
    .filter(({ s }) => buffers.get(s.node)!.role === 'intermediate')
    .map(({ s, i }) => ({ id: s.node, bytes: bytesOf(s.node), first: i, last: Math.max(i, lastUse.get(s.node) ?? i) }));
  const outputs = dict<number>();
  for (const n of outNames) outputs[n] = g.outputs[n]!;
  // A fill constant that needs a buffer (an output, a scatter-add base) takes a kernel too.
  const isFill = (id: number) => g.nodes[id]!.op === 'const' && !Array.isArray(g.nodes[id]!.attrs['data']);
  const opNodes = needed.filter((id) => opDef(g.nodes[id]!.op).kind !== 'source' || (isFill(id) && mat.has(id))).length;
  const { peakBytes } = validateSteps(steps, { resident: residentBuffers(buffers), kept, bytes: bytesOf });
  return {
    graph: g, shapes, steps, buffers, caps, peakBytes, memory: planMemory(lifetimes), outputs,
    unfusedKernelCount: opNodes, kernelCount: kernels.length,
  };
}

const isComputed = (r: BufferRole) => r === 'output' || r === 'intermediate';

/** Buffers that exist before a plan's first step: inputs, params, state and constants. */
export function residentBuffers(buffers: ReadonlyMap<number, PlannedBuffer>): Set<number> {
  return new Set([...buffers.values()].filter((b) => !isComputed(b.role)).map((b) => b.node));
}

/** The kernel launches of a plan, in order (recomputations included). */
export function planLaunches(plan: Plan): LaunchStep[] {
  return launches(plan.steps);
}
