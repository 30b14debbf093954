// A model's weights apart from training: picks a graph's params out of a training executable's
// variables or a training checkpoint (leaving optimizer state, step counts and anything else
// out), checking each is there with the graph's shape. Pure values in and out, browser-safe:
// reading and writing model directories is model-files.ts's job.

import { RheoError } from '../graphs/errors.js';
import type { Graph } from '../graphs/graph.js';
import type { HostTensor } from './tensor.js';

/** A saved model is missing, unreadable or corrupt, or its weights do not fit its graph. */
export class ModelError extends RheoError {
  constructor(
    /** the file (or directory, or `<variables>`) the problem is in */
    readonly file: string,
    readonly reason: string,
  ) {
    super(`model ${file}: ${reason}`);
  }
}

/** Variables by the names `Executable.setVariables` takes: `param:<name>`, `state:<name>`. */
export type VariableValues = Readonly<Record<string, HostTensor>>;

/** Where weights come from: variables (e.g. `exe.variables()`) or a checkpoint (`readCheckpoint(path)`). */
export type WeightSource = VariableValues | { readonly path: string; readonly variables: VariableValues };

const isCheckpoint = (s: WeightSource): s is { readonly path: string; readonly variables: VariableValues } =>
  typeof (s as { path?: unknown }).path === 'string' && typeof (s as { variables?: unknown }).variables === 'object';

/** The name `setVariables` and `variables()` use for the param called `name`. */
export const paramKey = (name: string): string => `param:${name}`;

/** The graph's params in node order: name, dtype and shape (every dim a number). */
export function paramNodes(graph: Graph): { name: string; dtype: string; shape: readonly number[] }[] {
  return graph.nodes
    .filter((n) => n.op === 'param')
    .map((n) => {
      if (!n.shape.every((d): d is number => typeof d === 'number')) {
        throw new ModelError(graph.name, `param '${n.name}' has a symbolic shape [${n.shape.join(', ')}]; a model's params must have fixed shapes`);
      }
      return { name: n.name!, dtype: n.dtype, shape: n.shape };
    });
}

const isFloat = (d: string) => d === 'f32' || d === 'f16';
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * The weights of `graph`'s params, keyed `param:<name>` as `setVariables` takes them, from a
 * training executable's variables or a training checkpoint: optimizer moments, step counts and
 * anything the graph does not have are left out, so a forward-only executable of the model can
 * take them. A param that is missing or has another shape or element type is a ModelError
 * naming the checkpoint file (or `<variables>`). The tensors are not copied.
 *
 * @example
 * const infer = compile(mlp);
 * infer.setVariables(paramsOf(mlp, readCheckpoint('ckpt/step-000000000500.safetensors')));
 */
export function paramsOf(graph: Graph, from: WeightSource): Record<string, HostTensor> {
  const [file, variables] = isCheckpoint(from) ? [from.path, from.variables] : ['<variables>', from];
  const out = Object.create(null) as Record<string, HostTensor>;
  for (const p of paramNodes(graph)) {
    const key = paramKey(p.name);
    const t = Object.hasOwn(variables, key) ? variables[key] : undefined;
    if (!t) throw new ModelError(file, `has no '${key}' (graph '${graph.name}' has param '${p.name}' [${p.shape.join(', ')}])`);
    if (!sameShape(t.shape, p.shape)) {
      throw new ModelError(file, `'${key}' has shape [${t.shape.join(', ')}], graph '${graph.name}' declares [${p.shape.join(', ')}]`);
    }
    if (t.dtype !== p.dtype && !(isFloat(t.dtype) && isFloat(p.dtype))) {
      throw new ModelError(file, `'${key}' is ${t.dtype}, graph '${graph.name}' declares ${p.dtype}`);
    }
    out[key] = t;
  }
  return out;
}
