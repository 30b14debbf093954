// The Device interface every backend implements — capabilities, buffers, uploads, kernel
// launches, reads — and the host devices: the CPU (kernels rendered to JavaScript) and the
// reference (the kernel IR interpreter). A device renders kernels and moves bytes; it never
// decides when a buffer lives or dies (the plan's steps do, runtime/plan-interpreter.ts runs them).

import { RheoError } from '../graphs/errors.js';
import type { DType } from '../graphs/types.js';
import type { Kernel } from '../ops/kernel-ir.js';
import { HOST_CAPS, type DeviceCaps } from '../scheduler/caps.js';
import { cpuKernel, type CpuArray, type CpuKernelFn } from './cpu/render-js.js';
import { f16roundArray } from '../ops/f16.js';
import { interpretKernel } from './interpreter.js';
import { allocArray } from './tensor.js';

/** Bytes a device's buffers hold now and at most, as its allocator counted them. */
export interface DeviceMemory {
  readonly liveBytes: number;
  readonly peakBytes: number;
}

/**
 * A place kernels run. `B` is the device's buffer type (typed arrays on the host, GPU buffers on
 * WebGPU); callers treat it as opaque. Launches and reads are ordered: a read returns the values
 * as of the moment it was called, even when the device finishes the work later.
 */
export interface Device<B = unknown> {
  readonly caps: DeviceCaps;
  /** e.g. 'cpu', 'reference', 'webgpu: llvmpipe (OpenGL ES 3.2 Mesa 22.3.6; opengles, compatibility)' */
  readonly description: string;
  /** the instrumented allocator's counters */
  readonly memory: DeviceMemory;
  /** an uninitialized buffer of `elements` values */
  alloc(dtype: DType, elements: number): B;
  free(b: B): void;
  /** bytes `b` holds, as the allocator counts them */
  bytes(b: B): number;
  /** a new buffer holding a copy of host data */
  upload(dtype: DType, data: CpuArray): B;
  /** overwrite a buffer's contents with host data (after the work recorded so far) */
  write(b: B, data: CpuArray): void;
  copy(src: B, dst: B): void;
  launch(kernel: Kernel, inputs: readonly B[], out: B): void;
  /**
   * Devices whose memory the host copies into and out of (WebAssembly): a launch that carries
   * its host traffic, run synchronously. The device writes `io.feeds` into their buffers, runs
   * the kernel and, with `io.read`, reads the output into a host array, in whatever order is
   * fastest (chunk by chunk while each chunk is in cache, where the kernel allows). Returns the
   * array read into, else null.
   */
  launchWithHost?(kernel: Kernel, inputs: readonly B[], out: B, io: HostTraffic): CpuArray | null;
  /** copies of the buffers' contents as of this call */
  read(bs: readonly B[]): Promise<CpuArray[]>;
  /** the same, synchronously; only where `caps.sync` */
  readSync?(bs: readonly B[]): CpuArray[];
  /** a copy of `b`'s contents into `dst` (of `b`'s array type and length), synchronously */
  readInto?(b: B, dst: CpuArray): void;
  /**
   * Host devices: `data` itself as a buffer, borrowed for a run (kernels never write their
   * inputs); `free` gives it back without recycling it. Saves the copy `upload` makes.
   */
  adopt?(dtype: DType, data: CpuArray): B;
  /** Host devices: hands `b`'s array to the caller, who owns it from then on (no copy). */
  take?(b: B): CpuArray;
  /**
   * Devices whose memory the host can address (WebAssembly): `b`'s values as a host array, no
   * copy, valid until the next alloc; collectives and sends work on it in place.
   */
  hostView?(b: B): CpuArray;
}

/** The host copies a launch carries (see `Device.launchWithHost`). */
export interface HostTraffic {
  /**
   * host values of inputs, by input position, to be written into those inputs' buffers; only
   * this launch reads those buffers, so the device may stage a part of the values at a time
   * in them and leave them holding no defined values after
   */
  readonly feeds: ReadonlyMap<number, CpuArray>;
  /**
   * the output read into `into` (of its array type and length), or into a new array when
   * there is none; with `only`, nothing else reads `out`, which the device may then use as
   * staging space the same way
   */
  readonly read: { readonly into: CpuArray | undefined; readonly only: boolean } | null;
}

/** A device used in a way it does not support. */
export class DeviceUseError extends RheoError {}

/**
 * A device in host memory: buffers are typed arrays recycled by type and length, so a plan's
 * frees make room for its later launches. 'cpu' runs kernels rendered to JavaScript (compiled
 * once per signature), 'reference' interprets the kernel IR. With `f64`, float tensors are stored
 * in double precision (for gradient checks). f16 tensors hold binary16 values in Float32Arrays:
 * kernels round what they store, uploads and writes round what they are given (f64 devices keep
 * f16 in double precision too).
 */
export class HostDevice implements Device<CpuArray> {
  readonly caps: DeviceCaps;
  readonly description: string;
  private live = 0;
  private peak = 0;
  private readonly pool = new Map<string, CpuArray[]>();
  private readonly fns = new WeakMap<Kernel, CpuKernelFn>();
  private readonly borrowed = new WeakSet<CpuArray>();
  /** buffers that hold f16 values (in f32 arrays): uploads and writes into them round to binary16 */
  private readonly f16 = new WeakSet<CpuArray>();

  constructor(readonly kind: 'cpu' | 'reference', readonly f64 = false) {
    this.description = f64 ? `${kind} (f64)` : kind;
    this.caps = { ...HOST_CAPS, kind, elementBytes: f64 ? { ...HOST_CAPS.elementBytes, f32: 8, f16: 8 } : HOST_CAPS.elementBytes };
  }

  get memory(): DeviceMemory {
    return { liveBytes: this.live, peakBytes: this.peak };
  }

  alloc(dtype: DType, elements: number): CpuArray {
    const a = this.pool.get(this.key(dtype, elements))?.pop() ?? allocArray(dtype, elements, this.f64);
    if (dtype === 'f16' && a instanceof Float32Array) this.f16.add(a);
    else this.f16.delete(a);
    this.count(a.byteLength);
    return a;
  }

  free(b: CpuArray): void {
    this.live -= b.byteLength;
    if (this.borrowed.delete(b)) return;
    const key = `${b.constructor.name}:${b.length}`;
    const list = this.pool.get(key);
    if (list) list.push(b);
    else this.pool.set(key, [b]);
  }

  bytes(b: CpuArray): number {
    return b.byteLength;
  }

  upload(dtype: DType, data: CpuArray): CpuArray {
    const a = this.alloc(dtype, data.length);
    a.set(data);
    if (this.f16.has(a)) f16roundArray(a as Float32Array);
    return a;
  }

  adopt(dtype: DType, data: CpuArray): CpuArray {
    const type = this.key(dtype, data.length).split(':')[0];
    // f16 data is copied, so that rounding it leaves the caller's array alone
    if (data.constructor.name !== type || this.borrowed.has(data) || dtype === 'f16') return this.upload(dtype, data);
    this.borrowed.add(data);
    this.count(data.byteLength);
    return data;
  }

  take(b: CpuArray): CpuArray {
    this.live -= b.byteLength;
    this.borrowed.delete(b);
    return b;
  }

  write(b: CpuArray, data: CpuArray): void {
    if (data.length !== b.length) throw new DeviceUseError(`write of ${data.length} values into a buffer of ${b.length}`);
    b.set(data);
    if (this.f16.has(b)) f16roundArray(b as Float32Array);
  }

  copy(src: CpuArray, dst: CpuArray): void {
    dst.set(src);
  }

  launch(kernel: Kernel, inputs: readonly CpuArray[], out: CpuArray): void {
    let f = this.fns.get(kernel);
    if (!f) {
      f = this.kind === 'reference' ? (ins, o) => interpretKernel(kernel, ins, o) : cpuKernel(kernel);
      this.fns.set(kernel, f);
    }
    f(inputs, out);
  }

  readSync(bs: readonly CpuArray[]): CpuArray[] {
    return bs.map((b) => b.slice() as CpuArray);
  }

  readInto(b: CpuArray, dst: CpuArray): void {
    if (dst.length !== b.length) throw new DeviceUseError(`${this.description} device: a read of ${b.length} values into an array of ${dst.length}`);
    dst.set(b);
  }

  read(bs: readonly CpuArray[]): Promise<CpuArray[]> {
    return Promise.resolve(this.readSync(bs));
  }

  private key(dtype: DType, elements: number): string {
    const type = dtype === 'i32' ? 'Int32Array' : dtype === 'bool' ? 'Uint8Array' : this.f64 ? 'Float64Array' : 'Float32Array';
    return `${type}:${elements}`;
  }

  private count(bytes: number): void {
    this.live += bytes;
    if (this.live > this.peak) this.peak = this.live;
  }
}
