// One device's part of a pipeline step (scheduler/parallel/pipeline-mesh.ts): its passes run in
// the schedule's order through the one plan interpreter, each reading params, optimizer state and
// gradient accumulators from the device's store and the values earlier passes of its micro-batch
// kept, all as device buffers; activations and gradients cross to the neighbouring stages by the
// plans' send and recv steps. It times each pass and the communicator's waits, and counts the
// bytes kept between passes with the device's allocator. It plans nothing and holds no host copy.

import type { DType } from '../../graphs/types.js';
import type { Arrival, PipelineDeviceProgram } from '../../scheduler/parallel/pipeline-mesh.js';
import type { CollectiveOp, DeviceId } from '../../scheduler/steps.js';
import type { CpuArray } from '../cpu/render-js.js';
import { DeviceUseError, type Device } from '../device.js';
import { runPlan } from '../plan-interpreter.js';
import { allocArray } from '../tensor.js';
import { Variables } from '../variables.js';
import { runCollective, type Communicator } from './communicator.js';

/** A micro-batch's inputs by name (this device's piece of each). */
export type MicroFeeds = Readonly<Record<string, { readonly dtype: DType; readonly data: CpuArray }>>;

export interface PipelinePassTiming {
  readonly stage: number;
  readonly micro: number;
  readonly pass: string;
  /** ms from the step's start on this device */
  readonly start: number;
  readonly end: number;
  /** ms of that spent in the communicator (sends, recvs, collectives) */
  readonly comm: number;
}

export interface PipelineDeviceStep {
  /** the outputs read back (the loss on the last stage; gradients without an optimizer), by stage and name */
  readonly values: readonly { readonly stage: number; readonly name: string; readonly data: CpuArray }[];
  /** ms from the first pass's start to the last pass's end */
  readonly wallMs: number;
  /** ms running passes, less their time in the communicator */
  readonly busyMs: number;
  readonly commMs: number;
  /** the most bytes held at once during the step: the allocator's live bytes before a pass plus what that pass held at its peak */
  readonly stepPeakBytes: number;
  /** the allocator's peak since the device started */
  readonly allocatorPeakBytes: number;
  /** the most bytes of values kept between passes at once */
  readonly peakKeptBytes: number;
  /** the largest number of micro-batches with kept values on one stage at once */
  readonly peakInFlight: number;
  readonly timeline: readonly PipelinePassTiming[];
}

/**
 * The pipeline's view of the communicator: it counts the milliseconds spent waiting in it, and
 * a send hands a copy to a queue per peer and returns, as an asynchronous send does (a channel
 * holds one message, and a schedule such as interleaved 1F1B sends again before its neighbour
 * took the last one). The queue keeps each peer's order; `flush` waits until every send is taken.
 * A send that waits for its peer to take the last message is woken by the event loop, which a
 * device computing passes back to back never reaches: `deliver` lets it run between passes.
 */
class PipelineCommunicator implements Communicator {
  ms = 0;
  private readonly queues = new Map<DeviceId, Promise<void>>();
  /** sends queued and not yet taken */
  private pending = 0;
  private failure: unknown;
  private readonly arrivals = new Map<DeviceId, { readonly order: readonly Arrival[]; next: number }>();
  private readonly wanted = new Map<DeviceId, string[]>();
  private readonly aside = new Map<string, CpuArray>();
  constructor(private readonly inner: Communicator) {}
  get rank(): DeviceId { return this.inner.rank; }
  get size(): number { return this.inner.size; }
  private async timed(f: () => Promise<void>): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    const t = performance.now();
    try {
      await f();
    } finally {
      this.ms += performance.now() - t;
    }
  }
  send(b: CpuArray, peer: DeviceId): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const copy = b.slice() as CpuArray;
    this.pending++;
    const next = (this.queues.get(peer) ?? Promise.resolve()).then(() => this.inner.send(copy, peer)).finally(() => { this.pending--; });
    next.catch((e: unknown) => { this.failure ??= e; });
    this.queues.set(peer, next);
    return Promise.resolve();
  }
  /** Starts a step: channels that arrive in another order than they are read, read from the start. */
  beginStep(arrivals: Readonly<Record<number, readonly Arrival[]>> | undefined): void {
    this.arrivals.clear();
    this.wanted.clear();
    this.aside.clear();
    for (const [peer, order] of Object.entries(arrivals ?? {})) this.arrivals.set(Number(peer), { order, next: 0 });
  }
  /** The next recv from `peer` reads message `key` (only channels with an arrival order need it). */
  expect(peer: DeviceId, key: string): void {
    if (this.arrivals.has(peer)) this.wanted.set(peer, [...(this.wanted.get(peer) ?? []), key]);
  }
  /** Messages that arrived and were set aside, still unread (none at the end of a step). */
  get unread(): readonly string[] { return [...this.aside.keys()]; }
  recv(b: CpuArray, peer: DeviceId): Promise<void> {
    const ch = this.arrivals.get(peer);
    if (!ch) return this.timed(() => this.inner.recv(b, peer));
    const want = this.wanted.get(peer)?.shift();
    if (want === undefined) return Promise.reject(new DeviceUseError(`pipeline device ${this.rank}: a recv from device ${peer} that the step's plan does not name`));
    return this.timed(async () => {
      const held = this.aside.get(want);
      if (held) {
        (b as Float32Array).set(held as Float32Array);
        this.aside.delete(want);
        return;
      }
      // read the channel in its arrival order, setting aside what later passes read
      for (;;) {
        const a = ch.order[ch.next++];
        if (!a) throw new DeviceUseError(`pipeline device ${this.rank}: '${want}' never arrives from device ${peer}`);
        if (a.key === want) return this.inner.recv(b, peer);
        const early = allocArray(a.dtype, a.elements);
        await this.inner.recv(early, peer);
        this.aside.set(a.key, early);
      }
    });
  }
  allReduce(b: CpuArray, g: readonly DeviceId[]): Promise<void> { return this.collective('all-reduce', b, g); }
  reduceScatter(b: CpuArray, g: readonly DeviceId[]): Promise<void> { return this.collective('reduce-scatter', b, g); }
  allGather(b: CpuArray, g: readonly DeviceId[]): Promise<void> { return this.collective('all-gather', b, g); }
  allToAll(b: CpuArray, g: readonly DeviceId[]): Promise<void> { return this.collective('all-to-all', b, g); }
  private collective(op: CollectiveOp, b: CpuArray, g: readonly DeviceId[]): Promise<void> {
    return this.timed(() => runCollective(this.inner, op, b, g));
  }
  /**
   * Lets queued sends whose peer took the last message move on, without waiting for any: one
   * turn of the event loop, taken only while sends are queued.
   */
  async deliver(): Promise<void> {
    if (this.pending > 0) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  /** Waits until every queued send was taken (or throws its failure). */
  async flush(): Promise<void> {
    await this.timed(async () => { await Promise.all(this.queues.values()); });
    this.queues.clear();
  }
}

/** A pipeline program loaded on a device: its store of persistent values, and steps run on it. */
export class PipelineDevice<B = unknown> {
  private readonly store = new Map<string, B>();
  private readonly empty: Variables<B>;
  private readonly comm: PipelineCommunicator;

  constructor(private readonly device: Device<B>, comm: Communicator, readonly program: PipelineDeviceProgram, values: ReadonlyMap<string, CpuArray>) {
    this.comm = new PipelineCommunicator(comm);
    this.empty = new Variables(device, new Map());
    for (const e of program.store) {
      const v = values.get(e.key);
      if (!v) throw new DeviceUseError(`pipeline device ${program.device}: no value for '${e.key}'`);
      this.store.set(e.key, device.upload(e.dtype, v));
    }
  }

  /** One step over `micros` (this device's feeds per micro-batch). */
  async step(micros: readonly MicroFeeds[]): Promise<PipelineDeviceStep> {
    const { device, program } = this;
    const kept = new Map<string, B>();
    const values: { stage: number; name: string; data: CpuArray }[] = [];
    const timeline: PipelinePassTiming[] = [];
    const inFlight = new Map<number, Set<number>>();
    let keptBytes = 0, peakKept = 0, stepPeak = 0, peakInFlight = 0, busy = 0;
    const t0 = performance.now();
    const commAtStart = this.comm.ms;
    this.comm.beginStep(program.arrivals);
    try {
      for (const o of program.ops) {
        await this.comm.deliver();
        const p = program.passes[o.pass]!;
        for (const m of p.messages) if (m.kind === 'recv') this.comm.expect(m.peer, `${m.label}#${o.micro}`);
        const at = (name: string) => `${o.stage}#${o.micro}/${name}`;
        const bound = new Map<number, B>();
        const uploaded: B[] = [];
        for (const x of p.inputs) {
          if (x.kind === 'store') bound.set(x.node, this.store.get(x.key)!);
          else if (x.kind === 'kept') {
            const b = kept.get(at(x.name));
            if (b === undefined) throw new DeviceUseError(`pipeline device ${program.device}: stage ${o.stage} pass ${p.pass} of micro-batch ${o.micro} reads '${x.name}', which no earlier pass kept`);
            bound.set(x.node, b);
          } else {
            const f = micros[o.micro]?.[x.name];
            if (!f) throw new DeviceUseError(`pipeline device ${program.device}: micro-batch ${o.micro} has no input '${x.name}'`);
            const b = device.upload(f.dtype, f.data);
            uploaded.push(b);
            bound.set(x.node, b);
          }
        }
        const keep = new Set([...p.keep, ...p.handoff.map(([out]) => out), ...p.replace.map(([out]) => out)]);
        const before = device.memory.liveBytes;
        const start = performance.now(), comm0 = this.comm.ms;
        const r = await runPlan(p.plan, this.empty, new Map(), { update: false, sync: device.caps.sync, comm: this.comm, bound, keep });
        const read = await r.values;
        const end = performance.now(), comm = this.comm.ms - comm0;
        busy += end - start - comm;
        timeline.push({ stage: o.stage, micro: o.micro, pass: p.pass, start: start - t0, end: end - t0, comm });
        stepPeak = Math.max(stepPeak, before + r.measuredPeakBytes);
        const out = r.kept as ReadonlyMap<string, B> | undefined;
        const readNames = Object.keys(p.plan.outputs).filter((k) => !keep.has(k));
        read.forEach((data, i) => { if (p.read.includes(readNames[i]!)) values.push({ stage: o.stage, name: readNames[i]!, data }); });
        for (const name of p.keep) {
          kept.set(at(name), out!.get(name)!);
          keptBytes += device.bytes(out!.get(name)!);
        }
        for (const [name, stage, as] of p.handoff) {
          kept.set(`${stage}#${o.micro}/${as}`, out!.get(name)!);
          keptBytes += device.bytes(out!.get(name)!);
        }
        if (p.keep.length) {
          const s = inFlight.get(o.stage) ?? new Set<number>();
          s.add(o.micro);
          inFlight.set(o.stage, s);
          peakInFlight = Math.max(peakInFlight, s.size);
        }
        peakKept = Math.max(peakKept, keptBytes);
        for (const [name, key] of p.replace) {
          device.free(this.store.get(key)!);
          this.store.set(key, out!.get(name)!);
        }
        for (const b of uploaded) device.free(b);
        for (const name of o.release) {
          const b = kept.get(at(name));
          if (b === undefined) continue;
          keptBytes -= device.bytes(b);
          device.free(b);
          kept.delete(at(name));
        }
        if (o.release.length && ![...kept.keys()].some((k) => k.startsWith(`${o.stage}#${o.micro}/`))) inFlight.get(o.stage)?.delete(o.micro);
      }
      await this.comm.flush();
      if (this.comm.unread.length) throw new DeviceUseError(`pipeline device ${program.device}: messages ${this.comm.unread.join(', ')} arrived and were never read`);
    } finally {
      for (const b of kept.values()) device.free(b);
    }
    const wallMs = performance.now() - t0;
    return {
      values, wallMs, busyMs: busy, commMs: this.comm.ms - commAtStart, stepPeakBytes: stepPeak,
      allocatorPeakBytes: device.memory.peakBytes, peakKeptBytes: peakKept, peakInFlight, timeline,
    };
  }

  /** Copies of store values by key. */
  read(keys: readonly string[]): Promise<CpuArray[]> {
    const bs = keys.map((k) => {
      const b = this.store.get(k);
      if (b === undefined) throw new DeviceUseError(`pipeline device ${this.program.device}: no stored value '${k}'`);
      return b;
    });
    return this.device.read(bs);
  }

  /** Gives every stored buffer back to the device. */
  dispose(): void {
    for (const b of this.store.values()) this.device.free(b);
    this.store.clear();
  }
}
