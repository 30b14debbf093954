// A pool of worker threads running kernel modules on the device's shared WebAssembly memory.
// The calling thread takes the first share of a launch and waits for the others on a control
// block of shared Int32s (Atomics.wait/notify): no message per launch. Each worker instantiates
// a module once, on the first launch that needs it (the module comes on a MessagePort, read
// synchronously). It does not split work: the device gives each thread its arguments.

import type { MessagePort as NodeMessagePort, Worker as NodeWorker } from 'node:worker_threads';
import { DeviceUseError } from '../device.js';
import type { WasmMemory, WasmModule } from './wasm-api.js';

// control block (Int32 slots): SEQ (launch counter), DONE (finished workers), KERNEL, FAILED,
// then ARGS slots per worker: count, then the arguments
const SEQ = 0, DONE = 1, KERNEL = 2, FAILED = 3, ARGS = 8, ARG_SLOTS = 64;

const WORKER_SOURCE = `
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { memory, control, index, port } = workerData;
const ctl = new Int32Array(control);
const imports = { env: { memory }, m: { exp: Math.exp, log: Math.log, sin: Math.sin, cos: Math.cos, tanh: Math.tanh, pow: Math.pow } };
const runs = new Map();
let seen = 0;
for (;;) {
  Atomics.wait(ctl, ${SEQ}, seen);
  const seq = Atomics.load(ctl, ${SEQ});
  if (seq === seen) continue;
  seen = seq;
  const id = ctl[${KERNEL}];
  if (id < 0) break;
  try {
    const base = ${ARGS} + index * ${ARG_SLOTS};
    const n = ctl[base];
    if (n > 0) {
      // a module is posted before the first launch that gives this worker a share of it
      let run = runs.get(id);
      while (run === undefined) {
        const m = receiveMessageOnPort(port);
        if (m) runs.set(m.message.id, new WebAssembly.Instance(m.message.module, imports).exports.run);
        run = runs.get(id);
      }
      run(...Array.from(ctl.subarray(base + 1, base + 1 + n)));
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

  constructor(memory: WasmMemory, workers: number) {
    const wt = workerThreads();
    if (!wt) throw new DeviceUseError('wasm device: worker threads are not available here');
    this.ctl = new Int32Array(new SharedArrayBuffer((ARGS + ARG_SLOTS * Math.max(workers, 1)) * 4));
    for (let i = 0; i < workers; i++) {
      const { port1, port2 } = new wt.MessageChannel();
      const worker = new wt.Worker(WORKER_SOURCE, { eval: true, workerData: { memory, control: this.ctl.buffer, index: i, port: port2 }, transferList: [port2] });
      worker.unref();
      port1.unref();
      this.workers.push({ worker, port: port1, known: new Set() });
    }
  }

  get size(): number {
    return this.workers.length + 1;
  }

  /**
   * Runs `run(...shares[0])` here and `shares[1 + i]` on worker i (an empty share: nothing),
   * returning when all are done.
   */
  launch(id: number, module: WasmModule, run: (...args: number[]) => void, shares: readonly (readonly number[])[]): void {
    const ctl = this.ctl;
    this.workers.forEach((w, i) => {
      const args = shares[i + 1] ?? [];
      if (args.length > ARG_SLOTS - 1) throw new DeviceUseError(`wasm device: a kernel with ${args.length} arguments`);
      if (args.length > 0 && !w.known.has(id)) {
        w.port.postMessage({ id, module });
        w.known.add(id);
      }
      const base = ARGS + i * ARG_SLOTS;
      ctl[base] = args.length;
      for (let j = 0; j < args.length; j++) ctl[base + 1 + j] = args[j]!;
    });
    ctl[KERNEL] = id;
    Atomics.store(ctl, DONE, 0);
    Atomics.store(ctl, FAILED, 0);
    Atomics.add(ctl, SEQ, 1);
    Atomics.notify(ctl, SEQ);
    let error: unknown = null;
    try {
      run(...shares[0]!);
    } catch (e) {
      error = e;
    }
    const n = this.workers.length;
    for (let d = Atomics.load(ctl, DONE); d < n; d = Atomics.load(ctl, DONE)) Atomics.wait(ctl, DONE, d);
    if (error) throw error;
    if (Atomics.load(ctl, FAILED)) throw new DeviceUseError(`wasm device: kernel ${id} failed on a worker thread`);
  }

  /** Ends the workers. */
  close(): void {
    this.ctl[KERNEL] = -1;
    Atomics.add(this.ctl, SEQ, 1);
    Atomics.notify(this.ctl, SEQ);
    for (const w of this.workers) {
      w.port.close();
      void w.worker.terminate();
    }
    this.workers.length = 0;
  }
}
