// Training checkpoints on disk: every param and state tensor, the stream position and the RNG
// state in one safetensors file, written atomically (temp file in the same directory, fsync,
// rename, fsync of the directory), the last K kept. Loading validates everything and falls back
// to the previous good checkpoint. It does not decide when to checkpoint; the trainer does.
// Node only (node:fs): the package entry 'rheo/node'; `train` loads it on demand as the
// directory store (checkpoint-store.ts).

import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { HostTensor } from '../tensor.js';
import { dict, dictOf } from '../../graphs/dict.js';
import type { CheckpointStore } from './checkpoint-store.js';
import { CheckpointError, decodeSafetensors, encodeSafetensors, DATA_CHECKSUM, HEADER_CHECKSUM } from './safetensors.js';

export { CheckpointError } from './safetensors.js';
export { restoreCheckpoint } from './checkpoint-store.js';

/**
 * Where a stream is: `index` counts the source items before it (all trained or dropped);
 * `token` is the source's own name for the last of them (e.g. a Redis entry ID), if it has one.
 */
export interface StreamPosition {
  readonly index: number;
  readonly token?: string;
}

/** The trainer's counter-based RNG: per-step seeds are a pure function of (seed, counter). */
export interface RngState {
  readonly seed: number;
  readonly counter: number;
}

export interface CheckpointState {
  /** optimizer steps taken */
  readonly step: number;
  readonly position: StreamPosition;
  readonly rng: RngState;
  /** `exe.variables()`: every param and state tensor, optimizer moments and step count included */
  readonly variables: Readonly<Record<string, HostTensor>>;
  /** extra string metadata of the caller's */
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface Checkpoint extends CheckpointState {
  readonly path: string;
}

const FORMAT = 'rheo.checkpoint/1';
const FILE = /^step-(\d{12})\.safetensors$/;
const TEMP = /^\.step-\d{12}\.safetensors\.(\d+)\.\d+\.tmp$/;
const OWN_KEYS = new Set(['format', 'step', 'position', 'stream_token', 'rng', DATA_CHECKSUM, HEADER_CHECKSUM]);
let tempCounter = 0;

export function checkpointFileName(step: number): string {
  return `step-${String(step).padStart(12, '0')}.safetensors`;
}

/** Checkpoint files in `dir`, newest (highest step) first; an absent dir has none. */
export function listCheckpoints(dir: string): { path: string; step: number }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names
    .map((n) => [n, FILE.exec(n)] as const)
    .filter((x): x is readonly [string, RegExpExecArray] => x[1] !== null)
    .map(([n, m]) => ({ path: join(dir, n), step: Number(m[1]) }))
    .sort((a, b) => b.step - a.step);
}

/**
 * Writes `state` as `dir/step-<step>.safetensors` atomically and durably, then deletes all but
 * the newest `keep` checkpoints (default 3). Returns the path written.
 *
 * @example
 * writeCheckpoint('ckpt', { step, position: { index: step }, rng: { seed, counter: step }, variables: exe.variables() });
 */
export function writeCheckpoint(dir: string, state: CheckpointState, opts: { keep?: number } = {}): string {
  const keep = opts.keep ?? 3;
  if (!(Number.isInteger(keep) && keep >= 1)) throw new RangeError(`writeCheckpoint: keep must be a positive integer, got ${keep}`);
  mkdirSync(dir, { recursive: true });
  const meta = dictOf<string>(state.metadata ?? {});
  for (const k of Object.keys(meta)) if (OWN_KEYS.has(k)) delete meta[k];
  meta['format'] = FORMAT;
  meta['step'] = String(state.step);
  meta['position'] = String(state.position.index);
  if (state.position.token !== undefined) meta['stream_token'] = state.position.token;
  meta['rng'] = JSON.stringify({ seed: state.rng.seed, counter: state.rng.counter });
  const bytes = encodeSafetensors(state.variables, meta);
  const path = writeFileAtomic(dir, checkpointFileName(state.step), bytes);
  fsyncDirectory(dir);
  prune(dir, keep);
  return path;
}

/**
 * Makes `dir` if missing and writes, syncs and removes a probe file there: a directory that
 * cannot take checkpoints (read-only, a path under a file, no permission, full) is a
 * CheckpointError now rather than at the first checkpoint, after training time is spent.
 */
export function checkWritable(dir: string): void {
  const probe = join(dir, `.probe.${process.pid}.${tempCounter++}.tmp`);
  let step = 'create the directory';
  try {
    mkdirSync(dir, { recursive: true });
    step = 'write a file in it';
    const fd = openSync(probe, 'wx');
    try {
      writeSync(fd, new Uint8Array(1));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    step = 'remove a file from it';
    unlinkSync(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new CheckpointError(dir, `cannot ${step} (${code}); checkpoints need a writable directory`);
  }
}

/**
 * Writes `bytes` to `dir/name` atomically: a temp file in the same directory, fsync-ed, then
 * renamed over the name (the caller fsyncs the directory once it has written all it writes).
 * Returns the path.
 */
export function writeFileAtomic(dir: string, name: string, bytes: Uint8Array): string {
  const tmp = join(dir, `.${name}.${process.pid}.${tempCounter++}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const path = join(dir, name);
  renameSync(tmp, path);
  return path;
}

/** fsync a directory so a rename in it is durable (a no-op where the platform cannot). */
export function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (e) {
    // Some platforms cannot open or fsync a directory (Windows); the rename is still atomic there.
    if (!['EISDIR', 'EPERM', 'EINVAL', 'EBADF'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function prune(dir: string, keep: number): void {
  for (const { path } of listCheckpoints(dir).slice(keep)) unlinkSync(path);
  // Temp files of processes that died mid-write are never loaded; remove them once their writer is gone.
  for (const n of readdirSync(dir)) {
    const m = TEMP.exec(n);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) {
      try {
        unlinkSync(join(dir, n));
      } catch {
        // another process may have removed it first
      }
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Reads and validates one checkpoint file; anything wrong with it is a CheckpointError. */
export function readCheckpoint(path: string): Checkpoint {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CheckpointError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const { tensors, metadata } = decodeSafetensors(bytes, path);
  const fail = (reason: string): never => {
    throw new CheckpointError(path, reason);
  };
  if (metadata['format'] !== FORMAT) fail(`metadata format is ${JSON.stringify(metadata['format'])}, expected '${FORMAT}'`);
  const int = (key: string): number => {
    const v = metadata[key];
    if (v === undefined || !/^\d{1,15}$/.test(v)) return fail(`metadata '${key}' is ${JSON.stringify(v)}, expected a non-negative integer`);
    return Number(v);
  };
  const step = int('step');
  const index = int('position');
  const fileStep = FILE.exec(path.split(/[\\/]/).pop()!);
  if (fileStep && Number(fileStep[1]) !== step) fail(`file name says step ${Number(fileStep[1])}, metadata says ${step}`);
  let rng: RngState;
  try {
    const r = JSON.parse(metadata['rng'] ?? '') as Record<string, unknown>;
    if (!Number.isSafeInteger(r['seed']) || !Number.isSafeInteger(r['counter'])) throw new Error('fields');
    rng = { seed: r['seed'] as number, counter: r['counter'] as number };
  } catch {
    return fail(`metadata 'rng' is ${JSON.stringify(metadata['rng'])}, expected {"seed":int,"counter":int}`);
  }
  const token = metadata['stream_token'];
  const extra = dict(Object.entries(metadata).filter(([k]) => !OWN_KEYS.has(k)));
  return { path, step, position: token === undefined ? { index } : { index, token }, rng, variables: tensors, metadata: extra };
}

export interface LoadedCheckpoint extends Checkpoint {
  /** newer checkpoints that were refused, and why */
  readonly skipped: readonly { readonly path: string; readonly reason: string }[];
}

/**
 * The newest checkpoint in `dir` that validates, skipping (and reporting) refused ones; undefined
 * when there is none at all. If every checkpoint there is refused, that is a CheckpointError.
 */
export function loadLatest(dir: string): LoadedCheckpoint | undefined {
  const files = listCheckpoints(dir);
  const skipped: { path: string; reason: string }[] = [];
  for (const { path } of files) {
    try {
      return { ...readCheckpoint(path), skipped };
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      skipped.push({ path, reason: e.reason });
    }
  }
  if (files.length === 0) return undefined;
  throw new CheckpointError(dir, `no valid checkpoint: ${skipped.map((s) => `${s.path}: ${s.reason}`).join('; ')}`);
}

/**
 * The directory store `train` uses for `checkpoint: { dir }`: `open` checks the directory is
 * writable, `loadLatest` and `write` are this module's functions on `dir`.
 */
export function directoryStore(dir: string): CheckpointStore {
  return {
    location: dir,
    open: () => checkWritable(dir),
    loadLatest: () => loadLatest(dir),
    write: (state, keep) => writeCheckpoint(dir, state, { keep }),
  };
}
