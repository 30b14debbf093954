// Lowering an SBP assignment to one plan per device: each device's graph computes its local pieces
// (local shapes, slices at its own offsets), and every conversion between layouts becomes graph
// nodes around one buffer and a `collective` step on it. Collectives are in place, NCCL-style, on
// a buffer of n equal chunks (n the group size, chunk r belongs to the group's r-th device):
//   all-reduce      every device ends with the elementwise sum;
//   all-gather      device r brings chunk r, every device ends with all chunks;
//   reduce-scatter  device r ends with the sum of everyone's chunk r in chunk r (others undefined);
//   all-to-all      device r's chunk s ends as device s's chunk r.
// A broadcast tensor becomes a split one by a local slice. It plans; it runs nothing.

import { ancestors, validateGraph, type Attrs, type AttrValue, type Graph, type Node, type Update } from '../../graphs/graph.js';
import type { DType } from '../../graphs/types.js';
import { bufferBytes, HOST_CAPS, type DeviceCaps } from '../caps.js';
import { planGraph, residentBuffers, type Plan, type PlannedBuffer } from '../plan.js';
import { validateSteps, type CollectiveOp, type CollectiveStep, type PlanStep } from '../steps.js';
import { propagateSbp, type SbpAnnotations, type SbpAssignment } from './sbp-propagate.js';
import { coordsOf, groupOf, localShape, meshSize, ndSbpString, sbpEqual, type Mesh, type NdSbp, type Sbp } from './sbp.js';

/** One device's share of a sharded step. */
export interface DevicePlan {
  readonly device: number;
  /** the device's graph: local shapes, conversions as nodes */
  readonly graph: Graph;
  /** a plan of that graph with `collective` steps */
  readonly plan: Plan;
}

export interface ShardedPlan {
  readonly mesh: Mesh;
  /** the global graph and its shapes */
  readonly graph: Graph;
  readonly shapes: readonly (readonly number[])[];
  readonly assignment: SbpAssignment;
  /** one per device, by device id */
  readonly devices: readonly DevicePlan[];
  /** the node of each global node in the device graphs (the same id on every device), or -1 where not needed */
  readonly localOf: readonly number[];
}

const COLLECTIVE_PREFIX = 'sbp/collective/';

/**
 * Propagates `annotations` through `g` (global concrete shapes `shapes`) on `mesh` and plans
 * every device's part.
 *
 * @example
 *   const sp = planSharded(g, shapes, { shape: [2] }, new Map([['w1', [split(1)]], ['w2', [split(0)]]]));
 *   collectiveCounts(sp.devices[0]!.plan); // { 'all-reduce': 1 }
 */
export function planSharded(g: Graph, shapes: readonly (readonly number[])[], mesh: Mesh, annotations: SbpAnnotations, opts: { caps?: DeviceCaps } = {}): ShardedPlan {
  const assignment = propagateSbp(g, shapes, mesh, annotations);
  let localOf: number[] = [];
  const devices = Array.from({ length: meshSize(mesh) }, (_, d) => {
    const lg = lowerForDevice(g, shapes, assignment, d);
    localOf = lg.localOf;
    return { device: d, graph: lg.graph, plan: spliceCollectives(lg, mesh, d, opts.caps ?? HOST_CAPS) };
  });
  return { mesh, graph: g, shapes, assignment, devices, localOf };
}

/** The number of collective steps of each kind in a plan. */
export function collectiveCounts(plan: Plan): Partial<Record<CollectiveOp, number>> {
  const out: Partial<Record<CollectiveOp, number>> = {};
  for (const s of plan.steps) if (s.kind === 'collective') out[s.op] = (out[s.op] ?? 0) + 1;
  return out;
}

interface LoweredGraph {
  graph: Graph;
  shapes: number[][];
  localOf: number[];
  collectives: { node: number; op: CollectiveOp; axis: number }[];
  /** the real outputs and update values, which stay live to the end */
  kept: Set<number>;
}

function lowerForDevice(g: Graph, shapes: readonly (readonly number[])[], asg: SbpAssignment, d: number): LoweredGraph {
  const { mesh } = asg;
  const coords = coordsOf(mesh, d);
  const nodes: Node[] = [];
  const localShapes: number[][] = [];
  const collectives: LoweredGraph['collectives'] = [];
  const emit = (op: string, inputs: number[], attrs: Attrs, dtype: DType, shape: number[], name?: string): number => {
    const id = nodes.length;
    nodes.push({ id, op, inputs, attrs, dtype, shape, ...(name !== undefined ? { name } : {}) });
    localShapes.push(shape);
    return id;
  };
  const localOf: number[] = g.nodes.map(() => -1);
  const cache = new Map<string, number>();

  /** one mesh axis's conversion of local node x (local shape L) */
  const boxAxis = (x: number, L: number[], from: Sbp, to: Sbp, axis: number, dtype: DType): number => {
    const n = mesh.shape[axis]!, r = coords[axis]!;
    const collective = (node: number, op: CollectiveOp) => collectives.push({ node, op, axis });
    const chunksFirst = (k: number) => { // [.., L[k], ..] -> [n, .., L[k]/n, ..]
      const t = [...L.slice(0, k), n, L[k]! / n, ...L.slice(k + 1)];
      const perm = [k, ...t.map((_, i) => i).filter((i) => i !== k)];
      const rs = emit('reshape', [x], { shape: t }, dtype, t);
      return emit('transpose', [rs], { perm }, dtype, perm.map((p) => t[p]!));
    };
    /** chunk dim 0 of c (shape [n, ...rest]) moved to just before rest's axis k, merged with it */
    const chunksInto = (c: number, rest: number[], k: number) => {
      const perm = [...rest.map((_, i) => i + 1).slice(0, k), 0, ...rest.map((_, i) => i + 1).slice(k)];
      const full = [n, ...rest];
      const t = emit('transpose', [c], { perm }, dtype, perm.map((p) => full[p]!));
      const merged = rest.map((v, i) => (i === k ? v * n : v));
      return emit('reshape', [t], { shape: merged }, dtype, merged);
    };
    const own = (c: number, rest: number[]) => { // chunk r of c, without its leading axis
      const full = [n, ...rest];
      const sl = emit('slice', [c], { starts: full.map((_, i) => (i === 0 ? r : 0)), ends: full.map((v, i) => (i === 0 ? r + 1 : v)) }, dtype, [1, ...rest]);
      return emit('reshape', [sl], { shape: rest }, dtype, rest);
    };
    if (from.kind === 'broadcast' && to.kind === 'split') {
      const k = to.axis, c = L[k]! / n;
      const out = L.map((v, i) => (i === k ? c : v));
      return emit('slice', [x], { starts: L.map((_, i) => (i === k ? r * c : 0)), ends: L.map((v, i) => (i === k ? (r + 1) * c : v)) }, dtype, out);
    }
    if (from.kind === 'partial' && to.kind === 'broadcast') {
      const c = emit('cast', [x], { dtype }, dtype, L);
      collective(c, 'all-reduce');
      return c;
    }
    if (from.kind === 'partial' && to.kind === 'split') {
      const c = chunksFirst(to.axis);
      collective(c, 'reduce-scatter');
      return own(c, L.map((v, i) => (i === to.axis ? v / n : v)));
    }
    if (from.kind === 'split' && to.kind === 'broadcast') {
      const one = emit('reshape', [x], { shape: [1, ...L] }, dtype, [1, ...L]);
      const c = emit('pad', [one], { before: [r, ...L.map(() => 0)], after: [n - 1 - r, ...L.map(() => 0)], value: 0 }, dtype, [n, ...L]);
      collective(c, 'all-gather');
      return chunksInto(c, L, from.axis);
    }
    if (from.kind === 'split' && to.kind === 'split') {
      const c = chunksFirst(to.axis);
      collective(c, 'all-to-all');
      return chunksInto(c, L.map((v, i) => (i === to.axis ? v / n : v)), from.axis);
    }
    throw new Error(`no conversion from ${from.kind} to ${to.kind}`);
  };

  const boxTo = (j: number, target: NdSbp): number => {
    const start = asg.sbp[j]!;
    if (start.every((s, a) => sbpEqual(s, target[a]!))) return localOf[j]!;
    const key = `${j}:${ndSbpString(target)}`;
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    // conversions that remove a split first, so no dim is ever split on two axes at once
    const order = target.map((_, a) => a).sort((a, b) => Number(target[a]!.kind === 'split') - Number(target[b]!.kind === 'split'));
    let cur = [...start];
    let x = localOf[j]!;
    for (const a of order) {
      if (sbpEqual(cur[a]!, target[a]!)) continue;
      x = boxAxis(x, localShape(shapes[j]!, cur, mesh), cur[a]!, target[a]!, a, g.nodes[j]!.dtype);
      cur = cur.map((s, b) => (b === a ? target[a]! : s));
    }
    cache.set(key, x);
    return x;
  };

  const needed = new Set(ancestors(g, [...Object.values(g.outputs), ...g.updates.map((u) => u.value)]));
  for (const id of g.updates.map((u) => u.target)) needed.add(id);
  for (const node of g.nodes) {
    if (!needed.has(node.id)) continue;
    const out = localShape(shapes[node.id]!, asg.sbp[node.id]!, mesh);
    const ins = node.inputs.map((j, k) => boxTo(j, asg.need[node.id]![k]!));
    localOf[node.id] = emit(node.op, ins, localAttrs(node, out), node.dtype, out, node.name);
  }
  const outputs: Record<string, number> = {};
  for (const [name, id] of Object.entries(g.outputs)) outputs[name] = localOf[id]!;
  const updates: Update[] = g.updates.map((u) => ({ target: localOf[u.target]!, value: boxTo(u.value, asg.sbp[u.target]!) }));
  const kept = new Set([...Object.values(outputs), ...updates.map((u) => u.value)]);
  collectives.forEach((c, k) => { outputs[`${COLLECTIVE_PREFIX}${k}`] = c.node; });
  const graph: Graph = { name: `${g.name}@${d}`, nodes, outputs, updates };
  validateGraph(graph);
  return { graph, shapes: localShapes, localOf, collectives, kept };
}

/** A node's attributes with its shapes made local. */
function localAttrs(node: Node, out: number[]): Attrs {
  const a = node.attrs;
  switch (node.op) {
    case 'input': case 'param': case 'state': return { ...a, shape: out };
    case 'const': return Array.isArray(a['data']) ? a : { ...a, shape: out };
    case 'reshape': case 'broadcastTo': return { ...a, shape: out };
    case 'slice': {
      // a split dim of a slice is untouched (starts 0, ends full): its end is the local size
      const starts = a['starts'] as readonly number[], ends = (a['ends'] as readonly number[]).map((e, k) => (starts[k] === 0 ? Math.min(e, out[k]!) : e));
      return { ...a, ends: ends as AttrValue };
    }
    default: return a;
  }
}

/**
 * Plans the device graph and puts each collective right after the launch that fills its buffer;
 * the collective buffers are graph outputs only so that they get buffers of their own, and are
 * freed after their last read.
 */
function spliceCollectives(lg: LoweredGraph, mesh: Mesh, d: number, caps: DeviceCaps): Plan {
  const base = planGraph(lg.graph, lg.shapes, { caps, withUpdates: true });
  const after = new Map(lg.collectives.map((c) => [c.node, c]));
  const spliced: PlanStep[] = [];
  for (const s of base.steps) {
    spliced.push(s);
    const c = s.kind === 'launch' ? after.get(s.node) : undefined;
    if (c) spliced.push({ kind: 'collective', op: c.op, buffer: c.node, group: groupOf(mesh, d, c.axis) } satisfies CollectiveStep);
  }
  const last = new Map<number, number>();
  spliced.forEach((s, i) => {
    if (s.kind === 'launch') for (const j of s.inputs) if (after.has(j)) last.set(j, i);
    if (s.kind === 'collective' && !last.has(s.buffer)) last.set(s.buffer, i);
  });
  const steps: PlanStep[] = [];
  spliced.forEach((s, i) => {
    steps.push(s);
    const dead = [...last].filter(([id, at]) => at === i && !lg.kept.has(id)).map(([id]) => id);
    if (dead.length) steps.push({ kind: 'free', buffers: dead });
  });
  const outputs: Record<string, number> = {};
  for (const [name, id] of Object.entries(base.outputs)) if (!name.startsWith(COLLECTIVE_PREFIX)) outputs[name] = id;
  const buffers = new Map<number, PlannedBuffer>();
  for (const [id, b] of base.buffers) buffers.set(id, after.has(id) && !lg.kept.has(id) ? { ...b, role: 'intermediate' } : b);
  const bytes = (id: number) => bufferBytes(caps, buffers.get(id)!.dtype as DType, buffers.get(id)!.elements);
  const kept = new Set([...lg.kept].filter((id) => buffers.has(id) && (buffers.get(id)!.role === 'output' || buffers.get(id)!.role === 'intermediate')));
  const { peakBytes } = validateSteps(steps, { resident: residentBuffers(buffers), kept, bytes, self: d, devices: meshSize(mesh) });
  return { ...base, steps, outputs, buffers, peakBytes };
}
