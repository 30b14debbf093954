// Helpers for the SBP tests: a single-device reference step (the ordinary plan on one host
// device) and random values for a graph's inputs and params.

import type { Graph } from '../graphs/graph.js';
import { planGraph } from '../scheduler/plan.js';
import { runPlan } from '../runtime/plan-interpreter.js';
import { HostDevice } from '../runtime/device.js';
import { Variables } from '../runtime/variables.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';

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
