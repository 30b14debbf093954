// The mesh runtime: devices as worker threads (Mesh), the Communicator they move tensors with
// (shared memory inside a process, NATS across processes), and the typed error for a failed
// device. Plans with send, recv and collective steps run through `runPlan` with a communicator;
// a sharded step (one plan per device from planSharded) loads and runs as a ShardedProgram.

export { MeshError, chunkBounds, runCollective, RingCommunicator, type Communicator } from './communicator.js';
export { SharedMemoryCommunicator, sharedChannels, abortChannels, abortedBy, type SharedChannels } from './shared-memory.js';
export { Mesh, type MeshOptions, type MeshProgram, type MeshRun } from './mesh.js';
export { ShardedProgram, shardVariables, shardFeeds } from './sharded.js';
export { NatsCommunicator, type NatsMeshOptions } from './nats.js';
export type { HostValues } from './protocol.js';
