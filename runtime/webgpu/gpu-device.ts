// WebGPU as a Device: the backend's buffers, dispatches and reads behind the interface the plan
// interpreter drives, with the adapter's limits as capabilities. Counts the bytes of the buffers
// it hands out (its instrumented allocator); the backend's pool decides which GPU buffer backs them.

import type { DType } from '../../graphs/types.js';
import type { Kernel } from '../../ops/kernel-ir.js';
import type { DeviceCaps } from '../../scheduler/caps.js';
import type { CpuArray } from '../cpu/render-js.js';
import type { Device, DeviceMemory } from '../device.js';
import { WebGpuBackend, type HostArray, type WebGpuTensor } from './backend.js';
import { describeAdapterInfo } from './device.js';

let shared: Promise<WebGpuBackend | null> | undefined;

/**
 * The process's WebGPU backend, acquired on first use and shared by every executable (one device,
 * one pipeline cache, one buffer pool); null when this platform has no adapter, with the reason
 * in `WebGpuBackend.unavailableReason`.
 *
 * ```ts
 * const be = await sharedWebGpuBackend();
 * console.log(be ? be.gpu.info.description : WebGpuBackend.unavailableReason);
 * ```
 */
export function sharedWebGpuBackend(): Promise<WebGpuBackend | null> {
  shared ??= WebGpuBackend.create();
  return shared;
}

const asHost = (a: CpuArray): HostArray => (a instanceof Float64Array ? Float32Array.from(a) : a);

/** A one-line description of a backend's adapter, e.g. `llvmpipe-llvm-15-0-6-256-bits- (OpenGL ES 3.2 Mesa 22.3.6; opengles, compatibility)`. */
export function describeAdapter(be: WebGpuBackend): string {
  return describeAdapterInfo(be.gpu.info);
}

export class WebGpuDevice implements Device<WebGpuTensor> {
  readonly caps: DeviceCaps;
  readonly description: string;
  private live = 0;
  private peak = 0;

  constructor(readonly backend: WebGpuBackend) {
    const lim = backend.gpu.limits;
    this.caps = {
      kind: 'webgpu',
      maxKernelBuffers: lim.maxStorageBuffersPerShaderStage,
      maxBufferBytes: Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize),
      maxWorkgroupInvocations: lim.maxComputeInvocationsPerWorkgroup,
      maxWorkgroupStorageBytes: lim.maxComputeWorkgroupStorageSize,
      // a buffer bound for reading and for writing in one dispatch is a validation error
      inPlace: false,
      sync: false,
      f64: false,
      // matmuls read conv2d's windows and padding in their loads (no im2col buffer)
      implicitGemm: true,
      // a sum, max or min over a matmul product's trailing dims is fused into the matmul
      matmulReduce: backend.fusesMatmulReductions,
      // bool as u32; f16 as f16 with 'shader-f16', else as f32 words holding binary16 values
      elementBytes: { f32: 4, f16: backend.elementBytes('f16'), i32: 4, bool: 4 },
    };
    this.description = `webgpu: ${describeAdapter(backend)}`;
  }

  get memory(): DeviceMemory {
    return { liveBytes: this.live, peakBytes: this.peak };
  }

  alloc(dtype: DType, elements: number): WebGpuTensor {
    const t = this.backend.alloc(dtype, elements);
    this.count(this.bytes(t));
    return t;
  }

  free(b: WebGpuTensor): void {
    this.live -= this.bytes(b);
    this.backend.release(b);
  }

  bytes(b: WebGpuTensor): number {
    return b.elements * this.caps.elementBytes[b.dtype];
  }

  upload(dtype: DType, data: CpuArray): WebGpuTensor {
    const t = this.backend.upload(asHost(data), dtype);
    this.count(this.bytes(t));
    return t;
  }

  write(b: WebGpuTensor, data: CpuArray): void {
    this.backend.write(b, asHost(data));
  }

  copy(src: WebGpuTensor, dst: WebGpuTensor): void {
    this.backend.copy(src, dst);
  }

  launch(kernel: Kernel, inputs: readonly WebGpuTensor[], out: WebGpuTensor): void {
    this.backend.run(kernel, inputs, out);
  }

  read(bs: readonly WebGpuTensor[]): Promise<CpuArray[]> {
    return this.backend.readMany(bs);
  }

  private count(bytes: number): void {
    this.live += bytes;
    if (this.live > this.peak) this.peak = this.live;
  }
}
