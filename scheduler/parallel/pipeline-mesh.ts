// Pipeline programs for a mesh: a partitioned loss graph and a schedule become, per device, the
// plans of its stages' passes (cut tensors as `recv` steps at a pass's start and `send` steps at
// its end, in cut order; gradients and loss accumulated into device state), the passes in schedule
// order with what each keeps for a later pass, and a last pass per stage that applies the
// optimizer. Stages may be SBP-sharded (tensor parallelism) or fitted to a per-device budget
// (pipeline-budget.ts). It plans; runtime/mesh/pipeline.ts runs it.

import { extend, graph, type Init } from '../../graphs/builder.js';
import type { Graph } from '../../graphs/graph.js';
import { applyOptimizer, type Optimizer } from '../../graphs/optim.js';
import { gradName } from '../../graphs/autodiff.js';
import { numel, type DType } from '../../graphs/types.js';
import { HOST_CAPS, type DeviceCaps } from '../caps.js';
import { planGraph, type Plan, type PlannedBuffer } from '../plan.js';
import { fitBudget, predictPeak } from './pipeline-budget.js';
import type { RematOptions } from '../remat-plan.js';
import type { DeviceId, PlanStep } from '../steps.js';
import { actName, cotName, PipelineError, type PipelineProgram, type PipelineStage } from './pipeline-partition.js';
import { validateSchedule, type PipelinePass, type PipelineSchedule } from './pipeline-schedule.js';
import { planSharded } from './sbp-lower.js';
import type { SbpAnnotations } from './sbp-propagate.js';
import { broadcast, localShape, type NdSbp } from './sbp.js';

/** Where a pass finds one of its inputs (by node id of its plan's graph). */
export type PassInput =
  /** a persistent value of the device: params, optimizer state, accumulators, constants */
  | { readonly kind: 'store'; readonly node: number; readonly key: string }
  /** a value an earlier pass of the same stage and micro-batch kept */
  | { readonly kind: 'kept'; readonly node: number; readonly name: string }
  /** the micro-batch's input `name`, from the host (its piece under `sbp` with tensor parallelism) */
  | { readonly kind: 'feed'; readonly node: number; readonly name: string; readonly sbp: NdSbp; readonly shape: readonly number[] };

/** One pass of one stage as a device runs it for any micro-batch. */
export interface PassProgram {
  readonly stage: number;
  /** 'F', 'B', 'W', 'BW' (an unsplit backward) or 'step' (the optimizer) */
  readonly pass: PipelinePass | 'BW' | 'step';
  readonly plan: Plan;
  readonly inputs: readonly PassInput[];
  /** outputs (and received buffers) kept on the device for later passes of the micro-batch */
  readonly keep: readonly string[];
  /**
   * outputs kept for a pass of another stage on the same device (a cut tensor that needs no
   * message): [output name, the stage that reads it, the name it reads it by]
   */
  readonly handoff: readonly (readonly [string, number, string])[];
  /** outputs that replace a persistent value: [output name, store key] */
  readonly replace: readonly (readonly [string, string])[];
  /** outputs read back to the host (the loss, gradients without an optimizer) */
  readonly read: readonly string[];
  /** the pass's sends and recvs in step order, each labelled by the cut tensor it moves */
  readonly messages: readonly { readonly kind: 'send' | 'recv'; readonly peer: DeviceId; readonly label: string }[];
}

/** A persistent value of a device and where its first contents come from. */
export interface StoreEntry {
  readonly key: string;
  readonly dtype: DType;
  /** the local shape */
  readonly shape: readonly number[];
  readonly init:
    | { readonly kind: 'param'; readonly name: string; readonly shape: readonly number[]; readonly sbp: NdSbp }
    | { readonly kind: 'zeros' }
    | { readonly kind: 'const'; readonly data: readonly number[] };
}

/** A pass to run: `pass` indexes `passes`; `release` names kept values of (stage, micro) that end after it. */
export interface DeviceOp {
  readonly pass: number;
  readonly stage: number;
  readonly micro: number;
  readonly release: readonly string[];
}

export interface PipelineDeviceProgram {
  readonly device: DeviceId;
  readonly passes: readonly PassProgram[];
  /** this device's passes in the schedule's order, then its stages' optimizer steps */
  readonly ops: readonly DeviceOp[];
  readonly store: readonly StoreEntry[];
  /** bytes of the store, kept values and feeds the device holds at most outside the passes' own peaks, plus those peaks */
  readonly predictedPeakBytes: number;
  /**
   * Channels whose sender sends in another order than this device receives (interleaved stages
   * with skip connections): per peer, every message of a step in the order it arrives, keyed
   * `label#micro`, with its size, so the device can set aside a message it will read later.
   */
  readonly arrivals?: Readonly<Record<number, readonly Arrival[]>>;
}

/** A message as it arrives on a channel: `label#micro`, and its elements and dtype. */
export interface Arrival {
  readonly key: string;
  readonly elements: number;
  readonly dtype: DType;
}

export interface MeshPipelinePlan {
  readonly schedule: PipelineSchedule;
  /** devices per stage (tensor parallelism); the mesh is [pipeline devices, tensor] */
  readonly tensor: number;
  readonly devices: readonly PipelineDeviceProgram[];
  /** global param shapes and layouts, to assemble them from the stage devices */
  readonly params: readonly { readonly name: string; readonly stage: number; readonly shape: readonly number[]; readonly sbp: NdSbp; readonly key: string }[];
}

export interface MeshPipelineOptions {
  /** applied once per step to the accumulated gradients; without one the step returns the gradients */
  readonly optimizer?: Optimizer;
  /** 'mean' (default): gradients and loss are averaged over the micro-batches; 'sum' */
  readonly accumulate?: 'mean' | 'sum';
  readonly caps?: DeviceCaps;
  /** bytes each device may hold (one for all, or one per device): each pass is rematerialized to fit */
  readonly memoryBudget?: number | readonly number[];
  readonly remat?: RematOptions;
  /** tensor parallelism inside each stage: `degree` devices, SBP annotations by param name */
  readonly tensor?: { readonly degree: number; readonly annotations: SbpAnnotations };
}

const ACC = 'acc/';
const UPDATE = 'update:';
const LOSS = 'loss';

/** The device of `stage`'s tensor rank `r`. */
const meshDevice = (s: PipelineSchedule, t: number, stage: number, r: number): DeviceId => s.stageDevice[stage]! * t + r;

/**
 * Plans every device's part of a pipeline step: `program`'s stages run by `schedule` on a mesh of
 * `schedule.devices × tensor` devices (device id = pipeline device · tensor + tensor rank).
 */
export function planMeshPipeline(program: PipelineProgram, schedule: PipelineSchedule, opts: MeshPipelineOptions = {}): MeshPipelinePlan {
  if (program.stages.length !== schedule.stages) throw new PipelineError(`pipeline: ${program.stages.length} stages, but the ${schedule.kind} schedule has ${schedule.stages}`);
  validateSchedule(schedule);
  const T = opts.tensor?.degree ?? 1;
  if (!Number.isInteger(T) || T < 1) throw new PipelineError(`pipeline: tensor degree ${T} is not a positive integer`);
  if (T > 1 && opts.memoryBudget !== undefined) throw new PipelineError('pipeline: a memory budget with tensor parallelism is not supported (rematerialization would drop the collectives)');
  const caps = opts.caps ?? HOST_CAPS;
  const scale = opts.accumulate === 'sum' ? 1 : 1 / schedule.micros;
  const split = schedule.splitBackward;
  const kinds: ('F' | 'B' | 'W' | 'BW')[] = split ? ['F', 'B', 'W'] : ['F', 'BW'];
  const last = program.stages.length - 1;
  // pass graphs with accumulation, per stage and kind
  const graphs = program.stages.map((st) => ({
    F: accumulating(st.forward, st.index === last),
    B: accumulating(st.inputGrad, false),
    W: accumulating(st.weightGrad, false),
    BW: accumulating(st.backward, false),
    step: stepGraph(program.graph, st, st.index === last, scale, opts.optimizer),
  }));
  // layouts of the tensors that cross passes (tensor parallelism): sender's output -> receiver's input
  const layouts = new Map<string, NdSbp>();
  const ann = (stage: number, g: Graph): SbpAnnotations => {
    const out = new Map<string, NdSbp>(opts.tensor?.annotations ?? []);
    for (const n of g.nodes) {
      if (n.op === 'state' && n.name!.startsWith(ACC)) out.set(n.name!, out.get(n.name!.slice(ACC.length)) ?? [broadcast]);
      if (n.op === 'input' && layouts.has(`${stage}:${n.name}`)) out.set(n.name!, layouts.get(`${stage}:${n.name}`)!);
    }
    for (const k of [...out.keys()]) if (!g.nodes.some((n) => n.name === k && (n.op === 'input' || n.op === 'param' || n.op === 'state'))) out.delete(k);
    return out;
  };
  /** per stage and kind, per tensor rank: the plan, and the layout of each node */
  type Lowered = { plans: Plan[]; sbp: (id: number) => NdSbp; graph: Graph };
  const lowered = new Map<string, Lowered>();
  const lower = (stage: number, kind: keyof (typeof graphs)[number]): Lowered => {
    const key = `${stage}:${kind}`;
    const have = lowered.get(key);
    if (have) return have;
    const g = graphs[stage]![kind];
    const shapes = g.nodes.map((n) => n.shape as number[]);
    let out: Lowered;
    if (T === 1) out = { plans: [planGraph(g, shapes, { caps, withUpdates: true })], sbp: () => [broadcast], graph: g };
    else {
      const sp = planSharded(g, shapes, { shape: [T] }, ann(stage, g), { caps });
      out = { plans: sp.devices.map((d) => d.plan), sbp: (id) => sp.assignment.sbp[id]!, graph: g };
      // what this pass sends or keeps is read in that layout by the pass that takes it
      for (const [name, id] of Object.entries(g.outputs)) {
        const s = sp.assignment.sbp[id]!;
        if (name.startsWith('v/')) layouts.set(`${stage}:${name}`, s);
        if (name.startsWith('act/')) for (const c of program.stages[stage]!.sends) if (actName(c.node) === name) layouts.set(`${c.to}:${name}`, s);
        if (name.startsWith('grad/act/')) {
          const k = Number(name.slice('grad/act/'.length));
          for (const c of program.stages[stage]!.receives) if (c.node === k) layouts.set(`${c.from}:${cotName(k, stage)}`, s);
        }
      }
      // received activations are read again by later passes in the layout F received them in
      for (const n of g.nodes) if (n.op === 'input' && n.name!.startsWith('act/') && kind === 'F') layouts.set(`${stage}:${n.name}`, sp.assignment.sbp[n.id]!);
    }
    lowered.set(key, out);
    return out;
  };
  // forwards first (stage order), then backwards (reverse), then W and the steps
  for (const st of program.stages) lower(st.index, 'F');
  for (const st of [...program.stages].reverse()) lower(st.index, split ? 'B' : 'BW');
  if (split) for (const st of program.stages) lower(st.index, 'W');
  for (const st of program.stages) lower(st.index, 'step');

  const devices: PipelineDeviceProgram[] = [];
  for (let pd = 0; pd < schedule.devices; pd++) {
    for (let r = 0; r < T; r++) {
      const d = pd * T + r;
      devices.push(deviceProgram(d, r));
    }
  }
  orderChannels(devices);
  const params = program.stages.flatMap((st) => st.params.map((name) => {
    const n = program.graph.nodes.find((x) => x.op === 'param' && x.name === name)!;
    const l = lower(st.index, 'step');
    const id = l.graph.nodes.find((x) => x.op === 'param' && x.name === name)!.id;
    return { name, stage: st.index, shape: n.shape as number[], sbp: l.sbp(id), key: storeKey(st.index, name) };
  }));
  const plan: MeshPipelinePlan = { schedule, tensor: T, devices, params };
  return opts.memoryBudget === undefined ? plan : fitBudget(plan, opts.memoryBudget, caps, opts.remat ?? {});

  function deviceProgram(d: DeviceId, r: number): PipelineDeviceProgram {
    const pd = Math.floor(d / T);
    const passes: PassProgram[] = [];
    const index = new Map<string, number>();
    const store = new Map<string, StoreEntry>();
    const passOf = (stage: number, kind: 'F' | 'B' | 'W' | 'BW' | 'step'): number => {
      const key = `${stage}:${kind}`;
      const have = index.get(key);
      if (have !== undefined) return have;
      const p = passProgram(stage, kind, r, store);
      passes.push(p);
      index.set(key, passes.length - 1);
      return passes.length - 1;
    };
    const ops: DeviceOp[] = [];
    for (const o of schedule.ops[pd]!) {
      const kind = o.op === 'B' && !split ? 'BW' : o.op;
      const pass = passOf(o.stage, kind);
      // a kept value ends after the last pass of the micro-batch that reads it
      const later = kinds.slice(kinds.indexOf(kind) + 1).map((k) => passes[passOf(o.stage, k)]!);
      const mine = passes[pass]!;
      const names = new Set([...mine.inputs.flatMap((x) => (x.kind === 'kept' ? [x.name] : [])), ...mine.keep]);
      const release = [...names].filter((name) => !later.some((p) => p.inputs.some((x) => x.kind === 'kept' && x.name === name)));
      ops.push({ pass, stage: o.stage, micro: o.micro, release });
    }
    for (const st of program.stages) if (schedule.stageDevice[st.index] === pd) ops.push({ pass: passOf(st.index, 'step'), stage: st.index, micro: 0, release: [] });
    return { device: d, passes, ops, store: [...store.values()], predictedPeakBytes: predictPeak(passes, ops, [...store.values()], caps) };
  }

  function passProgram(stage: number, kind: 'F' | 'B' | 'W' | 'BW' | 'step', r: number, store: Map<string, StoreEntry>): PassProgram {
    const st = program.stages[stage]!;
    const l = lower(stage, kind);
    // collectives among the stage's tensor ranks, named by their mesh devices
    const local = l.plans[r]!;
    const base: Plan = T === 1 ? local : { ...local, steps: local.steps.map((s) => (s.kind === 'collective' ? { ...s, group: s.group.map((q) => meshDevice(schedule, T, stage, q)) } : s)) };
    const g = base.graph;
    const order = kind === 'step' ? -1 : kinds.indexOf(kind);
    const laterReads = (name: string) => kind !== 'step' && kinds.slice(order + 1).some((k) => graphs[stage]![k].nodes.some((n) => n.op === 'input' && n.name === name));
    const earlierReads = (name: string) => kind !== 'step' && kinds.slice(0, order).some((k) => graphs[stage]![k].nodes.some((n) => n.op === 'input' && n.name === name));
    const d = meshDevice(schedule, T, stage, r);
    // received tensors: activations in F; cotangents in the first backward pass (read or not)
    const recvs: { name: string; node: number; peer: DeviceId; dtype: DType; elements: number; label: string }[] = [];
    const sends: { output: string; peer: DeviceId; label: string }[] = [];
    const byNode = <C extends { node: number; from: number; to: number }>(cs: readonly C[]) => [...cs].sort((a, b) => a.node - b.node || a.from - b.from || a.to - b.to);
    let fresh = g.nodes.length;
    const localNode = (name: string) => g.nodes.find((n) => n.op === 'input' && n.name === name);
    // a cut tensor between two stages of one device stays on it: kept for the reading stage
    const here = (c: { from: number; to: number }) => schedule.stageDevice[c.from] === schedule.stageDevice[c.to];
    const handoff: [string, number, string][] = [];
    if (kind === 'F') {
      for (const c of byNode(st.receives).filter((c) => !here(c))) {
        const name = actName(c.node);
        const n = localNode(name);
        if (!n) throw new PipelineError(`pipeline: stage ${stage} receives ${name} but its forward does not read it`);
        recvs.push({ name, node: n.id, peer: meshDevice(schedule, T, c.from, r), dtype: n.dtype, elements: numel(n.shape as number[]), label: `act/${c.node}` });
      }
      for (const c of byNode(st.sends)) {
        if (here(c)) handoff.push([actName(c.node), c.to, actName(c.node)]);
        else sends.push({ output: actName(c.node), peer: meshDevice(schedule, T, c.to, r), label: `act/${c.node}` });
      }
    }
    if (kind === 'B' || kind === 'BW') {
      for (const c of byNode(st.sends).filter((c) => !here(c))) {
        const src = program.graph.nodes[c.node]!;
        if (src.dtype !== 'f32' && src.dtype !== 'f16') continue;
        const name = cotName(c.node, c.to);
        const n = localNode(name);
        // a gradient this pass does not read (a later pass may) arrives in the sender's layout
        const shape = n ? (n.shape as number[]) : localShape(src.shape as number[], layouts.get(`${stage}:${name}`) ?? [broadcast], { shape: [T] });
        recvs.push({ name, node: n?.id ?? fresh++, peer: meshDevice(schedule, T, c.to, r), dtype: src.dtype, elements: numel(shape), label: `cot/${c.node}` });
      }
      for (const c of byNode(st.receives)) {
        if (program.graph.nodes[c.node]!.dtype !== 'f32' && program.graph.nodes[c.node]!.dtype !== 'f16') continue;
        if (here(c)) handoff.push([gradName(actName(c.node)), c.from, cotName(c.node, stage)]);
        else sends.push({ output: gradName(actName(c.node)), peer: meshDevice(schedule, T, c.from, r), label: `cot/${c.node}` });
      }
    }
    const inputs: PassInput[] = [];
    const received = new Set(recvs.map((x) => x.node));
    for (const b of base.buffers.values()) {
      const n = g.nodes[b.node]!;
      if (b.role === 'param' || b.role === 'state') {
        const key = storeKey(stage, n.name!);
        inputs.push({ kind: 'store', node: n.id, key });
        const global = program.graph.nodes.find((x) => x.op === 'param' && x.name === n.name);
        if (!store.has(key)) store.set(key, { key, dtype: n.dtype, shape: n.shape as number[], init: b.role === 'param' ? { kind: 'param', name: n.name!, shape: global!.shape as number[], sbp: l.sbp(globalId(l.graph, n.name!, 'param')) } : { kind: 'zeros' } });
      } else if (b.role === 'const') {
        const key = `c${stage}/${kind}/${n.id}`;
        inputs.push({ kind: 'store', node: n.id, key });
        store.set(key, { key, dtype: n.dtype, shape: n.shape as number[], init: { kind: 'const', data: n.attrs['data'] as number[] } });
      } else if (b.role === 'input' && !received.has(n.id)) {
        const name = n.name!;
        if (name.startsWith('v/') || name.startsWith('act/') || name.startsWith('cot/')) inputs.push({ kind: 'kept', node: n.id, name });
        else {
          const gid = globalId(l.graph, name, 'input');
          inputs.push({ kind: 'feed', node: n.id, name, sbp: l.sbp(gid), shape: l.graph.nodes[gid]!.shape as number[] });
        }
      }
    }
    // kept: v/* outputs, and received tensors a later pass reads
    const keep = [
      ...Object.keys(base.outputs).filter((k) => k.startsWith('v/')),
      ...recvs.filter((x) => laterReads(x.name) && !earlierReads(x.name)).map((x) => x.name),
    ];
    const replace = g.updates.map((u): [string, string] => [`${UPDATE}${g.nodes[u.target]!.name}`, storeKey(stage, g.nodes[u.target]!.name!)]);
    const read = kind === 'step' ? Object.keys(base.outputs).filter((k) => k === LOSS || k.startsWith('grad/')) : [];
    const messages = [...recvs.map((x) => ({ kind: 'recv' as const, peer: x.peer, label: x.label })), ...sends.map((x) => ({ kind: 'send' as const, peer: x.peer, label: x.label }))];
    const handed = handoff.map(([out]) => out);
    if (new Set(handed).size !== handed.length) throw new PipelineError(`pipeline: stage ${stage} pass ${kind} hands one tensor to two stages of its device; not supported`);
    return { stage, pass: kind, plan: withTransfers(base, recvs, sends, [...keep, ...handed]), inputs, keep, handoff, replace, read, messages };
  }
}

/** The store key of a param or state of a stage. */
const storeKey = (stage: number, name: string) => `s${stage}/${name}`;

function globalId(g: Graph, name: string, op: string): number {
  return g.nodes.find((n) => n.op === op && n.name === name)!.id;
}

/**
 * A pass graph whose param gradients (and the last stage's loss) add into `acc/<name>` state
 * instead of being outputs.
 */
function accumulating(g: Graph, withLoss: boolean): Graph {
  const grads = Object.keys(g.outputs).filter((k) => k.startsWith('grad/') && !k.startsWith('grad/act/'));
  const withAcc = extend(g, (b) => {
    for (const k of grads) {
      const v = b.tensor(g.outputs[k]!);
      const acc = b.state(`${ACC}${k.slice('grad/'.length)}`, { dtype: v.dtype, shape: v.shape });
      b.update(acc, b.add(acc, v));
    }
    if (withLoss && g.outputs[LOSS] !== undefined) {
      const v = b.tensor(g.outputs[LOSS]!);
      const acc = b.state(`${ACC}${LOSS}`, { dtype: v.dtype, shape: v.shape });
      b.update(acc, b.add(acc, v));
    }
  });
  const outputs = Object.fromEntries(Object.entries(withAcc.outputs).filter(([k]) => !grads.includes(k) && k !== LOSS && k !== 'stage/objective'));
  return { ...withAcc, outputs };
}

/** The end of a step for one stage: accumulated gradients scaled, the optimizer, accumulators reset. */
function stepGraph(loss: Graph, st: PipelineStage, withLoss: boolean, scale: number, opt?: Optimizer): Graph {
  if (opt?.clipNorm !== undefined) throw new PipelineError(`pipeline: optimizer ${opt.name} clips by the global norm, which spans stages; not supported`);
  const params = st.params.map((p) => loss.nodes.find((n) => n.op === 'param' && n.name === p)!);
  let g = graph(`${loss.name}/stage${st.index}/step`, (b) => {
    for (const n of params) {
      b.param(n.name!, { dtype: n.dtype, shape: n.shape }, n.attrs['init'] as unknown as Init);
      const acc = b.state(`${ACC}${n.name}`, { dtype: n.dtype, shape: n.shape });
      b.output(gradName(n.name!), scale === 1 ? b.add(acc, 0) : b.mul(acc, scale));
      b.update(acc, b.zeros(n.shape as number[], n.dtype));
    }
    if (withLoss) {
      const acc = b.state(`${ACC}${LOSS}`, { dtype: 'f32', shape: [] });
      b.output(LOSS, b.mul(acc, scale));
      b.update(acc, b.zeros([], 'f32'));
    }
  });
  if (opt && params.length) {
    const resets = g.updates;
    g = applyOptimizer({ ...g, updates: [] }, opt);
    g = { ...g, updates: [...resets, ...g.updates], outputs: Object.fromEntries(Object.entries(g.outputs).filter(([k]) => !k.startsWith('grad/'))) };
  }
  return g;
}

/**
 * The pass's plan with its transfers: each received tensor arrives by a `recv` before the first
 * step, each sent one leaves by a `send` after the last; update values become outputs
 * named `update:<target>`; what is neither kept nor read is freed at the end.
 */
function withTransfers(base: Plan, recvs: readonly { name: string; node: number; peer: DeviceId; dtype: DType; elements: number }[], sends: readonly { output: string; peer: DeviceId }[], keep: readonly string[]): Plan {
  const g = base.graph;
  const buffers = new Map<number, PlannedBuffer>(base.buffers);
  for (const x of recvs) buffers.set(x.node, { node: x.node, role: 'intermediate', dtype: x.dtype, elements: x.elements });
  const outputs: Record<string, number> = {};
  for (const [k, v] of Object.entries(base.outputs)) if (!sends.some((s) => s.output === k) || keep.includes(k)) outputs[k] = v;
  for (const u of g.updates) outputs[`${UPDATE}${g.nodes[u.target]!.name}`] = u.value;
  for (const x of recvs) if (keep.includes(x.name)) outputs[x.name] = x.node;
  const steps: PlanStep[] = [...recvs.map((x): PlanStep => ({ kind: 'recv', buffer: x.node, peer: x.peer })), ...base.steps];
  // sends go last, in the order of their cut tensors, so a channel carries them in the order its receiver expects
  for (const s of sends) {
    const id = base.outputs[s.output];
    if (id === undefined) throw new PipelineError(`pipeline: pass '${g.name}' sends '${s.output}', which it does not compute`);
    steps.push({ kind: 'send', buffer: id, peer: s.peer });
  }
  // values that are no output any more (sent, received and not kept) end with the pass
  const live = new Set<number>();
  for (const s of steps) {
    if (s.kind === 'launch' && s.output === s.node) live.add(s.node);
    if (s.kind === 'recv') live.add(s.buffer);
    if (s.kind === 'free') for (const b of s.buffers) live.delete(b);
  }
  const ends = new Set(Object.values(outputs));
  const dead = [...live].filter((id) => !ends.has(id));
  if (dead.length) steps.push({ kind: 'free', buffers: dead });
  return { ...base, graph: { ...g, updates: [] }, steps, buffers, outputs };
}

/**
 * Matches every channel's sends to its recvs. A channel carries one message at a time, in the
 * order sent; where a receiver posts its recvs in another order (an interleaved schedule whose
 * skip connections cross two stages of one device), it gets the channel's arrival order and
 * sets aside the messages it reads later (`arrivals`). A message sent and never received, or
 * received and never sent, is a PipelineError naming the channel.
 */
function orderChannels(devices: PipelineDeviceProgram[]): void {
  const sent = new Map<string, string[]>();
  const got = new Map<string, Arrival[]>();
  for (const dp of devices) {
    for (const o of dp.ops) {
      const pass = dp.passes[o.pass]!;
      const recvSteps = pass.plan.steps.filter((x) => x.kind === 'recv');
      let r = 0;
      for (const m of pass.messages) {
        const key = m.kind === 'send' ? `${dp.device}->${m.peer}` : `${m.peer}->${dp.device}`;
        if (m.kind === 'send') sent.set(key, [...(sent.get(key) ?? []), `${m.label}#${o.micro}`]);
        else {
          const b = pass.plan.buffers.get(recvSteps[r++]!.buffer)!;
          got.set(key, [...(got.get(key) ?? []), { key: `${m.label}#${o.micro}`, elements: b.elements, dtype: b.dtype as DType }]);
        }
      }
    }
  }
  for (const key of new Set([...sent.keys(), ...got.keys()])) {
    const s = sent.get(key) ?? [], g = got.get(key) ?? [];
    const want = new Set(g.map((x) => x.key));
    const missing = s.find((x) => !want.has(x)) ?? g.find((x) => !s.includes(x.key))?.key;
    if (missing !== undefined || s.length !== g.length) throw new PipelineError(`pipeline: on the channel ${key} message ${missing ?? '?'} is sent or received but not both`);
    if (s.every((x, i) => x === g[i]!.key)) continue;
    const [from, to] = key.split('->').map(Number) as [number, number];
    const byKey = new Map(g.map((x) => [x.key, x]));
    const dp = devices[to]!;
    devices[to] = { ...dp, arrivals: { ...dp.arrivals, [from]: s.map((k) => byKey.get(k)!) } };
  }
}
