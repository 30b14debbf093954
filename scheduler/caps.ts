// What a device can do, as far as planning cares: the limits that decide how large a fused
// kernel may grow and whether a kernel may write a buffer it reads. Devices (runtime/) report
// these; fusion, kernel building and rematerialization read them. It holds no device state.

import type { DType } from '../graphs/types.js';

export interface DeviceCaps {
  /** e.g. 'cpu', 'reference', 'webgpu' */
  readonly kind: string;
  /** buffers one kernel may bind, its inputs and its output together (WebGPU: storage buffers per shader stage) */
  readonly maxKernelBuffers: number;
  /** bytes one buffer may hold (WebGPU: maxStorageBufferBindingSize and maxBufferSize) */
  readonly maxBufferBytes: number;
  /** invocations per workgroup (Infinity where there are no workgroups) */
  readonly maxWorkgroupInvocations: number;
  /** bytes of workgroup memory (Infinity where there is none to run out of) */
  readonly maxWorkgroupStorageBytes: number;
  /**
   * a kernel may write its output into a buffer it also reads at the same element (in-place
   * updates under a memory budget); WebGPU forbids a buffer bound for reading and writing at once
   */
  readonly inPlace: boolean;
  /** results can be read back synchronously (`runSync`) */
  readonly sync: boolean;
  /** float tensors can be stored in double precision */
  readonly f64: boolean;
  /**
   * matmul operands may be gathers (`MatmulOperand.gather`): a view that strides cannot express
   * (conv2d's unfolded windows, padding) is read inside the matmul's loads instead of being
   * copied into a buffer first (implicit GEMM). Absent means false.
   */
  readonly implicitGemm?: boolean;
  /**
   * a reduction over the trailing dims of a matmul product (through an elementwise epilogue) may be
   * fused into the matmul (`MatmulKernel.reduce`), so the product is never written. Absent means false.
   */
  readonly matmulReduce?: boolean;
  /** bytes one element of each dtype takes in this device's buffers (plans count memory in these) */
  readonly elementBytes: Readonly<Record<DType, number>>;
}

/** A host device: no limit a kernel could reach. */
export const HOST_CAPS: DeviceCaps = {
  kind: 'cpu',
  maxKernelBuffers: Infinity,
  maxBufferBytes: 2 ** 31 - 1,
  maxWorkgroupInvocations: Infinity,
  maxWorkgroupStorageBytes: Infinity,
  inPlace: true,
  sync: true,
  f64: true,
  elementBytes: { f32: 4, f16: 4, i32: 4, bool: 1 },
};

/** Bytes of `elements` values of `dtype` on a device with these caps. */
export function bufferBytes(caps: DeviceCaps, dtype: DType, elements: number): number {
  return elements * caps.elementBytes[dtype];
}
