// A mesh of devices in one process: devices named in one or two (or more) dimensions with axis
// names, each a worker thread with its own device (single-threaded WebAssembly by default, or a
// WebGPU device the worker acquires) and a shared-memory communicator. A program
// is one plan per device (plans are data) loaded once with its variables; each run sends feeds and
// gets outputs back. A device that throws, exits or overruns the step deadline fails the run with
// a MeshError naming it, and wakes every other device's waits so nothing hangs. It does not plan:
// the scheduler writes the sends, recvs and collectives into each device's plan.

import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Plan } from '../../scheduler/plan.js';
import { residentBuffers } from '../../scheduler/plan.js';
import { bufferBytes, type DeviceCaps } from '../../scheduler/caps.js';
import { validateSteps, type DeviceId } from '../../scheduler/steps.js';
import type { DType } from '../../graphs/types.js';
import type { CpuArray } from '../cpu/render-js.js';
import { HostDevice } from '../device.js';
import { wasmAvailable, wasmCaps } from '../wasm/device.js';
import { MeshError } from './communicator.js';
import { abortChannels, sharedChannels, type SharedChannels } from './shared-memory.js';
import type { FromWorker, HostValues, MeshBackend, ToWorker, WorkerInit } from './protocol.js';

export interface MeshOptions {
  /** a name per dimension (default 'x', 'y', 'z', …) */
  readonly axes?: readonly string[];
  /** how long a device waits for a peer before failing with a MeshError (default 10 s) */
  readonly deadlineMs?: number;
  /** how long a whole run may take before the mesh fails it (default 60 s) */
  readonly stepDeadlineMs?: number;
  /** bytes per shared slot, the largest part a send moves at once (default 1 MiB) */
  readonly slotBytes?: number;
  /**
   * each worker's device: the WebAssembly device on one thread ('wasm', the default where
   * WebAssembly SIMD is available), the JavaScript renderer ('js'), or a WebGPU device each
   * worker acquires for itself ('webgpu'; the mesh fails to start where a worker finds no adapter),
   * or each worker's WebGPU device where it finds an adapter and else the CPU default ('auto';
   * `mesh.caps.kind` says which)
   */
  readonly backend?: MeshBackend;
}

/** Plans loaded on every device of a mesh, with their variables; run it with `Mesh.run`. */
export interface MeshProgram {
  readonly id: number;
  readonly plans: readonly Plan[];
}

export interface MeshRun {
  /** per device, its plan's outputs in `Object.keys(plan.outputs)` order */
  readonly values: CpuArray[][];
  /** per device, the peak bytes of computed values its allocator counted */
  readonly measuredPeakBytes: number[];
}

interface Pending {
  readonly device: DeviceId;
  readonly resolve: (m: Extract<FromWorker, { type: 'done' }>) => void;
  readonly reject: (e: Error) => void;
}

/**
 * Devices in a grid of `shape` (row-major ids: in `new Mesh([2, 3])` device 4 is at [1, 1]).
 *
 * ```ts
 * const mesh = new Mesh([2, 2], { axes: ['data', 'model'] });
 * mesh.group('model', 1); // [0, 1]: the devices that share device 1's 'data' coordinate
 * const program = await mesh.load(plans, variables); // one plan and one variable map per device
 * const { values } = await mesh.run(program, feeds);
 * await mesh.close();
 * ```
 */
export class Mesh {
  readonly shape: readonly number[];
  readonly axes: readonly string[];
  readonly size: number;
  /** the device each worker owns (with 'auto', `caps.kind` says which each found) */
  readonly backend: MeshBackend;
  /** the first failure; once failed, every run is refused with it */
  failure: MeshError | undefined;
  private readonly workers: Worker[] = [];
  private readonly channels: SharedChannels;
  private readonly pending = new Map<number, Pending>();
  private readonly started: Promise<string[]>;
  private readonly stepDeadlineMs: number;
  /** known at once for CPU devices; for WebGPU, when the workers report their adapters' */
  private knownCaps: DeviceCaps | undefined;
  private nextId = 0;
  private closing = false;

  constructor(shape: readonly number[], opts: MeshOptions = {}) {
    if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d < 1)) throw new MeshError(0, `a mesh needs positive integer dimensions, got [${shape.join(', ')}]`);
    this.shape = [...shape];
    this.axes = opts.axes ? [...opts.axes] : shape.map((_, i) => 'xyzw'[i] ?? `axis${i}`);
    if (this.axes.length !== shape.length || new Set(this.axes).size !== shape.length) throw new MeshError(0, `axes [${this.axes.join(', ')}] do not name the ${shape.length} dimensions once each`);
    this.size = shape.reduce((a, d) => a * d, 1);
    this.stepDeadlineMs = opts.stepDeadlineMs ?? 60_000;
    const deadlineMs = opts.deadlineMs ?? 10_000;
    this.backend = opts.backend ?? (wasmAvailable() ? 'wasm' : 'js');
    if (this.backend === 'wasm' && !wasmAvailable()) throw new MeshError(0, 'backend \'wasm\' needs WebAssembly SIMD128, which this engine lacks');
    if (this.backend === 'wasm' || this.backend === 'js') this.knownCaps = this.backend === 'wasm' ? wasmCaps() : new HostDevice('cpu').caps;
    this.channels = sharedChannels(this.size, opts.slotBytes);
    const ready: Promise<{ description: string; caps: DeviceCaps }>[] = [];
    for (let d = 0; d < this.size; d++) {
      const init: WorkerInit = { rank: d, channels: this.channels, deadlineMs, backend: this.backend };
      const w = spawnWorker(init);
      this.workers.push(w);
      ready.push(
        new Promise((resolve, reject) => {
          w.once('message', (m: FromWorker) => {
            if (m.type === 'ready') resolve(m);
            else reject(new MeshError(d, m.type === 'unavailable' ? m.reason : 'spoke before it was ready'));
          });
          w.once('exit', (code) => reject(new MeshError(d, `exited with code ${code} while starting`)));
          w.once('error', (e) => reject(new MeshError(d, `failed while starting: ${e.message}`)));
        }),
      );
      w.on('message', (m: FromWorker) => this.answer(d, m));
      w.on('error', (e) => this.fail(d, `threw ${e.name}: ${e.message}`));
      w.on('exit', (code) => this.fail(d, `exited (code ${code})`));
    }
    this.started = Promise.all(ready).then(
      (rs) => {
        const differs = rs.findIndex((r) => JSON.stringify(r.caps) !== JSON.stringify(rs[0]!.caps));
        if (differs > 0) throw new MeshError(differs, `has other caps than device 0 (${rs[differs]!.description} against ${rs[0]!.description}); a mesh plans for one kind of device`);
        this.knownCaps ??= rs[0]!.caps;
        return rs.map((r) => r.description);
      },
    );
    // a mesh that did not start refuses every request with the reason
    this.started.catch((e: unknown) => { this.failure ??= e instanceof MeshError ? e : new MeshError(0, String(e)); });
  }

  /**
   * The caps of every device: plan the programs loaded here for these. A WebGPU mesh knows them
   * once `await mesh.ready()` resolved (they are the workers' adapters').
   */
  get caps(): DeviceCaps {
    if (!this.knownCaps) throw new MeshError(0, `the caps of a '${this.backend}' mesh are known once \`await mesh.ready()\` resolved${this.failure ? ` (it failed: ${this.failure.message})` : ''}`);
    return this.knownCaps;
  }

  /** Resolves with each device's description once every worker is up. */
  ready(): Promise<string[]> {
    return this.started;
  }

  /** The coordinates of device `d`. */
  coords(d: DeviceId): number[] {
    this.check(d);
    const c: number[] = [];
    for (let i = this.shape.length - 1; i >= 0; i--) {
      c.unshift(d % this.shape[i]!);
      d = Math.floor(d / this.shape[i]!);
    }
    return c;
  }

  /** The device at `coords`. */
  device(coords: readonly number[]): DeviceId {
    if (coords.length !== this.shape.length || coords.some((c, i) => !Number.isInteger(c) || c < 0 || c >= this.shape[i]!)) throw new MeshError(0, `[${coords.join(', ')}] is not a position in a mesh of shape [${this.shape.join(', ')}]`);
    return coords.reduce((a, c, i) => a * this.shape[i]! + c, 0);
  }

  /** The devices along `axis` through device `d` (every other coordinate fixed), in axis order. */
  group(axis: string | number, d: DeviceId): DeviceId[] {
    const a = typeof axis === 'number' ? axis : this.axes.indexOf(axis);
    if (a < 0 || a >= this.shape.length) throw new MeshError(d, `the mesh has no axis ${String(axis)} (axes: ${this.axes.join(', ')})`);
    const c = this.coords(d);
    return Array.from({ length: this.shape[a]! }, (_, i) => this.device(c.map((x, j) => (j === a ? i : x))));
  }

  /**
   * Loads a plan per device (one plan for all, or one each) with its variables (params, state,
   * constants by node id). Each plan is checked as device `d` of this mesh.
   */
  async load(plans: Plan | readonly Plan[], variables: HostValues | readonly HostValues[] = new Map()): Promise<MeshProgram> {
    const per = Array.isArray(plans) ? (plans as readonly Plan[]) : Array.from({ length: this.size }, () => plans as Plan);
    const vars = Array.isArray(variables) ? (variables as readonly HostValues[]) : Array.from({ length: this.size }, () => variables as HostValues);
    if (per.length !== this.size || vars.length !== this.size) throw new MeshError(0, `load needs ${this.size} plans and variable maps, got ${per.length} and ${vars.length}`);
    per.forEach((p, d) => checkPlan(p, d, this.size));
    await this.started;
    const program = this.nextId++;
    await Promise.all(per.map((plan, d) => this.request(d, { type: 'load', id: 0, program, plan: stripPlan(plan), variables: vars[d]! })));
    return { id: program, plans: per };
  }

  /** Runs a program once on every device with per-device feeds (by input node id). */
  async run(program: MeshProgram, feeds: readonly HostValues[] = [], opts: { update?: boolean } = {}): Promise<MeshRun> {
    const timer = setTimeout(() => {
      const late = [...new Set([...this.pending.values()].map((p) => p.device))];
      this.fail(late[0] ?? 0, `did not finish the step within ${this.stepDeadlineMs} ms`);
    }, this.stepDeadlineMs);
    try {
      const done = await Promise.all(
        Array.from({ length: this.size }, (_, d) => this.request(d, { type: 'run', id: 0, program: program.id, feeds: feeds[d] ?? new Map(), update: opts.update ?? false })),
      );
      return { values: done.map((m) => m.values ?? []), measuredPeakBytes: done.map((m) => m.peakBytes ?? 0) };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Copies of variables (by node id) on every device, as of the last run. */
  async read(program: MeshProgram, ids: readonly number[]): Promise<CpuArray[][]> {
    const done = await Promise.all(Array.from({ length: this.size }, (_, d) => this.request(d, { type: 'read', id: 0, program: program.id, ids })));
    return done.map((m) => m.values ?? []);
  }

  /**
   * Sends `message(d)` to every device and waits for every answer, under the step deadline: the
   * way runtimes built on the mesh (runtime/mesh/pipeline.ts) talk to their devices.
   * @internal
   */
  async each(message: (d: DeviceId) => ToWorker, transfer: (d: DeviceId) => ArrayBuffer[] = () => []): Promise<Extract<FromWorker, { type: 'done' }>[]> {
    const timer = setTimeout(() => {
      const late = [...new Set([...this.pending.values()].map((p) => p.device))];
      this.fail(late[0] ?? 0, `did not finish the step within ${this.stepDeadlineMs} ms`);
    }, this.stepDeadlineMs);
    try {
      return await Promise.all(Array.from({ length: this.size }, (_, d) => this.request(d, message(d), transfer(d))));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Unloads a program from every device; its variables' memory goes back to each device. */
  async drop(program: MeshProgram): Promise<void> {
    await Promise.all(Array.from({ length: this.size }, (_, d) => this.request(d, { type: 'drop', id: 0, program: program.id })));
  }

  /** Stops device `d`'s worker at once, as a crash would (the mesh fails, naming it). */
  async terminate(d: DeviceId): Promise<void> {
    this.check(d);
    await this.workers[d]!.terminate();
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const p of this.pending.values()) p.reject(new MeshError(p.device, 'the mesh was closed'));
    this.pending.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private request(d: DeviceId, m: ToWorker, transfer: ArrayBuffer[] = []): Promise<Extract<FromWorker, { type: 'done' }>> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new MeshError(d, 'the mesh is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { device: d, resolve, reject });
      this.workers[d]!.postMessage({ ...m, id }, transfer);
    });
  }

  private answer(d: DeviceId, m: FromWorker): void {
    if (m.type !== 'done' && m.type !== 'error') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.type === 'done') return p.resolve(m);
    if (m.name === 'MeshError' && m.device !== undefined && m.device !== d) {
      // woken by another device's failure, or timed out on a silent peer: that peer is at fault
      const e = this.failure ?? new MeshError(m.device, m.message.replace(/^device \d+: /, ''));
      return p.reject(e);
    }
    // the device itself threw: the mesh fails, and every other device stops waiting on it
    this.fail(d, m.name === 'MeshError' ? m.message.replace(/^device \d+: /, '') : `threw ${m.name}: ${m.message}`);
    p.reject(this.failure!);
  }

  private fail(d: DeviceId, detail: string): void {
    if (this.closing) return;
    if (!this.failure) {
      this.failure = new MeshError(d, detail);
      abortChannels(this.channels, d);
    }
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  private check(d: DeviceId): void {
    if (!Number.isInteger(d) || d < 0 || d >= this.size) throw new MeshError(d, `is not a device of this mesh of ${this.size}`);
  }
}

/** Checks a plan's steps as device `self` of `devices`, with the planner's own liveness rules. */
function checkPlan(plan: Plan, self: DeviceId, devices: number): void {
  const computed = (id: number) => {
    const r = plan.buffers.get(id)?.role;
    return r === 'output' || r === 'intermediate';
  };
  const kept = new Set([...Object.values(plan.outputs), ...plan.graph.updates.map((u) => u.value)].filter(computed));
  const bytes = (id: number) => {
    const b = plan.buffers.get(id);
    if (!b) throw new MeshError(self, `plan step names buffer ${id}, which the plan does not describe`);
    return bufferBytes(plan.caps, b.dtype as DType, b.elements);
  };
  validateSteps(plan.steps, { resident: residentBuffers(plan.buffers), kept, bytes, self, devices });
}

/** The plan as data a worker can receive: everything the interpreter reads. */
function stripPlan(plan: Plan): Plan {
  const { remat: _remat, ...rest } = plan;
  return rest;
}

const WORKER_URL = new URL(`./worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** A worker running runtime/mesh/worker; from TypeScript sources it loads through tsx. */
function spawnWorker(init: WorkerInit): Worker {
  if (WORKER_URL.pathname.endsWith('.js')) return new Worker(WORKER_URL, { workerData: init });
  // tsx's ESM entry (its CommonJS one cannot register hooks from a worker)
  const api = createRequire(import.meta.url).resolve('tsx/esm/api');
  const tsx = pathToFileURL(api.replace(/\.cjs$/, '.mjs')).href;
  const src = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`;
  return new Worker(src, { eval: true, workerData: init });
}
