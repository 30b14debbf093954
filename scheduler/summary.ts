// A model summary: its params (name, shape, count) and their total, how many of each op the
// graph has, and, for given input shapes, what one run costs according to its plan — estimated
// FLOPs of the plan's kernels (kernelCost) and bytes (the plan's peak of computed values, params,
// inputs). It plans the graph as given (no rewrite passes) on the host's element sizes.

import { GraphError } from '../graphs/errors.js';
import { dict } from '../graphs/dict.js';
import { ancestors, type Graph } from '../graphs/graph.js';
import { numel, type DType } from '../graphs/types.js';
import { opDef } from '../ops/registry.js';
import { HOST_CAPS, bufferBytes } from './caps.js';
import { planGraph, planLaunches } from './plan.js';
import { kernelCost } from './remat-plan.js';
import { bindDims, concreteShapes } from './specialize.js';

export interface ParamSummary {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** elements */
  readonly count: number;
}

export interface StepCost {
  /** the outputs the run computes */
  readonly outputs: readonly string[];
  /** the input shapes the run was planned for */
  readonly inputShapes: Readonly<Record<string, readonly number[]>>;
  /** estimated floating-point operations: 2·m·n·k per matmul, and per element one per scalar op of each fused kernel */
  readonly flops: number;
  /** kernel launches, after fusion */
  readonly kernels: number;
  /** the plan's peak of computed values (intermediates and outputs) held at once */
  readonly peakBytes: number;
  /** bytes of params and state */
  readonly paramBytes: number;
  /** bytes of the inputs the run reads */
  readonly inputBytes: number;
}

export interface GraphSummary {
  readonly name: string;
  readonly params: readonly ParamSummary[];
  /** elements of all params */
  readonly totalParams: number;
  /** number of nodes of each op, sources (inputs, params, constants, state) left out */
  readonly ops: Readonly<Record<string, number>>;
  /** present when input shapes were given */
  readonly step?: StepCost;
}

export interface SummaryOptions {
  /** the outputs one run computes (default: all, and the graph's updates) */
  readonly outputs?: readonly string[];
}

/**
 * Params, their total, op counts and (with `inputShapes`, one per input the outputs need) the
 * FLOPs and bytes of one run of `graph`: of every output and update, or of `opts.outputs`.
 *
 * @example
 * console.log(formatSummary(summary(mlp, { x: [128, 784], y: [128, 10] })));
 * console.log(formatSummary(summary(mlp, { x: [1, 784] }, { outputs: ['logits'] })));
 */
export function summary(graph: Graph, inputShapes?: Readonly<Record<string, readonly number[]>>, opts: SummaryOptions = {}): GraphSummary {
  const params = graph.nodes
    .filter((n) => n.op === 'param')
    .map((n): ParamSummary => {
      if (!n.shape.every((d): d is number => typeof d === 'number')) {
        throw new GraphError(`summary: param '${n.name}' of graph '${graph.name}' has a symbolic shape [${n.shape.join(', ')}]`);
      }
      return { name: n.name!, dtype: n.dtype, shape: n.shape, count: numel(n.shape) };
    });
  const ops: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const n of graph.nodes) if (opDef(n.op).kind !== 'source') ops[n.op] = (ops[n.op] ?? 0) + 1;
  const base = { name: graph.name, params, totalParams: params.reduce((a, p) => a + p.count, 0), ops };
  return inputShapes ? { ...base, step: stepCost(graph, inputShapes, opts.outputs) } : base;
}

function stepCost(graph: Graph, inputShapes: Readonly<Record<string, readonly number[]>>, outputs?: readonly string[]): StepCost {
  const outs = outputs ?? Object.keys(graph.outputs);
  for (const o of outs) if (!Object.hasOwn(graph.outputs, o)) throw new GraphError(`summary: graph '${graph.name}' has no output '${o}'`);
  const withUpdates = outputs === undefined;
  const roots = [...outs.map((o) => graph.outputs[o]!), ...(withUpdates ? graph.updates.map((u) => u.value) : [])];
  const needed = new Set(ancestors(graph, roots));
  const feeds = new Map(Object.entries(inputShapes));
  const shapes = concreteShapes(graph, bindDims(graph, feeds, needed), needed);
  const plan = planGraph(graph, shapes, { outputs: outs, withUpdates });
  const bytesOf = (op: string) =>
    graph.nodes.filter((n) => n.op === op && needed.has(n.id)).reduce((a, n) => a + bufferBytes(HOST_CAPS, n.dtype, numel(shapes[n.id]!)), 0);
  return {
    outputs: outs,
    inputShapes: dict(graph.nodes.filter((n) => n.op === 'input' && needed.has(n.id)).map((n) => [n.name!, shapes[n.id]!] as const)),
    flops: planLaunches(plan).reduce((a, s) => a + kernelCost(s.kernel), 0),
    kernels: plan.kernelCount,
    peakBytes: plan.peakBytes,
    paramBytes: bytesOf('param') + bytesOf('state'),
    inputBytes: bytesOf('input'),
  };
}

const int = (n: number) => n.toLocaleString('en-US');
const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** A summary as a text table, for printing. */
export function formatSummary(s: GraphSummary): string {
  const rows = s.params.map((p) => [p.name, shapeText(p.shape), int(p.count)] as const);
  const total = int(s.totalParams);
  const w0 = Math.max(5, ...rows.map((r) => r[0].length));
  const w1 = Math.max(5, ...rows.map((r) => r[1].length));
  const w2 = Math.max(5, total.length, ...rows.map((r) => r[2].length));
  const line = (a: string, b: string, c: string) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c.padStart(w2)}`;
  const out = [`graph '${s.name}'`, line('param', 'shape', 'count'), ...rows.map((r) => line(...r))];
  out.push(`${'total params'.padEnd(w0 + w1 + 4)}${total.padStart(w2)}`);
  const ops = Object.entries(s.ops).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  out.push(`ops: ${ops.map(([op, n]) => `${op} ${n}`).join(', ') || 'none'}`);
  if (s.step) {
    const t = s.step;
    const feeds = Object.entries(t.inputShapes).map(([k, v]) => `${k} ${shapeText(v)}`).join(', ');
    out.push(
      `one run of ${t.outputs.join(', ')} with ${feeds || 'no inputs'}:`,
      `  FLOPs        ${int(t.flops)}`,
      `  kernels      ${t.kernels}`,
      `  peak bytes   ${int(t.peakBytes)} (${humanBytes(t.peakBytes)} of computed values at once)`,
      `  param bytes  ${int(t.paramBytes)} (${humanBytes(t.paramBytes)})`,
      `  input bytes  ${int(t.inputBytes)} (${humanBytes(t.inputBytes)})`,
    );
  }
  return out.join('\n');
}
