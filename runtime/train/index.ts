// Streaming online training: the trainer, its sources and operators, backpressure, live
// snapshots and inference, held-out evaluation, safetensors checkpoints and the Redis Streams
// source. Everything public about online training is exported from here.

export { train, stepSeed } from './trainer.js';
export type { TrainOptions, CheckpointOptions, StartInfo, StepEvent, TrainRun } from './trainer.js';
export { BoundedQueue, POLICIES } from './queue.js';
export type { BackpressurePolicy } from './queue.js';
export { fromReadable, simulated, pullPipe, withToken, tokenOf, batchSizeOf } from './sources.js';
export type { Batch, Source, SourceLike, ResumableSource } from './sources.js';
export { shuffleWindow, batchOf, stack } from './operators.js';
export { takeSnapshot, captureSnapshot, predictWith } from './snapshots.js';
export type { Snapshot, Prediction } from './snapshots.js';
export { evaluate, evaluateRecorded, accuracy } from './evaluate.js';
export type { EvalOptions, EvalResult } from './evaluate.js';
export { CheckpointError, encodeSafetensors, decodeSafetensors } from './safetensors.js';
export type { Safetensors } from './safetensors.js';
export { writeCheckpoint, readCheckpoint, loadLatest, listCheckpoints, restoreCheckpoint, checkpointFileName } from './checkpoint.js';
export type { StreamPosition, RngState, CheckpointState, Checkpoint, LoadedCheckpoint } from './checkpoint.js';
export { checkWritable, directoryStore } from './checkpoint.js';
export { openCheckpointStore } from './checkpoint-store.js';
export type { CheckpointStore } from './checkpoint-store.js';
export { redisSource, encodeEntry, decodeEntry, RedisSourceError } from './redis.js';
export type { RedisSource, RedisSourceOptions, RedisEntry } from './redis.js';
