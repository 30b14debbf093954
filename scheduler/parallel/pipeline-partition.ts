// Pipeline stages: a loss graph cut into contiguous stages balanced by the cost model (kernel
// FLOPs from `kernelCost`, bytes of the activations that cross each cut, memory per stage), and
// each stage turned into graphs of its own — forward F, input-gradient B, weight-gradient W (and
// B+W as one pass) — with the cut tensors as named inputs and outputs that become send/recv
// pairs. The backward of a stage is `grad` of the stage's forward against the cotangents of what
// it sends, so B is the part on the path to the stage's inputs and W the rest. Executing the
// passes in a schedule's order is the runtime's job (runtime/pipeline-host.ts in one process).

import { freeze } from 'immer';
import { RheoError } from '../../graphs/errors.js';
import { ancestors, SOURCE_OPS, type Graph, type Node } from '../../graphs/graph.js';
import { dict } from '../../graphs/dict.js';
import { extend, graph, type Init } from '../../graphs/builder.js';
import { grad, gradName } from '../../graphs/autodiff.js';
import { applyOptimizer, type Optimizer } from '../../graphs/optim.js';
import { isFloat, numel, type Tensor } from '../../graphs/types.js';
import { HOST_CAPS, bufferBytes, type DeviceCaps } from '../caps.js';
import { planGraph, planLaunches } from '../plan.js';
import { kernelCost } from '../remat-plan.js';
import type { DeviceId, PlanStep } from '../steps.js';
import type { StageCost } from './simulator.js';

/** A loss graph that cannot be cut as asked: names the graph and the reason. */
export class PipelineError extends RheoError {}

/** A tensor computed in stage `from` and read in stage `to` (> from); `node` is its id in the loss graph. */
export interface CutTensor {
  readonly node: number;
  readonly from: number;
  readonly to: number;
  readonly bytes: number;
}

/** The graphs one stage runs per micro-batch and what flows between them. */
export interface PipelineStage {
  readonly index: number;
  /** the loss graph's compute nodes this stage runs forward */
  readonly nodes: readonly number[];
  readonly params: readonly string[];
  /**
   * Inputs: the loss graph's inputs it reads, params, `act/<k>` (cut tensors received).
   * Outputs: `act/<k>` (cut tensors sent), `loss` (last stage), `v/<i>` (values kept for the backward).
   */
  readonly forward: Graph;
  /** Inputs: `cot/<k>@<t>` (gradient of sent tensor k from stage t), `v/<i>`. Outputs: `grad/act/<k>`, `v/<i>` kept for W. */
  readonly inputGrad: Graph;
  /** Inputs: `v/<i>`, cotangents. Outputs: `grad/<param>`. */
  readonly weightGrad: Graph;
  /** B and W as one pass: outputs `grad/act/<k>` and `grad/<param>` */
  readonly backward: Graph;
  /** applies an optimizer to `grad/<param>` inputs (accumulated gradients); present when one was given */
  readonly update?: Graph;
  readonly receives: readonly CutTensor[];
  readonly sends: readonly CutTensor[];
  /** per micro-batch, from the cost model */
  readonly cost: StageCost;
  readonly paramBytes: number;
}

export interface PipelineProgram {
  readonly graph: Graph;
  readonly loss: string;
  readonly stages: readonly PipelineStage[];
}

export interface PartitionOptions {
  readonly stages: number;
  /** the loss output (default 'loss') */
  readonly loss?: string;
  /** element sizes for bytes (default the host's) */
  readonly caps?: DeviceCaps;
  /** weighs compute against communication when balancing (default 1e12 FLOP/s, 1e10 B/s) */
  readonly flops?: number;
  readonly bandwidth?: number;
  /** bytes a stage may hold: params (times `paramCopies`) plus one micro-batch's activations times `inFlight` */
  readonly memoryLimit?: number;
  /** copies of the params a stage keeps (weights, gradients, optimizer moments; default 4) */
  readonly paramCopies?: number;
  /** micro-batches of activations a stage keeps at once (default the stage count: 1F1B's first stage) */
  readonly inFlight?: number;
  /** where stages start, as positions in the loss's op order (instead of balancing) */
  readonly starts?: readonly number[];
  /** adds per-stage update graphs */
  readonly optimizer?: Optimizer;
}

export const actName = (k: number): string => `act/${k}`;
export const cotName = (k: number, to: number): string => `cot/${k}@${to}`;

/**
 * Cut `g` (a graph with a scalar float loss and concrete shapes, built for one micro-batch) into
 * `opts.stages` contiguous stages that minimize the slowest stage's time (3× forward FLOPs, as
 * forward + input gradient + weight gradient, plus the bytes it sends), under `memoryLimit`.
 */
export function partitionPipeline(g: Graph, opts: PartitionOptions): PipelineProgram {
  const loss = opts.loss ?? 'loss';
  const lossId = g.outputs[loss];
  if (lossId === undefined) throw new PipelineError(`pipeline: graph '${g.name}' has no output '${loss}'`);
  const caps = opts.caps ?? HOST_CAPS;
  const shapes = concrete(g);
  const order = ancestors(g, [lossId]).filter((id) => !SOURCE_OPS.has(g.nodes[id]!.op));
  const S = opts.stages;
  if (!Number.isInteger(S) || S < 1 || S > order.length) throw new PipelineError(`pipeline: ${S} stages for graph '${g.name}', which has ${order.length} ops to share`);
  const bytesOf = (id: number) => bufferBytes(caps, g.nodes[id]!.dtype, numel(shapes[id]!));
  const cost = nodeCosts(g, shapes, loss, caps);
  const cuts = opts.starts ? [...opts.starts] : balance(g, order, cost, bytesOf, S, opts);
  if (cuts.length !== S || cuts[0] !== 0 || cuts.some((c, i) => i > 0 && !(c > cuts[i - 1]! && c < order.length))) throw new PipelineError(`pipeline: stage starts [${cuts.join(', ')}] are not ${S} increasing positions from 0 below ${order.length}`);
  const stageOf = new Map<number, number>();
  cuts.forEach((_, s) => order.slice(cuts[s], cuts[s + 1] ?? order.length).forEach((id) => stageOf.set(id, s)));
  // params belong to the stage that reads them
  const paramStage = new Map<number, number>();
  for (const id of order) {
    for (const j of g.nodes[id]!.inputs) {
      if (g.nodes[j]!.op !== 'param' && g.nodes[j]!.op !== 'state') continue;
      const prev = paramStage.get(j);
      if (prev !== undefined && prev !== stageOf.get(id)) throw new PipelineError(`pipeline: ${g.nodes[j]!.op} '${g.nodes[j]!.name}' is read by stages ${prev} and ${stageOf.get(id)}; shared weights across stages are not supported`);
      paramStage.set(j, stageOf.get(id)!);
    }
  }
  const cutsList: CutTensor[] = [];
  const seen = new Set<string>();
  for (const id of order) {
    for (const j of g.nodes[id]!.inputs) {
      const from = stageOf.get(j);
      const to = stageOf.get(id)!;
      if (from === undefined || from === to || seen.has(`${j}@${to}`)) continue;
      seen.add(`${j}@${to}`);
      cutsList.push({ node: j, from, to, bytes: bytesOf(j) });
    }
  }
  const stages = cuts.map((_, s) => buildStage(g, s, order.filter((id) => stageOf.get(id) === s), cutsList, lossId, S, caps, opts.optimizer));
  return { graph: g, loss, stages };
}

function concrete(g: Graph): number[][] {
  return g.nodes.map((n) => {
    if (!n.shape.every((d) => typeof d === 'number')) throw new PipelineError(`pipeline: node ${n.id} (${n.op}) of graph '${g.name}' has symbolic shape [${n.shape.join(', ')}]; build the graph for one micro-batch`);
    return n.shape as number[];
  });
}

/** FLOPs of each op node's own kernel (planned without fusion). */
function nodeCosts(g: Graph, shapes: number[][], loss: string, caps: DeviceCaps): Map<number, number> {
  const plan = planGraph(g, shapes, { outputs: [loss], fuse: false, withUpdates: false, caps });
  return new Map(planLaunches(plan).map((s) => [s.node, kernelCost(s.kernel)]));
}

/** Start positions of each stage in `order`: linear-partition DP minimizing the slowest stage. */
function balance(g: Graph, order: number[], cost: Map<number, number>, bytesOf: (id: number) => number, S: number, opts: PartitionOptions): number[] {
  const n = order.length;
  const pos = new Map(order.map((id, i) => [id, i]));
  const flops = opts.flops ?? 1e12;
  const bw = opts.bandwidth ?? 1e10;
  const prefix = [0];
  for (const id of order) prefix.push(prefix.at(-1)! + 3 * (cost.get(id) ?? 0));
  // crossing[j]: bytes of values made before position j and read at or after it
  const diff = new Float64Array(n + 1);
  const lastRead = new Map<number, number>();
  order.forEach((id, i) => g.nodes[id]!.inputs.forEach((j) => pos.has(j) && lastRead.set(j, Math.max(lastRead.get(j) ?? 0, i))));
  for (const [j, last] of lastRead) {
    diff[pos.get(j)! + 1] += bytesOf(j);
    diff[last + 1] -= bytesOf(j);
  }
  const crossing = new Float64Array(n + 1);
  for (let j = 1; j <= n; j++) crossing[j] = crossing[j - 1]! + diff[j]!;
  const actPrefix = [0];
  for (const id of order) actPrefix.push(actPrefix.at(-1)! + bytesOf(id));
  const paramBytes = (i: number, j: number) => {
    const ps = new Set<number>();
    for (const id of order.slice(i, j)) for (const k of g.nodes[id]!.inputs) if (g.nodes[k]!.op === 'param') ps.add(k);
    return [...ps].reduce((a, k) => a + bytesOf(k), 0);
  };
  const limit = opts.memoryLimit ?? Infinity;
  const fits = (i: number, j: number) => limit === Infinity || paramBytes(i, j) * (opts.paramCopies ?? 4) + (actPrefix[j]! - actPrefix[i]!) * (opts.inFlight ?? S) <= limit;
  const time = (i: number, j: number) => (prefix[j]! - prefix[i]!) / flops + (j < n ? crossing[j]! / bw : 0);
  // best[s][j]: the slowest stage when the first j ops form s stages
  const best = Array.from({ length: S + 1 }, () => new Float64Array(n + 1).fill(Infinity));
  const from = Array.from({ length: S + 1 }, () => new Int32Array(n + 1));
  best[0]![0] = 0;
  for (let s = 1; s <= S; s++) {
    for (let j = s; j <= n - (S - s); j++) {
      for (let i = s - 1; i < j; i++) {
        if (best[s - 1]![i] === Infinity || !fits(i, j)) continue;
        const t = Math.max(best[s - 1]![i]!, time(i, j));
        if (t < best[s]![j]!) {
          best[s]![j] = t;
          from[s]![j] = i;
        }
      }
    }
  }
  if (best[S]![n] === Infinity) throw new PipelineError(`pipeline: graph '${g.name}' does not fit ${S} stages of ${limit} bytes each`);
  const starts: number[] = [];
  for (let s = S, j = n; s > 0; s--) {
    j = from[s]![j]!;
    starts.unshift(j);
  }
  return starts;
}

function buildStage(g: Graph, s: number, nodes: number[], cuts: CutTensor[], lossId: number, S: number, caps: DeviceCaps, optimizer?: Optimizer): PipelineStage {
  const receives = cuts.filter((c) => c.to === s);
  const sends = cuts.filter((c) => c.from === s);
  const mine = new Set(nodes);
  // the stage's forward, with received tensors as inputs and sent ones as outputs
  const fwd = slice(g, nodes, dict<number>(), `${g.name}/stage${s}`, (j) => (mine.has(j) ? undefined : actName(j)));
  const idOf = (k: number) => fwd.map.get(k)!;
  const fwdOutputs = dict<number>();
  for (const c of sends) fwdOutputs[actName(c.node)] = idOf(c.node);
  if (mine.has(lossId)) fwdOutputs['loss'] = idOf(lossId);
  // objective: the loss (last stage) plus Σ sum(sent · its cotangent), whose gradients are the
  // stage's input and weight gradients
  const floatSends = sends.filter((c) => isFloat(g.nodes[c.node]!.dtype));
  const withObjective = extend(fwd.graph, (b) => {
    const terms: Tensor[] = [];
    if (mine.has(lossId)) terms.push(b.tensor(idOf(lossId)));
    for (const c of floatSends) {
      const n = g.nodes[c.node]!;
      const cot = b.input(cotName(c.node, c.to), { dtype: n.dtype, shape: n.shape });
      terms.push(b.sum(b.mul(b.tensor(idOf(c.node)), cot)));
    }
    for (const [k, v] of Object.entries(fwdOutputs)) b.output(k, b.tensor(v));
    b.output('stage/objective', terms.length ? terms.reduce((a, t) => b.add(a, t)) : b.zeros([], 'f32'));
  });
  const params = [...new Set(nodes.flatMap((id) => g.nodes[id]!.inputs).filter((j) => g.nodes[j]!.op === 'param'))].map((j) => g.nodes[j]!.name!);
  const wrtActs = [...new Set(receives.filter((c) => isFloat(g.nodes[c.node]!.dtype)).map((c) => c.node))];
  const full = grad(withObjective, 'stage/objective', { wrt: [...params, ...wrtActs.map(actName)] });
  const out = (name: string) => full.outputs[name]!;
  const compute = (roots: number[]) => ancestors(full, roots).filter((id) => !SOURCE_OPS.has(full.nodes[id]!.op));
  const fSet = new Set(compute(Object.keys(fwdOutputs).map(out)));
  const bRoots = wrtActs.map((k) => out(gradName(actName(k))));
  const wRoots = params.map((p) => out(gradName(p)));
  const bSet = new Set(compute(bRoots).filter((id) => !fSet.has(id)));
  const wSet = new Set(compute(wRoots).filter((id) => !fSet.has(id) && !bSet.has(id)));
  // values a later pass reads (or returns) from an earlier one travel as `v/<id>`
  const readsOf = (set: Set<number>, roots: number[]) => new Set([...[...set].flatMap((id) => full.nodes[id]!.inputs), ...roots]);
  const laterB = readsOf(bSet, bRoots);
  const laterW = readsOf(wSet, wRoots);
  const keptF = [...fSet].filter((id) => laterB.has(id) || laterW.has(id));
  const keptB = [...bSet].filter((id) => laterW.has(id));
  const vName = (id: number) => `v/${id}`;
  const boundary = (set: Set<number>) => (j: number) => (set.has(j) ? undefined : vName(j));
  const named = (entries: [string, number][]) => Object.assign(dict<number>(), Object.fromEntries(entries));
  const forward = slice(full, [...fSet], named([...Object.keys(fwdOutputs).map((k): [string, number] => [k, out(k)]), ...keptF.map((id): [string, number] => [vName(id), id])]), `${g.name}/stage${s}/F`, boundary(fSet)).graph;
  const bGrads = wrtActs.map((k): [string, number] => [gradName(actName(k)), out(gradName(actName(k)))]);
  const wGrads = params.map((p): [string, number] => [gradName(p), out(gradName(p))]);
  const inputGrad = slice(full, [...bSet], named([...bGrads, ...keptB.map((id): [string, number] => [vName(id), id])]), `${g.name}/stage${s}/B`, boundary(bSet)).graph;
  const weightGrad = slice(full, [...wSet], named(wGrads), `${g.name}/stage${s}/W`, boundary(wSet)).graph;
  const bw = new Set([...bSet, ...wSet]);
  const backward = slice(full, [...bw], named([...bGrads, ...wGrads]), `${g.name}/stage${s}/BW`, boundary(bw)).graph;
  const bytes = (id: number) => bufferBytes(caps, full.nodes[id]!.dtype, numel(full.nodes[id]!.shape as number[]));
  const paramBytes = params.map((p) => g.nodes.find((n) => n.op === 'param' && n.name === p)!).reduce((a, n) => a + bufferBytes(caps, n.dtype, numel(n.shape as number[])), 0);
  const cost: StageCost = {
    forward: graphFlops(forward, caps),
    backward: graphFlops(inputGrad, caps),
    weight: graphFlops(weightGrad, caps),
    sendBytes: sends.reduce((a, c) => a + c.bytes, 0),
    activationBytes: keptF.reduce((a, id) => a + bytes(id), 0),
    gradientBytes: keptB.reduce((a, id) => a + bytes(id), 0),
  };
  const update = optimizer && params.length ? updateGraph(g, params, s, optimizer) : undefined;
  return { index: s, nodes, params, forward, inputGrad, weightGrad, backward, ...(update ? { update } : {}), receives, sends, cost, paramBytes };
}

/** FLOPs of a pass: the kernel costs of its fused plan. */
export function graphFlops(g: Graph, caps: DeviceCaps = HOST_CAPS): number {
  if (Object.keys(g.outputs).length === 0) return 0;
  const plan = planGraph(g, concrete(g), { withUpdates: false, caps });
  return planLaunches(plan).reduce((a, st) => a + kernelCost(st.kernel), 0);
}

/** Params of one stage, fed their accumulated gradients, with an optimizer's state and updates. */
function updateGraph(g: Graph, params: readonly string[], s: number, opt: Optimizer): Graph {
  if (opt.clipNorm !== undefined) throw new PipelineError(`pipeline: optimizer ${opt.name} clips by the global norm, which spans stages; not supported`);
  const ids = params.map((p) => g.nodes.find((n) => n.op === 'param' && n.name === p)!.id);
  const withParams = graph(`${g.name}/stage${s}/update`, (b) => {
    ids.forEach((id, i) => {
      const n = g.nodes[id]!;
      b.param(n.name!, { dtype: n.dtype, shape: n.shape }, n.attrs['init'] as unknown as Init);
      b.output(gradName(params[i]!), b.input(gradName(params[i]!), { dtype: n.dtype, shape: n.shape }));
    });
  });
  return applyOptimizer(withParams, opt);
}

/**
 * A graph that computes `compute` (ids of `g`, any order) and returns `outputs`; a value read
 * from outside is a copy of its source node, or an input named `boundary(id)`.
 */
function slice(g: Graph, compute: readonly number[], outputs: { readonly [name: string]: number }, name: string, boundary: (id: number) => string | undefined): { graph: Graph; map: Map<number, number> } {
  const nodes: Node[] = [];
  const map = new Map<number, number>();
  const ensure = (j: number): number => {
    const have = map.get(j);
    if (have !== undefined) return have;
    const n = g.nodes[j]!;
    const b = SOURCE_OPS.has(n.op) ? undefined : boundary(j);
    if (!SOURCE_OPS.has(n.op) && b === undefined) throw new PipelineError(`pipeline: node ${j} (${n.op}) of '${g.name}' is read by '${name}' but neither computed there nor passed in`);
    const copy: Node = b === undefined ? { ...n, id: nodes.length, inputs: [] } : { id: nodes.length, op: 'input', inputs: [], attrs: { dtype: n.dtype, shape: [...n.shape] }, dtype: n.dtype, shape: n.shape, name: b };
    nodes.push(copy);
    map.set(j, copy.id);
    return copy.id;
  };
  for (const id of [...compute].sort((a, b) => a - b)) {
    const n = g.nodes[id]!;
    const inputs = n.inputs.map(ensure);
    nodes.push({ ...n, id: nodes.length, inputs });
    map.set(id, nodes.length - 1);
  }
  const outs = dict<number>();
  for (const [k, v] of Object.entries(outputs)) outs[k] = ensure(v);
  return { graph: freeze({ name, nodes, outputs: outs, updates: [] }, true), map };
}

/** The send and recv steps of each pass of a stage, with stages placed on devices by `stageDevice`. */
export function stageTransfers(program: PipelineProgram, stageDevice: readonly DeviceId[]): { forward: PlanStep[]; backward: PlanStep[] }[] {
  return program.stages.map((st) => ({
    forward: [
      ...st.receives.map((c): PlanStep => ({ kind: 'recv', buffer: c.node, peer: stageDevice[c.from]! })),
      ...st.sends.map((c): PlanStep => ({ kind: 'send', buffer: c.node, peer: stageDevice[c.to]! })),
    ],
    // in a backward pass a buffer id names the cut tensor whose gradient moves
    backward: [
      ...st.sends.map((c): PlanStep => ({ kind: 'recv', buffer: c.node, peer: stageDevice[c.to]! })),
      ...st.receives.map((c): PlanStep => ({ kind: 'send', buffer: c.node, peer: stageDevice[c.from]! })),
    ],
  }));
}
