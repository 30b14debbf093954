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
// STOP, PIPED (1: a pipelined launch), READY (chunks whose inputs are in place, pipelined), then
// the arguments, one scratch address per thread and, for a pipelined launch, one flag per chunk
// (0 pending, 1 done, 2 failed)
const SEQ = 0, DONE = 1, KERNEL = 2, FAILED = 3, SPLIT = 4, CHUNK = 5, NEXT = 6, NARGS = 7, JOIN = 8, STOP = 9, PIPED = 10, READY = 11, ARGS = 12, MAX_ARGS = 64, SCRATCH = ARGS + MAX_ARGS;
const CLOSED = 0x8000, COUNT = 0x7fff, GEN = 0x7fff;
/** the most chunks a pipelined launch may have (the device makes its chunks large enough) */
export const MAX_PIPED_CHUNKS = 4096;
/** chunks the calling thread copies in ahead of the one it copies out next (pipelined launches) */
const LOOKAHEAD = 4;
/** polls of a pipelined launch's flags before a thread sleeps on one (tens of microseconds) */
const SPIN = 20000;

// Threads grab chunks from a shared counter rather than taking fixed shares: on a machine whose
// cores are busy with other work, a thread that gets less of a core simply takes fewer chunks.
// A worker takes part in a launch only by joining it (a compare-exchange on JOIN while the launch
// is open); the calling thread closes the launch once no chunk is left and waits only for the
// workers that joined. A worker that wakes late (its core busy elsewhere) finds the launch closed
// and waits for the next one, instead of the caller waiting for it to wake.
const WORKER_SOURCE = `
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { memory, control, index, port, flags } = workerData;
const ctl = new Int32Array(control);
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
    if (ctl[${PIPED}] === 0) {
      for (let lo = Atomics.add(ctl, ${NEXT}, 1) * chunk; lo < split; lo = Atomics.add(ctl, ${NEXT}, 1) * chunk) {
        run(...args, lo, Math.min(split, lo + chunk), scratch);
      }
    } else {
      // the next chunk, once the calling thread has put its inputs in place (it feeds one in
      // microseconds: spin a while before sleeping); a chunk is grabbed only when it is ready, so
      // that the calling thread can take it meanwhile when it has nothing to copy
      for (let spin = 0; ; ) {
        const c = Atomics.load(ctl, ${NEXT});
        if (c * chunk >= split) break;
        const r = Atomics.load(ctl, ${READY});
        if (c >= r) {
          if (++spin > ${SPIN}) (Atomics.wait(ctl, ${READY}, r), spin = 0);
          continue;
        }
        if (Atomics.compareExchange(ctl, ${NEXT}, c, c + 1) !== c) continue;
        spin = 0;
        try {
          run(...args, c * chunk, Math.min(split, c * chunk + chunk), scratch);
          Atomics.store(ctl, flags + c, 1);
        } catch (e) {
          Atomics.store(ctl, flags + c, 2);
          throw e;
        } finally {
          Atomics.notify(ctl, flags + c);
        }
      }
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
  /** slot of the first chunk flag of a pipelined launch */
  private readonly flags: number;
  /** workers that joined the last launch (the calling thread not counted) */
  lastJoined = 0;

  constructor(memory: WasmMemory, workers: number) {
    const wt = workerThreads();
    if (!wt) throw new DeviceUseError('wasm device: worker threads are not available here');
    this.flags = SCRATCH + workers + 1;
    this.ctl = new Int32Array(new SharedArrayBuffer((this.flags + MAX_PIPED_CHUNKS) * 4));
    for (let i = 0; i < workers; i++) {
      const { port1, port2 } = new wt.MessageChannel();
      const worker = new wt.Worker(WORKER_SOURCE, { eval: true, workerData: { memory, control: this.ctl.buffer, index: i, port: port2, flags: this.flags }, transferList: [port2] });
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
    this.publish(id, module, args, split, chunk, scratch, 0, 0);
    let error: unknown = null;
    try {
      meanwhile?.();
      const s0 = scratch[0] ?? 0;
      for (let lo = Atomics.add(ctl, NEXT, 1) * chunk; lo < split; lo = Atomics.add(ctl, NEXT, 1) * chunk) run(...args, lo, Math.min(split, lo + chunk), s0);
    } catch (e) {
      error = e;
      Atomics.store(ctl, NEXT, Math.ceil(split / chunk)); // the workers stop taking chunks
    }
    return this.finish(id, error, timed);
  }

  /**
   * A launch pipelined with this thread's host copies: the workers run chunks (in the order
   * they grab them) while this thread puts chunk inputs in place (`feed(c)`, in order, a few
   * chunks ahead; every chunk is ready at once without `feed`) and takes chunk outputs away
   * (`drain(c)`, in order, as each is done), running a ready chunk itself when it has nothing to
   * copy. At most MAX_PIPED_CHUNKS chunks. Returns as `launch` does.
   */
  launchPiped(id: number, module: WasmModule, run: (...args: number[]) => void, args: readonly number[], split: number, chunk: number, feed: ((c: number) => void) | null, drain: (c: number) => void, timed = false): number {
    const ctl = this.ctl, flags = this.flags;
    const chunks = Math.ceil(split / chunk);
    if (chunks > MAX_PIPED_CHUNKS) throw new DeviceUseError(`wasm device: a pipelined launch of ${chunks} chunks (at most ${MAX_PIPED_CHUNKS})`);
    ctl.fill(0, flags, flags + chunks);
    let fed = feed ? 0 : chunks;
    this.publish(id, module, args, split, chunk, [], 1, fed);
    let error: unknown = null;
    let spin = 0;
    try {
      for (let out = 0; out < chunks; ) {
        const f = Atomics.load(ctl, flags + out);
        if (f === 1) drain(out++);
        else if (f === 2) throw new DeviceUseError(`wasm device: kernel ${id} failed on a worker thread`);
        else if (fed < chunks && fed < out + LOOKAHEAD) {
          feed!(fed++);
          Atomics.store(ctl, READY, fed);
          Atomics.notify(ctl, READY);
        } else {
          // nothing to copy: run the next chunk here if it is ready, else wait for chunk `out`
          const c = Atomics.load(ctl, NEXT);
          if (c < fed && Atomics.compareExchange(ctl, NEXT, c, c + 1) === c) {
            run(...args, c * chunk, Math.min(split, c * chunk + chunk), 0);
            Atomics.store(ctl, flags + c, 1);
          } else if ((c >= fed || c >= chunks) && ++spin > SPIN) {
            Atomics.wait(ctl, flags + out, 0, 1);
            spin = 0;
          }
        }
      }
    } catch (e) {
      error = e;
      Atomics.store(ctl, NEXT, chunks); // the workers stop taking chunks
      Atomics.store(ctl, READY, chunks); // and stop waiting for inputs (theirs are not drained)
      Atomics.notify(ctl, READY);
    }
    return this.finish(id, error, timed);
  }

  /** Hands the workers a launch and wakes them. */
  private publish(id: number, module: WasmModule, args: readonly number[], split: number, chunk: number, scratch: readonly number[], piped: 0 | 1, ready: number): void {
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
    ctl[PIPED] = piped;
    ctl[READY] = ready;
    for (let t = 0; t <= this.workers.length; t++) ctl[SCRATCH + t] = scratch[t] ?? 0;
    const seq = (Atomics.load(ctl, SEQ) + 1) | 0;
    Atomics.store(ctl, NEXT, 0);
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, FAILED, 0);
    Atomics.store(ctl, JOIN, (seq & GEN) << 16);
    Atomics.store(ctl, SEQ, seq);
    Atomics.notify(ctl, SEQ);
  }

  /** Closes the launch to late workers, waits for those that joined it, and reports failures. */
  private finish(id: number, error: unknown, timed: boolean): number {
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
