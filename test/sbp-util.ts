// Helpers for the SBP tests: a small MLP and its training step, a single-device reference step
// (the ordinary plan on one host device) and random values for a graph's inputs and params.

import { expect } from 'vitest';
import type { Graph } from '../graphs/graph.js';
import { planSharded } from '../scheduler/parallel/sbp-lower.js';
import type { NdSbp } from '../scheduler/parallel/sbp.js';
import { ShardedProgram, type Mesh } from '../runtime/mesh/index.js';
import { graph } from '../graphs/builder.js';
import { f32, type Tensor } from '../graphs/types.js';
import { grad } from '../graphs/autodiff.js';
import { adam, applyOptimizer, sgd } from '../graphs/optim.js';
import { planGraph } from '../scheduler/plan.js';
import { runPlan } from '../runtime/plan-interpreter.js';
import { HostDevice } from '../runtime/device.js';
import { Variables } from '../runtime/variables.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';

/** An MLP of `widths` on a batch of `B` (tanh between layers), loss the mean square of its output. */
export function mlp(B: number, widths: readonly number[]): Graph {
  return graph('mlp', (g) => {
    let h: Tensor = g.input('x', f32(B, widths[0]!));
    widths.slice(1).forEach((w, i) => {
      const z = g.add(g.matmul(h, g.param(`w${i}`, f32(widths[i]!, w))), g.param(`b${i}`, f32(w)));
      h = i < widths.length - 2 ? g.tanh(z) : z;
    });
    return { out: h, loss: g.mean(g.square(h)) };
  });
}

/** The MLP's training step with SGD (lr 0.1) or Adam (lr 0.01). */
export const trainMlp = (c: { batch: number; widths: readonly number[]; opt: string }): Graph =>
  applyOptimizer(grad(mlp(c.batch, c.widths), 'loss'), c.opt === 'sgd' ? sgd(0.1) : adam(0.01));

/** Node shapes of a graph whose dims are all literal. */
export const concrete = (g: Graph): number[][] => g.nodes.map((n) => n.shape.map(Number));

const numel = (s: readonly (number | string)[]) => s.reduce<number>((a, b) => a * Number(b), 1);

/** Deterministic values in [-1, 1) for every input, param and state of `g`, by name. */
export function randomValues(g: Graph, seed: number, shapes: readonly (readonly number[])[] = concrete(g)): { feeds: Map<string, CpuArray>; vars: Map<string, CpuArray> } {
  let s = seed >>> 0 || 1;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const feeds = new Map<string, CpuArray>(), vars = new Map<string, CpuArray>();
  for (const n of g.nodes) {
    if (n.op !== 'input' && n.op !== 'param' && n.op !== 'state') continue;
    const a = Float32Array.from({ length: numel(shapes[n.id]!) }, () => (n.op === 'state' ? 0 : rnd()));
    (n.op === 'input' ? feeds : vars).set(n.name!, a);
  }
  return { feeds, vars };
}

/** One step of `g` on one host device: outputs by name and variables after the updates. */
export function runSingle(g: Graph, feeds: ReadonlyMap<string, CpuArray>, vars: ReadonlyMap<string, CpuArray>, shapes: readonly (readonly number[])[] = concrete(g)): { outputs: Record<string, CpuArray>; variables: Map<string, CpuArray> } {
  const plan = planGraph(g, shapes, { withUpdates: true });
  const device = new HostDevice('cpu');
  const host = new Map<number, { dtype: 'f32'; data: CpuArray }>();
  const fed = new Map<number, { dtype: 'f32'; data: CpuArray }>();
  for (const n of g.nodes) {
    if (n.op === 'param' || n.op === 'state') host.set(n.id, { dtype: 'f32', data: vars.get(n.name!) ?? new Float32Array(numel(shapes[n.id]!)) });
    if (n.op === 'const' && Array.isArray(n.attrs['data'])) host.set(n.id, { dtype: 'f32', data: Float32Array.from(n.attrs['data'] as number[]) });
    if (n.op === 'input') fed.set(n.id, { dtype: 'f32', data: feeds.get(n.name!)! });
  }
  const v = new Variables(device, host);
  const run = runPlan(plan, v, fed, { update: true, sync: true });
  const values = run.values as CpuArray[];
  const outputs: Record<string, CpuArray> = {};
  Object.keys(plan.outputs).forEach((name, i) => { outputs[name] = values[i]!; });
  const variables = new Map<string, CpuArray>();
  for (const u of g.updates) variables.set(g.nodes[u.target]!.name!, device.readSync(([v.get(u.target)]))[0]!);
  return { outputs, variables };
}

/** The largest |a - b| relative to max(1, |b|). */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return e;
}

/**
 * `steps` training steps of `g` sharded by `annotations` on `mesh` and on one host device, new
 * inputs each step: the same outputs every step, the same variables after (relative error < tol).
 */
export async function expectSameSteps(mesh: Mesh, g: Graph, annotations: ReadonlyMap<string, NdSbp>, seed: number, steps: number, tol: number): Promise<void> {
  const shapes = concrete(g);
  const sp = planSharded(g, shapes, { shape: mesh.shape }, annotations, { caps: mesh.caps });
  let { vars } = randomValues(g, seed, shapes);
  const program = await ShardedProgram.load(mesh, sp, vars);
  try {
    for (let s = 0; s < steps; s++) {
      const { feeds } = randomValues(g, seed + 1000 * (s + 1), shapes);
      const ref = runSingle(g, feeds, vars, shapes);
      const got = await program.step(feeds);
      for (const [k, v] of Object.entries(ref.outputs)) expect(maxRelErr(got[k]!, v), `step ${s}: output ${k}`).toBeLessThan(tol);
      vars = new Map<string, CpuArray>([...vars, ...ref.variables]);
    }
    const read = await program.read([...vars.keys()]);
    for (const [k, v] of vars) expect(maxRelErr(read.get(k)!, v), `variable ${k} after ${steps} steps`).toBeLessThan(tol);
  } finally {
    await program.drop();
  }
}
