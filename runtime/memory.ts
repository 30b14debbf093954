// Host memory under a budget: parsing byte sizes, and the instrumented allocator whose measured
// peak a remat plan's planned peak is checked against. Recycles typed arrays by type and length;
// it does not plan anything (scheduler/remat-plan.ts does).

import type { DType } from '../graphs/types.js';
import type { CpuArray } from './cpu/render-js.js';
import { allocArray } from './tensor.js';

/** '256 MB', '1.5 GiB', '4096' -> bytes */
export function parseBytes(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^\s*([\d.]+)\s*([kmg]?i?b?)?\s*$/i.exec(v);
  if (!m) throw new RangeError(`memory budget '${v}' is not a number of bytes such as '256 MB'`);
  const unit = (m[2] ?? '').toLowerCase().replace(/b$/, '');
  const scale: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3 };
  if (!(unit in scale)) throw new RangeError(`memory budget '${v}' has an unknown unit`);
  return Math.floor(Number(m[1]) * scale[unit]!);
}


/**
 * The allocator used under a memory budget: typed arrays recycled by (dtype, length), counting
 * the bytes handed out and not yet returned, and the peak of that count.
 */
export class CountingPool {
  private readonly free_ = new Map<string, CpuArray[]>();
  liveBytes = 0;
  peakBytes = 0;
  constructor(private readonly f64: boolean) {}

  alloc(dtype: DType, elements: number): CpuArray {
    const key = `${dtype === 'i32' ? 'Int32Array' : dtype === 'bool' ? 'Uint8Array' : this.f64 ? 'Float64Array' : 'Float32Array'}:${elements}`;
    const a = this.free_.get(key)?.pop() ?? allocArray(dtype, elements, this.f64);
    this.liveBytes += a.byteLength;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    return a;
  }

  free(a: CpuArray): void {
    this.liveBytes -= a.byteLength;
    const key = `${a.constructor.name}:${a.length}`;
    const list = this.free_.get(key) ?? [];
    list.push(a);
    this.free_.set(key, list);
  }
}
