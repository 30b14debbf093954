// The mesh runtime: devices as worker threads (Mesh), the Communicator they move tensors with
// (shared memory inside a process, NATS across processes), and the typed error for a failed
// device. Plans with send, recv and collective steps run through `runPlan` with a communicator;
// a sharded step (one plan per device from planSharded) loads and runs as a ShardedProgram, and
// calibrateMesh / timeKernels measure the mesh's Hardware for the step simulator.
// A pipeline (or pipeline × tensor) training step planned by planMeshPipeline runs as a MeshPipeline.

export { MeshError, chunkBounds, runCollective, RingCommunicator, type Communicator } from './communicator.js';
export { SharedMemoryCommunicator, sharedChannels, abortChannels, abortedBy, type SharedChannels } from './shared-memory.js';
export { Mesh, type MeshOptions, type MeshProgram, type MeshRun } from './mesh.js';
export { ShardedProgram, shardVariables, shardFeeds } from './sharded.js';
export { calibrateMesh, timeKernels, type Calibration, type CalibrateOptions } from './calibrate.js';
export { NatsCommunicator, type NatsMeshOptions } from './nats.js';
export type { HostValues, MeshBackend } from './protocol.js';
export { MeshPipeline, type MeshPipelineStep } from './pipeline.js';
export type { PipelineDeviceStep, PipelinePassTiming, MicroFeeds } from './pipeline-device.js';
export { planMeshPipeline, type MeshPipelinePlan, type MeshPipelineOptions, type PipelineDeviceProgram, type PassProgram, type PassInput, type StoreEntry, type DeviceOp, type Arrival } from '../../scheduler/parallel/pipeline-mesh.js';
