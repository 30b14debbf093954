// Pipeline (and pipeline × tensor) parallel training on a mesh of worker devices: a plan from
// planMeshPipeline is loaded once — each device gets its passes and its shard of its stages'
// params — and each step hands every device the pieces of the micro-batches its stages read. The
// devices run their passes in the schedule's order at once, moving activations and gradients to
// each other through the mesh's communicator; the calling thread only gets the loss, the
// per-device measurements and, when asked, the params. It does not plan.

import type { DType } from '../../graphs/types.js';
import type { MeshPipelinePlan, PipelineDeviceProgram } from '../../scheduler/parallel/pipeline-mesh.js';
import type { NdSbp } from '../../scheduler/parallel/sbp.js';
import { DeviceUseError } from '../device.js';
import type { CpuArray } from '../cpu/render-js.js';
import { assemble, shardOf } from '../sbp-runner.js';
import { allocArray } from '../tensor.js';
import { MeshError } from './communicator.js';
import type { Mesh } from './mesh.js';
import type { MicroFeeds, PipelineDeviceStep } from './pipeline-device.js';

export interface MeshPipelineStep {
  /** the micro-batches' losses, averaged (or summed, as the gradients) */
  readonly loss: number;
  /** accumulated gradients by param name, when the plan has no optimizer */
  readonly grads: Readonly<Record<string, CpuArray>>;
  /** per device: its measurements of the step */
  readonly devices: readonly PipelineDeviceStep[];
  /** ms from the step's request to the last device's answer */
  readonly wallMs: number;
}

let nextProgram = 1 << 20;

/**
 * A pipeline program loaded on a mesh.
 *
 * ```ts
 * const program = partitionPipeline(lossGraph, { stages: 2 });
 * const plan = planMeshPipeline(program, oneFOneB(2, 4), { optimizer: sgd(0.1), caps: mesh.caps });
 * const pipe = await MeshPipeline.load(mesh, plan, initialParams);
 * const { loss } = await pipe.step(microBatches); // one record of inputs per micro-batch
 * ```
 */
export class MeshPipeline {
  private constructor(readonly mesh: Mesh, readonly plan: MeshPipelinePlan, private readonly id: number) {}

  /** Loads `plan` on `mesh` (of `plan.schedule.devices × plan.tensor` devices) with the params' initial values by name. */
  static async load(mesh: Mesh, plan: MeshPipelinePlan, params: Readonly<Record<string, CpuArray>>): Promise<MeshPipeline> {
    if (mesh.size !== plan.devices.length) throw new MeshError(0, `the pipeline needs ${plan.devices.length} devices (${plan.schedule.devices} stages × ${plan.tensor}), the mesh has ${mesh.size}`);
    const id = nextProgram++;
    await mesh.each((d) => ({ type: 'load-pipeline', id: 0, program: id, pipeline: plan.devices[d]!, values: storeValues(plan.devices[d]!, plan.tensor, params) }));
    return new MeshPipeline(mesh, plan, id);
  }

  /** One training step over `micros` (global inputs by name, one record per micro-batch). */
  async step(micros: readonly Readonly<Record<string, CpuArray>>[]): Promise<MeshPipelineStep> {
    const { plan } = this;
    if (micros.length !== plan.schedule.micros) throw new DeviceUseError(`pipeline step: ${micros.length} micro-batches for a schedule of ${plan.schedule.micros}`);
    const t0 = performance.now();
    const done = await this.mesh.each((d) => ({ type: 'run-pipeline', id: 0, program: this.id, micros: deviceFeeds(plan.devices[d]!, plan.tensor, micros) }));
    const wallMs = performance.now() - t0;
    const devices = done.map((m) => m.pipeline!);
    let loss = 0;
    const gradPieces = new Map<string, CpuArray[]>();
    devices.forEach((r, d) => {
      for (const v of r.values) {
        // every tensor rank of the last stage holds the loss; take rank 0's
        if (v.name === 'loss' && d % plan.tensor === 0) loss += v.data[0]!;
        if (v.name.startsWith('grad/')) gradPieces.set(v.name, [...(gradPieces.get(v.name) ?? []), v.data]);
      }
    });
    const grads: Record<string, CpuArray> = {};
    for (const p of plan.params) {
      const pieces = gradPieces.get(`grad/${p.name}`);
      if (pieces) grads[p.name] = assemble(pieces, p.shape, p.sbp, { shape: [plan.tensor] });
    }
    return { loss, grads, devices, wallMs };
  }

  /** Current param values by name, assembled from the stages' devices. */
  async params(): Promise<Record<string, CpuArray>> {
    const { plan } = this;
    const keys = plan.devices.map((dp) => plan.params.filter((p) => dp.store.some((e) => e.key === p.key)));
    const done = await this.mesh.each((d) => ({ type: 'read-pipeline', id: 0, program: this.id, keys: keys[d]!.map((p) => p.key) }));
    const out: Record<string, CpuArray> = {};
    for (const p of plan.params) {
      const pieces: CpuArray[] = [];
      done.forEach((m, d) => {
        const i = keys[d]!.indexOf(p);
        if (i >= 0) pieces[d % plan.tensor] = m.values![i]!;
      });
      out[p.name] = assemble(pieces, p.shape, p.sbp, { shape: [plan.tensor] });
    }
    return out;
  }

  /** Frees the program's buffers on every device. */
  async drop(): Promise<void> {
    await this.mesh.each(() => ({ type: 'drop', id: 0, program: this.id }));
  }
}

/** A device's initial store: its shard of each param, zeros, constants. */
function storeValues(dp: PipelineDeviceProgram, T: number, params: Readonly<Record<string, CpuArray>>): Map<string, CpuArray> {
  const r = dp.device % T;
  const out = new Map<string, CpuArray>();
  for (const e of dp.store) {
    const n = e.shape.reduce((a, x) => a * x, 1);
    if (e.init.kind === 'param') {
      const v = params[e.init.name];
      if (!v) throw new DeviceUseError(`pipeline: no value given for param '${e.init.name}'`);
      out.set(e.key, shardOf(v, e.init.shape, e.init.sbp, { shape: [T] }, r));
    } else {
      const a = allocArray(e.dtype, n, false);
      if (e.init.kind === 'const') a.set(e.init.data);
      out.set(e.key, a);
    }
  }
  return out;
}

/** The feeds a device's passes read, per micro-batch: its piece of each. */
function deviceFeeds(dp: PipelineDeviceProgram, T: number, micros: readonly Readonly<Record<string, CpuArray>>[]): MicroFeeds[] {
  const r = dp.device % T;
  const wanted = new Map<string, { dtype: DType; sbp: NdSbp; shape: readonly number[] }>();
  for (const p of dp.passes) {
    for (const x of p.inputs) if (x.kind === 'feed') wanted.set(x.name, { dtype: p.plan.graph.nodes[x.node]!.dtype, sbp: x.sbp, shape: x.shape });
  }
  return micros.map((m, i) => {
    const out: Record<string, { dtype: DType; data: CpuArray }> = {};
    for (const [name, w] of wanted) {
      const v = m[name];
      if (!v) throw new DeviceUseError(`pipeline step: micro-batch ${i} has no input '${name}'`);
      out[name] = { dtype: w.dtype, data: T === 1 ? v : shardOf(v, w.shape, w.sbp, { shape: [T] }, r) };
    }
    return out;
  });
}
