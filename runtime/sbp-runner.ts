// An in-process runner for sharded plans (scheduler/parallel/sbp-lower.ts): every device's plan
// runs on its own host device, in lockstep — each runs up to its next `collective` step, then the
// collective is done directly on the host arrays. Global values are sharded on the way in and
// assembled on the way out (split: concatenated, broadcast: device 0's, partial: summed). It
// checks sharded plans against single-device runs; it is not the worker mesh.

import type { DType } from '../graphs/types.js';
import type { CollectiveStep } from '../scheduler/steps.js';
import type { ShardedPlan } from '../scheduler/parallel/sbp-lower.js';
import { coordsOf, localShape, meshSize, type Mesh, type NdSbp } from '../scheduler/parallel/sbp.js';
import { HostDevice } from './device.js';
import type { CpuArray } from './cpu/render-js.js';
import { allocArray } from './tensor.js';

export interface ShardedRun {
  /** outputs by name, assembled to their global shapes */
  readonly outputs: Record<string, CpuArray>;
  /** params and state by name after the step's updates, assembled */
  readonly variables: Map<string, CpuArray>;
}

/** Contiguous piece `[lo, hi)` of dim `k` of a row-major array of `shape`. */
function piece(a: CpuArray, shape: readonly number[], k: number, lo: number, hi: number): CpuArray {
  const outer = shape.slice(0, k).reduce((p, d) => p * d, 1), inner = shape.slice(k + 1).reduce((p, d) => p * d, 1);
  const out = new (a.constructor as new (n: number) => CpuArray)(outer * (hi - lo) * inner);
  for (let o = 0; o < outer; o++) out.set(a.subarray((o * shape[k]! + lo) * inner, (o * shape[k]! + hi) * inner), o * (hi - lo) * inner);
  return out;
}

/** Concatenation along dim `k` of arrays of `shape` (the pieces' common local shape). */
function join(parts: readonly CpuArray[], shape: readonly number[], k: number): CpuArray {
  const outer = shape.slice(0, k).reduce((p, d) => p * d, 1), inner = shape.slice(k + 1).reduce((p, d) => p * d, 1), len = shape[k]! * inner;
  const out = new (parts[0]!.constructor as new (n: number) => CpuArray)(parts.length * outer * len);
  for (let o = 0; o < outer; o++) parts.forEach((p, i) => out.set(p.subarray(o * len, (o + 1) * len), (o * parts.length + i) * len));
  return out;
}

/** Device `d`'s piece of a global value. */
export function shardOf(a: CpuArray, shape: readonly number[], s: NdSbp, mesh: Mesh, d: number): CpuArray {
  const c = coordsOf(mesh, d);
  let cur = a, curShape = [...shape];
  s.forEach((x, axis) => {
    if (x.kind === 'partial') throw new Error('a partial sum cannot be fed');
    if (x.kind !== 'split') return;
    const n = mesh.shape[axis]!, len = curShape[x.axis]! / n;
    cur = piece(cur, curShape, x.axis, c[axis]! * len, (c[axis]! + 1) * len);
    curShape[x.axis] = len;
  });
  return cur === a ? a.slice() as CpuArray : cur;
}

/** The global value from every device's piece (by device id). */
export function assemble(pieces: readonly CpuArray[], shape: readonly number[], s: NdSbp, mesh: Mesh): CpuArray {
  // combine over the last mesh axis first, keyed by the coordinates still left
  let parts = new Map<string, CpuArray>(pieces.map((p, d) => [coordsOf(mesh, d).join(','), p]));
  for (let axis = mesh.shape.length - 1; axis >= 0; axis--) {
    const shapeNow = localShape(shape, s.map((x, a) => (a < axis ? x : a === axis ? x : { kind: 'broadcast' as const })), mesh);
    const next = new Map<string, CpuArray>();
    const keys = [...new Set([...parts.keys()].map((k) => k.split(',').slice(0, axis).join(',')))];
    const x = s[axis]!;
    for (const key of keys) {
      const group = Array.from({ length: mesh.shape[axis]! }, (_, i) => parts.get(key === '' ? `${i}` : `${key},${i}`)!);
      if (x.kind === 'split') next.set(key, join(group, shapeNow, x.axis));
      else if (x.kind === 'broadcast') next.set(key, group[0]!);
      else {
        const sum = group[0]!.slice() as CpuArray;
        for (const g of group.slice(1)) for (let i = 0; i < sum.length; i++) sum[i]! += g[i]!;
        next.set(key, sum);
      }
    }
    parts = next;
  }
  return parts.get('')!;
}

/** Runs `s` on the host arrays of its group's devices, in place. */
function collective(s: CollectiveStep, bufs: readonly CpuArray[]): void {
  const n = bufs.length, len = bufs[0]!.length / n;
  const chunk = (b: CpuArray, i: number) => b.subarray(i * len, (i + 1) * len);
  if (s.op === 'all-reduce') {
    const sum = bufs[0]!.slice();
    for (const b of bufs.slice(1)) for (let i = 0; i < sum.length; i++) sum[i]! += b[i]!;
    for (const b of bufs) b.set(sum);
  } else if (s.op === 'all-gather') {
    bufs.forEach((src, r) => bufs.forEach((b, q) => { if (q !== r) b.set(chunk(src, r), r * len); }));
  } else if (s.op === 'reduce-scatter') {
    const sums = bufs.map((_, r) => { const t = chunk(bufs[0]!, r).slice(); for (const b of bufs.slice(1)) { const c = chunk(b, r); for (let i = 0; i < len; i++) t[i]! += c[i]!; } return t; });
    bufs.forEach((b, r) => b.set(sums[r]!, r * len));
  } else {
    const old = bufs.map((b) => b.slice());
    bufs.forEach((b, r) => old.forEach((o, q) => b.set(chunk(o, r), q * len)));
  }
}

/**
 * One step of a sharded plan on `meshSize` host devices. `feeds` are global input values by
 * name; `variables` global params and state by name (missing ones start at zero). Constants come
 * from the graph.
 */
export function runSharded(sp: ShardedPlan, feeds: ReadonlyMap<string, CpuArray>, variables: ReadonlyMap<string, CpuArray>): ShardedRun {
  const { mesh, graph: g, shapes, assignment: asg } = sp;
  const n = meshSize(mesh);
  const devices = Array.from({ length: n }, () => new HostDevice('cpu'));
  const stores = sp.devices.map(() => new Map<number, CpuArray>());
  // sources: shard the global values
  g.nodes.forEach((node, id) => {
    const local = sp.localOf[id]!;
    if (local < 0) return;
    let value: CpuArray | undefined;
    if (node.op === 'input') value = feeds.get(node.name!);
    else if (node.op === 'param' || node.op === 'state') value = variables.get(node.name!) ?? allocArray(node.dtype, shapes[id]!.reduce((a, b) => a * b, 1));
    else if (node.op === 'const' && Array.isArray(node.attrs['data'])) value = Float32Array.from(node.attrs['data'] as number[]);
    else return;
    if (!value) throw new Error(`no value for input '${node.name}'`);
    for (let d = 0; d < n; d++) {
      const v = shardOf(value, shapes[id]!, asg.sbp[id]!, mesh, d);
      const a = allocArray(node.dtype, v.length);
      a.set(v);
      stores[d]!.set(local, a);
    }
  });
  const runs = sp.devices.map((dp, d) => runDevice(dp.plan, devices[d]!, stores[d]!));
  for (;;) {
    const at = runs.map((r) => r.next());
    if (at.every((x) => x.done)) break;
    if (at.some((x) => x.done)) throw new Error('devices disagree on the number of collectives');
    const pending = at.map((x) => x.value as CollectiveStep);
    const done = new Set<number>();
    pending.forEach((s, d) => {
      if (done.has(d)) return;
      for (const q of s.group) {
        const t = pending[q]!;
        if (t.op !== s.op || t.group.join() !== s.group.join()) throw new Error(`device ${q} is at ${t.op} [${t.group}] while device ${d} is at ${s.op} [${s.group}]`);
        done.add(q);
      }
      collective(s, s.group.map((q) => stores[q]!.get(pending[q]!.buffer)!));
    });
  }
  const outputs: Record<string, CpuArray> = {};
  for (const [name, id] of Object.entries(g.outputs)) {
    outputs[name] = assemble(stores.map((st) => st.get(sp.localOf[id]!)!), shapes[id]!, asg.sbp[id]!, mesh);
  }
  const vars = new Map<string, CpuArray>();
  for (const u of g.updates) {
    const local = sp.devices[0]!.graph.updates.find((x) => x.target === sp.localOf[u.target])!;
    vars.set(g.nodes[u.target]!.name!, assemble(stores.map((st) => st.get(local.value)!), shapes[u.target]!, asg.sbp[u.target]!, mesh));
  }
  return { outputs, variables: vars };
}

/** A device's steps up to each collective; yields it, to be resumed once it is done. */
function* runDevice(plan: ShardedPlan['devices'][number]['plan'], device: HostDevice, store: Map<number, CpuArray>): Generator<CollectiveStep, void, void> {
  for (const s of plan.steps) {
    if (s.kind === 'launch') {
      const b = plan.buffers.get(s.node)!;
      const out = device.alloc(b.dtype as DType, b.elements);
      device.launch(s.kernel, s.inputs.map((j) => store.get(j)!), out);
      store.set(s.node, out);
    } else if (s.kind === 'collective') yield s;
    else if (s.kind === 'free') for (const id of s.buffers) store.delete(id);
    else throw new Error(`'${s.kind}' steps need the worker mesh`);
  }
}
