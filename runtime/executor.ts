// The executor: `compile(graph, options)` gives an Executable whose `run(feeds)` binds symbolic
// dims from the feeds, plans once per binding (fusion, kernels, arena), runs the kernels on the
// chosen backend and applies param/state updates. It owns every buffer: users never free
// anything. On the CPU intermediates live in one arena whose size the plan states; on WebGPU the
// plan runs through runtime/webgpu/execute.ts, and this module only decides which backend runs.

import type { Graph } from '../graphs/graph.js';
import { ancestors, validateGraph } from '../graphs/graph.js';
import type { Init } from '../graphs/builder.js';
import { FeedError, GraphError, RheoError } from '../graphs/errors.js';
import { applyOptimizer, type Optimizer } from '../graphs/optim.js';
import { hostBytesPerElement, numel, type DType } from '../graphs/types.js';
import { planGraph, type Plan } from '../scheduler/plan.js';
import { rematerializePlan } from '../scheduler/remat-plan.js';
import { CountingPool, parseBytes } from './memory.js';
import type { RematOptions } from '../scheduler/remat-plan.js';
import { bindDims, concreteShape, concreteShapes } from '../scheduler/specialize.js';
import { cpuKernel, type CpuArray, type CpuKernelFn } from './cpu/render-js.js';
import { interpretKernel } from './interpreter.js';
import { initialValues } from './init.js';
import { allocArray, arrayOn, type HostTensor } from './tensor.js';
import { WebGpuBackend } from './webgpu/backend.js';
import { DeviceError } from './webgpu/device.js';
import { GpuVariables, describeAdapter, runPlanOnGpu, sharedWebGpuBackend } from './webgpu/execute.js';

export type Feed = HostTensor | CpuArray | readonly number[];
export type Feeds = Readonly<Record<string, Feed>>;
export type Outputs = Record<string, HostTensor>;

/**
 * Where kernels run: 'cpu' (generated JavaScript), 'webgpu' (generated WGSL on the WebGPU
 * device), 'auto' (WebGPU when an adapter is found, else the CPU) or 'reference' (the kernel IR
 * interpreter, for tests).
 */
export type BackendName = 'cpu' | 'webgpu' | 'auto' | 'reference';

/** Which backend an executable runs on, and why. */
export interface BackendInfo {
  readonly requested: BackendName;
  /** 'pending' until a WebGPU or auto executable has looked for its device (see `ready()`) */
  readonly backend: 'cpu' | 'webgpu' | 'reference' | 'pending';
  /** the WebGPU adapter, e.g. 'llvmpipe-llvm-15-0-6-256-bits- (OpenGL ES 3.2 Mesa 22.3.6; opengles, compatibility)' */
  readonly adapter?: string;
  /** why 'auto' took the CPU */
  readonly reason?: string;
}

/** An executable was used in a way its backend does not support (e.g. `runSync` on WebGPU). */
export class BackendError extends RheoError {
  constructor(readonly backend: string, detail: string) {
    super(`${backend} backend: ${detail}`);
  }
}

export interface CompileOptions {
  /** default 'cpu'; 'webgpu' and 'auto' find their device asynchronously: see `compileAsync` */
  readonly backend?: BackendName;
  /** the WebGPU backend to run on (default: one shared by every executable of the process) */
  readonly webgpu?: WebGpuBackend;
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
  /**
   * Bytes a run may hold in all — params, state, constants, fed inputs and computed values — as
   * a number or a string such as '256 MB'. Values are recomputed instead of kept where that is
   * cheapest; a budget no plan can meet is a BudgetError naming the smallest feasible one.
   * CPU backend only.
   */
  readonly memoryBudget?: number | string;
  /** how rematerialization is solved (default: exact MILP up to 300 kernels, else heuristic; or Chen's √n schedule) */
  readonly remat?: RematOptions;
}

export interface RunStats {
  runs: number;
  kernelLaunches: number;
  plansMade: number;
  /** largest arena allocated for intermediates, bytes */
  peakArenaBytes: number;
  /**
   * Under a memory budget: the largest total of computed values held at once in the last run,
   * as the instrumented allocator counted it (compare with `plan.remat.peakBytes`).
   */
  measuredPeakBytes: number;
}

interface CpuPrepared {
  readonly fns: readonly CpuKernelFn[];
  readonly views: Map<number, CpuArray>;
}

/**
 * Params, state and constants by node id: on the host until the executable settles on WebGPU,
 * then on the device only. Derived executables share one store.
 */
interface Store {
  host: Map<number, CpuArray>;
  gpu: GpuVariables | null;
  /** where the executables sharing this store run; settled once */
  started: Promise<BackendInfo> | null;
  info: BackendInfo;
}

export class Executable {
  readonly graph: Graph;
  readonly defaultOutputs: readonly string[];
  readonly stats: RunStats = { runs: 0, kernelLaunches: 0, plansMade: 0, peakArenaBytes: 0, measuredPeakBytes: 0 };
  private readonly budget: number | undefined;
  private readonly rematOptions: RematOptions;
  private readonly opts: CompileOptions;
  private readonly fuse: boolean;
  private readonly f64: boolean;
  private readonly store: Store;
  private readonly plans = new Map<string, Plan>();
  private readonly plansByFeeds = new Map<string, Plan>();
  private readonly cpu = new Map<Plan, CpuPrepared>();

  /** `shared`: the params/state/const store of another executable over the same node ids. */
  constructor(graph: Graph, opts: CompileOptions = {}, shared?: Store) {
    this.opts = opts;
    const g = opts.optimizer ? applyOptimizer(graph, opts.optimizer) : graph;
    validateGraph(g);
    this.graph = g;
    this.fuse = opts.fuse !== false;
    this.budget = opts.memoryBudget === undefined ? undefined : parseBytes(opts.memoryBudget);
    this.rematOptions = { timeLimitMs: 5000, ...opts.remat };
    this.f64 = opts.precision === 'f64';
    const requested = opts.backend ?? 'cpu';
    if (this.f64 && requested === 'webgpu') throw new BackendError('webgpu', "precision 'f64' needs the CPU");
    const names = Object.keys(g.outputs);
    this.defaultOutputs = opts.outputs ?? (opts.optimizer ? names.filter((n) => !n.startsWith('grad/')) : names);
    for (const o of this.defaultOutputs) if (g.outputs[o] === undefined) throw new GraphError(`compile: graph '${g.name}' has no output '${o}'`);
    if (shared) {
      this.store = shared;
      return;
    }
    const host = new Map<number, CpuArray>();
    const seed = opts.seed ?? 0;
    for (const n of g.nodes) {
      if (n.op === 'param' || n.op === 'state') {
        const shape = concreteShape(n.shape, new Map(), n.op, n.site);
        const vals = initialValues(n.attrs['init'] as unknown as Init, shape, seed, n.name!);
        const a = allocArray(n.dtype, vals.length, this.f64);
        a.set(vals);
        host.set(n.id, a);
      } else if (n.op === 'const' && Array.isArray(n.attrs['data'])) {
        const a = allocArray(n.dtype, (n.attrs['data'] as number[]).length, this.f64);
        a.set(n.attrs['data'] as number[]);
        host.set(n.id, a);
      }
    }
    const settled = requested === 'cpu' || requested === 'reference' || (requested === 'auto' && this.f64);
    this.store = {
      host, gpu: null, started: null,
      info: settled
        ? { requested, backend: requested === 'reference' ? 'reference' : 'cpu', ...(this.f64 && requested === 'auto' ? { reason: "precision 'f64' needs the CPU" } : {}) }
        : { requested, backend: 'pending' },
    };
    if (!settled) void this.ready().catch(() => undefined); // start looking for the device now
  }

  /** Which backend runs this executable ('pending' before a WebGPU or auto one is `ready()`). */
  get backendInfo(): BackendInfo {
    return this.store.info;
  }

  /**
   * Settles the backend: for 'webgpu' and 'auto', finds the device (shared by the process) and
   * moves params, state and constants onto it. `run` does this itself; `compileAsync` awaits it.
   * Rejects with a DeviceError when 'webgpu' was asked for and no adapter is found.
   */
  ready(): Promise<BackendInfo> {
    const st = this.store;
    if (st.info.backend !== 'pending') return Promise.resolve(st.info);
    st.started ??= (async () => {
      const be = this.opts.webgpu ?? (await sharedWebGpuBackend());
      const requested = st.info.requested;
      if (!be) {
        const reason = `no WebGPU adapter: ${WebGpuBackend.unavailableReason}`;
        if (requested === 'webgpu') throw new DeviceError('unavailable', reason);
        return (st.info = { requested, backend: 'cpu', reason });
      }
      st.gpu = new GpuVariables(be, st.host);
      st.host = new Map();
      return (st.info = { requested, backend: 'webgpu', adapter: describeAdapter(be) });
    })();
    return st.started;
  }

  /**
   * An executable over a graph derived from this one (same ids for params, state and
   * constants), sharing their buffers: what reactive runs use for their partial plans.
   */
  derive(graph: Graph, outputs: readonly string[]): Executable {
    return new Executable(graph, { ...this.opts, optimizer: undefined, outputs }, this.store);
  }

  /** The plan for feeds of these shapes (made once per binding of the symbolic dims). */
  plan(feedShapes: Readonly<Record<string, readonly number[]>>, outputs: readonly string[] = this.defaultOutputs, opts: { update?: boolean } = {}): Plan {
    return this.prepare(new Map(Object.entries(feedShapes)), outputs, opts.update !== false);
  }

  private prepare(feedShapes: ReadonlyMap<string, readonly number[]>, outputs: readonly string[], withUpdates = true): Plan {
    // feeds of shapes seen before: the plan without binding the dims again
    const seen = JSON.stringify([[...feedShapes].sort((a, b) => (a[0] < b[0] ? -1 : 1)), outputs, withUpdates]);
    const known = this.plansByFeeds.get(seen);
    if (known) return known;
    for (const o of outputs) if (this.graph.outputs[o] === undefined) throw new GraphError(`run: graph '${this.graph.name}' has no output '${o}'`);
    const roots = [...outputs.map((o) => this.graph.outputs[o]!), ...(withUpdates ? this.graph.updates.map((u) => u.value) : [])];
    const needed = new Set(ancestors(this.graph, roots));
    const bindings = bindDims(this.graph, feedShapes, needed);
    const key = JSON.stringify([[...bindings].sort(), outputs, withUpdates]);
    let plan = this.plans.get(key);
    if (!plan) {
      plan = planGraph(this.graph, concreteShapes(this.graph, bindings, needed), { outputs, fuse: this.fuse, withUpdates });
      if (this.budget !== undefined) {
        if (this.store.gpu || this.store.info.backend === 'pending') {
          throw new BackendError(this.store.info.requested, 'memoryBudget is supported on the CPU backend only');
        }
        plan = rematerializePlan(plan, this.budget, this.fixedBytes(plan, feedShapes), this.rematOptions);
      }
      this.plans.set(key, plan);
      this.stats.plansMade++;
      this.stats.peakArenaBytes = Math.max(this.stats.peakArenaBytes, plan.memory.arenaBytes);
    }
    this.plansByFeeds.set(seen, plan);
    return plan;
  }

  /** Bytes a run holds outside the planner's reach: params, state, constants and the feeds. */
  private fixedBytes(plan: Plan, feedShapes: ReadonlyMap<string, readonly number[]>): number {
    let bytes = 0;
    for (const a of this.store.host.values()) bytes += a.byteLength;
    for (const n of this.graph.nodes) {
      const s = n.op === 'input' ? feedShapes.get(n.name!) : undefined;
      if (s && plan.buffers.has(n.id)) bytes += numel(s) * (this.f64 && n.dtype === 'f32' ? 8 : hostBytesPerElement(n.dtype));
    }
    return bytes;
  }

  /** Kernel functions and arena views of a plan on the CPU, made on its first CPU run. */
  private cpuParts(plan: Plan): CpuPrepared {
    if ((plan as Partial<RematPlanned>).remat) {
      let p = this.cpu.get(plan);
      if (!p) {
        const ref = this.store.info.backend === 'reference';
        p = { fns: plan.steps.map((s) => (ref ? (ins: readonly CpuArray[], out: CpuArray) => interpretKernel(s.kernel, ins, out) : cpuKernel(s.kernel))), views: new Map() };
        this.cpu.set(plan, p);
      }
      return p;
    }
    let p = this.cpu.get(plan);
    if (!p) {
      const ref = this.store.info.backend === 'reference';
      const fns = plan.steps.map((s) => (ref ? (ins: readonly CpuArray[], out: CpuArray) => interpretKernel(s.kernel, ins, out) : cpuKernel(s.kernel)));
      const arena = new ArrayBuffer(plan.memory.arenaBytes);
      const views = new Map<number, CpuArray>();
      for (const [id, off] of plan.memory.offsets) {
        const b = plan.buffers.get(id)!;
        views.set(id, this.f64 ? allocArray(b.dtype as DType, b.elements, true) : arrayOn(b.dtype as DType, arena, off, b.elements));
      }
      p = { fns, views };
      this.cpu.set(plan, p);
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
      const type = n.dtype === 'i32' ? Int32Array : n.dtype === 'bool' ? Uint8Array : this.f64 ? Float64Array : Float32Array;
      if (data instanceof type) out.set(name, { dtype: n.dtype, shape, data: data as CpuArray });
      else {
        const arr = allocArray(n.dtype, data.length, this.f64);
        arr.set(Array.from(data));
        out.set(name, { dtype: n.dtype, shape, data: arr });
      }
    }
    return out;
  }

  /**
   * Run synchronously on the CPU. With `update: false` the params and state are left as they
   * are (e.g. evaluating a model while training it); inputs the outputs do not need may be omitted.
   * A WebGPU executable cannot run synchronously: use `run`.
   */
  runSync(feeds: Feeds, outputs: readonly string[] = this.defaultOutputs, opts: { update?: boolean } = {}): Outputs {
    const info = this.store.info;
    if (info.backend === 'webgpu' || info.backend === 'pending') {
      throw new BackendError(info.requested, info.backend === 'webgpu'
        ? 'runSync runs on the CPU only; use `await exe.run(feeds)` on WebGPU'
        : "runSync cannot wait for the device search; use `await exe.run(feeds)` (or `compileAsync`, then check `backendInfo`), or compile with backend 'cpu'");
    }
    const update = opts.update !== false;
    const fed = this.feedArrays(feeds);
    const shapes = new Map([...fed].map(([k, v]) => [k, v.shape]));
    const plan = this.prepare(shapes, outputs, update);
    const { fns, views } = this.cpuParts(plan);
    const g = this.graph;
    const persistent = this.store.host;
    const bufs = new Map<number, CpuArray>(persistent);
    for (const n of g.nodes) {
      if (n.op !== 'input' || !fed.has(n.name!)) continue;
      const d = fed.get(n.name!)!.data;
      bufs.set(n.id, this.f64 && d instanceof Float32Array ? Float64Array.from(d) : d);
    }
    const remat = (plan as Partial<RematPlanned>).remat;
    if (remat) {
      // Under a budget every computed value comes from an instrumented pool and goes back to it
      // after its last read, as the remat plan says; outputs are handed over at the end.
      const pool = new CountingPool(this.f64);
      plan.steps.forEach((s, i) => {
        const b = plan.buffers.get(s.node)!;
        const target = update ? remat.inPlace.get(s.node) : undefined;
        const out = target !== undefined ? persistent.get(target)! : pool.alloc(b.dtype as DType, b.elements);
        bufs.set(s.node, out);
        fns[i]!(s.inputs.map((j) => bufs.get(j)!), out);
        // values computed in place live in their param/state buffer, which is not the pool's
        for (const f of remat.frees[i]!) if (!(update && remat.inPlace.has(f))) pool.free(bufs.get(f)!);
      });
      this.stats.measuredPeakBytes = pool.peakBytes;
    } else {
      for (const [id, v] of views) bufs.set(id, v);
      for (const id of Object.values(plan.outputs)) {
        const b = plan.buffers.get(id)!;
        if (b.role === 'output') bufs.set(id, allocArray(b.dtype as DType, b.elements, this.f64));
      }
      plan.steps.forEach((s, i) => {
        fns[i]!(s.inputs.map((j) => bufs.get(j)!), bufs.get(s.node)!);
      });
    }
    const result: Outputs = {};
    for (const [name, id] of Object.entries(plan.outputs)) {
      const b = plan.buffers.get(id)!;
      const src = bufs.get(id)!;
      const data = b.role === 'output' && !remat ? src : (src.slice() as CpuArray);
      result[name] = { dtype: g.nodes[id]!.dtype, shape: plan.shapes[id]!, data };
    }
    for (const u of update ? g.updates : []) {
      if (u.value === u.target || remat?.inPlace.has(u.value)) continue;
      persistent.get(u.target)!.set(bufs.get(u.value)!);
    }
    this.stats.runs++;
    this.stats.kernelLaunches += plan.steps.length;
    return result;
  }

  /**
   * Run; resolves to the requested outputs as host tensors the caller owns. On WebGPU the kernels
   * are recorded and submitted before this returns its promise, and the outputs are read back
   * once, at the end; runs started one after another apply their updates in that order.
   */
  async run(feeds: Feeds, outputs: readonly string[] = this.defaultOutputs, opts: { update?: boolean } = {}): Promise<Outputs> {
    if (this.store.info.backend === 'pending') await this.ready();
    const gpu = this.store.gpu;
    if (!gpu) return this.runSync(feeds, outputs, opts);
    const update = opts.update !== false;
    const fed = this.feedArrays(feeds);
    const plan = this.prepare(new Map([...fed].map(([k, v]) => [k, v.shape])), outputs, update);
    const byId = new Map<number, HostTensor>();
    // only inputs the plan reads are uploaded
    for (const n of this.graph.nodes) if (n.op === 'input' && fed.has(n.name!) && plan.buffers.has(n.id)) byId.set(n.id, fed.get(n.name!)!);
    const result = runPlanOnGpu(gpu, plan, byId, update);
    this.stats.runs++;
    this.stats.kernelLaunches += plan.steps.length;
    return result;
  }

  /**
   * Copies of params and state by name (e.g. for checkpoints), on the CPU. On WebGPU they live on
   * the device: use `readVariables()`.
   */
  variables(): Record<string, HostTensor> {
    if (this.store.gpu || this.store.info.backend === 'pending') {
      throw new BackendError(this.store.info.requested, 'variables() reads host memory; on WebGPU use `await exe.readVariables()`');
    }
    const out: Record<string, HostTensor> = {};
    for (const [id, data] of this.store.host) {
      const n = this.graph.nodes[id]!;
      if (n.op === 'const') continue;
      out[variableName(n.op, n.name!)] = { dtype: n.dtype, shape: concreteShape(n.shape, new Map()), data: data.slice() as CpuArray };
    }
    return out;
  }

  /** Copies of params and state by name, on any backend (read back from the device on WebGPU). */
  async readVariables(): Promise<Record<string, HostTensor>> {
    if (this.store.info.backend === 'pending') await this.ready();
    const gpu = this.store.gpu;
    if (!gpu) return this.variables();
    const ids = [...gpu.ids()].filter((id) => this.graph.nodes[id]!.op !== 'const');
    const data = await gpu.read(ids);
    const out: Record<string, HostTensor> = {};
    for (const id of ids) {
      const n = this.graph.nodes[id]!;
      out[variableName(n.op, n.name!)] = { dtype: n.dtype, shape: concreteShape(n.shape, new Map()), data: data.get(id)! };
    }
    return out;
  }

  /** Overwrite params/state by the names `variables()` uses (uploaded at once on WebGPU). */
  setVariables(values: Readonly<Record<string, HostTensor | CpuArray>>): void {
    for (const [key, v] of Object.entries(values)) {
      const [op, ...rest] = key.split(':');
      const name = rest.join(':');
      const n = this.graph.nodes.find((x) => x.op === op && x.name === name && (op === 'param' || op === 'state'));
      if (!n) throw new GraphError(`setVariables: no ${op} named '${name}'`);
      const src = 'data' in v && !(ArrayBuffer.isView(v)) ? (v as HostTensor).data : (v as CpuArray);
      const expected = numel(concreteShape(n.shape, new Map()));
      if (src.length !== expected) throw new GraphError(`setVariables: '${key}' has ${src.length} values, expected ${expected}`);
      if (this.store.gpu) this.store.gpu.set(n.id, src);
      else this.store.host.get(n.id)!.set(src);
    }
  }

  /** Bytes held in params, state and constants. */
  persistentBytes(): number {
    let b = 0;
    const ids = this.store.gpu ? [...this.store.gpu.ids()] : [...this.store.host.keys()];
    for (const id of ids) {
      const n = this.graph.nodes[id]!;
      const elements = n.op === 'const' && Array.isArray(n.attrs['data']) ? (n.attrs['data'] as number[]).length : numel(concreteShape(n.shape, new Map()));
      b += elements * (this.f64 && (n.dtype === 'f32' || n.dtype === 'f16') ? 8 : hostBytesPerElement(n.dtype));
    }
    return b;
  }
}

const variableName = (op: string, name: string) => `${op}:${name}`;

/**
 * Compile a graph. With backend 'webgpu' or 'auto' the device is found asynchronously: `run`
 * waits for it, `runSync` refuses; prefer `compileAsync`, which settles the backend first.
 *
 * ```ts
 * const exe = compile(model);                       // CPU
 * const { y } = exe.runSync({ x });
 * ```
 */
export function compile(graph: Graph, opts: CompileOptions = {}): Executable {
  return new Executable(graph, opts);
}

/**
 * Compile a graph and settle its backend: with 'auto', WebGPU when an adapter is found (else the
 * CPU, with the reason in `backendInfo.reason`); with 'webgpu', rejects when none is.
 *
 * ```ts
 * const step = await compileAsync(grad(mlp, 'loss'), { backend: 'auto', optimizer: adam(1e-3) });
 * console.log(step.backendInfo);                    // { backend: 'webgpu', adapter: 'llvmpipe-... (OpenGL ES 3.2 Mesa ...)' }
 * const { loss } = await step.run({ x, y });
 * ```
 */
export async function compileAsync(graph: Graph, opts: CompileOptions = {}): Promise<Executable> {
  const exe = new Executable(graph, opts);
  await exe.ready();
  return exe;
}

type RematPlanned = ReturnType<typeof rematerializePlan>;
