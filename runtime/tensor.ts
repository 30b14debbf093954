// Host tensors: the values users feed and get back (a typed array, a shape, a dtype). f16 values
// are held in a Float32Array, each exactly representable in binary16 (outputs always are; f32
// data fed for an f16 input is rounded when a device uploads it); bool as one byte per element.

import type { DType } from '../graphs/types.js';
import { numel } from '../graphs/types.js';
import type { CpuArray } from './cpu/render-js.js';

export interface HostTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: CpuArray;
}

export function allocArray(dtype: DType, n: number, f64 = false): CpuArray {
  if (f64 && (dtype === 'f32' || dtype === 'f16')) return new Float64Array(n);
  return dtype === 'i32' ? new Int32Array(n) : dtype === 'bool' ? new Uint8Array(n) : new Float32Array(n);
}

/**
 * A host tensor from values and a shape; the dtype defaults from the array type. An 'f16' tensor
 * keeps its values in a Float32Array as given; devices round them to binary16 on upload
 * (`f16round` does the same to one number).
 */
export function tensor(data: ArrayLike<number> | CpuArray, shape: readonly number[], dtype?: DType): HostTensor {
  const d: DType = dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint8Array ? 'bool' : 'f32');
  const n = numel(shape);
  if (data.length !== n) throw new RangeError(`tensor: ${data.length} values for shape [${shape.join(', ')}] (${n} elements)`);
  const arr = allocArray(d, n);
  const ok = (d === 'i32' && data instanceof Int32Array) || (d === 'bool' && data instanceof Uint8Array) || ((d === 'f32' || d === 'f16') && data instanceof Float32Array);
  return { dtype: d, shape: [...shape], data: ok ? (data as CpuArray) : (arr.set(Array.from(data)), arr) };
}

/** Nested JS arrays of a host tensor, for printing and tests. */
export function toNested(t: HostTensor): unknown {
  const rec = (dim: number, off: number): unknown => {
    if (dim === t.shape.length) return t.data[off];
    const stride = numel(t.shape.slice(dim + 1));
    return Array.from({ length: t.shape[dim]! }, (_, i) => rec(dim + 1, off + i * stride));
  };
  return rec(0, 0);
}
