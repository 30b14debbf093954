// Sliding windows for convolution: unfold2d is a view (im2col without a copy until a kernel
// needs one) and fold2d is its adjoint (overlapping windows summed back). Both act on the last
// two axes of an already padded NCHW tensor; conv2d in ops/nn.ts is built from them.

import { defineOp } from './registry.js';
import { ShapeError } from './errors.js';
import { iadd, iconst, idiv, imod, imul, ivar, type IndexExpr, type IndexPred } from './kernel-ir.js';
import { numArr } from './shape.js';

function outSize(op: string, size: number | string, k: number, s: number, shapes: readonly (readonly (number | string)[])[], site?: string): number {
  if (typeof size !== 'number') throw new ShapeError(op, shapes, 'spatial dims must be literal numbers', site);
  if (k > size) throw new ShapeError(op, shapes, `kernel ${k} is larger than the (padded) input ${size}`, site);
  return Math.floor((size - k) / s) + 1;
}

/** unfold2d(x[N, C, H, W]) = out[N, C, KH, KW, OH, OW] with out[..., kh, kw, oh, ow] = x[..., oh*s+kh, ow*s+kw]. */
defineOp({
  name: 'unfold2d',
  kind: 'view',
  infer(ins, attrs, site) {
    const x = ins[0]!;
    if (x.shape.length !== 4) throw new ShapeError('unfold2d', [x.shape], 'expects NCHW (rank 4)', site);
    const [kh, kw] = numArr(attrs['kernel']) as [number, number];
    const s = Number(attrs['stride']);
    const oh = outSize('unfold2d', x.shape[2]!, kh, s, [x.shape], site);
    const ow = outSize('unfold2d', x.shape[3]!, kw, s, [x.shape], site);
    return { dtype: x.dtype, shape: [x.shape[0]!, x.shape[1]!, kh, kw, oh, ow] };
  },
  vjp(g, ins, _out, ct, node) {
    const [, , h, w] = ins[0]!.shape as [unknown, unknown, number, number];
    return [g.op('fold2d', [ct], { ...node.attrs, size: [h, w] })];
  },
  lower(ctx, idx) {
    const s = Number(ctx.attrs['stride']);
    const [n, c, kh, kw, oh, ow] = idx as [IndexExpr, IndexExpr, IndexExpr, IndexExpr, IndexExpr, IndexExpr];
    return ctx.input(0, [n, c, iadd(imul(oh, s), kh), iadd(imul(ow, s), kw)]);
  },
});

/** fold2d(y[N, C, KH, KW, OH, OW]) = x[N, C, H, W], summing every window position that covers (h, w). */
defineOp({
  name: 'fold2d',
  kind: 'reduce',
  infer(ins, attrs, site) {
    const y = ins[0]!;
    if (y.shape.length !== 6) throw new ShapeError('fold2d', [y.shape], 'expects rank 6 windows', site);
    const [h, w] = numArr(attrs['size']);
    return { dtype: y.dtype, shape: [y.shape[0]!, y.shape[1]!, h!, w!] };
  },
  vjp(g, _ins, _out, ct, node) {
    return [g.op('unfold2d', [ct], { kernel: node.attrs['kernel']!, stride: node.attrs['stride']! })];
  },
  lower(ctx, idx) {
    const s = Number(ctx.attrs['stride']);
    const [, , KH, KW, OH, OW] = ctx.ins[0]!.shape as [number, number, number, number, number, number];
    const [n, c, h, w] = idx as [IndexExpr, IndexExpr, IndexExpr, IndexExpr];
    const kh = ctx.fresh(KH), kw = ctx.fresh(KW);
    // t = h - kh + s*KH stays non-negative, so div/mod are well defined; o = t/s - KH.
    const axis = (x: IndexExpr, k: string, K: number, O: number): [IndexExpr, IndexPred] => {
      const t = iadd(iadd(x, imul(ivar(k), -1)), iconst(s * K));
      const o = iadd(idiv(t, s, ctx.sizes), iconst(-K));
      const pred: IndexPred = {
        k: 'and',
        a: { k: 'lt', a: imod(t, s, ctx.sizes), c: 1 },
        b: { k: 'and', a: { k: 'ge', a: t, c: s * K }, b: { k: 'lt', a: t, c: s * (K + O) } },
      };
      return [o, pred];
    };
    const [oh, ph] = axis(h, kh.name, KH, OH);
    const [ow, pw] = axis(w, kw.name, KW, OW);
    const body = ctx.input(0, [n, c, ivar(kh.name), ivar(kw.name), oh, ow]);
    return {
      k: 'reduce',
      op: 'sum',
      vars: [kh, kw],
      body: { k: 'select', pred: { k: 'and', a: ph, b: pw }, a: body, b: { k: 'const', v: 0, dtype: ctx.out.dtype }, dtype: ctx.out.dtype },
      dtype: ctx.out.dtype,
    };
  },
});
