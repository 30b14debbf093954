// rheo's Node-only parts, the package entry 'rheo/node': training checkpoints in a directory
// (atomic safetensors files). The main entry ('rheo') runs in browsers too and loads the directory
// store itself when `train` is given `checkpoint: { dir }`; import from here to read, write or
// list checkpoint files yourself. Datasets from files are 'rheo/data', Redis Streams 'rheo/redis'.

export { writeCheckpoint, readCheckpoint, loadLatest, listCheckpoints, checkpointFileName, checkWritable, directoryStore } from './runtime/train/checkpoint.js';
export type { StreamPosition, RngState, CheckpointState, Checkpoint, LoadedCheckpoint } from './runtime/train/checkpoint.js';

// Saved models: a directory with the graph (JSON) and its params (safetensors), for inference.
export { saveModel, loadModel, MODEL_FILES } from './runtime/model-files.js';
export type { SavedModel, SaveModelOptions } from './runtime/model-files.js';
