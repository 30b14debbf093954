// Which map kernels can run as a stream of row chunks with their host copies: a launch that is
// fed from host arrays or read into one runs chunk by chunk on the calling thread (copy the
// chunk's input rows in, run the kernel on them, copy its output rows out) while the chunk is
// in cache, instead of three passes over memory. An input whose rows [lo, hi) are all a chunk
// of rows [lo, hi) reads (a row-local input) can then be staged a chunk at a time at the head
// of its buffer. This module decides that from the kernel IR; it copies nothing.

import type { Expr, IndexExpr, MapKernel } from '../../ops/kernel-ir.js';
import { exprChildren, forEachIndex, hasReduce, ibounds } from '../../ops/kernel-ir.js';
import { coefOf, simdMappable } from './simd-wasm.js';

/** How a map kernel streams. */
export interface StreamLayout {
  /** elements of the output in one row of the split axis (axis 0) */
  readonly outRow: number;
  /**
   * by input: elements of the buffer that one output row reads, rows [lo, hi) reading exactly
   * within [lo * span, hi * span); null where the input is not row-local (a broadcast along
   * axis 0, a gather, a transpose)
   */
  readonly spans: readonly (number | null)[];
}

/** Every (buffer, index) an expression reads, gathers' index reads included. */
function accesses(e: Expr, out: { buf: number; at: IndexExpr }[]): void {
  const inIndex = (i: IndexExpr): void => {
    if (i.k === 'loadIndex') out.push({ buf: i.buf, at: i.at });
    if (i.k === 'add') (inIndex(i.a), inIndex(i.b));
    else if (i.k !== 'var' && i.k !== 'const') inIndex(i.k === 'loadIndex' ? i.at : i.a);
  };
  const loads = (x: Expr): void => {
    if (x.k === 'load') out.push({ buf: x.buf, at: x.at });
    for (const c of exprChildren(x)) loads(c);
  };
  loads(e);
  forEachIndex(e, inIndex);
}

/**
 * The kernel's stream layout, or null when it should not stream: only elementwise kernels
 * that run four lanes at a time (no reductions, no transcendentals: bound by memory, so one
 * thread with the data in cache beats several threads without), over f32 or booleans (f16
 * buffers are rounded after a kernel, f64 devices run scalar code).
 */
export function streamLayout(k: MapKernel, f64: boolean): StreamLayout | null {
  const shape = k.out.shape;
  if (f64 || shape.length === 0 || shape[0]! === 0 || hasReduce(k.expr) || !simdMappable(k)) return null;
  if (k.out.dtype === 'f16' || k.inputs.some((b) => b.dtype === 'f16')) return null;
  const sizes = new Map<string, number>(shape.map((d, i) => [`i${i}`, i === 0 ? 1 : d]));
  const reads: { buf: number; at: IndexExpr }[] = [];
  accesses(k.expr, reads);
  const spans = k.inputs.map((_, j): number | null => {
    let span: number | null = null;
    for (const r of reads) {
      if (r.buf !== j) continue;
      // at = span * i0 + rest, 0 <= rest < span for every value of the other variables
      const c = coefOf(r.at, 'i0');
      if (c === null || c <= 0 || (span !== null && c !== span)) return null;
      const [lo, hi] = ibounds(r.at, sizes);
      if (lo < 0 || hi >= c) return null;
      span = c;
    }
    return span;
  });
  return { outRow: shape.slice(1).reduce((p, d) => p * d, 1), spans };
}
