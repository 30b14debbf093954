// The one plan interpreter: runs a plan's steps on any Device. Launches allocate their outputs
// (or write a variable in place), frees give buffers back, and at the end the outputs are read
// (into the caller's arrays where it is given them) and the updates applied. Every liveness and
// reuse decision is the plan's; this module counts the bytes of computed values the device holds,
// so the measured peak can be checked against the planned one. Send, recv and collective steps
// go through a communicator (runtime/mesh/); a run with one is asynchronous, since a peer answers
// when it answers. On devices that copy between host and device memory themselves, a feed only
// one launch reads is written by that launch, and an output read by the launch computing it,
// so that the device can stream the copies with the kernel. It does not plan, and it knows no
// backend.

import type { DType } from '../graphs/types.js';
import type { Plan } from '../scheduler/plan.js';
import { DeviceUseError, type Device } from './device.js';
import type { CpuArray } from './cpu/render-js.js';
import { runCollective, type Communicator } from './mesh/communicator.js';
import type { Variables } from './variables.js';

export interface PlanRun {
  /** output values by the plan's output names, in `Object.keys(plan.outputs)` order */
  readonly values: CpuArray[] | Promise<CpuArray[]>;
  /** the largest total of computed values held at once, bytes, as the device's allocator counted them */
  readonly measuredPeakBytes: number;
  /** the outputs named in `keep`, as device buffers the caller now owns */
  readonly kept?: ReadonlyMap<string, unknown>;
}

export interface RunPlanOptions {
  readonly update: boolean;
  /** read the outputs synchronously (devices with `caps.sync` only) */
  readonly sync: boolean;
  /**
   * buffers already on the device, by node id, read as variables are: the run neither frees nor
   * replaces them (values a pipeline stage keeps between its passes)
   */
  readonly bound?: ReadonlyMap<number, unknown>;
  /** output names handed back as device buffers in `PlanRun.kept` instead of read (and not in `values`) */
  readonly keep?: ReadonlySet<string>;
  /** host arrays outputs are read into (by output name), instead of new ones */
  readonly into?: ReadonlyMap<string, CpuArray>;
}

/**
 * Run `plan` on `vars.device`. Everything up to the read of the outputs happens before this
 * returns (kernels recorded, updates applied), so runs started one after another see each
 * other's updates without waiting.
 *
 * @param feeds host values by input node id
 * @param opts.sync read the outputs synchronously (devices with `caps.sync` only)
 * @param opts.comm runs the plan's send, recv and collective steps (this device is `comm.rank`);
 *   the run then resolves once its communication is done. Without one those steps are an error.
 */
export function runPlan<B>(plan: Plan, vars: Variables<B>, feeds: ReadonlyMap<number, { dtype: DType; data: CpuArray }>, opts: RunPlanOptions): PlanRun;
export function runPlan<B>(plan: Plan, vars: Variables<B>, feeds: ReadonlyMap<number, { dtype: DType; data: CpuArray }>, opts: RunPlanOptions & { comm: Communicator }): Promise<PlanRun>;
export function runPlan<B>(
  plan: Plan,
  vars: Variables<B>,
  feeds: ReadonlyMap<number, { dtype: DType; data: CpuArray }>,
  opts: RunPlanOptions & { comm?: Communicator },
): PlanRun | Promise<PlanRun> {
  const run = interpret(plan, vars, feeds, opts);
  if (!opts.comm) {
    const r = run.next();
    if (!r.done) throw new DeviceUseError('plan interpreter: a run without a communicator waited on one');
    return r.value;
  }
  return drive(run);
}

/** Runs the steps to the end, awaiting each communication the interpreter yields. */
async function drive(run: Generator<Promise<void>, PlanRun>): Promise<PlanRun> {
  let r = run.next();
  while (!r.done) {
    let failed = false, error: unknown;
    try {
      await r.value;
    } catch (e) {
      failed = true;
      error = e;
    }
    r = failed ? run.throw(error) : run.next();
  }
  return r.value;
}

/** `v` written into `dst` when there is one, else `v` */
function copyInto(dst: CpuArray | undefined, v: CpuArray): CpuArray {
  if (!dst) return v;
  dst.set(v);
  return dst;
}

/**
 * By node id: the steps that read each value (launch inputs, sends, collectives), how many
 * launches compute it, and the values collectives change in place. A plan's never change.
 */
const readersByPlan = new WeakMap<Plan, { readonly readers: ReadonlyMap<number, number[]>; readonly launches: ReadonlyMap<number, number>; readonly changed: ReadonlySet<number> }>();

function readersOf(plan: Plan) {
  let r = readersByPlan.get(plan);
  if (!r) {
    const readers = new Map<number, number[]>();
    const launches = new Map<number, number>();
    const changed = new Set<number>();
    const reads = (id: number, step: number) => {
      const steps = readers.get(id);
      if (!steps) readers.set(id, [step]);
      else if (steps[steps.length - 1] !== step) steps.push(step);
    };
    plan.steps.forEach((s, i) => {
      if (s.kind === 'launch') {
        for (const id of s.inputs) reads(id, i);
        launches.set(s.node, (launches.get(s.node) ?? 0) + 1);
      } else if (s.kind === 'send' || s.kind === 'collective') reads(s.buffer, i);
      if (s.kind === 'collective') changed.add(s.buffer);
    });
    readersByPlan.set(plan, (r = { readers, launches, changed }));
  }
  return r;
}

/**
 * Which launches carry host copies: a feed read by one launch alone (and by no output, update
 * or `into` array) is written by that launch; an output read into a host array once, which no
 * collective changes after, is read by the launch computing it, `only` when nothing else reads
 * its buffer.
 */
function hostTraffic(plan: Plan, feeds: ReadonlyMap<number, { data: CpuArray }>, outNames: readonly string[], opts: RunPlanOptions) {
  const { readers, launches, changed } = readersOf(plan);
  const g = plan.graph;
  const held = new Set<number>([...Object.values(plan.outputs), ...(opts.update ? g.updates.map((u) => u.value) : [])]);
  const intoBuffers = new Set([...(opts.into?.values() ?? [])].map((a) => a.buffer));
  const feedStep = new Map<number, number>();
  const launchFeeds = new Map<number, number[]>();
  for (const [id, f] of feeds) {
    const steps = readers.get(id);
    if (steps?.length !== 1 || plan.steps[steps[0]!]!.kind !== 'launch' || held.has(id) || intoBuffers.has(f.data.buffer)) continue;
    feedStep.set(id, steps[0]!);
    const list = launchFeeds.get(steps[0]!);
    if (list) list.push(id);
    else launchFeeds.set(steps[0]!, [id]);
  }
  const reads = new Map<number, { name: string; only: boolean }>();
  const named = new Map<number, number>();
  for (const name of outNames) named.set(plan.outputs[name]!, (named.get(plan.outputs[name]!) ?? 0) + 1);
  const kept = new Set([...(opts.keep ?? [])].map((n) => plan.outputs[n]));
  const updated = new Set(opts.update ? g.updates.map((u) => u.value) : []);
  for (const name of outNames) {
    const id = plan.outputs[name]!;
    if (named.get(id) !== 1 || launches.get(id) !== 1 || changed.has(id)) continue;
    reads.set(id, { name, only: !readers.has(id) && !kept.has(id) && !updated.has(id) });
  }
  return { feedStep, launchFeeds, reads };
}

/** The interpreter: yields a promise at each send, recv and collective, and returns the run. */
function* interpret<B>(
  plan: Plan,
  vars: Variables<B>,
  feeds: ReadonlyMap<number, { dtype: DType; data: CpuArray }>,
  opts: RunPlanOptions & { comm?: Communicator },
): Generator<Promise<void>, PlanRun> {
  const device: Device<B> = vars.device;
  const g = plan.graph;
  /** computed values this run holds, by node id */
  const own = new Map<number, B>();
  const fed = new Map<number, B>();
  /** values computed in place: node id -> the variable whose buffer holds them */
  const alias = new Map<number, number>();
  const bound = opts.bound as ReadonlyMap<number, B> | undefined;
  const lookup = (id: number): B => own.get(id) ?? fed.get(id) ?? bound?.get(id) ?? vars.get(alias.get(id) ?? id);
  const outNames = Object.keys(plan.outputs).filter((name) => !opts.keep?.has(name));
  const outIds = outNames.map((name) => plan.outputs[name]!);
  const into = opts.into?.size ? opts.into : undefined;
  // Where the device copies between host and device memory itself (WebAssembly), a feed only one
  // launch reads is written by that launch, and an output is read by the launch computing it:
  // the device can then stream the copies with the kernel (runtime/wasm/stream.ts).
  const carried = device.launchWithHost && opts.sync ? hostTraffic(plan, feeds, outNames, opts) : null;
  /** outputs read by their launch, by name */
  const readEarly = new Map<string, CpuArray>();
  let live = 0;
  let peak = 0;
  try {
    for (const [id, f] of feeds) {
      if (carried?.feedStep.has(id)) fed.set(id, device.alloc(f.dtype, f.data.length));
      else fed.set(id, device.adopt ? device.adopt(f.dtype, f.data) : device.upload(f.dtype, f.data));
    }
    const comm = opts.comm;
    /**
     * a buffer's contents as a host array: the buffer itself on host devices, a view of it where
     * the host can address the device's memory (nothing allocates while a communication runs),
     * else a copy written back after
     */
    const onHost = (b: B, f: (a: CpuArray) => Promise<void>): Promise<void> => {
      if (ArrayBuffer.isView(b)) return f(b as unknown as CpuArray);
      if (device.hostView) return f(device.hostView(b));
      return device.read([b]).then(async ([a]) => {
        await f(a!);
        device.write(b, a!);
      });
    };
    for (let i = 0; i < plan.steps.length; i++) {
      const s = plan.steps[i]!;
      if (!comm && (s.kind === 'send' || s.kind === 'recv' || s.kind === 'collective')) {
        throw new DeviceUseError(`plan step ${i}: '${s.kind}' needs a mesh of devices; this plan runs on ${device.description} alone`);
      }
      switch (s.kind) {
        case 'launch': {
          let out: B;
          if (s.output === s.node) {
            const b = plan.buffers.get(s.node)!;
            out = device.alloc(b.dtype as DType, b.elements);
            own.set(s.node, out);
            live += device.bytes(out);
            if (live > peak) peak = live;
          } else {
            out = vars.get(s.output);
            alias.set(s.node, s.output);
          }
          const ins = s.inputs.map(lookup);
          const fedHere = carried?.launchFeeds.get(i);
          const read = s.output === s.node ? carried?.reads.get(s.node) : undefined;
          if (fedHere || read) {
            const io = new Map<number, CpuArray>();
            s.inputs.forEach((id, j) => { if (fedHere?.includes(id)) io.set(j, feeds.get(id)!.data); });
            const got = device.launchWithHost!(s.kernel, ins, out, { feeds: io, read: read ? { into: into?.get(read.name), only: read.only } : null });
            if (read) readEarly.set(read.name, got!);
          } else device.launch(s.kernel, ins, out);
          break;
        }
        case 'free':
          for (const id of s.buffers) {
            const b = own.get(id)!;
            own.delete(id);
            live -= device.bytes(b);
            device.free(b);
          }
          break;
        case 'send':
          yield onHost(lookup(s.buffer), (a) => comm!.send(a, s.peer));
          break;
        case 'recv': {
          const b = plan.buffers.get(s.buffer)!;
          const into = device.alloc(b.dtype as DType, b.elements);
          own.set(s.buffer, into);
          live += device.bytes(into);
          if (live > peak) peak = live;
          yield onHost(into, (a) => comm!.recv(a, s.peer));
          break;
        }
        case 'collective':
          yield onHost(lookup(s.buffer), (a) => runCollective(comm!, s.op, a, s.group));
          break;
      }
    }
    // Outputs kept on the device are handed over as they are (a copy when the run does not own
    // the buffer, or hands it over twice); the others are read.
    const kept = new Map<string, B>();
    const read = new Set(outIds);
    for (const name of opts.keep ?? []) {
      const id = plan.outputs[name];
      if (id === undefined) throw new DeviceUseError(`plan interpreter: keep names '${name}', which is not an output of the plan`);
      const b = own.get(id);
      if (b !== undefined && !read.has(id) && ![...kept.values()].includes(b)) {
        kept.set(name, b);
        continue;
      }
      const n = plan.buffers.get(id) ?? { dtype: g.nodes[id]!.dtype, elements: plan.shapes[id]!.reduce((a, d) => a * d, 1) };
      const c = device.alloc(n.dtype as DType, n.elements);
      device.copy(lookup(id), c);
      kept.set(name, c);
    }
    const handed = new Set(kept.values());
    for (const [id, b] of own) if (handed.has(b)) own.delete(id);
    // Reads are recorded before the updates below, so they see this run's values on any device.
    // A host device hands over an output's buffer itself when nothing else keeps it.
    const reading = opts.sync ? undefined : device.read(outIds.map(lookup));
    const values = into ? reading?.then((vs) => vs.map((v, i) => copyInto(into.get(outNames[i]!), v))) : reading;
    // Updates are simultaneous: every new value is taken before any variable changes. A buffer
    // this run computed becomes the variable's; a value that is itself a variable (or feeds two
    // updates) is copied into a fresh buffer first.
    const claimed = new Set<number>();
    const next: [number, B][] = [];
    for (const u of opts.update ? g.updates : []) {
      if (u.value === u.target || alias.get(u.value) === u.target) continue;
      const src = lookup(u.value);
      if (own.has(u.value) && !claimed.has(u.value)) {
        claimed.add(u.value);
        next.push([u.target, src]);
      } else {
        const b = plan.buffers.get(u.value);
        const n = g.nodes[u.target]!;
        const t = device.alloc(n.dtype, b ? b.elements : plan.shapes[u.target]!.reduce((a, d) => a * d, 1));
        device.copy(src, t);
        next.push([u.target, t]);
      }
    }
    let synced: CpuArray[] | undefined;
    if (opts.sync) {
      const taken = new Set<number>();
      synced = outIds.map((id, i) => {
        const early = readEarly.get(outNames[i]!);
        if (early) return early;
        const dst = into?.get(outNames[i]!);
        if (dst) return device.readInto ? (device.readInto(lookup(id), dst), dst) : copyInto(dst, device.readSync!([lookup(id)])[0]!);
        const b = own.get(id);
        if (b === undefined || !device.take || claimed.has(id) || taken.has(id) || outIds.indexOf(id) !== outIds.lastIndexOf(id)) return device.readSync!([lookup(id)])[0]!;
        taken.add(id);
        own.delete(id);
        return device.take(b);
      });
    }
    for (const [target, b] of next) vars.replace(target, b);
    for (const [id, b] of own) if (!claimed.has(id)) device.free(b);
    own.clear();
    return { values: synced ?? values!, measuredPeakBytes: peak, ...(kept.size ? { kept } : {}) };
  } finally {
    for (const b of own.values()) device.free(b);
    for (const b of fed.values()) device.free(b);
  }
}
