// The WebGPU autotuner's vocabulary and memory: which variants a kernel can be rendered in
// (matmul kernel and tile, how a reduction splits over workgroups), a key per kernel signature
// (kind, shapes, dtypes, operand layout), and a store of the fastest variant per adapter and key —
// in memory, and in Node also in a JSON file written atomically (by default
// `$XDG_CACHE_HOME/rheo/webgpu-tuning.json`; `RHEO_TUNING_CACHE` overrides it, '' keeps it in
// memory). Tables can be exported and imported, so tuned choices can ship with an application.
// Timing the candidates is autotune.ts's job; this module never touches a GPU.

import { RheoError } from '../../ops/errors.js';
import { numel } from '../../ops/types.js';
import type { Kernel, MatmulOperand } from '../../ops/kernel-ir.js';
import {
  registerTile, splitKChunk, type MatmulVariant, type RegisterTile, type WorkgroupTile,
} from './render-wgsl-matmul.js';
import { chooseParts, pow2Floor, splittableReductions, type ReduceVariant } from './render-wgsl-reduce.js';
import type { SubgroupMatrixConfig } from './device.js';
import { blockOf, defaultMatmulReduceTile, reduceGroups, type MatmulReduceTile } from './render-wgsl-matmul-reduce.js';
import {
  f16Shapes, planSubgroupMatrix, subgroupMatrixOperands, type SubgroupMatrixDevice, type SubgroupMatrixShape,
} from './render-wgsl-subgroup-matrix.js';

/** How one kernel is rendered; what the tuner chooses among. */
export type KernelVariant =
  | {
    readonly kind: 'matmul';
    readonly matmul: MatmulVariant | 'subgroup-matrix';
    /** 'register': the tile (default: `registerTile` of the output shape) */
    readonly tile?: RegisterTile;
    /** 'workgroup': the shape (default 16x16, BK 16) */
    readonly wgTile?: WorkgroupTile;
    /** 'splitk': k elements per chunk (default `splitKChunk`) */
    readonly kChunk?: number;
    /** 'subgroup-matrix': the adapter's config it multiplies in */
    readonly shape?: SubgroupMatrixShape;
  }
  | { readonly kind: 'reduce'; readonly reduce: ReduceVariant }
  /** a matmul with a fused reduction: its register tile and column groups */
  | { readonly kind: 'matmulReduce'; readonly tile: MatmulReduceTile };

/** A tuning table could not be read (bad JSON, wrong version or shape); names the source. */
export class TuningError extends RheoError {
  constructor(source: string, detail: string) {
    super(`WebGPU tuning table from ${source}: ${detail}`);
  }
}

export interface TuningRecord {
  readonly variant: KernelVariant;
  /** median milliseconds of one launch of the winner */
  readonly ms: number;
  /** milliseconds of each candidate timed, by its JSON text */
  readonly timings: Readonly<Record<string, number>>;
  /** how they were timed: the GPU's timestamp queries, or wall clock until the queue was done (absent in older tables) */
  readonly clock?: 'timestamp-query' | 'wall-clock';
}

const VERSION = 1;

/** A Node module name built at run time, so that bundlers for the browser leave the import alone. */
const nodeModule = (name: string): string => `node:${name}`;

const layout = (op: MatmulOperand) => (op.gather ? 'g' : op.colStride === 1 ? 'n' : op.rowStride === 1 ? 't' : 's');

/**
 * The signature a tuned choice is kept under: kind, shapes and dtypes (and a matmul's operand
 * layouts), or null for a kernel with nothing to choose. Kernels with equal keys run equally fast
 * in every variant as far as the tuner cares.
 */
export function tuningKey(k: Kernel): string | null {
  const dt = [...k.inputs.map((p) => p.dtype), k.out.dtype].join(',');
  if (k.kind === 'matmul') {
    return `matmul ${k.batch.join('x') || '-'} ${k.m}x${k.n}x${k.k} ${layout(k.a)}${layout(k.b)} ${dt}` +
      `${k.epilogue ? ' epilogue' : ''}${k.reduce ? ` reduce ${k.reduce.op} keep ${k.reduce.keep}` : ''}`;
  }
  if (k.kind !== 'map') return null;
  const rs = splittableReductions(k.expr);
  if (!rs) return null;
  const lens = rs.map((r) => `${r.op}:${r.vars.reduce((a, v) => a * v.size, 1)}`).join(',');
  return `reduce [${k.out.shape.join(',')}] ${lens} ${dt}`;
}

/** What a device offers the variants (the backend reads these off its adapter). */
export interface VariantLimits {
  readonly workgroupMatmul: boolean;
  readonly subgroups: boolean;
  readonly maxInvocations: number;
  /**
   * the adapter's subgroup-matrix configs when the device has 'chromium-experimental-subgroup-matrix'
   * (and 'shader-f16'), with what its kernels may use; absent otherwise
   */
  readonly subgroupMatrix?: { readonly configs: readonly SubgroupMatrixConfig[]; readonly device: SubgroupMatrixDevice };
}

const WORKGROUP_TILES: readonly WorkgroupTile[] = [
  { wt: 16, bk: 16 },
  { wt: 16, bk: 16, vec4: true },
  { wt: 16, bk: 32, vec4: true },
  { wt: 8, bk: 16, vec4: true },
];

const REGISTER_TILES: readonly RegisterTile[] = [
  { tm: 16, tn: 16, wx: 8, wy: 4 },
  { tm: 8, tn: 8, wx: 8, wy: 8 },
  { tm: 8, tn: 4, wx: 8, wy: 8 },
  { tm: 4, tn: 8, wx: 16, wy: 4 },
];

/** The variants worth timing for a kernel (the heuristic default first); empty when there is no choice. */
export function candidates(k: Kernel, lim: VariantLimits, heuristic: KernelVariant | null): KernelVariant[] {
  const out: KernelVariant[] = heuristic ? [heuristic] : [];
  const add = (v: KernelVariant) => {
    if (!out.some((o) => JSON.stringify(o) === JSON.stringify(v))) out.push(v);
  };
  if (k.kind === 'matmul' && k.reduce) {
    // a fused reduction: the register tiles, each with its default column groups, one group and
    // four times the default
    const def = defaultMatmulReduceTile(k);
    add({ kind: 'matmulReduce', tile: def });
    add({ kind: 'matmulReduce', tile: { ...def, groups: 1 } });
    for (const t of REGISTER_TILES) {
      if (t.wx * t.wy > lim.maxInvocations) continue;
      for (const target of [256, 1024]) add({ kind: 'matmulReduce', tile: { ...t, groups: reduceGroups(k, blockOf({ ...t, groups: 1 }), target) } });
    }
    // the workgroup kernel's tiles, where the device runs them
    if (lim.workgroupMatmul) {
      for (const workgroup of WORKGROUP_TILES) {
        if (workgroup.wt * workgroup.wt > lim.maxInvocations) continue;
        for (const target of [256, 2048]) add({ kind: 'matmulReduce', tile: { workgroup, groups: reduceGroups(k, blockOf({ workgroup, groups: 1 }), target) } });
      }
    }
  } else if (k.kind === 'matmul') {
    add({ kind: 'matmul', matmul: 'register', tile: registerTile(k.m, k.n) });
    for (const tile of REGISTER_TILES) if (tile.wx * tile.wy <= lim.maxInvocations) add({ kind: 'matmul', matmul: 'register', tile });
    // the default tiles with vec4 stores, where rows are whole vec4s
    if (k.n % 4 === 0 && k.out.dtype === 'f32') {
      add({ kind: 'matmul', matmul: 'register', tile: { ...registerTile(k.m, k.n), vec4Store: true } });
      if (lim.workgroupMatmul) add({ kind: 'matmul', matmul: 'workgroup', wgTile: { wt: 16, bk: 16, vec4: true, vec4Store: true } });
    }
    if (lim.workgroupMatmul) {
      for (const wgTile of WORKGROUP_TILES) if (wgTile.wt * wgTile.wt <= lim.maxInvocations) add({ kind: 'matmul', matmul: 'workgroup', wgTile });
    }
    // subgroup matrices for f16 operands, in each f16 config of the adapter whose tiles fit
    if (lim.subgroupMatrix && subgroupMatrixOperands(k)) {
      for (const shape of f16Shapes(lim.subgroupMatrix.configs)) {
        if (planSubgroupMatrix(shape, lim.subgroupMatrix.device)) add({ kind: 'matmul', matmul: 'subgroup-matrix', shape });
      }
    }
    // split-K where k is long against the outputs: the default chunk, and a quarter and 4x of it
    const outs = k.m * k.n * k.batch.reduce((a, b) => a * b, 1);
    if (k.k >= 256 && k.k >= outs / 4) {
      const c = splitKChunk(k);
      for (const kChunk of [c, Math.max(64, c >> 2), Math.min(16384, c * 4)]) {
        if (Math.ceil(k.k / kChunk) >= 2) add({ kind: 'matmul', matmul: 'splitk', kChunk });
      }
    }
  } else if (k.kind === 'map') {
    const rs = splittableReductions(k.expr);
    if (!rs) return [];
    const total = numel(k.out.shape);
    const len = Math.max(...rs.map((r) => r.vars.reduce((a, v) => a * v.size, 1)));
    add({ kind: 'reduce', reduce: { split: 'off', subgroups: false } });
    for (const wg of [64, 256].filter((w) => w <= pow2Floor(lim.maxInvocations))) {
      for (const sg of lim.subgroups ? [false, true] : [false]) {
        const seen = new Set<number>();
        for (const split of [2, 8, 32, 128, 512, 2048]) {
          const parts = chooseParts({ split, subgroups: sg }, total, len, wg);
          if (parts <= 1 || seen.has(parts)) continue;
          seen.add(parts);
          add({ kind: 'reduce', reduce: { split, subgroups: sg, workgroupSize: wg } });
        }
      }
    }
  }
  return out.length > 1 ? out : [];
}

// ---------------------------------------------------------------- the store

/** Where the tuning table lives in Node: RHEO_TUNING_CACHE, else under XDG_CACHE_HOME or ~/.cache; null in browsers. */
export function defaultTuningPath(): string | null {
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  if (!proc?.versions?.node) return null;
  const env = proc.env;
  if (env.RHEO_TUNING_CACHE !== undefined) return env.RHEO_TUNING_CACHE || null;
  const base = env.XDG_CACHE_HOME || (env.HOME ? `${env.HOME}/.cache` : null);
  return base ? `${base}/rheo/webgpu-tuning.json` : null;
}

/**
 * The fastest variant per adapter and kernel signature. `path` null keeps it in memory only.
 *
 * ```ts
 * const store = new TuningStore(null);
 * store.importTuning(shippedJson);              // choices measured on the users' adapters
 * const rec = store.get(adapter, key);          // undefined: use the heuristic default
 * ```
 */
export class TuningStore {
  private readonly tables = new Map<string, Map<string, TuningRecord>>();
  private loaded: Promise<void> | null = null;
  private writes: Promise<void> = Promise.resolve();

  constructor(readonly path: string | null) {}

  get(adapter: string, key: string): TuningRecord | undefined {
    return this.tables.get(adapter)?.get(key);
  }

  set(adapter: string, key: string, rec: TuningRecord): void {
    let t = this.tables.get(adapter);
    if (!t) this.tables.set(adapter, (t = new Map()));
    t.set(key, rec);
  }

  /** Number of records (all adapters). */
  get size(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.size;
    return n;
  }

  /** The whole table as JSON text: `{ version, adapters: { [adapter]: { [key]: record } } }`. */
  exportTuning(): string {
    // no prototype, so an adapter named '__proto__' is a key like any other
    const adapters = Object.create(null) as Record<string, Record<string, TuningRecord>>;
    for (const [a, t] of [...this.tables].sort(([x], [y]) => x.localeCompare(y))) {
      adapters[a] = Object.fromEntries([...t].sort(([x], [y]) => x.localeCompare(y)));
    }
    return JSON.stringify({ version: VERSION, adapters }, null, 1);
  }

  /** Merge an exported table in (its records replace ours for the same adapter and key); returns how many it held. */
  importTuning(json: string, source = 'importTuning'): number {
    let doc: unknown;
    try {
      doc = JSON.parse(json);
    } catch (e) {
      throw new TuningError(source, `not JSON (${(e as Error).message})`);
    }
    const d = doc as { version?: unknown; adapters?: unknown };
    if (typeof d !== 'object' || d === null || d.version !== VERSION || typeof d.adapters !== 'object' || d.adapters === null) {
      throw new TuningError(source, `expected { version: ${VERSION}, adapters: {...} }`);
    }
    let n = 0;
    for (const [a, t] of Object.entries(d.adapters as Record<string, unknown>)) {
      if (typeof t !== 'object' || t === null) throw new TuningError(source, `adapter '${a}' is not an object`);
      for (const [key, rec] of Object.entries(t as Record<string, unknown>)) {
        if (!validRecord(rec)) throw new TuningError(source, `record '${key}' of adapter '${a}' is not a tuning record`);
        this.set(a, key, rec);
        n++;
      }
    }
    return n;
  }

  /** Read the file at `path` once (a missing file is an empty table; an unreadable one is ignored with a warning). */
  load(): Promise<void> {
    this.loaded ??= (async () => {
      if (!this.path) return;
      const fs = (await import(/* @vite-ignore */ nodeModule('fs/promises'))) as typeof import('node:fs/promises');
      let text: string;
      try {
        text = await fs.readFile(this.path, 'utf8');
      } catch {
        return;
      }
      try {
        this.importTuning(text, this.path);
      } catch (e) {
        console.warn(`${(e as Error).message}; starting from an empty table`);
      }
    })();
    return this.loaded;
  }

  /** Write the table to `path` atomically (a temporary file renamed over it); writes are serialized. */
  save(): Promise<void> {
    const path = this.path;
    if (!path) return Promise.resolve();
    this.writes = this.writes.then(async () => {
      const fs = (await import(/* @vite-ignore */ nodeModule('fs/promises'))) as typeof import('node:fs/promises');
      const { dirname } = (await import(/* @vite-ignore */ nodeModule('path'))) as typeof import('node:path');
      await fs.mkdir(dirname(path), { recursive: true });
      const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
      await fs.writeFile(tmp, this.exportTuning());
      await fs.rename(tmp, path);
    }).catch((e: Error) => console.warn(`WebGPU tuning table not saved to ${path}: ${e.message}`));
    return this.writes;
  }
}

function validRecord(r: unknown): r is TuningRecord {
  const x = r as Partial<TuningRecord>;
  if (typeof x !== 'object' || x === null || typeof x.ms !== 'number' || typeof x.timings !== 'object') return false;
  const v = x.variant as Partial<KernelVariant> | undefined;
  if (v?.kind === 'matmul') {
    return v.matmul === 'register' || v.matmul === 'workgroup' || v.matmul === 'splitk' || (v.matmul === 'subgroup-matrix' && typeof v.shape === 'object');
  }
  if (v?.kind === 'reduce') return typeof v.reduce === 'object' && v.reduce !== null;
  if (v?.kind === 'matmulReduce') return typeof v.tile === 'object' && v.tile !== null && Number.isInteger(v.tile.groups) && v.tile.groups >= 1;
  return false;
}

let shared: TuningStore | undefined;

/** The process's tuning table (on disk at `defaultTuningPath()` in Node), shared by every backend. */
export function sharedTuning(): TuningStore {
  shared ??= new TuningStore(defaultTuningPath());
  return shared;
}

/** The process's tuning table as JSON (see `TuningStore.exportTuning`). */
export function exportTuning(): string {
  return sharedTuning().exportTuning();
}

/** Merge a shipped tuning table into the process's (see `TuningStore.importTuning`). */
export function importTuning(json: string): number {
  return sharedTuning().importTuning(json);
}

/** Whether tuning is on by default: `RHEO_TUNE=1` in the environment. */
export function tuningFromEnv(): boolean {
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  return proc?.env?.RHEO_TUNE === '1';
}
