// A sharded step (scheduler/parallel/sbp-lower.ts) on a mesh of worker devices: each device's plan
// is loaded once with its shard of the params, state and constants; each run feeds every device
// its shard of the inputs and assembles the outputs (split: concatenated, broadcast: device 0's,
// partial: summed) with the in-process runner's shardOf/assemble. Updates stay on the workers,
// so steps run one after another train in place; `read` assembles variables back. The
// collectives are the plans' own steps, run by each worker's communicator. It does not plan.

import type { DType } from '../../graphs/types.js';
import type { ShardedPlan } from '../../scheduler/parallel/sbp-lower.js';
import { meshSize } from '../../scheduler/parallel/sbp.js';
import type { CpuArray } from '../cpu/render-js.js';
import { assemble, shardOf } from '../sbp-runner.js';
import { allocArray } from '../tensor.js';
import { MeshError } from './communicator.js';
import type { Mesh, MeshProgram } from './mesh.js';
import type { HostValues } from './protocol.js';

/** A sharded step loaded on a mesh; run it with `step`, read its variables with `read`. */
export class ShardedProgram {
  private constructor(
    readonly mesh: Mesh,
    readonly plan: ShardedPlan,
    private readonly program: MeshProgram,
  ) {}

  /**
   * Loads `sp` on `mesh` (same shape, plans made for `mesh.caps`) with global params and state by
   * name; a missing one starts at zero. Constants come from the graph.
   */
  static async load(mesh: Mesh, sp: ShardedPlan, variables: ReadonlyMap<string, CpuArray>): Promise<ShardedProgram> {
    if (sp.mesh.shape.join() !== mesh.shape.join()) throw new MeshError(0, `a sharded plan for a mesh of shape [${sp.mesh.shape.join(', ')}] loaded on a mesh of shape [${mesh.shape.join(', ')}]`);
    const wrong = sp.devices.find((dp) => dp.plan.caps.kind !== mesh.caps.kind);
    if (wrong) throw new MeshError(wrong.device, `its plan was made for a '${wrong.plan.caps.kind}' device, the mesh's devices are '${mesh.caps.kind}' (plan with { caps: mesh.caps })`);
    const program = await mesh.load(sp.devices.map((dp) => dp.plan), shardVariables(sp, variables));
    return new ShardedProgram(mesh, sp, program);
  }

  /** Each device's shard of global inputs by name, as `Mesh.run` takes feeds. */
  feeds(inputs: ReadonlyMap<string, CpuArray>): HostValues[] {
    return shardFeeds(this.plan, inputs);
  }

  /**
   * One step on every device: global inputs by name (or feeds already sharded by `feeds`); with
   * `update` (the default) params and state take their new values on the workers. Resolves with
   * the outputs by name, assembled to their global shapes.
   */
  async step(inputs: ReadonlyMap<string, CpuArray> | readonly HostValues[], opts: { update?: boolean } = {}): Promise<Record<string, CpuArray>> {
    const feeds = Array.isArray(inputs) ? (inputs as readonly HostValues[]) : this.feeds(inputs as ReadonlyMap<string, CpuArray>);
    const run = await this.mesh.run(this.program, feeds, { update: opts.update ?? true });
    const { graph: g, shapes, assignment: asg, mesh } = this.plan;
    const names = Object.keys(this.plan.devices[0]!.plan.outputs);
    const out: Record<string, CpuArray> = {};
    names.forEach((name, k) => {
      const id = g.outputs[name]!;
      out[name] = assemble(run.values.map((v) => v[k]!), shapes[id]!, asg.sbp[id]!, mesh);
    });
    return out;
  }

  /** Unloads the step from the mesh's devices. */
  drop(): Promise<void> {
    return this.mesh.drop(this.program);
  }

  /** Params and state by name, assembled from every device as of the last step. */
  async read(names: readonly string[]): Promise<Map<string, CpuArray>> {
    const { graph: g, shapes, assignment: asg, mesh } = this.plan;
    const ids = names.map((name) => {
      const id = g.nodes.findIndex((x) => (x.op === 'param' || x.op === 'state') && x.name === name);
      if (id < 0 || this.plan.localOf[id]! < 0) throw new MeshError(0, `the sharded step '${g.name}' has no variable '${name}'`);
      return id;
    });
    const values = await this.mesh.read(this.program, ids.map((id) => this.plan.localOf[id]!));
    return new Map(ids.map((id, k) => [names[k]!, assemble(values.map((v) => v[k]!), shapes[id]!, asg.sbp[id]!, mesh)]));
  }
}

/**
 * Each device's variables of a sharded step, by its local node id: its shard of the global params
 * and state by name (a missing one is zeros) and the graph's constants. For `Mesh.load`, or for
 * a device of a mesh across processes.
 */
export function shardVariables(sp: ShardedPlan, variables: ReadonlyMap<string, CpuArray>): HostValues[] {
  const { graph: g, shapes, assignment: asg } = sp;
  const per = Array.from({ length: meshSize(sp.mesh) }, () => new Map<number, { dtype: DType; data: CpuArray }>());
  g.nodes.forEach((node, id) => {
    if (sp.localOf[id]! < 0) return;
    let value: CpuArray;
    const numel = shapes[id]!.reduce((a, b) => a * b, 1);
    if (node.op === 'param' || node.op === 'state') value = variables.get(node.name!) ?? allocArray(node.dtype, numel);
    else if (node.op === 'const' && Array.isArray(node.attrs['data'])) value = Float32Array.from(node.attrs['data'] as number[]);
    else return;
    if (value.length !== numel) throw new MeshError(0, `${node.op} '${node.name}' has ${value.length} values, its shape [${shapes[id]!.join(', ')}] holds ${numel}`);
    per.forEach((m, d) => m.set(sp.localOf[id]!, { dtype: node.dtype, data: shardOf(value, shapes[id]!, asg.sbp[id]!, sp.mesh, d) }));
  });
  return per;
}

/** Each device's shard of the global inputs (by name) of a sharded step, by its local node id. */
export function shardFeeds(sp: ShardedPlan, inputs: ReadonlyMap<string, CpuArray>): HostValues[] {
  const { graph: g, shapes, assignment: asg, mesh } = sp;
  const per = Array.from({ length: meshSize(mesh) }, () => new Map<number, { dtype: DType; data: CpuArray }>());
  g.nodes.forEach((node, id) => {
    if (node.op !== 'input' || sp.localOf[id]! < 0) return;
    const value = inputs.get(node.name!);
    if (!value) throw new MeshError(0, `no value for input '${node.name}' of the sharded step '${g.name}'`);
    per.forEach((m, d) => m.set(sp.localOf[id]!, { dtype: node.dtype, data: shardOf(value, shapes[id]!, asg.sbp[id]!, mesh, d) }));
  });
  return per;
}
