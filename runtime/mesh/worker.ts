// A device of a mesh: the entry of one worker thread. It owns a device (the single-threaded
// WebAssembly device, the JavaScript renderer with backend 'js', or a WebGPU device it acquires
// itself with backend 'webgpu') and the shared-memory communicator for its rank, keeps the plans
// and variables loaded into it, and runs them one request at a time through the one plan
// interpreter. Reads are asynchronous, so any device serves. It does not plan or choose what to send.

import { parentPort, workerData } from 'node:worker_threads';
import { HostDevice, type Device } from '../device.js';
import { WasmDevice, wasmAvailable } from '../wasm/device.js';
import { runPlan } from '../plan-interpreter.js';
import { Variables } from '../variables.js';
import type { Plan } from '../../scheduler/plan.js';
import { MeshError } from './communicator.js';
import { SharedMemoryCommunicator } from './shared-memory.js';
import { PipelineDevice } from './pipeline-device.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';

const init = workerData as WorkerInit;
const port = parentPort!;
/** The worker's own device, or why it has none (no WebGPU adapter). */
async function acquire(): Promise<Device | string> {
  // one thread per device: the mesh's devices are its parallelism
  if (init.backend === 'wasm') return new WasmDevice({ threads: 1 });
  if (init.backend === 'js') return new HostDevice('cpu');
  // loaded only here: CPU workers never load Dawn
  const [{ WebGpuBackend }, { WebGpuDevice }] = await Promise.all([import('../webgpu/backend.js'), import('../webgpu/gpu-device.js')]);
  const be = await WebGpuBackend.create();
  if (be) return new WebGpuDevice(be);
  if (init.backend === 'auto') return wasmAvailable() ? new WasmDevice({ threads: 1 }) : new HostDevice('cpu');
  return `found no WebGPU adapter: ${WebGpuBackend.unavailableReason || 'no reason given'}`;
}
const comm = new SharedMemoryCommunicator(init.rank, init.channels, init.deadlineMs);
let device: Device;
const programs = new Map<number, { plan: Plan; vars: Variables }>();
const pipelines = new Map<number, PipelineDevice>();

const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case 'load':
      programs.set(m.program, { plan: m.plan, vars: new Variables(device, m.variables) });
      return post({ type: 'done', id: m.id });
    case 'run': {
      const p = program(m.program);
      const r = await runPlan(p.plan, p.vars, m.feeds, { update: m.update, sync: device.caps.sync, comm });
      const values = await r.values;
      return post({ type: 'done', id: m.id, values, peakBytes: r.measuredPeakBytes }, values.map((v) => v.buffer as ArrayBuffer));
    }
    case 'read': {
      const values = [...(await program(m.program).vars.read(m.ids)).values()];
      return post({ type: 'done', id: m.id, values }, values.map((v) => v.buffer as ArrayBuffer));
    }
    case 'drop':
      programs.delete(m.program);
      pipelines.get(m.program)?.dispose();
      pipelines.delete(m.program);
      return post({ type: 'done', id: m.id });
    case 'load-pipeline':
      pipelines.set(m.program, new PipelineDevice(device, comm, m.pipeline, m.values));
      return post({ type: 'done', id: m.id });
    case 'run-pipeline': {
      const r = await pipeline(m.program).step(m.micros);
      return post({ type: 'done', id: m.id, pipeline: r }, r.values.map((v) => v.data.buffer as ArrayBuffer));
    }
    case 'read-pipeline': {
      const values = await pipeline(m.program).read(m.keys);
      return post({ type: 'done', id: m.id, values }, values.map((v) => v.buffer as ArrayBuffer));
    }
  }
}

function program(id: number): { plan: Plan; vars: Variables } {
  const p = programs.get(id);
  if (!p) throw new MeshError(init.rank, `has no program ${id} loaded`);
  return p;
}

function pipeline(id: number): PipelineDevice {
  const p = pipelines.get(id);
  if (!p) throw new MeshError(init.rank, `has no pipeline program ${id} loaded`);
  return p;
}

// one request at a time, in the order sent, the first once the device is acquired
let queue = acquire().then(
  (d) => {
    if (typeof d === 'string') return post({ type: 'unavailable', reason: d });
    device = d;
    post({ type: 'ready', description: device.description, caps: device.caps });
  },
  (e: unknown) => post({ type: 'unavailable', reason: `could not start its ${init.backend} device: ${e instanceof Error ? e.message : String(e)}` }),
);
port.on('message', (m: ToWorker) => {
  queue = queue.then(() =>
    handle(m).catch((e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      post({ type: 'error', id: m.id, name: err.name, message: err.message, ...(e instanceof MeshError ? { device: e.device } : {}) });
    }),
  );
});
