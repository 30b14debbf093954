/// <reference types="webgpu" />
// The WebGPU backend's device layer: buffers from a pool (pool.ts), a pipeline cache keyed by kernel
// signature and variant, and dispatches batched into few command buffers. Nothing is read back
// until `read` asks; compile and device errors surface there (or from `compile`) as typed errors.
// Each kernel runs in a variant (matmul kernel and tile, reduction split): the tuned one for its
// signature on this adapter (tuner.ts keeps them, autotune.ts times the candidates), else a
// heuristic default.
// It does not plan memory or order kernels (the scheduler does), times no variants, and never sees
// ops, only kernel IR.

import { RheoError } from '../../graphs/errors.js';
import { numel, type DType } from '../../graphs/types.js';
import { kernelSignature, type Kernel } from '../../ops/kernel-ir.js';
import { acquireWebGpu, lastAcquireFailure, DeviceError, type WebGpuDevice } from './device.js';
import { KernelCompileError, renderWgsl, type RenderedKernel } from './render-wgsl.js';
import { storageType } from './wgsl-expr.js';
import { decodeF16, encodeF16, f16roundArray } from '../../ops/f16.js';
import { BufferPool, sizeClass } from './pool.js';
import { tallSkinny, type MatmulVariant, type RegisterTileChoice } from './render-wgsl-matmul.js';
import { defaultMatmulReduceTile } from './render-wgsl-matmul-reduce.js';
import { DEFAULT_REDUCE, SOFTWARE_REDUCE, type ReduceVariant } from './render-wgsl-reduce.js';
import type { SubgroupMatrixDevice } from './render-wgsl-subgroup-matrix.js';
import { sharedTuning, tuningFromEnv, type KernelVariant, type TuningRecord, type TuningStore } from './tuner.js';
import { adapterIdentity } from './device.js';
import { Autotuner, tuneMatmulVariant, type BindLaunch } from './autotune.js';

/** A kernel cannot be launched with these buffers (wrong count, dtype, size, or aliasing). */
export class KernelLaunchError extends RheoError {
  constructor(readonly kernel: string, detail: string) {
    super(`kernel '${kernel}': ${detail}`);
  }
}

/**
 * f32 and f16 as Float32Array (f16 values are binary16: uploads round them; on the device they
 * are array<f16> where it has 'shader-f16', else f32 words), i32 as Int32Array, bool as Uint8Array.
 */
export type HostArray = Float32Array | Int32Array | Uint8Array;

/** A tensor's storage on the device; owned by the backend, returned to its pool by `release`. */
export interface WebGpuTensor {
  readonly dtype: DType;
  readonly elements: number;
  readonly buffer: GPUBuffer;
}

export interface WebGpuBackendOptions {
  /** matmul kernel: 'auto' picks 'register' on software adapters, 'workgroup' on GPUs */
  readonly matmul?: MatmulVariant | 'auto';
  /** invocations per workgroup of map and scatter kernels (default 256, or the device's maximum if lower) */
  readonly workgroupSize?: number;
  /** map kernels compute four outputs per invocation where they can (default true) */
  readonly vectorize?: boolean;
  /** the register matmul's tile per output shape (default: render-wgsl-matmul.ts `registerTile`) */
  readonly registerTile?: RegisterTileChoice;
  /** submit the open command buffer after this many dispatches, so the GPU starts early */
  readonly dispatchesPerSubmit?: number;
  /**
   * how long reductions with few outputs split over workgroups (render-wgsl-reduce.ts); by
   * default split where it pays, combining through workgroup memory (`subgroups: true` asks for
   * subgroup operations, which needs the adapter's 'subgroups' feature; the tuner tries them)
   */
  readonly reduce?: Partial<ReduceVariant>;
  /**
   * time the candidate variants of each kernel signature on this device and keep the fastest
   * (autotune.ts); default false, or `RHEO_TUNE=1`. A kernel first runs in its heuristic variant and
   * is tuned at the next read; later launches use the winner. The table on disk is read only with
   * tuning on; choices imported into the table (`importTuning`) apply either way.
   */
  readonly tune?: boolean;
  /** milliseconds of timing one signature may take (default 1500) */
  readonly tuneBudgetMs?: number;
  /** where tuned choices are kept (default: the process's table, on disk in Node) */
  readonly tuning?: TuningStore;
  /**
   * fuse a sum, max or min over a matmul product's trailing dims into the matmul, so that the
   * product is never written (render-wgsl-matmul-reduce.ts); default true
   */
  readonly matmulReductions?: boolean;
}

interface Compiled {
  readonly rendered: RenderedKernel;
  /** one per pass */
  readonly pipelines: readonly GPUComputePipeline[];
  /** resolves to the compile error, or null; never rejects */
  readonly check: Promise<KernelCompileError | null>;
  error: KernelCompileError | null | undefined;
}

interface Tensor extends WebGpuTensor {
  readonly bytes: number;
  released: boolean;
}

const MAP_READ = 0x1;

/**
 * Runs kernel IR on a WebGPU device.
 *
 * ```ts
 * const be = await WebGpuBackend.create();
 * if (be) {
 *   const x = be.upload(new Float32Array([1, 2, 3]));
 *   const y = be.alloc('f32', 3);
 *   be.run(kernel, [x], y);
 *   console.log(await be.read(y));
 * }
 * ```
 */
export class WebGpuBackend {
  readonly stats = { dispatches: 0, submits: 0, pipelines: 0, buffersCreated: 0, bytesCreated: 0 };
  /** the matmul kernel in use: chosen per adapter, or by `tuneMatmul` */
  matmulVariant: MatmulVariant;
  /** how reductions split over workgroups */
  reduceVariant: ReduceVariant;
  /** whether launches of untuned signatures are tuned at the next read (see WebGpuBackendOptions.tune) */
  tune: boolean;
  /** the tuned choices this backend reads and writes */
  readonly tuning: TuningStore;
  /** the adapter the tuning table files this backend's choices under (`adapterIdentity`) */
  readonly adapterKey: string;
  private readonly autotuner: Autotuner;
  /** loop iterations after which this adapter stops an invocation (llvmpipe: 65535) */
  readonly loopLimit: number;
  private readonly device: GPUDevice;
  private readonly pipelines = new Map<string, Compiled>();
  private byKernel = new WeakMap<Kernel, { variant: string; compiled: Compiled }>();
  /** the buffer split reductions keep their partial results in (grown on demand, never shrunk) */
  private scratch: GPUBuffer | null = null;
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new Map<GPUBuffer, number>();
  private readonly layouts = new Map<number, [GPUBindGroupLayout, GPUPipelineLayout]>();
  private readonly pool: BufferPool;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private inEncoder = 0;
  private readonly checks: Promise<KernelCompileError | null>[] = [];
  private isDisposed = false;

  /** Whether `dispose()` was called. */
  get disposed(): boolean {
    return this.isDisposed;
  }
  private readonly workgroupMatmulOk: boolean;
  /** the matmul variant is the adapter's default (tall-skinny products then split k) */
  private readonly matmulAuto: boolean;

  /** A backend on a freshly acquired device, or null (with the reason in `lastAcquireFailure`). */
  static async create(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend | null> {
    const gpu = await acquireWebGpu();
    const be = gpu ? new WebGpuBackend(gpu, opts, true) : null;
    // with tuning on, the choices already on disk apply from the first launch
    if (be?.tune) await be.tuning.load();
    return be;
  }

  static get unavailableReason(): string {
    return lastAcquireFailure;
  }

  constructor(
    readonly gpu: WebGpuDevice,
    private readonly opts: WebGpuBackendOptions = {},
    private readonly ownsDevice = false,
  ) {
    this.device = gpu.device;
    this.pool = new BufferPool(this.device, this.stats);
    this.loopLimit = /llvmpipe/i.test(`${gpu.info.device} ${gpu.info.description}`) ? 65535 : Infinity;
    const lim = gpu.limits;
    const wgOk = lim.maxComputeInvocationsPerWorkgroup >= 256 && lim.maxComputeWorkgroupStorageSize >= 8192;
    this.workgroupMatmulOk = wgOk;
    // software adapters run a workgroup's invocations in SIMD lanes of one thread, where
    // workgroup memory and barriers cost more than they save (measured ~4x on llvmpipe)
    const want = opts.matmul ?? 'auto';
    this.matmulAuto = want === 'auto';
    this.matmulVariant = want === 'auto' ? (gpu.info.isCpu || !wgOk ? 'register' : 'workgroup') : want;
    const sub = gpu.features.has('subgroups');
    // subgroup combines are a tuner candidate where the adapter has them, not the default: a
    // candidate that fails to compile is only passed over, where a default would fail the run
    // (they run in CI on Chromium's SwiftShader: test/browser-webgpu.test.ts)
    this.reduceVariant = { ...(gpu.info.isCpu ? SOFTWARE_REDUCE : DEFAULT_REDUCE), subgroups: false, ...opts.reduce };
    this.tune = opts.tune ?? tuningFromEnv();
    this.tuning = opts.tuning ?? sharedTuning();
    this.adapterKey = adapterIdentity(gpu.info);
    this.autotuner = new Autotuner({
      gpu,
      live: () => this.live(),
      heuristic: (k) => this.heuristic(k),
      flush: () => this.flush(),
      allocUnshared: (dtype, elements) => this.allocTensor(dtype, elements, false),
      release: (t) => this.release(t),
      prepare: (k, v, ins, out) => this.prepareAlone(k, v, ins, out),
    }, this.tuning, this.adapterKey, {
      workgroupMatmul: wgOk,
      subgroups: sub,
      maxInvocations: Math.min(lim.maxComputeInvocationsPerWorkgroup, lim.maxComputeWorkgroupSizeX),
      ...(gpu.subgroupMatrixConfigs.length ? { subgroupMatrix: { configs: gpu.subgroupMatrixConfigs, device: this.subgroupMatrixDevice() } } : {}),
    }, opts.tuneBudgetMs ?? 1500);
    if (this.reduceVariant.subgroups && !sub) throw new DeviceError('unavailable', "subgroup reductions need the adapter's 'subgroups' feature");
    if (this.matmulVariant === 'workgroup' && !wgOk) {
      throw new DeviceError('unavailable', 'the workgroup matmul needs 256 invocations and 8 KiB of workgroup memory');
    }
  }

  // ------------------------------------------------------------ buffers

  /** Copy host data to a new device tensor. The dtype defaults from the array type. */
  upload(data: HostArray, dtype: DType = data instanceof Int32Array ? 'i32' : data instanceof Uint8Array ? 'bool' : 'f32'): WebGpuTensor {
    const t = this.allocTensor(dtype, data.length, false);
    if (data.length > 0) {
      const words = this.deviceWords(data, dtype);
      this.device.queue.writeBuffer(t.buffer, 0, words.buffer, words.byteOffset, words.byteLength);
    }
    return t;
  }

  /**
   * Whether f16 tensors are array<f16> on this device (it has 'shader-f16'): 2 bytes an element,
   * f16 matmuls multiply in f16. Otherwise they are f32 words holding binary16 values.
   */
  get f16(): boolean {
    return this.gpu.features.has('shader-f16');
  }

  /** Bytes one element of `dtype` takes in this backend's buffers. */
  elementBytes(dtype: DType): number {
    return dtype === 'f16' && this.f16 ? 2 : 4;
  }

  /** Host data as the words a buffer of `dtype` holds (bools as u32; f16 rounded, as binary16 where the device has it), a multiple of 4 bytes. */
  private deviceWords(data: HostArray, dtype: DType): Uint32Array | Uint16Array | HostArray {
    if (dtype === 'bool') return Uint32Array.from(data, (v) => (v ? 1 : 0));
    if (dtype !== 'f16') return data;
    if (this.f16) return encodeF16(data, new Uint16Array(data.length + (data.length & 1)));
    return f16roundArray(Float32Array.from(data));
  }

  /**
   * Overwrite a tensor's contents with host data. Dispatches recorded so far are submitted first,
   * so that they still see the old contents (queue writes run before unsubmitted commands).
   */
  write(t: WebGpuTensor, data: HostArray): void {
    this.live();
    if ((t as Tensor).released) throw new RheoError('write to a released WebGPU tensor');
    if (data.length !== t.elements) throw new RheoError(`write of ${data.length} values into a tensor of ${t.elements}`);
    this.flush();
    if (data.length === 0) return;
    const words = this.deviceWords(data, t.dtype);
    this.device.queue.writeBuffer(t.buffer, 0, words.buffer, words.byteOffset, words.byteLength);
  }

  /** Record a copy of `src` into `dst` (same element count) after the dispatches recorded so far. */
  copy(src: WebGpuTensor, dst: WebGpuTensor): void {
    this.live();
    if ((src as Tensor).released || (dst as Tensor).released) throw new RheoError('copy of a released WebGPU tensor');
    if (src.elements !== dst.elements) throw new RheoError(`copy of ${src.elements} elements into a tensor of ${dst.elements}`);
    if (src.elements === 0 || src.buffer === dst.buffer) return;
    this.endPass();
    this.encoder!.copyBufferToBuffer(src.buffer, 0, dst.buffer, 0, Math.min((src as Tensor).bytes, (dst as Tensor).bytes));
  }

  /** An uninitialized device tensor. */
  alloc(dtype: DType, elements: number): WebGpuTensor {
    return this.allocTensor(dtype, elements, true);
  }

  /** Return a tensor's buffer to the pool; the tensor must not be used afterwards. */
  release(t: WebGpuTensor): void {
    const x = t as Tensor;
    if (x.released) return;
    x.released = true;
    this.pool.give(x.bytes, x.buffer);
  }

  /** Kernel outputs may take buffers released since the last submit; uploads may not (see BufferPool). */
  private allocTensor(dtype: DType, elements: number, recycleUnsubmitted: boolean): Tensor {
    this.live();
    const bytes = Math.ceil((elements * this.elementBytes(dtype)) / 4) * 4; // copies and writes move whole words
    return { dtype, elements, buffer: this.pool.take(bytes, recycleUnsubmitted), bytes, released: false };
  }

  // ------------------------------------------------------------ kernels

  /** Compile a kernel ahead of its first run; throws KernelCompileError with the WGSL source. */
  async compile(kernel: Kernel): Promise<void> {
    const c = this.pipeline(kernel);
    c.error = await c.check;
    if (c.error) throw c.error;
  }

  /**
   * Time every matmul variant this device can run on a size³ product (one read-back per run,
   * median of three after a warm-up), keep the fastest, and return each one's GFLOP/s.
   */
  tuneMatmul(size = 512): Promise<Partial<Record<MatmulVariant, number>>> {
    return tuneMatmulVariant(this, this.workgroupMatmulOk, size);
  }

  /** Whether plans for this backend fuse reductions of matmul products (option `matmulReductions`). */
  get fusesMatmulReductions(): boolean {
    return this.opts.matmulReductions !== false;
  }

  /** The variant a kernel runs in: the tuned one for its signature, else the heuristic default. */
  variantOf(kernel: Kernel): KernelVariant | null {
    return this.autotuner.chosen(kernel) ?? this.heuristic(kernel);
  }

  private heuristic(kernel: Kernel): KernelVariant | null {
    if (kernel.kind === 'matmul' && kernel.reduce) return { kind: 'matmulReduce', tile: defaultMatmulReduceTile(kernel, this.matmulVariant === 'workgroup') };
    if (kernel.kind === 'matmul') {
      const splitk = this.matmulAuto && tallSkinny(kernel) && kernel.inputs.length + 2 <= this.gpu.limits.maxStorageBuffersPerShaderStage;
      return { kind: 'matmul', matmul: splitk ? 'splitk' : this.matmulVariant };
    }
    if (kernel.kind === 'map') return { kind: 'reduce', reduce: this.reduceVariant };
    return null;
  }

  /**
   * Time every candidate variant of `kernel` on this device within `budgetMs` (default
   * `tuneBudgetMs`) and record the fastest under its signature (see `Autotuner.tuneKernel`).
   */
  tuneKernel(kernel: Kernel, budgetMs?: number): Promise<TuningRecord | null> {
    return this.autotuner.tuneKernel(kernel, budgetMs);
  }

  /** `kernel` compiled in variant `v` for the tuner, whose launches go in encoders of its own; null when it does not compile. */
  private async prepareAlone(kernel: Kernel, v: KernelVariant, ins: readonly WebGpuTensor[], out: WebGpuTensor): Promise<BindLaunch | null> {
    let c: Compiled;
    try {
      c = this.pipeline(kernel, v);
    } catch {
      return null; // e.g. past this adapter's loop limit
    }
    const err = await c.check;
    const i = this.checks.indexOf(c.check);
    if (i >= 0) this.checks.splice(i, 1);
    if (err) return null;
    return () => {
      const bind = this.bindFor(c, ins, out);
      return (pass) => this.encode(pass, c, bind);
    };
  }

  /** What a subgroup-matrix kernel may use on this device. */
  private subgroupMatrixDevice(): SubgroupMatrixDevice {
    const lim = this.gpu.limits;
    return {
      subgroupMaxSize: this.gpu.subgroupMaxSize,
      maxInvocations: Math.min(lim.maxComputeInvocationsPerWorkgroup, lim.maxComputeWorkgroupSizeX),
      maxWorkgroupStorage: lim.maxComputeWorkgroupStorageSize,
    };
  }

  /** The WGSL this backend generates for a kernel (for debugging and tests), in a variant (default `variantOf`). */
  render(kernel: Kernel, variant: KernelVariant | null = this.variantOf(kernel)): RenderedKernel {
    const mm = variant?.kind === 'matmul' ? variant : null;
    const tile = mm?.tile;
    return renderWgsl(kernel, {
      matmul: mm?.matmul ?? this.matmulVariant,
      subgroupMatrix: mm?.shape ? { shape: mm.shape, device: this.subgroupMatrixDevice() } : undefined,
      workgroupSize: this.opts.workgroupSize ?? Math.min(256, this.gpu.limits.maxComputeInvocationsPerWorkgroup, this.gpu.limits.maxComputeWorkgroupSizeX),
      vectorize: this.opts.vectorize,
      registerTile: tile ? () => tile : this.opts.registerTile,
      workgroupTile: mm?.wgTile,
      kChunk: mm?.kChunk,
      maxWorkgroupsPerDimension: this.gpu.limits.maxComputeWorkgroupsPerDimension,
      reduce: variant?.kind === 'reduce' ? variant.reduce : this.reduceVariant,
      matmulReduce: variant?.kind === 'matmulReduce' ? variant.tile : undefined,
      maxStorageBuffers: this.gpu.limits.maxStorageBuffersPerShaderStage,
      shaderF16: this.f16,
    });
  }

  /** Record a dispatch of `kernel` reading `inputs` and writing `out`. Nothing waits for it. */
  run(kernel: Kernel, inputs: readonly WebGpuTensor[], out: WebGpuTensor): void {
    this.live();
    this.validate(kernel, inputs, out);
    const c = this.pipeline(kernel);
    if (c.error) throw c.error;
    if (this.tune) this.autotuner.note(kernel);
    this.dispatch(c, inputs, out);
  }

  private dispatch(c: Compiled, inputs: readonly WebGpuTensor[], out: WebGpuTensor): void {
    if (c.rendered.passes.length === 0) return;
    const bind = this.bindFor(c, inputs, out);
    if (!this.pass) {
      this.encoder ??= this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    this.encode(this.pass, c, bind);
    this.stats.dispatches++;
    if (++this.inEncoder >= (this.opts.dispatchesPerSubmit ?? 128)) this.flush();
  }

  private bindFor(c: Compiled, inputs: readonly WebGpuTensor[], out: WebGpuTensor): GPUBindGroup {
    const words = c.rendered.scratchWords ?? 0;
    return this.bindGroup(words > 0 ? [...inputs, out, this.scratchOf(words)] : [...inputs, out], words > 0);
  }

  private encode(pass: GPUComputePassEncoder, c: Compiled, bind: GPUBindGroup): void {
    pass.setBindGroup(0, bind);
    c.rendered.passes.forEach((p, i) => {
      pass.setPipeline(c.pipelines[i]!);
      pass.dispatchWorkgroups(...p.workgroups);
    });
  }

  private validate(kernel: Kernel, inputs: readonly WebGpuTensor[], out: WebGpuTensor): void {
    const max = this.gpu.limits.maxStorageBuffersPerShaderStage;
    if (kernel.inputs.length + 1 > max) {
      throw new KernelLaunchError(kernel.name, `needs ${kernel.inputs.length + 1} storage buffers, this device allows ${max} per kernel`);
    }
    if (inputs.length !== kernel.inputs.length) {
      throw new KernelLaunchError(kernel.name, `expects ${kernel.inputs.length} inputs, got ${inputs.length}`);
    }
    const check = (t: WebGpuTensor, dtype: DType, size: number, what: string) => {
      if ((t as Tensor).released) throw new KernelLaunchError(kernel.name, `${what} was released`);
      if (storageType(t.dtype, this.f16) !== storageType(dtype, this.f16)) throw new KernelLaunchError(kernel.name, `${what} is ${t.dtype}, expected ${dtype}`);
      if (t.elements < size) throw new KernelLaunchError(kernel.name, `${what} has ${t.elements} elements, expected ${size}`);
    };
    kernel.inputs.forEach((p, i) => check(inputs[i]!, p.dtype, p.size, `input ${i}`));
    check(out, kernel.out.dtype, numel(kernel.out.shape), 'output');
    if (inputs.some((t) => t.buffer === out.buffer)) {
      throw new KernelLaunchError(kernel.name, 'output buffer is also an input (WebGPU forbids writing a buffer that is read in the same dispatch)');
    }
  }

  /** Inputs read-only, then the output, then (with `scratch`) the scratch buffer, read-write. */
  private layout(nInputs: number, scratch = false): [GPUBindGroupLayout, GPUPipelineLayout] {
    const key = scratch ? -1 - nInputs : nInputs;
    let l = this.layouts.get(key);
    if (!l) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (let i = 0; i <= nInputs + (scratch ? 1 : 0); i++) {
        entries.push({ binding: i, visibility: 0x4 /* COMPUTE */, buffer: { type: i < nInputs ? 'read-only-storage' : 'storage' } });
      }
      const bgl = this.device.createBindGroupLayout({ entries });
      l = [bgl, this.device.createPipelineLayout({ bindGroupLayouts: [bgl] })];
      this.layouts.set(key, l);
    }
    return l;
  }

  /**
   * The scratch buffer, at least `words` u32s. Dispatches run in order, so one buffer serves every
   * split reduction; a larger one replaces it after the work recorded so far is submitted.
   */
  private scratchOf(words: number): WebGpuTensor {
    const bytes = Math.max(256, words * 4);
    if (!this.scratch || this.scratch.size < bytes) {
      if (this.scratch) {
        this.flush();
        this.scratch.destroy();
      }
      this.scratch = this.device.createBuffer({ size: Math.ceil(bytes / 256) * 256, usage: 0x80 /* STORAGE */ });
      this.stats.buffersCreated++;
      this.stats.bytesCreated += this.scratch.size;
    }
    return { dtype: 'i32', elements: this.scratch.size / 4, buffer: this.scratch };
  }

  /**
   * Bind groups by the buffers they bind: pooled buffers come back in the same order run after
   * run, so a plan run again mostly finds its bind groups made.
   */
  private bindGroup(ts: readonly WebGpuTensor[], scratch = false): GPUBindGroup {
    let key = `${ts.length}${scratch ? 's' : ''}`;
    for (const t of ts) {
      let id = this.bufferIds.get(t.buffer);
      if (id === undefined) this.bufferIds.set(t.buffer, (id = this.bufferIds.size));
      key += `,${id}`;
    }
    let bg = this.bindGroups.get(key);
    if (!bg) {
      if (this.bindGroups.size >= 4096) this.bindGroups.clear();
      bg = this.device.createBindGroup({
        layout: this.layout(ts.length - (scratch ? 2 : 1), scratch)[0],
        entries: ts.map((t, i) => ({ binding: i, resource: { buffer: t.buffer } })),
      });
      this.bindGroups.set(key, bg);
    }
    return bg;
  }

  private pipeline(kernel: Kernel, chosen: KernelVariant | null = this.variantOf(kernel)): Compiled {
    // the signature is a JSON text of the whole kernel: remember it per kernel object
    const variant = JSON.stringify(chosen);
    const known = this.byKernel.get(kernel);
    if (known && known.variant === variant) return known.compiled;
    const compiled = this.pipelineBySignature(kernel, chosen, variant);
    this.byKernel.set(kernel, { variant, compiled });
    return compiled;
  }

  private pipelineBySignature(kernel: Kernel, chosen: KernelVariant | null, variant: string): Compiled {
    const key = `${variant}:${kernelSignature(kernel)}`;
    const hit = this.pipelines.get(key);
    if (hit) return hit;
    const rendered = this.render(kernel, chosen);
    if (rendered.loopIterations > this.loopLimit) {
      throw new KernelLaunchError(kernel.name, `an invocation would loop ${rendered.loopIterations} times; ` +
        `this adapter (${this.gpu.info.device || this.gpu.info.description}) silently stops invocations after ${this.loopLimit}`);
    }
    const source = rendered.passes.map((p) => p.code).join('\n// ---- next pass ----\n');
    this.device.pushErrorScope('validation');
    const modules = rendered.passes.map((p) => this.device.createShaderModule({ code: p.code, label: kernel.name }));
    const pipelines = modules.map((module) => this.device.createComputePipeline({
      label: kernel.name,
      layout: this.layout(kernel.inputs.length, (rendered.scratchWords ?? 0) > 0)[1],
      compute: { module, entryPoint: 'main' },
    }));
    const check = this.device.popErrorScope().then(
      async (err) => {
        if (!err) return null;
        const msgs: string[] = [];
        for (const m of modules) {
          const info = await m.getCompilationInfo().catch(() => null);
          for (const x of info?.messages ?? []) if (x.type === 'error') msgs.push(`${x.lineNum}:${x.linePos}: ${x.message}`);
        }
        return new KernelCompileError(kernel.name, msgs.length ? msgs : [err.message], source);
      },
      (e: Error) => new KernelCompileError(kernel.name, [e.message], source),
    );
    const c: Compiled = { rendered, pipelines, check, error: undefined };
    void check.then((e) => (c.error = e));
    this.checks.push(check);
    this.pipelines.set(key, c);
    this.stats.pipelines++;
    return c;
  }

  // ------------------------------------------------------------ submission and readback

  /** Submit recorded dispatches now (reads do this themselves). */
  flush(): void {
    if (this.pass) this.pass.end();
    this.pass = null;
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.stats.submits++;
    }
    this.encoder = null;
    this.inEncoder = 0;
    this.pool.submitted();
  }

  /** Copy a tensor back to the host, after every dispatch recorded so far. */
  async read(t: WebGpuTensor): Promise<HostArray> {
    return (await this.readMany([t]))[0]!;
  }

  /**
   * Copy tensors back to the host after every dispatch recorded so far, with one submit. The
   * copies are recorded before this returns its promise, so the tensors may be released (and
   * their buffers reused by later dispatches) right away.
   */
  readMany(ts: readonly WebGpuTensor[]): Promise<HostArray[]> {
    this.live();
    for (const t of ts) if ((t as Tensor).released) throw new RheoError('read of a released WebGPU tensor');
    const staged = ts.map((t) => {
      const x = t as Tensor;
      const cls = sizeClass(x.bytes);
      const staging = this.pool.takeStaging(x.bytes);
      if (x.bytes > 0) {
        this.endPass();
        this.encoder!.copyBufferToBuffer(x.buffer, 0, staging, 0, cls);
      }
      return { x, cls, staging };
    });
    const checks = this.checks.splice(0);
    const failedEarly = checks.length > 0;
    if (!failedEarly) this.flush();
    return (async () => {
      const failed = (await Promise.all(checks)).find((e) => e !== null);
      if (failed) {
        this.discard();
        for (const s of staged) this.pool.giveStaging(s.cls, s.staging);
        throw failed;
      }
      // recorded commands wait for the compile checks: a failed pipeline must not be submitted
      if (failedEarly) this.flush();
      const out: HostArray[] = [];
      let error: unknown = null;
      await Promise.all(staged.map((s) => s.staging.mapAsync(MAP_READ, 0, s.cls).catch((e: Error) => {
        error ??= this.gpu.takeError() ?? new DeviceError('internal', `readback failed: ${e.message}`);
      })));
      if (error) throw error;
      for (const { x, cls, staging } of staged) {
        const words = staging.getMappedRange(0, cls);
        if (x.dtype === 'i32') out.push(new Int32Array(words, 0, x.elements).slice());
        else if (x.dtype === 'bool') out.push(Uint8Array.from(new Uint32Array(words, 0, x.elements)));
        else if (x.dtype === 'f16' && this.f16) out.push(decodeF16(new Uint16Array(words, 0, x.elements)));
        else out.push(new Float32Array(words, 0, x.elements).slice());
        staging.unmap();
        this.pool.giveStaging(cls, staging);
      }
      const err = this.gpu.takeError();
      if (err) throw err;
      await this.autotuner.tunePending();
      return out;
    })();
  }

  /** End the open compute pass (copies are recorded outside passes); opens an encoder if none. */
  private endPass(): void {
    if (this.pass) this.pass.end();
    this.pass = null;
    this.encoder ??= this.device.createCommandEncoder();
  }

  /** Wait until the device has finished all submitted work. */
  async sync(): Promise<void> {
    const failed = (await Promise.all(this.checks.splice(0))).find((e) => e !== null);
    if (failed) {
      this.discard();
      throw failed;
    }
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    const err = this.gpu.takeError();
    if (err) throw err;
  }

  private discard(): void {
    if (this.pass) this.pass.end();
    this.pass = null;
    this.encoder = null; // dropped unsubmitted: it referenced a pipeline that failed
    this.inEncoder = 0;
    this.gpu.takeError();
  }

  private live(): void {
    if (this.isDisposed) throw new RheoError('WebGPU backend used after dispose()');
    if (this.gpu.lost) throw this.gpu.lost;
  }

  /** Free every buffer this backend created (and the device, if the backend acquired it). */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.pass?.end();
    this.pass = null;
    this.encoder = null;
    this.pool.destroy();
    this.scratch?.destroy();
    this.scratch = null;
    this.pipelines.clear();
    this.byKernel = new WeakMap();
    this.bindGroups.clear();
    this.bufferIds.clear();
    if (this.ownsDevice) this.gpu.destroy();
  }
}
