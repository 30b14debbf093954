// A pipeline step in one process: the passes of a schedule (scheduler/parallel/pipeline-schedule.ts)
// run one after another on p host devices, each pass a plan run by the one plan interpreter; a
// received tensor is the value its sender produced. Values a stage keeps between its forward and
// backward passes live in that device's buffers, so its allocator measures them. Gradients
// accumulate over the micro-batches, then each stage's optimizer update runs. It does not overlap
// anything or cross threads (the mesh runtime does); it checks schedules and stage graphs.

import type { Graph } from '../graphs/graph.js';
import type { Init } from '../graphs/builder.js';
import type { DType } from '../graphs/types.js';
import { planGraph, type Plan } from '../scheduler/plan.js';
import { cotName, type PipelineProgram, type PipelineStage } from '../scheduler/parallel/pipeline-partition.js';
import { validateSchedule, type PipelineOp, type PipelineSchedule } from '../scheduler/parallel/pipeline-schedule.js';
import type { CpuArray } from './cpu/render-js.js';
import { DeviceUseError, HostDevice } from './device.js';
import { initialValues } from './init.js';
import { runPlan } from './plan-interpreter.js';
import { allocArray } from './tensor.js';
import { Variables } from './variables.js';

export interface HostPipelineOptions {
  /** initial param values by name (e.g. a single-device executable's `variables()`) */
  readonly params: Readonly<Record<string, CpuArray>>;
  /** 'mean' (default): the step's gradient is the mean of the micro-batches' (a mean loss); 'sum' */
  readonly accumulate?: 'mean' | 'sum';
  readonly kind?: 'cpu' | 'reference';
}

export interface HostPipelineStep {
  /** the micro-batches' losses, averaged (or summed, as the gradients) */
  readonly loss: number;
  /** accumulated gradients by param name */
  readonly grads: Readonly<Record<string, Float32Array>>;
  /** per device: bytes of values kept between passes, at most (counted by its allocator), and its allocator's peak */
  readonly devices: readonly { readonly peakKeptBytes: number; readonly peakBytes: number }[];
}

type Value = { dtype: DType; data: CpuArray };

/** Runs pipeline steps of `program` in the order of `schedule` on host devices. */
export class HostPipeline {
  readonly devices: HostDevice[];
  private readonly plans = new Map<Graph, Plan>();
  private readonly params: Map<string, CpuArray>;
  private readonly updates: (Variables<CpuArray> | undefined)[];
  private readonly order: PipelineOp[];

  constructor(readonly program: PipelineProgram, readonly schedule: PipelineSchedule, private readonly opts: HostPipelineOptions) {
    if (program.stages.length !== schedule.stages) throw new DeviceUseError(`pipeline: ${program.stages.length} stages, but the ${schedule.kind} schedule has ${schedule.stages}`);
    this.order = validateSchedule(schedule);
    this.devices = Array.from({ length: schedule.devices }, () => new HostDevice(opts.kind ?? 'cpu'));
    this.params = new Map(Object.entries(opts.params).map(([k, v]) => [k, v.slice() as CpuArray]));
    this.updates = program.stages.map((st) => {
      if (!st.update) return undefined;
      const host = new Map<number, Value>();
      for (const n of st.update.nodes) {
        if (n.op === 'param') host.set(n.id, { dtype: n.dtype, data: this.param(n.name!) });
        if (n.op === 'state') host.set(n.id, { dtype: n.dtype, data: Float32Array.from(initialValues(n.attrs['init'] as unknown as Init, n.shape as number[], 0, n.name!)) });
      }
      return new Variables(this.device(st.index), host);
    });
  }

  /** Current param values by name. */
  paramValues(): Record<string, CpuArray> {
    return Object.fromEntries([...this.params].map(([k, v]) => [k, v.slice() as CpuArray]));
  }

  /** One training step over `micros` (feeds by input name, one record per micro-batch). */
  step(micros: readonly Readonly<Record<string, CpuArray>>[]): HostPipelineStep {
    const { schedule, program } = this;
    if (micros.length !== schedule.micros) throw new DeviceUseError(`pipeline step: ${micros.length} micro-batches for a schedule of ${schedule.micros}`);
    const box = new Map<string, CpuArray>(); // messages between stages
    const kept = new Map<string, Map<string, { dtype: DType; buf: CpuArray }>>(); // per (stage, micro)
    const keptBytes = this.devices.map(() => 0);
    const peakKept = this.devices.map(() => 0);
    const grads = new Map<string, Float32Array>();
    let loss = 0;
    for (const o of this.order) {
      const st = program.stages[o.stage]!;
      const d = schedule.stageDevice[o.stage]!;
      const dev = this.devices[d]!;
      const key = `${o.stage}#${o.micro}`;
      const mine = kept.get(key) ?? new Map();
      kept.set(key, mine);
      const g = o.op === 'F' ? st.forward : o.op === 'W' ? st.weightGrad : schedule.splitBackward ? st.inputGrad : st.backward;
      const out = this.run(st, g, (name) => {
        if (name.startsWith('v/')) return mine.get(name)?.buf;
        if (name.startsWith('act/') || name.startsWith('cot/')) return box.get(`${name}#${o.micro}`);
        return micros[o.micro]![name];
      });
      for (const [name, v] of out) {
        if (name.startsWith('v/')) {
          const buf = dev.upload(v.dtype, v.data);
          mine.set(name, { dtype: v.dtype, buf });
          keptBytes[d] += dev.bytes(buf);
          peakKept[d] = Math.max(peakKept[d]!, keptBytes[d]!);
        } else if (name.startsWith('act/')) box.set(`${name}#${o.micro}`, v.data);
        else if (name.startsWith('grad/act/')) {
          const k = Number(name.slice('grad/act/'.length));
          box.set(`${cotName(k, o.stage)}#${o.micro}`, v.data);
        } else if (name.startsWith('grad/')) {
          const p = name.slice('grad/'.length);
          const acc = grads.get(p);
          if (acc) for (let i = 0; i < acc.length; i++) acc[i] += v.data[i]!;
          else grads.set(p, Float32Array.from(v.data));
        } else if (name === 'loss') loss += v.data[0]!;
      }
      // the micro-batch's last pass on this stage releases what it kept
      if (o.op === 'W' || (o.op === 'B' && !schedule.splitBackward)) {
        for (const { buf } of mine.values()) {
          keptBytes[d] -= dev.bytes(buf);
          dev.free(buf);
        }
        kept.delete(key);
      }
    }
    const scale = this.opts.accumulate === 'sum' ? 1 : 1 / schedule.micros;
    for (const acc of grads.values()) for (let i = 0; i < acc.length; i++) acc[i] *= scale;
    program.stages.forEach((st, s) => this.applyUpdate(st, s, grads));
    return {
      loss: loss * scale,
      grads: Object.fromEntries(grads),
      devices: this.devices.map((dev, d) => ({ peakKeptBytes: peakKept[d]!, peakBytes: dev.memory.peakBytes })),
    };
  }

  private device(stage: number): HostDevice {
    return this.devices[this.schedule.stageDevice[stage]!]!;
  }

  private param(name: string): CpuArray {
    const v = this.params.get(name);
    if (!v) throw new DeviceUseError(`pipeline: no value given for param '${name}'`);
    return v;
  }

  private plan(g: Graph, dev: HostDevice): Plan {
    let p = this.plans.get(g);
    if (!p) {
      p = planGraph(g, g.nodes.map((n) => n.shape as number[]), { withUpdates: false, caps: dev.caps });
      this.plans.set(g, p);
    }
    return p;
  }

  /** Runs one pass; inputs by name from `source`, params from the store. */
  private run(st: PipelineStage, g: Graph, source: (name: string) => CpuArray | undefined): Map<string, Value> {
    const dev = this.device(st.index);
    const plan = this.plan(g, dev);
    const feeds = new Map<number, Value>();
    for (const b of plan.buffers.values()) {
      const n = g.nodes[b.node]!;
      let data: CpuArray | undefined;
      if (b.role === 'param') data = this.param(n.name!);
      else if (b.role === 'const') data = constData(n.dtype, n.attrs['data'] as number[]);
      else if (b.role === 'input') {
        data = source(n.name!);
        if (!data) throw new DeviceUseError(`pipeline: stage ${st.index} pass '${g.name}' needs '${n.name}', which nothing provided`);
      }
      if (data) feeds.set(b.node, { dtype: n.dtype, data });
    }
    const values = runPlan(plan, new Variables(dev, new Map()), feeds, { update: false, sync: true }).values as CpuArray[];
    const names = Object.keys(plan.outputs);
    return new Map(names.map((name, i) => [name, { dtype: g.nodes[plan.outputs[name]!]!.dtype, data: values[i]! }]));
  }

  private applyUpdate(st: PipelineStage, s: number, grads: ReadonlyMap<string, Float32Array>): void {
    const vars = this.updates[s];
    if (!st.update || !vars) return;
    const g = st.update;
    const plan = planGraph(g, g.nodes.map((n) => n.shape as number[]), { outputs: [], withUpdates: true, caps: vars.device.caps });
    const feeds = new Map<number, Value>();
    for (const n of g.nodes) if (n.op === 'input') feeds.set(n.id, { dtype: n.dtype, data: grads.get(n.name!.slice('grad/'.length)) ?? new Float32Array(n.shape.reduce<number>((a, x) => a * (x as number), 1)) });
    runPlan(plan, vars, feeds, { update: true, sync: true });
    const params = g.nodes.filter((n) => n.op === 'param');
    const values = vars.readSync(params.map((n) => n.id));
    for (const n of params) this.params.set(n.name!, values.get(n.id)!);
  }
}

function constData(dtype: DType, data: readonly number[]): CpuArray {
  const a = allocArray(dtype, data.length, false);
  a.set(data);
  return a;
}
