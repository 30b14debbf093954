// The messages between a mesh (the calling thread) and its device workers. Plans and variables go
// to a worker once (`load`); each run sends only its feeds and gets the outputs back with their
// memory transferred. Tensor data between devices never travels here: it goes through the shared
// slots (runtime/mesh/shared-memory.ts).

import type { DType } from '../../graphs/types.js';
import type { Plan } from '../../scheduler/plan.js';
import type { DeviceId } from '../../scheduler/steps.js';
import type { DeviceCaps } from '../../scheduler/caps.js';
import type { CpuArray } from '../cpu/render-js.js';
import type { SharedChannels } from './shared-memory.js';
import type { PipelineDeviceProgram } from '../../scheduler/parallel/pipeline-mesh.js';
import type { MicroFeeds, PipelineDeviceStep } from './pipeline-device.js';

/** A host tensor by node id, as a plan's feeds and variables are given. */
export type HostValues = ReadonlyMap<number, { dtype: DType; data: CpuArray }>;

/**
 * What each worker of a mesh owns: a CPU device ('wasm', 'js'), a WebGPU device it acquires
 * itself, or ('auto') a WebGPU device where it finds an adapter and else the CPU default.
 */
export type MeshBackend = 'wasm' | 'js' | 'webgpu' | 'auto';

export interface WorkerInit {
  readonly rank: DeviceId;
  readonly channels: SharedChannels;
  readonly deadlineMs: number;
  /** the device each worker owns: the WebAssembly device on one thread, the JavaScript renderer, or a WebGPU device of its own */
  readonly backend: MeshBackend;
}

export type ToWorker =
  | { readonly type: 'load'; readonly id: number; readonly program: number; readonly plan: Plan; readonly variables: HostValues }
  | { readonly type: 'run'; readonly id: number; readonly program: number; readonly feeds: HostValues; readonly update: boolean }
  | { readonly type: 'read'; readonly id: number; readonly program: number; readonly ids: readonly number[] }
  | { readonly type: 'drop'; readonly id: number; readonly program: number }
  // a pipeline program: its passes and store (values by key); steps take each micro-batch's feeds
  | { readonly type: 'load-pipeline'; readonly id: number; readonly program: number; readonly pipeline: PipelineDeviceProgram; readonly values: ReadonlyMap<string, CpuArray> }
  | { readonly type: 'run-pipeline'; readonly id: number; readonly program: number; readonly micros: readonly MicroFeeds[] }
  | { readonly type: 'read-pipeline'; readonly id: number; readonly program: number; readonly keys: readonly string[] };

export type FromWorker =
  // a worker's first message: its device and that device's caps, or why it has none ('unavailable')
  | { readonly type: 'ready'; readonly description: string; readonly caps: DeviceCaps }
  | { readonly type: 'unavailable'; readonly reason: string }
  | { readonly type: 'done'; readonly id: number; readonly values?: CpuArray[]; readonly peakBytes?: number; readonly pipeline?: PipelineDeviceStep }
  | { readonly type: 'error'; readonly id: number; readonly name: string; readonly message: string; readonly device?: DeviceId };
