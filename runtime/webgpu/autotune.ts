/// <reference types="webgpu" />
// The WebGPU autotuner at work: times the candidate variants of a kernel signature on the device
// (timestamp queries where the adapter has them, else wall-clock until the queue is done), records
// the fastest in the tuning table (tuner.ts), and tunes the signatures launched since the last read.
// It compiles and launches nothing itself: the backend it serves (backend.ts) does, through `TuningHost`.

import { numel, type DType } from '../../ops/types.js';
import type { Kernel } from '../../ops/kernel-ir.js';
import type { WebGpuBackend, WebGpuTensor } from './backend.js';
import type { WebGpuDevice } from './device.js';
import type { MatmulVariant } from './render-wgsl-matmul.js';
import {
  candidates, tuningKey, type KernelVariant, type TuningRecord, type TuningStore, type VariantLimits,
} from './tuner.js';

/** Binds a launch's buffers (outside the timed span) and returns what records it into a pass. */
export type BindLaunch = () => (pass: GPUComputePassEncoder) => void;

/** What the autotuner needs of the backend it tunes for. */
export interface TuningHost {
  readonly gpu: WebGpuDevice;
  /** throws when the backend was disposed or its device lost */
  live(): void;
  /** the variant a kernel runs in when nothing is tuned for it */
  heuristic(kernel: Kernel): KernelVariant | null;
  /** submit the launches recorded so far */
  flush(): void;
  /** a tensor whose buffer no launch recorded but not yet submitted may still read */
  allocUnshared(dtype: DType, elements: number): WebGpuTensor;
  release(t: WebGpuTensor): void;
  /** `kernel` compiled in variant `v` and checked, bound to `ins` and `out`; null when it does not compile here */
  prepare(kernel: Kernel, v: KernelVariant, ins: readonly WebGpuTensor[], out: WebGpuTensor): Promise<BindLaunch | null>;
}

/**
 * One backend's tuning: the tuned choice per kernel, signatures waiting to be tuned, and the timing.
 *
 * ```ts
 * const rec = await tuner.tuneKernel(kernel);   // times the candidates, records the fastest
 * tuner.chosen(kernel);                         // rec.variant from now on
 * ```
 */
export class Autotuner {
  private readonly keys = new WeakMap<Kernel, string | null>();
  private readonly pending = new Map<string, Kernel>();
  /** signatures with nothing to choose, or whose tuning failed: not tried again */
  private readonly untunable = new Set<string>();
  private tuningNow: Promise<void> | null = null;

  constructor(
    private readonly host: TuningHost,
    /** the tuned choices read and written */
    readonly tuning: TuningStore,
    /** the adapter the table files the choices under */
    readonly adapterKey: string,
    private readonly limits: VariantLimits,
    /** milliseconds of timing one signature may take */
    private readonly budgetMs: number,
  ) {}

  /** The tuned variant of a kernel's signature on this adapter; undefined when none is recorded. */
  chosen(kernel: Kernel): KernelVariant | undefined {
    const key = this.keyOf(kernel);
    return key === null ? undefined : this.tuning.get(this.adapterKey, key)?.variant;
  }

  private keyOf(kernel: Kernel): string | null {
    let key = this.keys.get(kernel);
    if (key === undefined) this.keys.set(kernel, (key = tuningKey(kernel)));
    return key;
  }

  /** Remember a launched kernel to be tuned at the next read, unless its signature has a choice or none to make. */
  note(kernel: Kernel): void {
    const key = this.keyOf(kernel);
    if (key === null || this.pending.has(key) || this.untunable.has(key) || this.tuning.get(this.adapterKey, key)) return;
    this.pending.set(key, kernel);
  }

  /** Tune the signatures launched since the last read (one at a time, whoever asks). */
  async tunePending(): Promise<void> {
    while (this.pending.size > 0 || this.tuningNow) {
      if (this.tuningNow) {
        await this.tuningNow;
        continue;
      }
      const [key, kernel] = this.pending.entries().next().value as [string, Kernel];
      this.tuningNow = (async () => {
        try {
          await this.tuning.load();
          // a choice the table on disk already held is kept; otherwise time the candidates
          if (!this.tuning.get(this.adapterKey, key) && !(await this.tuneKernel(kernel))) this.untunable.add(key);
        } catch (e) {
          // a read must not fail because timing a variant did: keep the heuristic default
          this.untunable.add(key);
          console.warn(`WebGPU tuning of '${kernel.name}' (${key}) failed: ${(e as Error).message}`);
        } finally {
          this.pending.delete(key);
          this.tuningNow = null;
        }
      })();
      await this.tuningNow;
      if (this.pending.size === 0) await this.tuning.save();
    }
  }

  /**
   * Time every candidate variant of `kernel` on this device within `budgetMs` (the heuristic
   * default is timed first), and record the fastest under the kernel's signature. Null for a
   * kernel with nothing to choose. Runs on buffers of its own; work recorded before it is submitted first.
   */
  async tuneKernel(kernel: Kernel, budgetMs = this.budgetMs): Promise<TuningRecord | null> {
    this.host.live();
    await this.tuning.load();
    const key = this.keyOf(kernel);
    const cands = candidates(kernel, this.limits, this.host.heuristic(kernel));
    if (key === null || cands.length === 0) return null;
    this.host.flush();
    // never a buffer that launches recorded but not yet submitted may still read
    const ins = kernel.inputs.map((p) => this.host.allocUnshared(p.dtype, p.size));
    const out = this.host.allocUnshared(kernel.out.dtype, numel(kernel.out.shape));
    const timings: Record<string, number> = {};
    let best: KernelVariant | null = null, bestMs = Infinity;
    const start = performance.now();
    try {
      for (const v of cands) {
        if (best && performance.now() - start > budgetMs) break;
        const ms = await this.timeVariant(kernel, v, ins, out, start + budgetMs);
        timings[JSON.stringify(v)] = ms;
        if (ms < bestMs) [best, bestMs] = [v, ms];
      }
    } finally {
      for (const t of [...ins, out]) this.host.release(t);
    }
    if (!best) return null;
    const rec: TuningRecord = { variant: best, ms: bestMs, timings, clock: this.usesTimestamps ? 'timestamp-query' : 'wall-clock' };
    this.tuning.set(this.adapterKey, key, rec);
    return rec;
  }

  /** whether launches are timed with the GPU's timestamp queries (else wall clock until the queue is done) */
  private get usesTimestamps(): boolean {
    return this.host.gpu.features.has('timestamp-query');
  }

  /** Median milliseconds of one launch of `kernel` in variant `v` (Infinity when it fails to compile). */
  private async timeVariant(kernel: Kernel, v: KernelVariant, ins: readonly WebGpuTensor[], out: WebGpuTensor, deadline: number): Promise<number> {
    const bind = await this.host.prepare(kernel, v, ins, out);
    if (!bind) return Infinity;
    const { gpu } = this.host;
    const device = gpu.device;
    // an encoder of its own: launches recorded meanwhile stay in the backend's
    const once = async (): Promise<number> => {
      const stamps = this.usesTimestamps ? timestamps(device) : null;
      const record = bind();
      const t0 = performance.now();
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass(stamps ? { timestampWrites: stamps.writes } : undefined);
      record(pass);
      pass.end();
      if (stamps) enc.resolveQuerySet(stamps.set, 0, 2, stamps.resolve, 0);
      if (stamps) enc.copyBufferToBuffer(stamps.resolve, 0, stamps.read, 0, 16);
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      const wall = performance.now() - t0;
      if (!stamps) return wall;
      await stamps.read.mapAsync(0x1 /* MAP_READ */);
      const [a, b] = new BigUint64Array(stamps.read.getMappedRange());
      stamps.read.unmap();
      for (const x of [stamps.resolve, stamps.read]) x.destroy();
      stamps.set.destroy();
      return Number(b! - a!) / 1e6;
    };
    await once(); // warm-up
    const times: number[] = [];
    for (let r = 0; r < 5 && (r < 1 || performance.now() < deadline); r++) times.push(await once());
    const e = gpu.takeError();
    if (e) return Infinity;
    times.sort((x, y) => x - y);
    return times[times.length >> 1]!;
  }
}

function timestamps(device: GPUDevice): { set: GPUQuerySet; resolve: GPUBuffer; read: GPUBuffer; writes: GPUComputePassTimestampWrites } {
  const set = device.createQuerySet({ type: 'timestamp', count: 2 });
  const resolve = device.createBuffer({ size: 16, usage: 0x200 /* QUERY_RESOLVE */ | 0x4 /* COPY_SRC */ });
  const read = device.createBuffer({ size: 16, usage: 0x1 /* MAP_READ */ | 0x8 /* COPY_DST */ });
  return { set, resolve, read, writes: { querySet: set, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } };
}

/** The backend's surface that timing whole matmul kernels uses. */
type MatmulBench = Pick<WebGpuBackend, 'matmulVariant' | 'upload' | 'alloc' | 'compile' | 'run' | 'read' | 'release'>;

/**
 * Time every matmul kernel `be` can run on a size³ product (one read-back per run, median of
 * three after a warm-up), leave `be.matmulVariant` at the fastest, and return each one's GFLOP/s.
 */
export async function tuneMatmulVariant(be: MatmulBench, workgroupMatmul: boolean, size: number): Promise<Partial<Record<MatmulVariant, number>>> {
  const kernel: Kernel = {
    kind: 'matmul', name: `tune_${size}`, batch: [], m: size, n: size, k: size, epilogue: null,
    a: { buf: 0, offset: 0, batchStrides: [], rowStride: size, colStride: 1 },
    b: { buf: 1, offset: 0, batchStrides: [], rowStride: size, colStride: 1 },
    inputs: [{ dtype: 'f32', size: size * size }, { dtype: 'f32', size: size * size }],
    out: { dtype: 'f32', shape: [size, size] },
  };
  const data = Float32Array.from({ length: size * size }, (_, i) => ((i * 7919) % 13) / 13 - 0.5);
  const a = be.upload(data), b = be.upload(data), out = be.alloc('f32', size * size);
  const result: Partial<Record<MatmulVariant, number>> = {};
  const chosen = be.matmulVariant;
  let best = chosen, bestRate = 0;
  for (const v of ['register', 'workgroup'] as const) {
    if (v === 'workgroup' && !workgroupMatmul) continue;
    be.matmulVariant = v;
    await be.compile(kernel);
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      const t0 = performance.now();
      be.run(kernel, [a, b], out);
      await be.read(out);
      if (i > 0) times.push(performance.now() - t0);
    }
    times.sort((x, y) => x - y);
    const rate = (2 * size ** 3) / (times[1]! * 1e6);
    result[v] = rate;
    if (rate > bestRate) [best, bestRate] = [v, rate];
  }
  be.matmulVariant = bestRate > 0 ? best : chosen;
  for (const t of [a, b, out]) be.release(t);
  return result;
}
