// The executor: `compile(graph, options)` gives an Executable whose `run(feeds)` binds symbolic
// dims from the feeds, plans once per binding (fusion, kernels, arena), runs the kernels on the
// chosen backend and applies param/state updates. It owns every buffer: users never free
// anything, and intermediates live in one arena whose size the plan states.

import type { Graph } from '../graphs/graph.js';
import { ancestors, validateGraph } from '../graphs/graph.js';
import type { Init } from '../graphs/builder.js';
import { FeedError, GraphError } from '../graphs/errors.js';
import { applyOptimizer, type Optimizer } from '../graphs/optim.js';
import { bytesPerElement, numel, type DType } from '../graphs/types.js';
import { planGraph, type Plan } from '../scheduler/plan.js';
import { bindDims, concreteShape, concreteShapes } from '../scheduler/specialize.js';
import { cpuKernel, type CpuArray, type CpuKernelFn } from './cpu/render-js.js';
import { interpretKernel } from './interpreter.js';
import { initialValues } from './init.js';
import { allocArray, arrayOn, type HostTensor } from './tensor.js';

export type Feed = HostTensor | CpuArray | readonly number[];
export type Feeds = Readonly<Record<string, Feed>>;
export type Outputs = Record<string, HostTensor>;

export interface CompileOptions {
  /** 'cpu' (generated JavaScript) or 'reference' (the IR interpreter, for tests) */
  readonly backend?: 'cpu' | 'reference';
  /** adds optimizer state and updates to a graph made by `grad` */
  readonly optimizer?: Optimizer;
  /** seed for param initialization */
  readonly seed?: number;
  /**
   * 'f64' stores every float tensor in double precision (for gradient checks against finite
   * differences); 'f32' is the default.
   */
  readonly precision?: 'f32' | 'f64';
  /** false runs one kernel per op (for comparisons) */
  readonly fuse?: boolean;
  /** outputs `run` returns by default (default: all but gradients when training) */
  readonly outputs?: readonly string[];
}

export interface RunStats {
  runs: number;
  kernelLaunches: number;
  plansMade: number;
  /** largest arena allocated for intermediates, bytes */
  peakArenaBytes: number;
}

interface Prepared {
  readonly plan: Plan;
  readonly fns: readonly CpuKernelFn[];
  readonly arena: ArrayBuffer;
  readonly views: Map<number, CpuArray>;
}

export class Executable {
  readonly graph: Graph;
  readonly backend: 'cpu' | 'reference';
  readonly defaultOutputs: readonly string[];
  readonly stats: RunStats = { runs: 0, kernelLaunches: 0, plansMade: 0, peakArenaBytes: 0 };
  private readonly fuse: boolean;
  private readonly f64: boolean;
  private readonly persistent: Map<number, CpuArray>;
  private readonly plans = new Map<string, Prepared>();

  /** `shared`: params/state/const buffers of another executable over the same node ids. */
  constructor(graph: Graph, opts: CompileOptions = {}, shared?: Map<number, CpuArray>) {
    this.opts = opts;
    const g = opts.optimizer ? applyOptimizer(graph, opts.optimizer) : graph;
    validateGraph(g);
    this.graph = g;
    this.backend = opts.backend ?? 'cpu';
    this.fuse = opts.fuse !== false;
    this.f64 = opts.precision === 'f64';
    const names = Object.keys(g.outputs);
    this.defaultOutputs = opts.outputs ?? (opts.optimizer ? names.filter((n) => !n.startsWith('grad/')) : names);
    for (const o of this.defaultOutputs) if (g.outputs[o] === undefined) throw new GraphError(`compile: graph '${g.name}' has no output '${o}'`);
    this.persistent = shared ?? new Map();
    const seed = opts.seed ?? 0;
    for (const n of shared ? [] : g.nodes) {
      if (n.op === 'param' || n.op === 'state') {
        const shape = concreteShape(n.shape, new Map(), n.op, n.site);
        const vals = initialValues(n.attrs['init'] as unknown as Init, shape, seed, n.name!);
        const a = allocArray(n.dtype, vals.length, this.f64);
        a.set(vals);
        this.persistent.set(n.id, a);
      } else if (n.op === 'const' && Array.isArray(n.attrs['data'])) {
        const a = allocArray(n.dtype, (n.attrs['data'] as number[]).length, this.f64);
        a.set(n.attrs['data'] as number[]);
        this.persistent.set(n.id, a);
      }
    }
  }

  private readonly opts: CompileOptions;

  /**
   * An executable over a graph derived from this one (same ids for params, state and
   * constants), sharing their buffers: what reactive runs use for their partial plans.
   */
  derive(graph: Graph, outputs: readonly string[]): Executable {
    return new Executable(graph, { ...this.opts, optimizer: undefined, outputs }, this.persistent);
  }

  /** The plan for feeds of these shapes (made once per binding of the symbolic dims). */
  plan(feedShapes: Readonly<Record<string, readonly number[]>>, outputs: readonly string[] = this.defaultOutputs, opts: { update?: boolean } = {}): Plan {
    return this.prepare(new Map(Object.entries(feedShapes)), outputs, opts.update !== false).plan;
  }

  private prepare(feedShapes: ReadonlyMap<string, readonly number[]>, outputs: readonly string[], withUpdates = true): Prepared {
    for (const o of outputs) if (this.graph.outputs[o] === undefined) throw new GraphError(`run: graph '${this.graph.name}' has no output '${o}'`);
    const roots = [...outputs.map((o) => this.graph.outputs[o]!), ...(withUpdates ? this.graph.updates.map((u) => u.value) : [])];
    const needed = new Set(ancestors(this.graph, roots));
    const bindings = bindDims(this.graph, feedShapes, needed);
    const key = JSON.stringify([[...bindings].sort(), outputs, withUpdates]);
    let p = this.plans.get(key);
    if (!p) {
      const plan = planGraph(this.graph, concreteShapes(this.graph, bindings, needed), { outputs, fuse: this.fuse, withUpdates });
      const fns = plan.steps.map((s) => (this.backend === 'reference' ? (ins: readonly CpuArray[], out: CpuArray) => interpretKernel(s.kernel, ins, out) : cpuKernel(s.kernel)));
      const arena = new ArrayBuffer(plan.memory.arenaBytes);
      const views = new Map<number, CpuArray>();
      for (const [id, off] of plan.memory.offsets) {
        const b = plan.buffers.get(id)!;
        views.set(id, this.f64 ? allocArray(b.dtype as DType, b.elements, true) : arrayOn(b.dtype as DType, arena, off, b.elements));
      }
      p = { plan, fns, arena, views };
      this.plans.set(key, p);
      this.stats.plansMade++;
      this.stats.peakArenaBytes = Math.max(this.stats.peakArenaBytes, plan.memory.arenaBytes);
    }
    return p;
  }

  private feedArrays(feeds: Feeds): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    const declared = new Map(this.graph.nodes.filter((n) => n.op === 'input').map((n) => [n.name!, n]));
    for (const [name, f] of Object.entries(feeds)) {
      const n = declared.get(name);
      if (!n) throw new FeedError(name, `is not an input of graph '${this.graph.name}' (inputs: ${[...declared.keys()].join(', ')})`);
      if (f && typeof f === 'object' && 'shape' in f && 'data' in f) {
        const t = f as HostTensor;
        if (t.dtype !== n.dtype && !(n.dtype === 'f16' && t.dtype === 'f32')) throw new FeedError(name, `dtype ${t.dtype} does not match declared ${n.dtype}`, n.shape, [...t.shape]);
        if (t.data.length !== numel(t.shape)) throw new FeedError(name, `has ${t.data.length} values for its shape`, n.shape, [...t.shape]);
        out.set(name, t);
        continue;
      }
      // a bare array: the shape is the declared one, with at most one symbolic dim inferred
      const data = f as ArrayLike<number>;
      const known = n.shape.reduce<number>((a, d) => a * (typeof d === 'number' ? d : 1), 1);
      const syms = n.shape.filter((d) => typeof d === 'string');
      if (syms.length > 1) throw new FeedError(name, 'has several symbolic dims; feed a tensor with an explicit shape', n.shape);
      const shape = n.shape.map((d) => (typeof d === 'number' ? d : data.length / known));
      if (!shape.every(Number.isInteger) || numel(shape) !== data.length) throw new FeedError(name, `${data.length} values do not fit the declared shape`, n.shape);
      const arr = allocArray(n.dtype, data.length, this.f64);
      if (arr.constructor === (data as object).constructor) out.set(name, { dtype: n.dtype, shape, data: data as CpuArray });
      else {
        arr.set(Array.from(data));
        out.set(name, { dtype: n.dtype, shape, data: arr });
      }
    }
    return out;
  }

  /**
   * Run synchronously on the CPU. With `update: false` the params and state are left as they
   * are (e.g. evaluating a model while training it); inputs the outputs do not need may be omitted.
   */
  runSync(feeds: Feeds, outputs: readonly string[] = this.defaultOutputs, opts: { update?: boolean } = {}): Outputs {
    const update = opts.update !== false;
    const fed = this.feedArrays(feeds);
    const shapes = new Map([...fed].map(([k, v]) => [k, v.shape]));
    const { plan, fns, views } = this.prepare(shapes, outputs, update);
    const g = this.graph;
    const bufs = new Map<number, CpuArray>(this.persistent);
    for (const n of g.nodes) {
      if (n.op !== 'input' || !fed.has(n.name!)) continue;
      const d = fed.get(n.name!)!.data;
      bufs.set(n.id, this.f64 && d instanceof Float32Array ? Float64Array.from(d) : d);
    }
    for (const [id, v] of views) bufs.set(id, v);
    const result: Outputs = {};
    for (const [name, id] of Object.entries(plan.outputs)) {
      const b = plan.buffers.get(id)!;
      if (b.role === 'output') bufs.set(id, allocArray(b.dtype as DType, b.elements, this.f64));
      void name;
    }
    plan.steps.forEach((s, i) => {
      fns[i]!(s.inputs.map((j) => bufs.get(j)!), bufs.get(s.node)!);
    });
    for (const [name, id] of Object.entries(plan.outputs)) {
      const b = plan.buffers.get(id)!;
      const src = bufs.get(id)!;
      const data = b.role === 'output' ? src : (src.slice() as CpuArray);
      result[name] = { dtype: g.nodes[id]!.dtype, shape: plan.shapes[id]!, data };
    }
    for (const u of update ? g.updates : []) {
      if (u.value === u.target) continue;
      this.persistent.get(u.target)!.set(bufs.get(u.value)!);
    }
    this.stats.runs++;
    this.stats.kernelLaunches += plan.steps.length;
    return result;
  }

  /** Run; resolves to the requested outputs as host tensors the caller owns. */
  async run(feeds: Feeds, outputs: readonly string[] = this.defaultOutputs, opts: { update?: boolean } = {}): Promise<Outputs> {
    return this.runSync(feeds, outputs, opts);
  }

  /** Copies of params and state by name (e.g. for checkpoints). */
  variables(): Record<string, HostTensor> {
    const out: Record<string, HostTensor> = {};
    for (const [id, data] of this.persistent) {
      const n = this.graph.nodes[id]!;
      if (n.op === 'const') continue;
      out[`${n.op}:${n.name}`] = { dtype: n.dtype, shape: concreteShape(n.shape, new Map()), data: data.slice() as CpuArray };
    }
    return out;
  }

  /** Overwrite params/state by the names `variables()` uses. */
  setVariables(values: Readonly<Record<string, HostTensor | CpuArray>>): void {
    for (const [key, v] of Object.entries(values)) {
      const [op, ...rest] = key.split(':');
      const name = rest.join(':');
      const n = this.graph.nodes.find((x) => x.op === op && x.name === name);
      if (!n) throw new GraphError(`setVariables: no ${op} named '${name}'`);
      const dst = this.persistent.get(n.id)!;
      const src = 'data' in v && !(ArrayBuffer.isView(v)) ? (v as HostTensor).data : (v as CpuArray);
      if (src.length !== dst.length) throw new GraphError(`setVariables: '${key}' has ${src.length} values, expected ${dst.length}`);
      dst.set(src);
    }
  }

  /** Bytes held in params, state and constants. */
  persistentBytes(): number {
    let b = 0;
    for (const [id, a] of this.persistent) b += a.length * bytesPerElement(this.graph.nodes[id]!.dtype === 'f16' ? 'f32' : this.graph.nodes[id]!.dtype);
    return b;
  }
}

export function compile(graph: Graph, opts: CompileOptions = {}): Executable {
  return new Executable(graph, opts);
}
