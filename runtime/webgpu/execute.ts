// Running plans on the WebGPU backend. Params, state and constants live on the device, uploaded
// once; feeds are uploaded per run; each intermediate takes a buffer from the backend's pool when
// its step runs and gives it back after its last reader; outputs are read back together at the
// end of the run, never between kernels; updates hand the new value's buffer to the param (no
// copy, no readback). It does not plan (the scheduler does) or pick a backend (the executor does).

import type { Graph } from '../../graphs/graph.js';
import { GraphError } from '../../graphs/errors.js';
import type { Plan } from '../../scheduler/plan.js';
import type { CpuArray } from '../cpu/render-js.js';
import type { HostTensor } from '../tensor.js';
import { WebGpuBackend, type HostArray, type WebGpuTensor } from './backend.js';

let shared: Promise<WebGpuBackend | null> | undefined;

/**
 * The process's WebGPU backend, acquired on first use and shared by every executable (one device,
 * one pipeline cache, one buffer pool); null when this platform has no adapter, with the reason
 * in `WebGpuBackend.unavailableReason`.
 *
 * ```ts
 * const be = await sharedWebGpuBackend();
 * console.log(be ? be.gpu.info.description : WebGpuBackend.unavailableReason);
 * ```
 */
export function sharedWebGpuBackend(): Promise<WebGpuBackend | null> {
  shared ??= WebGpuBackend.create();
  return shared;
}

/** A one-line description of a backend's adapter, e.g. `llvmpipe-llvm-15-0-6-256-bits- (OpenGL ES 3.2 Mesa 22.3.6; opengles, compatibility)`. */
export function describeAdapter(be: WebGpuBackend): string {
  const i = be.gpu.info;
  const name = [i.vendor, i.device].filter(Boolean).join(' ') || i.description || 'unknown adapter';
  const detail = [i.description !== name ? i.description.replace(/^OpenGL version /, '') : '', `${i.backend}, ${i.featureLevel}`].filter(Boolean).join('; ');
  return `${name} (${detail})`;
}

const unreachable = new FinalizationRegistry<{ backend: WebGpuBackend; tensors: Map<number, WebGpuTensor> }>(({ backend, tensors }) => {
  if (!backend.disposed) for (const t of tensors.values()) backend.release(t);
});

const asHost = (a: CpuArray): HostArray => (a instanceof Float64Array ? Float32Array.from(a) : a);

/**
 * Device copies of a graph's params, state and constants, by node id. Executables derived from
 * one another (reactive runs) share one instance, as they share host buffers on the CPU.
 */
export class GpuVariables {
  private readonly tensors = new Map<number, WebGpuTensor>();

  constructor(readonly backend: WebGpuBackend, host: ReadonlyMap<number, CpuArray>) {
    for (const [id, a] of host) this.tensors.set(id, backend.upload(asHost(a), dtypeOf(a)));
    // nobody frees by hand: once no executable holds these variables, their buffers go back to the pool
    unreachable.register(this, { backend, tensors: this.tensors });
  }

  has(id: number): boolean {
    return this.tensors.has(id);
  }

  get(id: number): WebGpuTensor {
    const t = this.tensors.get(id);
    if (!t) throw new GraphError(`node ${id} has no device buffer`);
    return t;
  }

  ids(): IterableIterator<number> {
    return this.tensors.keys();
  }

  /** Upload new values (the previous contents stay visible to work recorded before). */
  set(id: number, data: CpuArray): void {
    this.backend.write(this.get(id), asHost(data));
  }

  /** Make `t` the buffer of variable `id`; the old buffer goes back to the pool. */
  replace(id: number, t: WebGpuTensor): void {
    const old = this.get(id);
    this.tensors.set(id, t);
    if (old !== t) this.backend.release(old);
  }

  /** Read variables back (one submit for all of them). */
  async read(ids: readonly number[]): Promise<Map<number, HostArray>> {
    const data = await this.backend.readMany(ids.map((id) => this.get(id)));
    return new Map(ids.map((id, i) => [id, data[i]!]));
  }
}

function dtypeOf(a: CpuArray): 'f32' | 'i32' | 'bool' {
  return a instanceof Int32Array ? 'i32' : a instanceof Uint8Array ? 'bool' : 'f32';
}

/**
 * Record one run of `plan` on the device and resolve to its outputs. Everything up to the read-back
 * happens before this returns its promise (dispatches recorded and submitted, updates applied), so
 * runs started one after another see each other's updates without waiting.
 *
 * @param feeds host values by input node id
 * @param update apply the graph's updates to params and state
 */
export function runPlanOnGpu(
  vars: GpuVariables,
  plan: Plan,
  feeds: ReadonlyMap<number, HostTensor>,
  update: boolean,
): Promise<Record<string, HostTensor>> {
  const be = vars.backend;
  const g: Graph = plan.graph;
  /** buffers this run allocated (feeds and step outputs), by node id */
  const owned = new Map<number, WebGpuTensor>();
  const bufferOf = (id: number): WebGpuTensor => owned.get(id) ?? vars.get(id);
  for (const [id, t] of feeds) owned.set(id, be.upload(asHost(t.data), t.dtype));

  // readers left per buffer, so that a dead intermediate goes back to the pool at once
  const keep = new Set<number>([...Object.values(plan.outputs), ...(update ? g.updates.map((u) => u.value) : [])]);
  const readers = new Map<number, number>();
  for (const s of plan.steps) for (const j of s.inputs) readers.set(j, (readers.get(j) ?? 0) + 1);
  try {
    for (const s of plan.steps) {
      const b = plan.buffers.get(s.node)!;
      const out = be.alloc(b.dtype as HostTensor['dtype'], b.elements);
      owned.set(s.node, out);
      be.run(s.kernel, s.inputs.map(bufferOf), out);
      for (const j of new Set(s.inputs)) {
        const left = readers.get(j)! - s.inputs.filter((x) => x === j).length;
        readers.set(j, left);
        if (left === 0 && !keep.has(j) && owned.has(j)) {
          be.release(owned.get(j)!);
          owned.delete(j);
        }
      }
    }
    const names = Object.keys(plan.outputs);
    const reading = be.readMany(names.map((n) => bufferOf(plan.outputs[n]!)));

    // Updates: every new value is taken before any variable changes (simultaneous assignment). A
    // buffer this run made becomes the variable's; a value that is itself a variable (or feeds two
    // updates) is copied into a fresh buffer first.
    const claimed = new Set<number>();
    const next: [number, WebGpuTensor][] = [];
    for (const u of update ? g.updates : []) {
      if (u.value === u.target) continue;
      const src = bufferOf(u.value);
      if (owned.has(u.value) && !claimed.has(u.value)) {
        claimed.add(u.value);
        next.push([u.target, src]);
      } else {
        const t = be.alloc(src.dtype, src.elements);
        be.copy(src, t);
        next.push([u.target, t]);
      }
    }
    for (const [target, t] of next) vars.replace(target, t);
    for (const [id, t] of owned) if (!claimed.has(id)) be.release(t);
    owned.clear();
    return reading.then((data) => {
      const result: Record<string, HostTensor> = {};
      names.forEach((n, i) => {
        const id = plan.outputs[n]!;
        result[n] = { dtype: g.nodes[id]!.dtype, shape: plan.shapes[id]!, data: data[i]! };
      });
      return result;
    });
  } catch (e) {
    for (const t of owned.values()) be.release(t);
    throw e;
  }
}
