// Shape rules shared by op definitions: NumPy broadcasting, axis normalization, and products
// of shapes with symbolic dims (for reshape). Pure functions over `Shape`; no op knowledge.

import type { DType, Dim, Shape, TensorType } from './types.js';
import { DTypeError, ShapeError } from './errors.js';
import { iconst, type IndexExpr } from './kernel-ir.js';

export function dimsEqual(a: Dim, b: Dim): boolean {
  return a === b;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** NumPy broadcasting of any number of shapes; a symbolic dim matches itself or 1. */
export function broadcastShapes(op: string, shapes: readonly Shape[], site?: string): Dim[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const x = s[s.length - rank + i];
      if (x === undefined || x === 1) continue;
      if (d === 1) d = x;
      else if (d !== x) {
        throw new ShapeError(op, shapes, `cannot broadcast dimension ${d} with ${x} (axis ${i - rank})`, site);
      }
    }
    out.push(d);
  }
  return out;
}

/** Index into an input of shape `inShape` that is broadcast to an output indexed by `idx`. */
export function broadcastIndex(idx: readonly IndexExpr[], inShape: readonly number[]): IndexExpr[] {
  const off = idx.length - inShape.length;
  return inShape.map((d, i) => (d === 1 ? iconst(0) : idx[off + i]!));
}

export function normalizeAxis(op: string, axis: number, rank: number, shapes: readonly Shape[], site?: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new ShapeError(op, shapes, `axis ${axis} is out of range for rank ${rank}`, site);
  }
  return a;
}

export function normalizeAxes(op: string, axes: readonly number[] | null | undefined, rank: number, shapes: readonly Shape[], site?: string): number[] {
  if (axes == null) return Array.from({ length: rank }, (_, i) => i);
  const out = [...new Set(axes.map((a) => normalizeAxis(op, a, rank, shapes, site)))];
  return out.sort((x, y) => x - y);
}

/** A product of dims as (numeric factor, sorted symbols), so `[B, 28, 28]` ~ `[B, 784]`. */
export function shapeProduct(s: Shape): { n: number; syms: string[] } {
  let n = 1;
  const syms: string[] = [];
  for (const d of s) {
    if (typeof d === 'number') n *= d;
    else syms.push(d);
  }
  return { n, syms: syms.sort() };
}

export function sameProduct(a: Shape, b: Shape): boolean {
  const pa = shapeProduct(a), pb = shapeProduct(b);
  return pa.n === pb.n && pa.syms.join('\u0000') === pb.syms.join('\u0000');
}

export function requireDType(op: string, ts: readonly TensorType[], ok: (d: DType) => boolean, what: string, site?: string): void {
  const bad = ts.find((t) => !ok(t.dtype));
  if (bad) throw new DTypeError(op, ts.map((t) => t.dtype), `expects ${what}`, site, ts.map((t) => t.shape));
}

export function requireSameDType(op: string, ts: readonly TensorType[], site?: string): DType {
  const d = ts[0]!.dtype;
  if (ts.some((t) => t.dtype !== d)) {
    throw new DTypeError(op, ts.map((t) => t.dtype), 'operands must have the same dtype (cast one explicitly)', site, ts.map((t) => t.shape));
  }
  return d;
}

export function requireRank(op: string, t: TensorType, pred: (r: number) => boolean, what: string, all: readonly Shape[], site?: string): void {
  if (!pred(t.shape.length)) throw new ShapeError(op, all, `expects ${what}, got rank ${t.shape.length}`, site);
}

export function numArr(v: unknown): number[] {
  return Array.isArray(v) ? v.map(Number) : [];
}
