// The WebAssembly device: every buffer lives in one WebAssembly memory the device owns (shared
// with its worker threads), handed out by a size-class allocator that counts live and peak
// bytes like HostDevice's; kernels are render-wasm.ts's modules, compiled once per signature
// and instantiated once per device. Large launches are split across the thread pool; small
// ones run on the calling thread. Reads copy out of the memory (into a new array, which the
// calling thread can make while the workers run a launch, or the caller's). A launch that
// carries its host copies (feeds only it reads, its output read back) runs an elementwise
// kernel in row chunks on the calling thread, each chunk copied in, computed and copied out
// while it is in cache (stream.ts says which kernels can). It plans nothing.
// Executables share one device per configuration (threads and memory are costly to start), so
// a buffer that becomes garbage without being freed (a dropped executable's variables) goes
// back to the allocator through a FinalizationRegistry.

import type { DType } from '../../graphs/types.js';
import type { Kernel } from '../../ops/kernel-ir.js';
import { kernelSignature } from '../../ops/kernel-ir.js';
import { HOST_CAPS, type DeviceCaps } from '../../scheduler/caps.js';
import type { CpuArray } from '../cpu/render-js.js';
import { DeviceUseError, type Device, type DeviceMemory, type HostTraffic } from '../device.js';
import { f16roundArray } from '../../ops/f16.js';
import { allocArray } from '../tensor.js';
import { gemmScratchBytes } from './matmul-wasm.js';
import { MAX_FINISHED, WasmThreadPool, threadsAvailable } from './pool.js';
import { wasmApi, type WasmMemory, type WasmModule } from './wasm-api.js';
import { kernelInfo, renderWasm, type WasmKernelInfo, type WasmTarget } from './render-wasm.js';
import { streamLayout, type StreamLayout } from './stream.js';

/** A buffer in the device's memory: `length` elements of `dtype` at byte address `ptr`. */
export interface WasmBuffer {
  readonly ptr: number;
  readonly dtype: DType;
  readonly length: number;
  /** bytes reserved (a multiple of 16) */
  readonly capacity: number;
}

/** One launch as a profiler sees it (see `WasmDevice.profiler`). */
export interface WasmLaunchRecord {
  readonly kernel: Kernel;
  /** wall time of the whole launch on the calling thread, ms */
  readonly ms: number;
  /** threads that took part (1: it ran on the calling thread alone) */
  readonly threads: number;
  /** of `ms`, the time the calling thread waited for the workers after its own chunks, ms */
  readonly waitMs: number;
  /** it ran in row chunks with its host copies (`launchWithHost`) */
  readonly streamed: boolean;
  /** those chunks were staged in the calling thread's own memory, not the device's */
  readonly ownMemory?: boolean;
  /** its chunks were copied out by the calling thread as they were computed, on the workers too */
  readonly copiedAsComputed?: boolean;
}

export interface WasmDeviceOptions {
  /** store float tensors in double precision (for gradient checks) */
  readonly f64?: boolean;
  /** threads kernels may use, the calling one included (default: the core count) */
  readonly threads?: number;
  /** launches with fewer elementary operations than this stay on the calling thread (default 2^15) */
  readonly minParallelWork?: number;
  /**
   * bytes of a row chunk (of the largest buffer) when a launch streams with its host copies
   * (default 64 KiB: the chunk's input and output stay in the first-level cache)
   */
  readonly streamChunkBytes?: number;
  /**
   * matmuls multiply-add with relaxed SIMD's f32x4.relaxed_madd (a fused multiply-add on x64) where
   * the engine has it (default); false keeps separate multiplies and adds
   */
  readonly relaxedSimd?: boolean;
}

const PAGE = 65536;
const MAX_PAGES = 65536;
/**
 * Launches with fewer elementary operations stay on the calling thread: waking a worker costs
 * microseconds, which a 32K-operation kernel takes on its own.
 */
const PARALLEL_WORK = 1 << 15;
/** bytes of a row chunk of a streaming launch (16 to 256 KiB measured alike on the 1M chain) */
const STREAM_CHUNK_BYTES = 1 << 16;

interface Features {
  readonly simd: boolean;
  readonly relaxed: boolean;
  readonly shared: boolean;
}
let features: Features | null = null;

/** What this engine's WebAssembly offers (validated on tiny modules, once). */
export function wasmFeatures(): Features {
  if (features) return features;
  const ok = (bytes: number[]) => {
    try {
      return wasmApi()?.validate(new Uint8Array(bytes)) ?? false;
    } catch {
      return false;
    }
  };
  const head = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  // (func (result v128) v128.const 0 [, v128.const 0, v128.const 0, f32x4.relaxed_madd])
  const fn = (body: number[]) => [
    ...head, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00,
    0x0a, body.length + 4, 0x01, body.length + 2, 0x00, ...body, 0x0b,
  ];
  const zero = [0xfd, 0x0c, ...new Array<number>(16).fill(0)];
  const simd = ok(fn(zero));
  const madd = fn([...zero, ...zero, ...zero, 0xfd, 0x85, 0x02]);
  const relaxed = simd && (ok(madd) || (enableRelaxedSimd() && ok(madd)));
  let shared = false;
  try {
    shared = typeof SharedArrayBuffer !== 'undefined' && new (wasmApi()!.Memory)({ initial: 0, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    shared = false;
  }
  return (features = { simd, relaxed, shared });
}

/**
 * Node 20's V8 (11.3) implements relaxed SIMD (f32x4.relaxed_madd is an FMA on x64) behind a
 * flag that V8 11.4 turned on by default; without the fused multiply-add the GEMM is bound by
 * separate multiply and add ports (about 20% slower). So the first wasm device turns the flag on
 * through node:v8 (a wasm validation feature, read when modules are compiled; nothing else in the
 * process changes). False where that is not possible.
 */
function enableRelaxedSimd(): boolean {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const v8 = p?.getBuiltinModule?.('node:v8') as { setFlagsFromString?: (flags: string) => void } | undefined;
  if (typeof v8?.setFlagsFromString !== 'function') return false;
  try {
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    return true;
  } catch {
    return false;
  }
}

/** Whether the wasm device can run here: WebAssembly with SIMD128. */
export function wasmAvailable(): boolean {
  return wasmFeatures().simd;
}

/** The caps of a wasm device (what plans for one are planned with), without starting one. */
export function wasmCaps(f64 = false): DeviceCaps {
  return {
    ...HOST_CAPS,
    kind: 'wasm',
    maxBufferBytes: 2 ** 31 - 1,
    elementBytes: f64 ? { ...HOST_CAPS.elementBytes, f32: 8, f16: 8 } : HOST_CAPS.elementBytes,
  };
}

const shared = new Map<string, WasmDevice>();

/**
 * The device executables with these options share (one memory and one thread pool per
 * configuration in the process).
 */
export function sharedWasmDevice(opts: { f64?: boolean; threads?: number } = {}): WasmDevice {
  const threads = Math.max(1, Math.floor(opts.threads ?? hardwareThreads()));
  const key = `${opts.f64 ? 'f64' : 'f32'}:${threads}`;
  let d = shared.get(key);
  if (!d) {
    d = new WasmDevice({ f64: opts.f64 ?? false, threads });
    shared.set(key, d);
  }
  return d;
}

/** Compiled modules by target and signature, shared by every device of the process. */
const modules = new Map<string, { id: number; module: WasmModule; info: WasmKernelInfo }>();

/** the kernel's module for a target, compiled once per signature */
function moduleFor(kernel: Kernel, target: WasmTarget): { id: number; module: WasmModule; info: WasmKernelInfo } {
  const key = `${target.f64 ? 'f64' : 'f32'}${target.shared ? 's' : ''}${target.relaxed ? 'r' : ''}:${kernelSignature(kernel)}`;
  let m = modules.get(key);
  if (!m) {
    m = { id: modules.size, module: new (wasmApi()!.Module)(renderWasm(kernel, target)), info: kernelInfo(kernel, target) };
    modules.set(key, m);
  }
  return m;
}

function hardwareThreads(): number {
  const os = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:os') as { availableParallelism?: () => number } | undefined;
  return os?.availableParallelism?.() ?? 1;
}

type Run = (...args: number[]) => void;

interface Compiled {
  readonly id: number;
  readonly module: WasmModule;
  readonly info: WasmKernelInfo;
  readonly run: Run;
  /** how the kernel streams with its host copies (null: it does not), found on first need */
  stream: StreamLayout | null | undefined;
  /** its entry point over the calling thread's own memory (WasmDevice.ownMemory), made on first need */
  ownRun?: Run;
}

/** Reads at least this large skip zero-filling the array they copy into (where Node's Buffer is). */
const UNINITIALIZED_READ_BYTES = 1 << 16;

/**
 * An array of `v`'s type and length over memory that is not zero-filled first (Node's
 * Buffer.allocUnsafeSlow, unpooled), to be overwritten whole; a zeroed one elsewhere. Zeroing
 * a fresh 4 MB array took about as long as the copy into it.
 */
function uninitializedLike(v: CpuArray): CpuArray {
  const B = (globalThis as { Buffer?: { allocUnsafeSlow?: (bytes: number) => Uint8Array } }).Buffer;
  if (typeof B?.allocUnsafeSlow !== 'function') return new (v.constructor as new (n: number) => CpuArray)(v.length);
  const bytes = B.allocUnsafeSlow(v.byteLength);
  const C = v.constructor as new (buffer: ArrayBufferLike, offset: number, length: number) => CpuArray;
  return new C(bytes.buffer, bytes.byteOffset, v.length);
}

export class WasmDevice implements Device<WasmBuffer> {
  readonly caps: DeviceCaps;
  readonly description: string;
  readonly threads: number;
  private readonly minParallelWork: number;
  private readonly streamChunkBytes: number;
  private readonly mem: WasmMemory;
  private readonly target: WasmTarget;
  private readonly imports: object;
  private readonly pool: WasmThreadPool | null;
  private readonly runs = new Map<number, Run>();
  /**
   * A memory of the calling thread's own, not shared, for streamed launches that stage every
   * buffer (fed inputs, an output only read): JavaScript copies into or out of a shared memory
   * run at about half the speed of a plain memcpy (V8 copies word by word, relaxed-atomically).
   * Made on first need, with its own instances of those kernels.
   */
  private own: { mem: WasmMemory; runs: Map<number, Run> } | null = null;
  private readonly byKernel = new WeakMap<Kernel, Compiled>();
  private readonly freeLists = new Map<number, number[]>();
  private top = 64;
  private live = 0;
  private peak = 0;
  private scratch: number[] = [];
  /**
   * Called after every launch with its timing, when set (off by default: a launch then only
   * checks this field). For profiles such as bench/profile-mlp.ts.
   */
  profiler: ((r: WasmLaunchRecord) => void) | null = null;
  /** buffers collected without a `free`: their memory returns to the free lists */
  private readonly orphans = new FinalizationRegistry<{ ptr: number; capacity: number; bytes: number }>((b) => {
    this.live -= b.bytes;
    this.release(b.ptr, b.capacity);
  });

  constructor(opts: WasmDeviceOptions = {}) {
    const f = wasmFeatures();
    if (!f.simd) throw new DeviceUseError('wasm device: this engine has no WebAssembly SIMD128');
    const f64 = opts.f64 ?? false;
    const threads = Math.max(1, Math.floor(opts.threads ?? hardwareThreads()));
    const shared = f.shared;
    this.threads = shared && threadsAvailable() ? threads : 1;
    this.minParallelWork = opts.minParallelWork ?? PARALLEL_WORK;
    this.streamChunkBytes = opts.streamChunkBytes ?? STREAM_CHUNK_BYTES;
    this.mem = new (wasmApi()!.Memory)({ initial: 16, maximum: MAX_PAGES, ...(shared ? { shared: true } : {}) });
    const relaxed = f.relaxed && opts.relaxedSimd !== false;
    this.target = { f64, relaxed, shared, maxPages: MAX_PAGES };
    this.imports = { env: { memory: this.mem }, m: { exp: Math.exp, log: Math.log, sin: Math.sin, cos: Math.cos, tanh: Math.tanh, pow: Math.pow } };
    this.pool = this.threads > 1 ? new WasmThreadPool(this.mem, this.threads - 1) : null;
    this.description = `wasm (${this.threads} thread${this.threads > 1 ? 's' : ''}${relaxed ? ', relaxed SIMD' : ''}${f64 ? ', f64' : ''})`;
    this.caps = wasmCaps(f64);
  }

  get memory(): DeviceMemory {
    return { liveBytes: this.live, peakBytes: this.peak };
  }

  /** Bytes the WebAssembly memory has grown to (buffers, free lists and scratch). */
  get reservedBytes(): number {
    return this.mem.buffer.byteLength;
  }

  private elementBytes(dtype: DType): number {
    return this.caps.elementBytes[dtype];
  }

  /** `bytes` of memory at a 16-byte aligned address, from the free lists or the top */
  private reserve(bytes: number): number {
    const list = this.freeLists.get(bytes);
    const reused = list?.pop();
    if (reused !== undefined) return reused;
    const ptr = this.top;
    const end = ptr + bytes;
    if (end > this.mem.buffer.byteLength) {
      const pages = Math.ceil((end - this.mem.buffer.byteLength) / PAGE);
      const have = this.mem.buffer.byteLength / PAGE;
      if (have + pages > MAX_PAGES) throw new DeviceUseError(`wasm device: out of memory (${end} bytes of at most ${MAX_PAGES * PAGE})`);
      this.mem.grow(Math.max(pages, Math.min(have, MAX_PAGES - have)));
    }
    this.top = end;
    return ptr;
  }

  alloc(dtype: DType, elements: number): WasmBuffer {
    const bytes = elements * this.elementBytes(dtype);
    const capacity = Math.max(16, Math.ceil(bytes / 16) * 16);
    const b = { ptr: this.reserve(capacity), dtype, length: elements, capacity };
    this.live += bytes;
    if (this.live > this.peak) this.peak = this.live;
    this.orphans.register(b, { ptr: b.ptr, capacity, bytes }, b);
    return b;
  }

  free(b: WasmBuffer): void {
    if (!this.orphans.unregister(b)) throw new DeviceUseError('wasm device: a buffer freed twice, or not from this device');
    this.live -= this.bytes(b);
    this.release(b.ptr, b.capacity);
  }

  private release(ptr: number, capacity: number): void {
    const list = this.freeLists.get(capacity);
    if (list) list.push(ptr);
    else this.freeLists.set(capacity, [ptr]);
  }

  bytes(b: WasmBuffer): number {
    return b.length * this.elementBytes(b.dtype);
  }

  /** a view of the buffer in the memory as it is now (invalid after the memory grows) */
  private view(b: WasmBuffer): CpuArray {
    return this.viewOf(this.mem.buffer, b.dtype, b.ptr, b.length);
  }

  private viewOf(buf: ArrayBufferLike, dtype: DType, ptr: number, length: number): CpuArray {
    switch (dtype) {
      case 'i32': return new Int32Array(buf, ptr, length);
      case 'bool': return new Uint8Array(buf, ptr, length);
      default: return this.target.f64 ? new Float64Array(buf, ptr, length) : new Float32Array(buf, ptr, length);
    }
  }

  upload(dtype: DType, data: CpuArray): WasmBuffer {
    const b = this.alloc(dtype, data.length);
    this.write(b, data);
    return b;
  }

  write(b: WasmBuffer, data: CpuArray): void {
    if (data.length !== b.length) throw new DeviceUseError(`write of ${data.length} values into a buffer of ${b.length}`);
    this.view(b).set(data);
    this.roundF16(b);
  }

  /**
   * f16 values are binary16: kernels compute in f32 and this pass rounds what a kernel (or an
   * upload) stored in an f16 buffer. f64 devices keep f16 in double precision.
   */
  private roundF16(b: WasmBuffer): void {
    if (b.dtype === 'f16' && !this.target.f64) f16roundArray(this.view(b) as Float32Array);
  }

  copy(src: WasmBuffer, dst: WasmBuffer): void {
    new Uint8Array(this.mem.buffer).copyWithin(dst.ptr, src.ptr, src.ptr + Math.min(this.bytes(src), this.bytes(dst)));
  }

  /** the kernel's module, instance and launch facts, made once per kernel */
  private compiled(kernel: Kernel): Compiled {
    let k = this.byKernel.get(kernel);
    if (!k) {
      const m = moduleFor(kernel, this.target);
      let run = this.runs.get(m.id);
      if (!run) {
        run = new (wasmApi()!.Instance)(m.module, this.imports).exports['run'] as Run;
        this.runs.set(m.id, run);
      }
      k = { ...m, run, stream: undefined };
      this.byKernel.set(kernel, k);
    }
    return k;
  }

  /** this thread's own memory, grown to `bytes`, and the kernel's entry point in an instance over it */
  private ownMemory(k: Compiled, kernel: Kernel, bytes: number): { run: Run; buf: ArrayBuffer } {
    const api = wasmApi()!;
    this.own ??= { mem: new api.Memory({ initial: Math.ceil(bytes / PAGE), maximum: MAX_PAGES }), runs: new Map() };
    const { mem, runs } = this.own;
    if (mem.buffer.byteLength < bytes) mem.grow(Math.ceil((bytes - mem.buffer.byteLength) / PAGE));
    if (!k.ownRun) {
      const m = moduleFor(kernel, { ...this.target, shared: false });
      k.ownRun = runs.get(m.id) ?? (new api.Instance(m.module, { ...this.imports, env: { memory: mem } }).exports['run'] as Run);
      runs.set(m.id, k.ownRun);
    }
    return { run: k.ownRun, buf: mem.buffer as ArrayBuffer };
  }

  launch(kernel: Kernel, inputs: readonly WasmBuffer[], out: WasmBuffer): void {
    this.launchCompiled(kernel, this.compiled(kernel), inputs, out);
  }

  /** `meanwhile` runs on this thread once the workers have been told (before the kernel when it runs here alone) */
  private launchCompiled(kernel: Kernel, k: Compiled, inputs: readonly WasmBuffer[], out: WasmBuffer, meanwhile?: () => void): void {
    const t0 = this.profiler ? performance.now() : 0;
    const ptrs = [out.ptr, ...inputs.map((b) => b.ptr)];
    const { split, align, work } = k.info;
    const scratch = kernel.kind === 'matmul' ? this.scratchFor(this.threads) : [0];
    if (!this.pool || split < 2 * align || work < this.minParallelWork) {
      meanwhile?.();
      k.run(...ptrs, 0, split || 1, scratch[0]!);
      this.roundF16(out);
      this.profiler?.({ kernel, ms: performance.now() - t0, threads: 1, waitMs: 0, streamed: false });
      return;
    }
    // a few chunks a thread, whole multiples of `align`; a matmul chunk packs all of B again, so
    // matmuls take two a thread, other kernels four
    const units = Math.ceil(split / align);
    const chunk = Math.ceil(units / Math.min(units, (kernel.kind === 'matmul' ? 2 : 4) * this.threads)) * align;
    const waitMs = this.pool.launch(k.id, k.module, k.run, ptrs, split, chunk, scratch, this.profiler !== null, meanwhile);
    this.roundF16(out);
    this.profiler?.({ kernel, ms: performance.now() - t0, threads: 1 + this.pool.lastJoined, waitMs, streamed: false });
  }

  /** per-thread GEMM scratch, reserved once */
  private scratchFor(threads: number): number[] {
    while (this.scratch.length < threads) this.scratch.push(this.reserve(Math.ceil(gemmScratchBytes() / 64) * 64 + 64));
    return this.scratch;
  }

  /**
   * `b`'s values as a host array over the device's memory, no copy: a collective reads and writes
   * it in place. Invalid once the memory grows, so only for use before the next alloc.
   */
  hostView(b: WasmBuffer): CpuArray {
    return this.view(b);
  }

  readSync(bs: readonly WasmBuffer[]): CpuArray[] {
    return bs.map((b) => {
      const a = this.newArray(b, false);
      a.set(this.view(b));
      return a;
    });
  }

  /**
   * A new host array for `b`'s values, to be overwritten whole; with `touch`, its pages touched
   * (a fresh array of megabytes costs a page fault every 4 KiB on first write, as long as the
   * copy into it: a launch on the workers can overlap them).
   */
  private newArray(b: WasmBuffer, touch: boolean): CpuArray {
    if (this.bytes(b) < UNINITIALIZED_READ_BYTES) return allocArray(b.dtype, b.length, this.target.f64);
    const a = uninitializedLike(this.view(b));
    const page = 4096 / a.BYTES_PER_ELEMENT;
    if (touch) for (let i = 0; i < a.length; i += page) a[i] = 0;
    return a;
  }

  readInto(b: WasmBuffer, dst: CpuArray): void {
    if (dst.length !== b.length) throw new DeviceUseError(`wasm device: a read of ${b.length} values into an array of ${dst.length}`);
    dst.set(this.view(b));
  }

  launchWithHost(kernel: Kernel, inputs: readonly WasmBuffer[], out: WasmBuffer, io: HostTraffic): CpuArray | null {
    const k = this.compiled(kernel);
    if (k.stream === undefined) k.stream = kernel.kind === 'map' ? streamLayout(kernel, this.target.f64) : null;
    if (io.read?.into && io.read.into.length !== out.length) throw new DeviceUseError(`wasm device: a read of ${out.length} values into an array of ${io.read.into.length}`);
    if (k.stream) return this.stream(kernel, k, k.stream, inputs, out, io);
    for (const [j, a] of io.feeds) this.write(inputs[j]!, a);
    let dst = io.read?.into;
    this.launchCompiled(kernel, k, inputs, out, io.read && !dst ? () => void (dst = this.newArray(out, true)) : undefined);
    if (!io.read) return null;
    dst ??= this.newArray(out, false);
    dst.set(this.view(out));
    return dst;
  }

  /**
   * A map kernel run in chunks of rows on this thread, each chunk's feeds copied in, computed
   * and copied out while it is in cache. A fed buffer whose only reader this is (and `out`, when
   * nothing else reads it) holds one chunk at a time, at its head: the kernel is handed its
   * address less the chunk's offset, so that row `lo` lands there (addresses wrap as i32, and
   * the chunk's rows read nothing outside their own rows of a row-local input). When every
   * buffer is staged so, the chunks go to this thread's own memory instead (`own`), where the
   * copies run at memcpy's speed. When none is staged and the output is read, the workers compute
   * the chunks while this thread copies them out (`streamOverlapped`).
   */
  private stream(kernel: Kernel, k: Compiled, layout: StreamLayout, inputs: readonly WasmBuffer[], out: WasmBuffer, io: HostTraffic): CpuArray | null {
    const t0 = this.profiler ? performance.now() : 0;
    const split = kernel.out.shape[0]!;
    const bytesOf = (b: WasmBuffer) => this.elementBytes(b.dtype);
    // an input is staged when it is fed and row-local, as is every other position holding its buffer
    const staged = inputs.map((b, j) => io.feeds.has(j) && inputs.every((c, i) => c !== b || (io.feeds.has(i) && layout.spans[i] !== null && layout.spans[i] === layout.spans[j])));
    for (const [j, a] of io.feeds) if (!staged[j]) this.write(inputs[j]!, a);
    const stageOut = io.read?.only === true;
    let rowBytes = layout.outRow * bytesOf(out);
    inputs.forEach((b, j) => { if (staged[j]) rowBytes = Math.max(rowBytes, layout.spans[j]! * bytesOf(b)); });
    const rows = Math.max(1, Math.floor(this.streamChunkBytes / Math.max(1, rowBytes)));
    if (io.read && this.pool && !staged.some((x) => x) && split >= 2 * rows && k.info.work >= this.minParallelWork) {
      return this.streamOverlapped(kernel, k, layout.outRow, inputs, out, io.read.into ?? null, split, Math.max(rows, Math.ceil(split / MAX_FINISHED)), t0);
    }
    const dst = io.read ? (io.read.into ?? this.newArray(out, false)) : null;
    // Where chunks are staged: at the head of each staged buffer in the device's memory, or, when
    // every buffer is staged, in this thread's own memory (`own`), one place per distinct buffer
    const own = dst !== null && stageOut && this.target.shared && staged.every((x) => x);
    let run = k.run, buf: ArrayBufferLike = this.mem.buffer, outAt = out.ptr;
    const at = inputs.map((b) => b.ptr);
    if (own) {
      const align16 = (n: number) => Math.ceil(n / 16) * 16;
      let top = 64;
      inputs.forEach((b, j) => {
        const i = inputs.indexOf(b);
        if (i < j) at[j] = at[i]!;
        else (at[j] = top), (top += align16(rows * layout.spans[j]! * bytesOf(b)));
      });
      outAt = top;
      ({ run, buf } = this.ownMemory(k, kernel, top + align16(rows * layout.outRow * bytesOf(out))));
    }
    // a buffer at several positions is copied in once
    const views = inputs.map((b, j) => (staged[j] && inputs.indexOf(b) === j ? this.viewOf(buf, b.dtype, at[j]!, Math.min(b.length, rows * layout.spans[j]!)) : null));
    const outView = this.viewOf(buf, out.dtype, outAt, stageOut ? Math.min(out.length, rows * layout.outRow) : out.length);
    const args = [outAt, ...at];
    for (let lo = 0; lo < split; lo += rows) {
      const hi = Math.min(split, lo + rows);
      for (let j = 0; j < inputs.length; j++) {
        if (!staged[j]) continue;
        const span = layout.spans[j]!, feed = io.feeds.get(j)!;
        views[j]?.set(feed.subarray(lo * span, Math.min(hi * span, feed.length)));
        args[1 + j] = (at[j]! - lo * span * bytesOf(inputs[j]!)) | 0;
      }
      if (stageOut) args[0] = (outAt - lo * layout.outRow * bytesOf(out)) | 0;
      run(...args, lo, hi, 0);
      if (dst) dst.set(outView.subarray(stageOut ? 0 : lo * layout.outRow, (stageOut ? hi - lo : hi) * layout.outRow), lo * layout.outRow);
    }
    this.profiler?.({ kernel, ms: performance.now() - t0, threads: 1, waitMs: 0, streamed: true, ownMemory: own });
    return dst;
  }

  /**
   * A map kernel whose inputs are all in the device's memory and whose output (`n` values a
   * row) is read: the workers compute its chunks of `rows` rows into `out` while this thread
   * copies each finished chunk to the host array (made meanwhile, when not given), and computes
   * chunks itself when none is ready, so the copy, as long as the kernel on a 1M-element chain,
   * hides behind it.
   */
  private streamOverlapped(kernel: Kernel, k: Compiled, n: number, inputs: readonly WasmBuffer[], out: WasmBuffer, into: CpuArray | null, split: number, rows: number, t0: number): CpuArray {
    const pool = this.pool!;
    let dst = into;
    const view = this.view(out);
    const waitMs = pool.launchTaking(k.id, k.module, k.run, [out.ptr, ...inputs.map((b) => b.ptr)], split, rows, [0], (lo, hi) => {
      dst!.set(view.subarray(lo * n, hi * n), lo * n);
    }, this.profiler !== null, dst ? undefined : () => void (dst = this.newArray(out, true)));
    this.profiler?.({ kernel, ms: performance.now() - t0, threads: 1 + pool.lastJoined, waitMs, streamed: true, ownMemory: false, copiedAsComputed: true });
    return dst!;
  }

  read(bs: readonly WasmBuffer[]): Promise<CpuArray[]> {
    return Promise.resolve(this.readSync(bs));
  }

  /** Ends the worker threads (they also end with the process). */
  close(): void {
    this.pool?.close();
  }
}
