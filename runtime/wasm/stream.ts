// Which map kernels can run as a stream of row chunks with their host copies: a launch that is
// fed from host arrays or read into one runs chunk by chunk on the calling thread (copy the
// chunk's input rows in, run the kernel on them, copy its output rows out) while the chunk is
// in cache, instead of three passes over memory. An input whose rows [lo, hi) are all a chunk
// of rows [lo, hi) reads (a row-local input) can then be staged a chunk at a time at the head
// of its buffer. This module decides that from the kernel IR; it copies nothing.

import type { Expr, IndexExpr, IndexPred, MapKernel } from '../../ops/kernel-ir.js';
import { ibounds } from '../../ops/kernel-ir.js';
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
  const idx = (i: IndexExpr): void => {
    if (i.k === 'loadIndex') {
      out.push({ buf: i.buf, at: i.at });
      idx(i.at);
    } else if (i.k === 'add') {
      idx(i.a);
      idx(i.b);
    } else if (i.k === 'mul' || i.k === 'div' || i.k === 'mod') idx(i.a);
  };
  const pred = (p: IndexPred): void => {
    if (p.k === 'and') {
      pred(p.a);
      pred(p.b);
    } else idx(p.a);
  };
  switch (e.k) {
    case 'load': out.push({ buf: e.buf, at: e.at }); idx(e.at); return;
    case 'unary': case 'cast': accesses(e.a, out); return;
    case 'binary': accesses(e.a, out); accesses(e.b, out); return;
    case 'where': accesses(e.c, out); accesses(e.a, out); accesses(e.b, out); return;
    case 'select': pred(e.pred); accesses(e.a, out); accesses(e.b, out); return;
    case 'index': idx(e.at); return;
    case 'rand': idx(e.at); if (e.key) accesses(e.key, out); return;
    case 'reduce': accesses(e.body, out); return;
    case 'const': case 'acc': return;
  }
}

function hasReduce(e: Expr): boolean {
  if (e.k === 'reduce') return true;
  for (const v of Object.values(e)) if (v && typeof v === 'object' && 'k' in v && 'dtype' in v && hasReduce(v as Expr)) return true;
  return false;
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
