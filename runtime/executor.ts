// The executor, rheo's public run API: `compile(graph, options)` gives an Executable whose
// `run(feeds)` binds symbolic dims from the feeds, plans once per binding for its device (fusion,
// kernels, frees, rematerialization under a memory budget), and hands the plan to the one plan
// interpreter. It owns every buffer: users never free anything. It decides which device runs;
// how a plan runs is runtime/plan-interpreter.ts, what a device does is runtime/device.ts.

import type { Graph, Node } from '../graphs/graph.js';
import { ancestors, validateGraph } from '../graphs/graph.js';
import type { Init } from '../graphs/builder.js';
import { FeedError, GraphError, RheoError } from '../graphs/errors.js';
import { dict, lookup } from '../graphs/dict.js';
import { applyOptimizer, type Optimizer } from '../graphs/optim.js';
import { optimizeGraph, type OptimizeOptions } from '../graphs/rewrite/passes.js';
import { numel, type DType } from '../graphs/types.js';
import { bufferBytes, type DeviceCaps } from '../scheduler/caps.js';
import { planGraph, type Plan } from '../scheduler/plan.js';
import { rematerializePlan } from '../scheduler/remat-plan.js';
import type { RematOptions } from '../scheduler/remat-plan.js';
import { bindDims, concreteShape, concreteShapes } from '../scheduler/specialize.js';
import type { CpuArray } from './cpu/render-js.js';
import { HostDevice, type Device } from './device.js';
import { initialValues } from './init.js';
import { parseBytes } from './memory.js';
import { runPlan } from './plan-interpreter.js';
import { diagnosisGraph, firstBadNode, NumericsError, scanRun, type NonFinite } from './numerics.js';
import { allocArray, type HostTensor } from './tensor.js';
import { Variables } from './variables.js';
import { WebGpuBackend } from './webgpu/backend.js';
import { sharedWasmDevice, wasmAvailable } from './wasm/device.js';
import { DeviceError } from './webgpu/device.js';
import { WebGpuDevice, describeAdapter, sharedWebGpuBackend } from './webgpu/gpu-device.js';

export type Feed = HostTensor | CpuArray | readonly number[];
export type Feeds = Readonly<Record<string, Feed>>;
export type Outputs = Record<string, HostTensor>;

/**
 * Where kernels run: 'cpu' (the CPU device: 'wasm' in Node, else 'js'), 'wasm' (generated
 * WebAssembly with SIMD128, on worker threads sharing its memory), 'js' (generated JavaScript,
 * one thread), 'webgpu' (generated WGSL on the WebGPU device), 'auto' (WebGPU when an adapter is
 * found, else the CPU) or 'reference' (the kernel IR interpreter, for tests).
 */
export type BackendName = 'cpu' | 'wasm' | 'js' | 'webgpu' | 'auto' | 'reference';

/**
 * The CPU device: WebAssembly kernels (SIMD128, on every core) in Node, where the engine has
 * them, else kernels rendered to JavaScript. Browsers get JavaScript unless 'wasm' is asked for:
 * their main thread refuses to compile modules over 4 KB synchronously, and threads need
 * cross-origin isolation.
 */
function cpuDevice(f64: boolean, threads: number | undefined): Device {
  const node = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';
  return node && wasmAvailable() ? sharedWasmDevice({ f64, ...(threads === undefined ? {} : { threads }) }) : new HostDevice('cpu', f64);
}

/** Which backend an executable runs on, and why. */
export interface BackendInfo {
  readonly requested: BackendName;
  /** 'pending' until a WebGPU or auto executable has looked for its device (see `ready()`) */
  readonly backend: 'cpu' | 'wasm' | 'webgpu' | 'reference' | 'pending';
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
  /** WebGPU: time kernel variants per signature on the device and keep the fastest (runtime/webgpu/tuner.ts); also `RHEO_TUNE=1` */
  readonly tune?: boolean;
  /** backend 'wasm': threads its kernels may use, the calling one included (default: the core count) */
  readonly threads?: number;
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
  /**
   * graph rewrites run before planning: by default `defaultPasses` (einsum contraction order, then
   * CSE, constant folding and algebraic simplification to a fixed point); `{ passes, rules }` to
   * choose or add rules; false to run the graph as built
   */
  readonly rewrite?: OptimizeOptions | false;
  /** outputs `run` returns by default (default: all but gradients when training) */
  readonly outputs?: readonly string[];
  /**
   * Bytes a run may hold in all — params, state, constants, fed inputs and computed values — as
   * a number or a string such as '256 MB'. Values are recomputed instead of kept where that is
   * cheapest; a budget no plan can meet is a BudgetError naming the smallest feasible one.
   * Bytes are counted in the device's buffers (on WebGPU every element takes 4 bytes).
   */
  readonly memoryBudget?: number | string;
  /** how rematerialization is solved (default: exact MILP up to 300 kernels, else heuristic; or Chen's √n schedule) */
  readonly remat?: RematOptions;
  /**
   * After every run, check float outputs and updated params and state for NaN and ±Infinity; a
   * run that made one fails with a NumericsError naming the first op that did (node id, op,
   * name, call site). Costs a read of every variable per run: for debugging.
   */
  readonly checkNumerics?: boolean;
}

/** Options of one run. */
export interface RunOptions {
  /** false leaves params and state as they are (default true) */
  readonly update?: boolean;
  /** this run's numerics check (default: the compile option `checkNumerics`) */
  readonly checkNumerics?: boolean;
  /**
   * Host arrays to write outputs into, by output name, instead of new ones: the returned
   * tensors' `data` are these arrays. Each must be of the array type and length `run` returns
   * for that output. For loops that evaluate a graph again and again and are done with each
   * result before the next run: the output's memory is not allocated (and collected) every time.
   */
  readonly into?: Readonly<Record<string, CpuArray>>;
}

/** `run`'s `into` names an output it does not return, or an array that cannot hold it. */
export class OutputError extends RheoError {
  constructor(readonly output: string, detail: string) {
    super(`run: into['${output}'] ${detail}`);
  }
}

export interface RunStats {
  runs: number;
  kernelLaunches: number;
  plansMade: number;
  /** largest arena a plan states for its intermediates (best fit), bytes */
  peakArenaBytes: number;
  /**
   * The largest total of computed values held at once in the last run, as the device's
   * instrumented allocator counted it (equals the plan's `peakBytes`, and under a memory budget
   * `plan.remat.peakBytes`).
   */
  measuredPeakBytes: number;
}

type HostValue = { dtype: DType; data: CpuArray };

/**
 * Params, state and constants by node id: initial values on the host until the device is
 * settled, then in the device's buffers only. Derived executables share one store.
 */
interface Store {
  host: Map<number, HostValue>;
  vars: Variables | null;
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
  /** the graph's inputs by name (made on the first run) */
  private inputs?: ReadonlyMap<string, Node>;

  /** `shared`: the params/state/const store of another executable over the same node ids. */
  constructor(graph: Graph, opts: CompileOptions = {}, shared?: Store) {
    this.opts = opts;
    const trained = opts.optimizer ? applyOptimizer(graph, opts.optimizer) : graph;
    // a derived executable's graph comes from this one, already rewritten: ids must stay as they are
    const g = shared || opts.rewrite === false ? trained : optimizeGraph(trained, opts.rewrite ?? {}).graph;
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
    for (const o of this.defaultOutputs) if (lookup(g.outputs, o) === undefined) throw new GraphError(`compile: graph '${g.name}' has no output '${o}'`);
    if (shared) {
      this.store = shared;
      return;
    }
    const host = new Map<number, HostValue>();
    const seed = opts.seed ?? 0;
    for (const n of g.nodes) {
      if (n.op === 'param' || n.op === 'state') {
        const shape = concreteShape(n.shape, new Map(), n.op, n.site);
        const vals = initialValues(n.attrs['init'] as unknown as Init, shape, seed, n.name!);
        const a = allocArray(n.dtype, vals.length, this.f64);
        a.set(vals);
        host.set(n.id, { dtype: n.dtype, data: a });
      } else if (n.op === 'const' && Array.isArray(n.attrs['data'])) {
        const a = allocArray(n.dtype, (n.attrs['data'] as number[]).length, this.f64);
        a.set(n.attrs['data'] as number[]);
        host.set(n.id, { dtype: n.dtype, data: a });
      }
    }
    const settled = requested === 'cpu' || requested === 'wasm' || requested === 'js' || requested === 'reference' || (requested === 'auto' && this.f64);
    this.store = { host, vars: null, started: null, info: { requested, backend: 'pending' } };
    if (settled && requested === 'wasm') {
      if (!wasmAvailable()) throw new BackendError('wasm', 'this engine has no WebAssembly SIMD128; use the cpu backend');
      this.settle(sharedWasmDevice({ f64: this.f64, ...(opts.threads === undefined ? {} : { threads: opts.threads }) }), { requested, backend: 'wasm' });
    } else if (settled) {
      const kind = requested === 'reference' ? 'reference' : 'cpu';
      const device = requested === 'js' || kind === 'reference' ? new HostDevice(kind, this.f64) : cpuDevice(this.f64, opts.threads);
      this.settle(device, { requested, backend: kind, ...(this.f64 && requested === 'auto' ? { reason: "precision 'f64' needs the CPU" } : {}) });
    } else void this.ready().catch(() => undefined); // start looking for the device now
  }

  /** Moves params, state and constants onto the device the executables of this store run on. */
  private settle(device: Device, info: BackendInfo): BackendInfo {
    const st = this.store;
    st.vars = new Variables(device, st.host);
    st.host = new Map();
    return (st.info = info);
  }

  /** The device this executable runs on (settled: see `ready()`). */
  get device(): Device {
    const v = this.store.vars;
    if (!v) throw new BackendError(this.store.info.requested, 'the device is not settled yet: `await exe.ready()` first (or compile with `compileAsync`)');
    return v.device;
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
        return this.settle(cpuDevice(false, this.opts.threads), { requested, backend: 'cpu', reason });
      }
      if (this.opts.tune) be.tune = true;
      return this.settle(new WebGpuDevice(be), { requested, backend: 'webgpu', adapter: describeAdapter(be) });
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
    for (const o of outputs) if (lookup(this.graph.outputs, o) === undefined) throw new GraphError(`run: graph '${this.graph.name}' has no output '${o}'`);
    const roots = [...outputs.map((o) => this.graph.outputs[o]!), ...(withUpdates ? this.graph.updates.map((u) => u.value) : [])];
    const needed = new Set(ancestors(this.graph, roots));
    const bindings = bindDims(this.graph, feedShapes, needed);
    const key = JSON.stringify([[...bindings].sort(), outputs, withUpdates]);
    let plan = this.plans.get(key);
    if (!plan) {
      const caps = this.device.caps;
      plan = planGraph(this.graph, concreteShapes(this.graph, bindings, needed), { outputs, fuse: this.fuse, withUpdates, caps });
      if (this.budget !== undefined) plan = rematerializePlan(plan, this.budget, this.fixedBytes(plan, feedShapes, caps), this.rematOptions);
      this.plans.set(key, plan);
      this.stats.plansMade++;
      this.stats.peakArenaBytes = Math.max(this.stats.peakArenaBytes, plan.memory.arenaBytes);
    }
    this.plansByFeeds.set(seen, plan);
    return plan;
  }

  /** Bytes a run holds outside the planner's reach: params, state, constants and the feeds. */
  private fixedBytes(plan: Plan, feedShapes: ReadonlyMap<string, readonly number[]>, caps: DeviceCaps): number {
    let bytes = this.persistentBytes();
    for (const n of this.graph.nodes) {
      const s = n.op === 'input' ? feedShapes.get(n.name!) : undefined;
      if (s && plan.buffers.has(n.id)) bytes += bufferBytes(caps, n.dtype, numel(s));
    }
    return bytes;
  }

  private feedArrays(feeds: Feeds): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    const declared = (this.inputs ??= new Map(this.graph.nodes.filter((n) => n.op === 'input').map((n) => [n.name!, n])));
    for (const [name, f] of Object.entries(feeds)) {
      const n = declared.get(name);
      if (!n) throw new FeedError(name, `is not an input of graph '${this.graph.name}' (inputs: ${[...declared.keys()].join(', ')})`);
      if (f === null || f === undefined || typeof f !== 'object') {
        throw new FeedError(name, `was fed ${f === null || f === undefined ? String(f) : `a ${typeof f}`}, not a tensor or an array of numbers`, n.shape);
      }
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
   * Run synchronously, on a device that can (the CPU and the reference). With `update: false` the
   * params and state are left as they are (e.g. evaluating a model while training it); inputs the
   * outputs do not need may be omitted. A WebGPU executable cannot run synchronously: use `run`.
   */
  runSync(feeds: Feeds, outputs: readonly string[] = this.defaultOutputs, opts: RunOptions = {}): Outputs {
    const info = this.store.info;
    if (info.backend === 'pending' || !this.device.caps.sync) {
      throw new BackendError(info.requested, info.backend === 'webgpu'
        ? 'runSync runs on the CPU only; use `await exe.run(feeds)` on WebGPU'
        : "runSync cannot wait for the device search; use `await exe.run(feeds)` (or `compileAsync`, then check `backendInfo`), or compile with backend 'cpu'");
    }
    const { plan, values } = this.execute(feeds, outputs, opts.update !== false, true, opts.checkNumerics, opts.into);
    return this.outputsOf(plan, values as CpuArray[]);
  }

  /**
   * Run; resolves to the requested outputs as host tensors the caller owns. The kernels are
   * recorded (and on the CPU, run) before this returns its promise, and the outputs are read
   * back once, at the end; runs started one after another apply their updates in that order.
   */
  async run(feeds: Feeds, outputs: readonly string[] = this.defaultOutputs, opts: RunOptions = {}): Promise<Outputs> {
    if (this.store.info.backend === 'pending') await this.ready();
    return this.record(feeds, outputs, opts);
  }

  /**
   * Like `run` on a settled executable, but everything up to the read-back happens before this
   * returns: the values resolve later, the updates are applied now. What the trainer uses.
   */
  record(feeds: Feeds, outputs: readonly string[] = this.defaultOutputs, opts: RunOptions = {}): Promise<Outputs> {
    // a host device reads synchronously, handing its output buffers over instead of copying them
    const { plan, values } = this.execute(feeds, outputs, opts.update !== false, this.device.caps.sync, opts.checkNumerics, opts.into);
    return Promise.resolve(values).then((v) => this.outputsOf(plan, v));
  }

  /** `into` as a map, each array checked against the output it is for */
  private intoMap(plan: Plan, into: Readonly<Record<string, CpuArray>>): Map<string, CpuArray> {
    const byName = new Map<string, CpuArray>();
    for (const [name, a] of Object.entries(into)) {
      const id = lookup(plan.outputs, name);
      if (id === undefined) throw new OutputError(name, `names no output of this run (outputs: ${Object.keys(plan.outputs).join(', ')})`);
      const n = this.graph.nodes[id]!;
      const shape = plan.shapes[id]!;
      const type = n.dtype === 'i32' ? Int32Array : n.dtype === 'bool' ? Uint8Array : this.f64 ? Float64Array : Float32Array;
      if (!(a instanceof type) || a.length !== numel(shape)) {
        const got = ArrayBuffer.isView(a) ? `a ${a.constructor.name} of ${a.length} values` : `a ${typeof a}`;
        throw new OutputError(name, `is ${got}; output '${name}' is ${n.dtype} [${shape.join(', ')}], a ${type.name} of ${numel(shape)}`);
      }
      if ([...byName.values()].includes(a)) throw new OutputError(name, 'is the array of another output too');
      byName.set(name, a);
    }
    return byName;
  }

  private execute(feeds: Feeds, outputs: readonly string[], update: boolean, sync: boolean, check = this.opts.checkNumerics ?? false, into?: Readonly<Record<string, CpuArray>>) {
    const vars = this.store.vars;
    if (!vars) throw new BackendError(this.store.info.requested, 'the device is not settled yet: `await exe.ready()` first');
    const fed = this.feedArrays(feeds);
    const plan = this.prepare(new Map([...fed].map(([k, v]) => [k, v.shape])), outputs, update);
    const byId = new Map<number, HostValue>();
    // only inputs the plan reads are uploaded
    for (const [name, n] of this.inputs!) if (fed.has(name) && plan.buffers.has(n.id)) byId.set(n.id, fed.get(name)!);
    // the numerics check reads the variables before the run (to evaluate it again if it fails)
    const ids = check ? this.variableIds() : [];
    const before = check ? (sync ? vars.readSync(ids) : vars.read(ids)) : undefined;
    const r = runPlan(plan, vars, byId, { update, sync, ...(into ? { into: this.intoMap(plan, into) } : {}) });
    this.stats.runs++;
    this.stats.kernelLaunches += plan.kernelCount;
    this.stats.measuredPeakBytes = r.measuredPeakBytes;
    if (!check) return { plan, values: r.values };
    const targets = update ? [...new Set(this.graph.updates.map((u) => u.target))] : [];
    const verify = (values: CpuArray[], after: ReadonlyMap<number, CpuArray>, prior: ReadonlyMap<number, CpuArray>): CpuArray[] => {
      const bad = scanRun(this.graph, Object.values(plan.outputs).map((id, i) => [id, values[i]!] as [number, CpuArray]), update ? after : new Map());
      if (bad) throw this.diagnose(plan, update, fed, ids, prior, bad);
      return values;
    };
    if (sync) return { plan, values: verify(r.values as CpuArray[], vars.readSync(targets), before as Map<number, CpuArray>) };
    const after = vars.read(targets);
    return { plan, values: Promise.all([r.values, after, before!]).then(([v, a, b]) => verify(v, a, b)) };
  }

  /** The first op that made a value not finite, found by evaluating the run op by op on the CPU. */
  private diagnose(plan: Plan, update: boolean, fed: ReadonlyMap<string, HostTensor>, ids: readonly number[], prior: ReadonlyMap<number, CpuArray>, bad: NonFinite): NumericsError {
    const roots = [...Object.values(plan.outputs), ...(update ? this.graph.updates.map((u) => u.value) : [])];
    try {
      const { graph, outputs } = diagnosisGraph(this.graph, roots);
      const cpu = new Executable(graph, { backend: 'cpu', rewrite: false, fuse: false, outputs, ...(this.f64 ? { precision: 'f64' as const } : {}) });
      cpu.setVariables(this.named(ids, prior));
      const found = firstBadNode(graph, cpu.runSync(Object.fromEntries(fed), outputs, { update: false }));
      if (found) return found;
    } catch {
      // the diagnosis could not run: name the value found instead
    }
    return new NumericsError(this.graph.nodes[bad.node]!, bad.value, bad.element, ' (the op-by-op evaluation on the CPU did not reproduce it)');
  }

  private outputsOf(plan: Plan, values: readonly CpuArray[]): Outputs {
    const result: Outputs = dict();
    Object.entries(plan.outputs).forEach(([name, id], i) => {
      result[name] = { dtype: this.graph.nodes[id]!.dtype, shape: plan.shapes[id]!, data: values[i]! };
    });
    return result;
  }

  /**
   * Copies of params and state by name (e.g. for checkpoints), read synchronously on the CPU.
   * On WebGPU they live on the device: use `readVariables()`.
   */
  variables(): Record<string, HostTensor> {
    const info = this.store.info;
    if (info.backend === 'pending' || !this.device.caps.sync) {
      throw new BackendError(info.requested, 'variables() reads host memory; on WebGPU use `await exe.readVariables()`');
    }
    const ids = this.variableIds();
    return this.named(ids, this.store.vars!.readSync(ids));
  }

  /**
   * Copies of params and state by name, on any device, as of this call: the values are taken
   * before later runs change them, even when the read completes afterwards.
   */
  async readVariables(): Promise<Record<string, HostTensor>> {
    if (this.store.info.backend === 'pending') await this.ready();
    return this.captureVariables();
  }

  /** `readVariables` on a settled executable, the copy recorded before this returns. */
  captureVariables(): Promise<Record<string, HostTensor>> {
    const ids = this.variableIds();
    return this.store.vars!.read(ids).then((data) => this.named(ids, data));
  }

  /** Name, dtype, shape and host array type of every param and state, without reading them. */
  variableLayout(): Record<string, { dtype: DType; shape: readonly number[]; elements: number; arrayType: string }> {
    const out = dict<{ dtype: DType; shape: readonly number[]; elements: number; arrayType: string }>();
    for (const n of this.graph.nodes) {
      if (n.op !== 'param' && n.op !== 'state') continue;
      const shape = concreteShape(n.shape, new Map());
      const arrayType = n.dtype === 'i32' ? 'Int32Array' : n.dtype === 'bool' ? 'Uint8Array' : this.f64 ? 'Float64Array' : 'Float32Array';
      out[variableName(n.op, n.name!)] = { dtype: n.dtype, shape, elements: numel(shape), arrayType };
    }
    return out;
  }

  private variableIds(): number[] {
    return [...this.store.vars!.ids()].filter((id) => this.graph.nodes[id]!.op !== 'const');
  }

  private named(ids: readonly number[], data: ReadonlyMap<number, CpuArray>): Record<string, HostTensor> {
    const out = dict<HostTensor>();
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
      if (this.store.vars) this.store.vars.set(n.id, src);
      else this.store.host.get(n.id)!.data.set(src);
    }
  }

  /** Bytes held in params, state and constants, in the device's buffers. */
  persistentBytes(): number {
    const v = this.store.vars;
    if (!v) return [...this.store.host.values()].reduce((a, h) => a + h.data.byteLength, 0);
    let b = 0;
    for (const id of v.ids()) b += v.device.bytes(v.get(id));
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

