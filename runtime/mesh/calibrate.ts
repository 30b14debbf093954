// The simulator's Hardware for a mesh of this machine, measured: a step's fixed cost (an almost
// empty plan), a device's FLOP/s (one matmul kernel) and memory bandwidth (one elementwise
// kernel), each with every device of the mesh running it at once as a parallel step does, and the
// shared-memory link's latency and bandwidth (all-reduces of two sizes fitted to the ring model).
// It times kernels and collectives only, never the step a prediction is for.

import { graph } from '../../graphs/builder.js';
import { f32 } from '../../graphs/types.js';
import type { Graph } from '../../graphs/graph.js';
import { planGraph, type Plan } from '../../scheduler/plan.js';
import { ringMessages, type Hardware } from '../../scheduler/parallel/simulator.js';
import { kernelCost } from '../../scheduler/remat-plan.js';
import type { CpuArray } from '../cpu/render-js.js';
import type { Mesh, MeshProgram } from './mesh.js';

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

/** Median seconds of a run of `plan` on every device at once (variables by node id, zeros). */
async function timeRuns(mesh: Mesh, plans: Plan | readonly Plan[], runs: number): Promise<number> {
  const first = Array.isArray(plans) ? (plans as readonly Plan[])[0]! : (plans as Plan);
  const vars = new Map<number, { dtype: 'f32'; data: CpuArray }>();
  for (const n of first.graph.nodes) if (n.op === 'param' || n.op === 'state') vars.set(n.id, { dtype: 'f32', data: new Float32Array(first.shapes[n.id]!.reduce((a, b) => a * b, 1)) });
  const z = first.graph.nodes.find((n) => n.op === 'input')!.id;
  const feeds = Array.from({ length: mesh.size }, () => new Map([[z, { dtype: 'f32' as const, data: new Float32Array(1) }]]));
  const program: MeshProgram = await mesh.load(plans, vars);
  const times: number[] = [];
  try {
    await mesh.run(program, feeds, { update: true });
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await mesh.run(program, feeds, { update: true });
      times.push((performance.now() - t0) / 1e3);
    }
  } finally {
    await mesh.drop(program);
  }
  return median(times);
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

  const step = await timeRuns(mesh, plan(probe('calibrate-step', () => undefined)), runs);

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
