// The execution plan: an ordered list of kernel launches over buffers, with fusion applied and
// every intermediate buffer placed in an arena. Made from a graph, the concrete shapes of one
// binding of its symbolic dims, and options. Backends execute plans; they never see ops.

import type { Graph } from '../graphs/graph.js';
import { ancestors } from '../graphs/graph.js';
import { hostBytesPerElement, numel } from '../graphs/types.js';
import type { Kernel } from '../ops/kernel-ir.js';
import { opDef } from '../ops/registry.js';
import { chooseMaterialized } from './fusion.js';
import { buildKernel, NeedsBuffer } from './kernels.js';
import { planMemory, type MemoryPlan } from './memory.js';

export interface Step {
  readonly kernel: Kernel;
  /** node id computed by this step */
  readonly node: number;
  /** node ids whose buffers the kernel reads */
  readonly inputs: readonly number[];
  /** node ids inlined into this kernel */
  readonly fused: readonly number[];
}

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
  readonly steps: readonly Step[];
  readonly buffers: ReadonlyMap<number, PlannedBuffer>;
  readonly memory: MemoryPlan;
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
}

export function planGraph(g: Graph, shapes: readonly (readonly number[])[], opts: PlanOptions = {}): Plan {
  const outNames = opts.outputs ?? Object.keys(g.outputs);
  const outIds = outNames.map((n) => g.outputs[n]!);
  const updates = opts.withUpdates === false ? [] : g.updates;
  const rootIds = [...outIds, ...updates.map((u) => u.value)];
  const needed = ancestors(g, rootIds);
  const roots = new Set(rootIds);
  const forced = new Set<number>();
  const fuse = opts.fuse !== false;

  for (let attempt = 0; ; attempt++) {
    const mat = chooseMaterialized({ graph: g, shapes, needed, roots, forced, fuse });
    try {
      const steps: Step[] = [];
      for (const id of needed) {
        if (!mat.has(id)) continue;
        const n = g.nodes[id]!;
        if (opDef(n.op).kind === 'source' && Array.isArray(n.attrs['data'])) continue;
        if (['input', 'param', 'state'].includes(n.op)) continue;
        const built = buildKernel(g, shapes, mat, id);
        steps.push({ kernel: built.kernel, node: id, inputs: built.inputs, fused: built.fused });
      }
      return finish(g, shapes, steps, mat, outNames, new Set(outIds), needed);
    } catch (e) {
      if (!(e instanceof NeedsBuffer) || forced.has(e.id) || attempt > g.nodes.length) throw e;
      forced.add(e.id);
    }
  }
}

function finish(
  g: Graph, shapes: readonly (readonly number[])[], steps: Step[], mat: Set<number>,
  outNames: readonly string[], outIds: Set<number>, needed: readonly number[],
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
  const lastUse = new Map<number, number>();
  steps.forEach((s, i) => s.inputs.forEach((j) => lastUse.set(j, i)));
  // update values are read after the last step, when they are written into params and state
  for (const u of g.updates) if (mat.has(u.value)) lastUse.set(u.value, steps.length);
  const lifetimes = steps
    .map((s, i) => ({ s, i }))
    .filter(({ s }) => buffers.get(s.node)!.role === 'intermediate')
    .map(({ s, i }) => ({
      id: s.node,
      bytes: buffers.get(s.node)!.elements * hostBytesPerElement(g.nodes[s.node]!.dtype),
      first: i,
      last: Math.max(i, lastUse.get(s.node) ?? i),
    }));
  const outputs: Record<string, number> = {};
  for (const n of outNames) outputs[n] = g.outputs[n]!;
  // A fill constant that needs a buffer (an output, a scatter-add base) takes a kernel too.
  const isFill = (id: number) => g.nodes[id]!.op === 'const' && !Array.isArray(g.nodes[id]!.attrs['data']);
  const opNodes = needed.filter((id) => opDef(g.nodes[id]!.op).kind !== 'source' || (isFill(id) && mat.has(id))).length;
  return {
    graph: g, shapes, steps, buffers, memory: planMemory(lifetimes), outputs,
    unfusedKernelCount: opNodes, kernelCount: steps.length,
  };
}
