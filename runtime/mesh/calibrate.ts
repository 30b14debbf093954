// The simulator's Hardware for a mesh of this machine, measured: a step's fixed cost (an almost
// empty plan), a device's FLOP/s (one matmul kernel) and memory bandwidth (one elementwise
// kernel), each with every device of the mesh running it at once as a parallel step does, and the
// shared-memory link's latency and bandwidth (all-reduces of two sizes fitted to the ring model).
// Kernels can also be timed one by one (`timeKernels`: each distinct kernel of a step's plans
// launched alone on resident buffers, every device at once), the operator profiles a simulator
// such as FlexFlow's composes. It times kernels and collectives only, never the step a
// prediction is for.

import { graph } from '../../graphs/builder.js';
import type { Graph } from '../../graphs/graph.js';
import { f32, type DType } from '../../graphs/types.js';
import { kernelSignature } from '../../ops/kernel-ir.js';
import { planGraph, type Plan, type PlannedBuffer } from '../../scheduler/plan.js';
import { ringMessages, type Hardware } from '../../scheduler/parallel/simulator.js';
import { kernelCost } from '../../scheduler/remat-plan.js';
import type { LaunchStep, PlanStep } from '../../scheduler/steps.js';
import type { CpuArray } from '../cpu/render-js.js';
import { allocArray } from '../tensor.js';
import { MeshError } from './communicator.js';
import type { Mesh, MeshProgram } from './mesh.js';
import type { HostValues } from './protocol.js';

export interface CalibrateOptions {
  /** timed runs per measurement (the median is kept; default 7) */
  readonly runs?: number;
  /** matmul [m, k] × [k, n] timed for FLOP/s (default 256 × 1024 × 1024) */
  readonly matmul?: readonly [number, number, number];
  /** elements of the elementwise kernel timed for memory bandwidth (default 2^22) */
  readonly elements?: number;
  /** all-reduce sizes in bytes for the link (default 4 KiB and 16 MiB) */
  readonly messageBytes?: readonly [number, number];
}

export interface Calibration {
  readonly hardware: Hardware;
  /** the medians measured, seconds */
  readonly measured: { readonly step: number; readonly matmul: number; readonly elementwise: number; readonly allReduce: readonly [number, number] };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** A tiny step (input z [1], output 2z) with `body` built beside it; z keeps every plan non-empty. */
function probe(name: string, body: (g: Parameters<Parameters<typeof graph>[1]>[0]) => void): Graph {
  return graph(name, (g) => {
    body(g);
    return { out: g.mul(g.input('z', f32(1)), 2) };
  });
}

/**
 * Median seconds of a run of `plans` on every device at once: variables by node id (by default
 * zeros for every param and state of the graph), the probe's input fed when there is one.
 */
async function timeRuns(mesh: Mesh, plans: Plan | readonly Plan[], runs: number, variables?: readonly HostValues[], update = true, pick: (xs: number[]) => number = median): Promise<number> {
  const first = Array.isArray(plans) ? (plans as readonly Plan[])[0]! : (plans as Plan);
  const vars = new Map<number, { dtype: DType; data: CpuArray }>();
  if (!variables) for (const n of first.graph.nodes) if (n.op === 'param' || n.op === 'state') vars.set(n.id, { dtype: n.dtype, data: allocArray(n.dtype, first.shapes[n.id]!.reduce((a, b) => a * b, 1)) });
  const z = first.graph.nodes.find((n) => n.op === 'input' && n.name === 'z' && first.buffers.has(n.id));
  const feeds = Array.from({ length: mesh.size }, () => new Map(z ? [[z.id, { dtype: 'f32' as DType, data: new Float32Array(1) as CpuArray }]] : []));
  const program: MeshProgram = await mesh.load(plans, variables ?? vars);
  const times: number[] = [];
  try {
    await mesh.run(program, feeds, { update });
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await mesh.run(program, feeds, { update });
      times.push((performance.now() - t0) / 1e3);
    }
  } finally {
    await mesh.drop(program);
  }
  return pick(times);
}

/**
 * Measures the Hardware of `mesh`'s devices and links. On a mesh of one device the link fields
 * are left at zero latency and unlimited bandwidth (nothing is sent).
 *
 * ```ts
 * const { hardware } = await calibrateMesh(mesh);
 * simulateStep(sp.devices.map((d) => d.plan), hardware).stepTime;
 * ```
 */
export async function calibrateMesh(mesh: Mesh, opts: CalibrateOptions = {}): Promise<Calibration> {
  const runs = opts.runs ?? 7;
  const caps = mesh.caps;
  const plan = (g: Graph) => planGraph(g, g.nodes.map((n) => n.shape.map(Number)), { caps, withUpdates: true });

  const step = await timeRuns(mesh, plan0(mesh), runs);

  const [m, k, n] = opts.matmul ?? [256, 1024, 1024];
  const mm = probe('calibrate-matmul', (g) => g.update(g.state('c', f32(m, n)), g.matmul(g.param('a', f32(m, k)), g.param('b', f32(k, n)))));
  const matmul = Math.max(1e-9, (await timeRuns(mesh, plan(mm), runs)) - step);

  const e = opts.elements ?? 1 << 22;
  const ew = probe('calibrate-elementwise', (g) => {
    const s = g.state('s', f32(e));
    g.update(s, g.add(s, g.param('p', f32(e))));
  });
  const elementwise = Math.max(1e-9, (await timeRuns(mesh, plan(ew), runs)) - step);

  // the FLOPs the cost model counts for this kernel, so that the rate matches the model
  const mmLaunch = plan(mm).steps.find((s) => s.kind === 'launch' && s.kernel.kind === 'matmul');
  const flops = (mmLaunch?.kind === 'launch' ? kernelCost(mmLaunch.kernel) : 2 * m * n * k) / matmul;
  const memoryBandwidth = (3 * e * 4) / elementwise;

  let bandwidth = Infinity, latency = 0, allReduce: [number, number] = [0, 0];
  if (mesh.size > 1) {
    const group = Array.from({ length: mesh.size }, (_, d) => d);
    const [b1, b2] = opts.messageBytes ?? [4096, 16 << 20];
    const timeAllReduce = async (bytes: number) => {
      const g = probe('calibrate-all-reduce', (b) => void b.param('p', f32(bytes / 4)));
      const base = plan(g);
      const p = g.nodes.find((x) => x.op === 'param')!.id;
      // p is read by no kernel, so the plan gives it no buffer: it is added as a resident param
      const buffers = new Map([...base.buffers, [p, { node: p, role: 'param' as const, dtype: 'f32', elements: bytes / 4 }]]);
      const plans = group.map((): Plan => ({ ...base, buffers, steps: [{ kind: 'collective', op: 'all-reduce', buffer: p, group }, ...base.steps] }));
      return Math.max(1e-9, (await timeRuns(mesh, plans, runs)) - step);
    };
    allReduce = [await timeAllReduce(b1), await timeAllReduce(b2)];
    // t = messages · (latency + bytes/n / bandwidth), fitted through the two sizes
    const r1 = ringMessages('all-reduce', b1, mesh.size), r2 = ringMessages('all-reduce', b2, mesh.size);
    bandwidth = (r2.messages * r2.bytes - r1.messages * r1.bytes) / Math.max(1e-9, allReduce[1] - allReduce[0]);
    latency = Math.max(0, allReduce[0] / r1.messages - r1.bytes / bandwidth);
  }
  return {
    hardware: { flops, utilization: 1, memoryBandwidth, bandwidth, latency, stepOverhead: step },
    measured: { step, matmul, elementwise, allReduce },
  };
}

/**
 * Seconds of every distinct kernel of `plans` (one plan per device of `mesh`), by
 * `kernelSignature`, for `Hardware.kernelTimes`. The i-th distinct kernel of every device runs at
 * once, `repeat` times in a row on resident buffers (inputs filled with 0.5, or 0 for integers);
 * it takes the fastest of `runs` runs (a pause of either thread, a garbage collection or another
 * process, only ever adds time to a run this short) less the step's fixed cost, over `repeat`. A kernel whose time
 * differs between devices (a slice at each one's offset) is charged the slowest device's.
 */
export async function timeKernels(mesh: Mesh, plans: readonly Plan[], opts: { repeat?: number; runs?: number } = {}): Promise<Map<string, number>> {
  const repeat = opts.repeat ?? 3, runs = opts.runs ?? 3;
  if (plans.length !== mesh.size) throw new MeshError(0, `timeKernels needs a plan per device (${mesh.size}), got ${plans.length}`);
  const distinct = plans.map((p) => {
    const seen = new Map<string, LaunchStep>();
    for (const s of p.steps) if (s.kind === 'launch' && !seen.has(kernelSignature(s.kernel))) seen.set(kernelSignature(s.kernel), s);
    return [...seen];
  });
  const step = await timeRuns(mesh, plan0(mesh), runs);
  const out = new Map<string, number>();
  const count = Math.max(...distinct.map((d) => d.length));
  for (let i = 0; i < count; i++) {
    const per = plans.map((p, d) => {
      const [, s] = distinct[d]![i % distinct[d]!.length]!;
      return alone(p, s, repeat);
    });
    const t = Math.max(0, (await timeRuns(mesh, per.map((x) => x.plan), runs, per.map((x) => x.vars), false, (xs) => Math.min(...xs))) - step) / repeat;
    distinct.forEach((d) => {
      const [sig] = d[i % d.length]!;
      if (i < d.length) out.set(sig, t);
    });
  }
  return out;
}

/** The empty step on every device (the fixed cost of a run). */
function plan0(mesh: Mesh): Plan {
  const g = probe('calibrate-step', () => undefined);
  return planGraph(g, g.nodes.map((n) => n.shape.map(Number)), { caps: mesh.caps, withUpdates: true });
}

/** A plan of `plan`'s launch `s` alone, `repeat` times, on resident buffers, and their values. */
function alone(plan: Plan, s: LaunchStep, repeat: number): { plan: Plan; vars: Map<number, { dtype: DType; data: CpuArray }> } {
  const inPlace = s.output !== s.node;
  const buffers = new Map<number, PlannedBuffer>();
  const vars = new Map<number, { dtype: DType; data: CpuArray }>();
  const resident = (id: number) => {
    const b = plan.buffers.get(id)!;
    buffers.set(id, { ...b, role: 'param' });
    const a = allocArray(b.dtype as DType, b.elements);
    if (b.dtype === 'f32' || b.dtype === 'f16') a.fill(0.5);
    vars.set(id, { dtype: b.dtype as DType, data: a });
  };
  for (const j of s.inputs) resident(j);
  if (inPlace) resident(s.output);
  else buffers.set(s.node, { ...plan.buffers.get(s.node)!, role: 'intermediate' });
  const steps: PlanStep[] = [];
  // launches after the first are recomputations of the same value, as the plan's rules name them
  for (let r = 0; r < repeat; r++) steps.push({ ...s, recompute: r > 0 }, ...(inPlace ? [] : [{ kind: 'free' as const, buffers: [s.node] }]));
  return { plan: { ...plan, graph: { ...plan.graph, updates: [] }, steps, buffers, outputs: {} }, vars };
}
