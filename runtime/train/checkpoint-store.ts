// Where a training run keeps its checkpoints. The trainer talks to a `CheckpointStore` only;
// `checkpoint: { dir }` means the directory store of checkpoint.ts (Node: atomic safetensors
// files), which is loaded with a dynamic import when such a run starts, so that the main entry,
// and a browser bundle of it, carries no file-system code. Anything else (memory, IndexedDB, a
// server) is `checkpoint: { store }`. Restoring a checkpoint into an executable is here too: it
// touches no files.

import { hasName, lookup } from '../../graphs/dict.js';
import type { Executable } from '../executor.js';
import type { Checkpoint, CheckpointState, LoadedCheckpoint } from './checkpoint.js';
import { CheckpointError } from './safetensors.js';

/**
 * Keeps a run's checkpoints. Methods may return promises; the trainer awaits them.
 *
 * @example
 * // checkpoints kept in memory (in a browser, IndexedDB would keep `encodeSafetensors` bytes)
 * const saved: CheckpointState[] = [];
 * const store: CheckpointStore = {
 *   location: 'memory',
 *   loadLatest: () => { const s = saved.at(-1); return s && { ...s, path: `memory:${s.step}`, skipped: [] }; },
 *   write: (state, keep) => { saved.push(state); saved.splice(0, saved.length - keep); return `memory:${state.step}`; },
 * };
 * train(step, source, { checkpoint: { store, every: 100 } });
 */
export interface CheckpointStore {
  /** where the checkpoints are, for messages (a directory, a URL, 'memory') */
  readonly location: string;
  /**
   * Called once before the first step: fail here (a CheckpointError) when checkpoints cannot be
   * written, before training time is spent. The directory store makes the directory and writes a
   * probe file.
   */
  open?(): void | Promise<void>;
  /**
   * The newest checkpoint that validates, with newer ones that were refused and why; undefined
   * when there is none.
   */
  loadLatest(): LoadedCheckpoint | undefined | Promise<LoadedCheckpoint | undefined>;
  /** Writes `state` durably, keeps the newest `keep` checkpoints, and names the one written. */
  write(state: CheckpointState, keep: number): string | Promise<string>;
}

/** What `train`'s `checkpoint` option says about where checkpoints go. */
export interface CheckpointPlace {
  readonly dir?: string;
  readonly store?: CheckpointStore;
}

// A variable, not a literal: bundlers leave the directory store (node:fs) out of browser bundles.
const DIRECTORY_STORE = './checkpoint.js';

/**
 * The store a run's checkpoint option names: `store` itself, or for `dir` the directory store,
 * loaded now (Node only; elsewhere a CheckpointError says to pass a store).
 */
export async function openCheckpointStore(place: CheckpointPlace): Promise<CheckpointStore> {
  if (place.store && place.dir !== undefined) throw new CheckpointError(place.dir, "the checkpoint option takes 'dir' or 'store', not both");
  if (place.store) return place.store;
  if (typeof place.dir !== 'string' || place.dir === '') throw new CheckpointError(String(place.dir), "the checkpoint option needs 'dir' (a directory, in Node) or 'store'");
  if (!(globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node) {
    throw new CheckpointError(place.dir, "checkpoints in a directory need Node; here, pass 'checkpoint.store' (see CheckpointStore)");
  }
  const { directoryStore } = (await import(/* @vite-ignore */ DIRECTORY_STORE)) as typeof import('./checkpoint.js');
  return directoryStore(place.dir);
}

/**
 * Puts a checkpoint's variables into `exe`, after checking that they are exactly its params and
 * state with the same sizes and element types; a mismatch is a CheckpointError (nothing is written then).
 */
export function restoreCheckpoint(exe: Executable, ckpt: Checkpoint): void {
  const current = exe.variableLayout();
  const fail = (reason: string): never => {
    throw new CheckpointError(ckpt.path, `does not fit graph '${exe.graph.name}': ${reason}`);
  };
  for (const [name, t] of Object.entries(current)) {
    const c = lookup(ckpt.variables, name);
    if (!c) fail(`no tensor '${name}'`);
    if (c!.data.length !== t.elements || c!.data.constructor.name !== t.arrayType) {
      fail(`'${name}' is ${c!.data.constructor.name}[${c!.data.length}], the graph's is ${t.arrayType}[${t.elements}]`);
    }
  }
  for (const name of Object.keys(ckpt.variables)) if (!hasName(current, name)) fail(`it has '${name}', which the graph does not`);
  exe.setVariables(ckpt.variables);
}
