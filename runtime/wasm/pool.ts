// A pool of worker threads running kernel modules on the device's shared WebAssembly memory.
// A launch is published on a control block of shared Int32s (Atomics.wait/notify: no message
// per launch); the calling thread and the workers then take chunks of the split axis until none
// is left. Each worker instantiates a module once, on the first launch of it (the module comes
// on a MessagePort, read synchronously). What a chunk is, the device decides.

import type { MessagePort as NodeMessagePort, Worker as NodeWorker } from 'node:worker_threads';
import { DeviceUseError } from '../device.js';
import type { WasmMemory, WasmModule } from './wasm-api.js';

// control block (Int32 slots): SEQ (launch counter), DONE (workers done with the launch), KERNEL,
// FAILED, SPLIT (extent of the split axis), CHUNK (rows a grab takes), NEXT (the next chunk to
// grab), NARGS, JOIN (the launch's generation, a closed flag and how many workers joined it),
// STOP, then the arguments and one scratch address per thread
const SEQ = 0, DONE = 1, KERNEL = 2, FAILED = 3, SPLIT = 4, CHUNK = 5, NEXT = 6, NARGS = 7, JOIN = 8, STOP = 9, ARGS = 10, MAX_ARGS = 64, SCRATCH = ARGS + MAX_ARGS;
const CLOSED = 0x8000, COUNT = 0x7fff, GEN = 0x7fff;
/**
 * Chunks of a launch whose completion is published, one Int32 each (the launch's SEQ once done):
 * what `launchTaking` hands over as the chunks finish.
 */
export const MAX_FINISHED = 1024;

// Threads grab chunks from a shared counter rather than taking fixed shares: on a machine whose
// cores are busy with other work, a thread that gets less of a core simply takes fewer chunks.
// A worker takes part in a launch only by joining it (a compare-exchange on JOIN while the launch
// is open); the calling thread closes the launch once no chunk is left and waits only for the
// workers that joined. A worker that wakes late (its core busy elsewhere) finds the launch closed
// and waits for the next one, instead of the caller waiting for it to wake.
const WORKER_SOURCE = `
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { memory, control, finished, index, port } = workerData;
const ctl = new Int32Array(control);
const fin = new Int32Array(finished);
const imports = { env: { memory }, m: { exp: Math.exp, log: Math.log, sin: Math.sin, cos: Math.cos, tanh: Math.tanh, pow: Math.pow } };
const runs = new Map();
let seen = 0;
for (;;) {
  Atomics.wait(ctl, ${SEQ}, seen);
  const seq = Atomics.load(ctl, ${SEQ});
  if (seq === seen) continue;
  seen = seq;
  if (Atomics.load(ctl, ${STOP})) break;
  const gen = seq & ${GEN};
  let joined = false;
  for (;;) {
    const j = Atomics.load(ctl, ${JOIN});
    if ((j >>> 16) !== gen || (j & ${CLOSED})) break;
    if (Atomics.compareExchange(ctl, ${JOIN}, j, j + 1) === j) { joined = true; break; }
  }
  if (!joined) continue;
  try {
    const id = ctl[${KERNEL}];
    let run = runs.get(id);
    while (run === undefined) {
      const m = receiveMessageOnPort(port);
      if (m) runs.set(m.message.id, new WebAssembly.Instance(m.message.module, imports).exports.run);
      run = runs.get(id);
    }
    const args = Array.from(ctl.subarray(${ARGS}, ${ARGS} + ctl[${NARGS}]));
    const split = ctl[${SPLIT}], chunk = ctl[${CHUNK}], scratch = ctl[${SCRATCH} + 1 + index];
    for (let c = Atomics.add(ctl, ${NEXT}, 1); c * chunk < split; c = Atomics.add(ctl, ${NEXT}, 1)) {
      run(...args, c * chunk, Math.min(split, (c + 1) * chunk), scratch);
      if (c < ${MAX_FINISHED}) Atomics.store(fin, c, seq);
    }
  } catch (e) {
    Atomics.store(ctl, ${FAILED}, 1);
  }
  Atomics.add(ctl, ${DONE}, 1);
  Atomics.notify(ctl, ${DONE});
}
`;

interface NodeWorkerThreads {
  Worker: new (src: string, opts: object) => NodeWorker;
  MessageChannel: new () => { port1: NodeMessagePort; port2: NodeMessagePort };
}

function workerThreads(): NodeWorkerThreads | null {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return (p?.getBuiltinModule?.('node:worker_threads') as NodeWorkerThreads | undefined) ?? null;
}

/** Whether worker threads can share a WebAssembly memory here (Node with worker_threads). */
export function threadsAvailable(): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && workerThreads() !== null;
}

export class WasmThreadPool {
  /** worker threads (the calling thread is one more) */
  readonly workers: { worker: NodeWorker; port: NodeMessagePort; known: Set<number> }[] = [];
  private readonly ctl: Int32Array;
  /** per chunk of the launch, its SEQ once computed (the first MAX_FINISHED chunks) */
  private readonly finished: Int32Array;
  /** workers that joined the last launch (the calling thread not counted) */
  lastJoined = 0;

  constructor(memory: WasmMemory, workers: number) {
    const wt = workerThreads();
    if (!wt) throw new DeviceUseError('wasm device: worker threads are not available here');
    this.ctl = new Int32Array(new SharedArrayBuffer((SCRATCH + workers + 1) * 4));
    this.finished = new Int32Array(new SharedArrayBuffer(MAX_FINISHED * 4));
    for (let i = 0; i < workers; i++) {
      const { port1, port2 } = new wt.MessageChannel();
      const worker = new wt.Worker(WORKER_SOURCE, { eval: true, workerData: { memory, control: this.ctl.buffer, finished: this.finished.buffer, index: i, port: port2 }, transferList: [port2] });
      worker.unref();
      port1.unref();
      this.workers.push({ worker, port: port1, known: new Set() });
    }
  }

  get size(): number {
    return this.workers.length + 1;
  }

  /**
   * Runs `run(...args, lo, hi, scratch[thread])` over [0, split) in chunks of `chunk`, on this
   * thread and every worker, returning when all chunks are done; `meanwhile`, when given, runs on
   * this thread once the workers have been told, before it takes chunks itself. With `timed`,
   * returns how long this thread waited for the workers after its own chunks (ms); else 0.
   */
  launch(id: number, module: WasmModule, run: (...args: number[]) => void, args: readonly number[], split: number, chunk: number, scratch: readonly number[], timed = false, meanwhile?: () => void): number {
    const ctl = this.ctl;
    this.publish(id, module, args, split, chunk, scratch);
    let error: unknown = null;
    try {
      meanwhile?.();
      const s0 = scratch[0] ?? 0;
      for (let lo = Atomics.add(ctl, NEXT, 1) * chunk; lo < split; lo = Atomics.add(ctl, NEXT, 1) * chunk) run(...args, lo, Math.min(split, lo + chunk), s0);
    } catch (e) {
      error = e;
      Atomics.store(ctl, NEXT, Math.ceil(split / chunk)); // the workers stop taking chunks
    }
    return this.join(id, error, timed);
  }

  /**
   * Like `launch`, but this thread hands each chunk to `take(lo, hi)` as soon as it is computed,
   * while the workers compute the others: a kernel whose output is copied to the host overlaps
   * the copy with the computing. With no computed chunk to take, this thread computes the next
   * chunk no thread has taken yet, so that a worker that is slow to wake, or slowed by other work
   * on its core, delays only the chunk it holds. `meanwhile` runs here first, as in `launch`.
   * At most MAX_FINISHED chunks.
   */
  launchTaking(id: number, module: WasmModule, run: (...args: number[]) => void, args: readonly number[], split: number, chunk: number, scratch: readonly number[], take: (lo: number, hi: number) => void, timed = false, meanwhile?: () => void): number {
    const ctl = this.ctl, fin = this.finished;
    const chunks = Math.ceil(split / chunk);
    if (chunks > MAX_FINISHED) throw new DeviceUseError(`wasm device: ${chunks} chunks taken as they finish, of at most ${MAX_FINISHED}`);
    const seq = this.publish(id, module, args, split, chunk, scratch);
    const taken = new Uint8Array(chunks);
    let error: unknown = null;
    try {
      meanwhile?.();
      const s0 = scratch[0] ?? 0;
      // `first`: the lowest chunk not taken yet
      for (let first = 0, left = chunks; left > 0;) {
        let took = false;
        for (let c = first; c < chunks; c++) {
          if (taken[c] || Atomics.load(fin, c) !== seq) continue;
          take(c * chunk, Math.min(split, (c + 1) * chunk));
          taken[c] = 1;
          left--;
          took = true;
        }
        while (first < chunks && taken[first]) first++;
        if (took) continue;
        const j = Atomics.load(ctl, NEXT) < chunks ? Atomics.add(ctl, NEXT, 1) : chunks;
        if (j < chunks) {
          run(...args, j * chunk, Math.min(split, (j + 1) * chunk), s0);
          Atomics.store(fin, j, seq);
        } else if (Atomics.load(ctl, FAILED)) {
          throw new DeviceUseError(`wasm device: kernel ${id} failed on a worker thread`);
        }
      }
    } catch (e) {
      error = e;
      Atomics.store(ctl, NEXT, chunks);
    }
    return this.join(id, error, timed);
  }

  /** tells the workers of a launch; returns its SEQ */
  private publish(id: number, module: WasmModule, args: readonly number[], split: number, chunk: number, scratch: readonly number[]): number {
    const ctl = this.ctl;
    if (args.length > MAX_ARGS) throw new DeviceUseError(`wasm device: a kernel with ${args.length} arguments`);
    for (const w of this.workers) {
      if (!w.known.has(id)) {
        w.port.postMessage({ id, module });
        w.known.add(id);
      }
    }
    ctl[KERNEL] = id;
    ctl[NARGS] = args.length;
    for (let j = 0; j < args.length; j++) ctl[ARGS + j] = args[j]!;
    ctl[SPLIT] = split;
    ctl[CHUNK] = chunk;
    for (let t = 0; t <= this.workers.length; t++) ctl[SCRATCH + t] = scratch[t] ?? 0;
    const seq = (Atomics.load(ctl, SEQ) + 1) | 0;
    Atomics.store(ctl, NEXT, 0);
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, FAILED, 0);
    Atomics.store(ctl, JOIN, (seq & GEN) << 16);
    Atomics.store(ctl, SEQ, seq);
    Atomics.notify(ctl, SEQ);
    return seq;
  }

  /** no chunk is left: closes the launch to late workers and waits for those that joined it */
  private join(id: number, error: unknown, timed: boolean): number {
    const ctl = this.ctl;
    let j = Atomics.load(ctl, JOIN);
    for (let was = Atomics.compareExchange(ctl, JOIN, j, j | CLOSED); was !== j; was = Atomics.compareExchange(ctl, JOIN, j, j | CLOSED)) j = was;
    const joined = j & COUNT;
    this.lastJoined = joined;
    const t0 = timed ? performance.now() : 0;
    for (let d = Atomics.load(ctl, DONE); d < joined; d = Atomics.load(ctl, DONE)) Atomics.wait(ctl, DONE, d);
    if (error) throw error;
    if (Atomics.load(ctl, FAILED)) throw new DeviceUseError(`wasm device: kernel ${id} failed on a worker thread`);
    return timed ? performance.now() - t0 : 0;
  }

  /** Ends the workers. */
  close(): void {
    Atomics.store(this.ctl, STOP, 1);
    Atomics.add(this.ctl, SEQ, 1);
    Atomics.notify(this.ctl, SEQ);
    for (const w of this.workers) {
      w.port.close();
      void w.worker.terminate();
    }
    this.workers.length = 0;
  }
}
