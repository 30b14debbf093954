// Saved models on disk (Node only): a directory with the graph as JSON (graphs/serialize.ts) and
// its params as safetensors, keyed by param name, for inference on any backend. Each file is
// written atomically (temp file, fsync, rename, fsync of the directory); the params file records
// the SHA-256 of the graph file it belongs with, so a save interrupted between the two renames
// is refused on load rather than pairing one model's graph with another's weights. Optimizer
// state is not saved: training checkpoints (train/checkpoint.ts) are for resuming.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Graph } from '../graphs/graph.js';
import { fromJSON, toJSON } from '../graphs/serialize.js';
import { Executable } from './executor.js';
import { ModelError, paramKey, paramNodes, paramsOf, type WeightSource } from './model.js';
import { sha256 } from './sha256.js';
import type { HostTensor } from './tensor.js';
import { fsyncDirectory, writeFileAtomic } from './train/checkpoint.js';
import { CheckpointError, decodeSafetensors, encodeSafetensors } from './train/safetensors.js';

/** The files of a model directory. */
export const MODEL_FILES = { graph: 'graph.json', params: 'params.safetensors' } as const;
const FORMAT = 'rheo.model/1';

export interface SavedModel {
  readonly graph: Graph;
  /** the params, keyed `param:<name>` as `setVariables` takes them */
  readonly params: Record<string, HostTensor>;
  /** the caller's metadata given to `saveModel` */
  readonly metadata: Record<string, string>;
}

export interface SaveModelOptions {
  /** extra string metadata, stored in the params file and returned by `loadModel` */
  readonly metadata?: Readonly<Record<string, string>>;
}


/**
 * Saves `graph` and the weights of its params to `dir` (created if absent; a model there is
 * replaced) as `graph.json` and `params.safetensors`, and returns `dir`. The weights come from
 * an executable (any backend; a training executable of the graph is fine: its optimizer state
 * is left out), its variables, or a training checkpoint. Pass the model graph, not the training
 * graph `grad`/`compile` made of it.
 *
 * @example
 * const step = compile(grad(mlp, 'loss'), { optimizer: adam(1e-3) });
 * // ... train ...
 * await saveModel('mlp-model', mlp, step);
 */
export async function saveModel(dir: string, graph: Graph, from: Executable | WeightSource, opts: SaveModelOptions = {}): Promise<string> {
  // a model may update its own state (a running statistic); one that updates its params was made by an optimizer
  if (graph.updates.some((u) => graph.nodes[u.target]!.op === 'param')) {
    throw new ModelError(dir, `graph '${graph.name}' updates its params (a training graph): save the model graph it was made from`);
  }
  const variables = from instanceof Executable ? await from.readVariables() : from;
  const params = paramsOf(graph, variables);
  const tensors = Object.create(null) as Record<string, HostTensor>;
  for (const p of paramNodes(graph)) {
    if (p.name === '__metadata__') throw new ModelError(dir, `a param named '__metadata__' cannot be stored in safetensors`);
    tensors[p.name] = params[paramKey(p.name)]!;
  }
  const graphBytes = new TextEncoder().encode(toJSON(graph));
  const meta: Record<string, string> = { ...opts.metadata, format: FORMAT, graph: graph.name, graph_sha256: sha256(graphBytes) };
  const paramBytes = encodeSafetensors(tensors, meta);
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(dir, MODEL_FILES.params, paramBytes);
  writeFileAtomic(dir, MODEL_FILES.graph, graphBytes);
  fsyncDirectory(dir);
  return dir;
}

function read(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ModelError(file, code === 'ENOENT' ? 'missing (no such file)' : `cannot read (${code ?? (e as Error).message})`);
  }
}

/**
 * Loads a model saved by `saveModel`: its graph and params, checked against each other, ready
 * for `compile(graph)` (or `compileAsync` on any backend) and `setVariables(params)`. A missing,
 * corrupt or mismatched file is a ModelError naming the file.
 *
 * @example
 * const { graph, params } = loadModel('mlp-model');
 * const infer = compile(graph);
 * infer.setVariables(params);
 * const { logits } = infer.runSync({ x }, ['logits']);
 */
export function loadModel(dir: string): SavedModel {
  const graphFile = join(dir, MODEL_FILES.graph);
  const paramsFile = join(dir, MODEL_FILES.params);
  const graphBytes = read(graphFile);
  let graph: Graph;
  try {
    graph = fromJSON(new TextDecoder().decode(graphBytes));
  } catch (e) {
    throw new ModelError(graphFile, (e as Error).message);
  }
  let decoded: ReturnType<typeof decodeSafetensors>;
  try {
    decoded = decodeSafetensors(read(paramsFile), paramsFile);
  } catch (e) {
    if (e instanceof CheckpointError) throw new ModelError(paramsFile, e.reason);
    throw e;
  }
  const { tensors, metadata } = decoded;
  if (metadata['format'] !== FORMAT) throw new ModelError(paramsFile, `metadata format is ${JSON.stringify(metadata['format'])}, expected '${FORMAT}'`);
  if (metadata['graph_sha256'] !== sha256(graphBytes)) {
    throw new ModelError(paramsFile, `was saved with another ${MODEL_FILES.graph} (its graph_sha256 differs): the files are from different saves`);
  }
  const names = new Set(paramNodes(graph).map((p) => p.name));
  const variables = Object.create(null) as Record<string, HostTensor>;
  for (const [name, t] of Object.entries(tensors)) {
    if (!names.has(name)) throw new ModelError(paramsFile, `has a tensor '${name}', which is not a param of graph '${graph.name}'`);
    variables[paramKey(name)] = t;
  }
  const params = paramsOf(graph, { path: paramsFile, variables });
  const own = Object.create(null) as Record<string, string>;
  for (const [k, v] of Object.entries(metadata)) if (!['format', 'graph', 'graph_sha256', 'data_sha256', 'header_sha256'].includes(k)) own[k] = v;
  return { graph, params, metadata: own };
}
