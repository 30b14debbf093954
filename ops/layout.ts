// Layout ops — reshape, transpose, broadcastTo, slice, pad, concat — are views: their lowering
// rewrites the index at which their input is read (with validity masks for pad and concat), so
// they fold into the loads of whatever kernel reads them and cost no copy.

import { defineOp } from './registry.js';
import { ShapeError } from './errors.js';
import type { Dim } from './types.js';
import { delinearize, iadd, iconst, linearize, type Expr, type IndexExpr, type IndexPred } from './kernel-ir.js';
import { broadcastShapes, normalizeAxis, numArr, requireSameDType, sameProduct } from './shape.js';

defineOp({
  name: 'reshape',
  kind: 'view',
  stridedView: true,
  infer(ins, attrs, site) {
    const to = attrs['shape'] as Dim[];
    if (!sameProduct(ins[0]!.shape, to)) {
      throw new ShapeError('reshape', [ins[0]!.shape, to], 'element counts differ', site);
    }
    return { dtype: ins[0]!.dtype, shape: to };
  },
  vjp: (g, ins, _out, ct) => [g.reshape(ct, ins[0]!.shape)],
  lower(ctx, idx) {
    const lin = linearize(idx, ctx.out.shape);
    return ctx.input(0, delinearize(lin, ctx.ins[0]!.shape, ctx.sizes));
  },
});

defineOp({
  name: 'transpose',
  kind: 'view',
  stridedView: true,
  infer(ins, attrs, site) {
    const x = ins[0]!;
    const perm = numArr(attrs['perm']);
    const ok = perm.length === x.shape.length && [...perm].sort((a, b) => a - b).every((p, i) => p === i);
    if (!ok) throw new ShapeError('transpose', [x.shape], `perm [${perm.join(', ')}] is not a permutation of the axes`, site);
    return { dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) };
  },
  vjp(g, _ins, _out, ct, node) {
    const perm = numArr(node.attrs['perm']);
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [g.transpose(ct, inv)];
  },
  lower(ctx, idx) {
    const perm = numArr(ctx.attrs['perm']);
    const inIdx: IndexExpr[] = new Array(perm.length);
    perm.forEach((p, i) => (inIdx[p] = idx[i]!));
    return ctx.input(0, inIdx);
  },
});

defineOp({
  name: 'broadcastTo',
  kind: 'view',
  stridedView: true,
  infer(ins, attrs, site) {
    const to = attrs['shape'] as Dim[];
    const x = ins[0]!;
    const b = broadcastShapes('broadcastTo', [x.shape, to], site);
    if (b.length !== to.length || b.some((d, i) => d !== to[i])) {
      throw new ShapeError('broadcastTo', [x.shape, to], 'cannot broadcast to the target shape', site);
    }
    return { dtype: x.dtype, shape: to };
  },
  vjp: (g, ins, _out, ct) => [g.sumTo(ct, ins[0]!.shape)],
  lower(ctx, idx) {
    const s = ctx.ins[0]!.shape;
    const off = idx.length - s.length;
    return ctx.input(0, s.map((d, i) => (d === 1 ? iconst(0) : idx[off + i]!)));
  },
});

/** slice: `starts`/`ends` per axis (ends exclusive, already clamped by the builder). */
defineOp({
  name: 'slice',
  kind: 'view',
  infer(ins, attrs, site) {
    const x = ins[0]!;
    const starts = numArr(attrs['starts']), ends = numArr(attrs['ends']);
    if (starts.length !== x.shape.length || ends.length !== x.shape.length) {
      throw new ShapeError('slice', [x.shape], `needs one start and end per axis, got ${starts.length} and ${ends.length}`, site);
    }
    const shape = x.shape.map((d, i) => {
      const s = starts[i]!, e = ends[i]!;
      if (typeof d === 'string') {
        if (s === 0 && e === -1) return d; // the whole symbolic axis
        throw new ShapeError('slice', [x.shape], `cannot slice symbolic axis '${d}'`, site);
      }
      if (!(0 <= s && s <= e && e <= d)) throw new ShapeError('slice', [x.shape], `range ${s}:${e} is outside axis ${i} of size ${d}`, site);
      return e - s;
    });
    return { dtype: x.dtype, shape };
  },
  vjp(g, ins, out, ct, node) {
    const starts = numArr(node.attrs['starts']);
    const before = starts;
    const after = ins[0]!.shape.map((d, i) => (typeof d === 'number' ? d - starts[i]! - (out.shape[i] as number) : 0));
    return [g.pad(ct, before, after, 0)];
  },
  lower(ctx, idx) {
    const starts = numArr(ctx.attrs['starts']);
    return ctx.input(0, idx.map((x, i) => iadd(x, iconst(starts[i]!))));
  },
});

/** pad: `before`/`after` widths per axis, filled with `value`. */
defineOp({
  name: 'pad',
  kind: 'view',
  infer(ins, attrs, site) {
    const x = ins[0]!;
    const before = numArr(attrs['before']), after = numArr(attrs['after']);
    if (before.length !== x.shape.length || after.length !== x.shape.length || [...before, ...after].some((p) => p < 0 || !Number.isInteger(p))) {
      throw new ShapeError('pad', [x.shape], 'needs non-negative integer widths before and after each axis', site);
    }
    const shape = x.shape.map((d, i) => {
      if (typeof d === 'string') {
        if (before[i] === 0 && after[i] === 0) return d;
        throw new ShapeError('pad', [x.shape], `cannot pad symbolic axis '${d}'`, site);
      }
      return d + before[i]! + after[i]!;
    });
    return { dtype: x.dtype, shape };
  },
  vjp(g, ins, _out, ct, node) {
    const before = numArr(node.attrs['before']);
    return [g.slice(ct, before, before.map((b, i) => b + (ins[0]!.shape[i] as number)))];
  },
  lower(ctx, idx) {
    const before = numArr(ctx.attrs['before']);
    const inShape = ctx.ins[0]!.shape;
    let pred: IndexPred | null = null;
    const inIdx = idx.map((x, i) => {
      if (before[i] === 0 && inShape[i] === ctx.out.shape[i]) return x;
      const p: IndexPred = { k: 'and', a: { k: 'ge', a: x, c: before[i]! }, b: { k: 'lt', a: x, c: before[i]! + inShape[i]! } };
      pred = pred ? { k: 'and', a: pred, b: p } : p;
      return iadd(x, iconst(-before[i]!));
    });
    const inner = ctx.input(0, inIdx);
    if (!pred) return inner;
    const fill: Expr = { k: 'const', v: Number(ctx.attrs['value'] ?? 0), dtype: ctx.out.dtype };
    return { k: 'select', pred, a: inner, b: fill, dtype: ctx.out.dtype };
  },
});

defineOp({
  name: 'concat',
  kind: 'view',
  infer(ins, attrs, site) {
    const shapes = ins.map((t) => t.shape);
    if (ins.length === 0) throw new ShapeError('concat', [], 'needs at least one operand', site);
    const dtype = requireSameDType('concat', ins, site);
    const rank = ins[0]!.shape.length;
    const axis = normalizeAxis('concat', Number(attrs['axis']), rank, shapes, site);
    let total = 0;
    for (const t of ins) {
      if (t.shape.length !== rank || t.shape.some((d, i) => i !== axis && d !== ins[0]!.shape[i])) {
        throw new ShapeError('concat', shapes, `operands must agree on every axis but ${axis}`, site);
      }
      const d = t.shape[axis]!;
      if (typeof d !== 'number') throw new ShapeError('concat', shapes, `cannot concatenate along symbolic axis '${d}'`, site);
      total += d;
    }
    const shape = [...ins[0]!.shape];
    shape[axis] = total;
    return { dtype, shape };
  },
  vjp(g, ins, _out, ct, node) {
    const axis = normalizeAxis('concat', Number(node.attrs['axis']), ct.shape.length, [ct.shape]);
    let off = 0;
    return ins.map((t) => {
      const d = t.shape[axis] as number;
      const starts = ct.shape.map((_, i) => (i === axis ? off : 0));
      const ends = ct.shape.map((s, i) => (i === axis ? off + d : typeof s === 'number' ? s : -1));
      off += d;
      return g.slice(ct, starts, ends);
    });
  },
  lower(ctx, idx) {
    const axis = normalizeAxis('concat', Number(ctx.attrs['axis']), ctx.out.shape.length, [ctx.out.shape]);
    const offs: number[] = [];
    let off = 0;
    for (const t of ctx.ins) {
      offs.push(off);
      off += t.shape[axis]!;
    }
    const at = (j: number) => ctx.input(j, idx.map((x, i) => (i === axis ? iadd(x, iconst(-offs[j]!)) : x)));
    let e = at(ctx.ins.length - 1);
    for (let j = ctx.ins.length - 2; j >= 0; j--) {
      e = { k: 'select', pred: { k: 'lt', a: idx[axis]!, c: offs[j + 1]! }, a: at(j), b: e, dtype: ctx.out.dtype };
    }
    return e;
  },
});

