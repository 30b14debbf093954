// Reductions over any set of axes: sum, max, min (with keepdims), and argmax/argmin over one
// axis (i32 result, first index on ties). Lowered to `reduce` expression nodes whose bodies
// inline their producers, so a reduction with an elementwise prologue is one kernel.

import { defineOp, type LowerCtx } from './registry.js';
import type { Attrs } from './types.js';
import type { Dim, TensorType } from './types.js';
import { ivar, type IndexExpr, type ReduceOp } from './kernel-ir.js';
import { normalizeAxes, normalizeAxis, requireDType } from './shape.js';

export function reducedShape(shape: readonly Dim[], axes: readonly number[], keepdims: boolean): Dim[] {
  const out: Dim[] = [];
  shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

function axesOf(name: string, t: TensorType, attrs: Attrs, site?: string): number[] {
  return normalizeAxes(name, attrs['axes'] as number[] | null, t.shape.length, [t.shape], site);
}

function lowerReduce(op: ReduceOp, ctx: LowerCtx, idx: readonly IndexExpr[]) {
  const inShape = ctx.ins[0]!.shape;
  const axes = normalizeAxes(op, ctx.attrs['axes'] as number[] | null, inShape.length, [inShape]);
  const keep = ctx.attrs['keepdims'] === true;
  const vars = axes.map((a) => ctx.fresh(inShape[a]!));
  const inIdx: IndexExpr[] = [];
  let o = 0;
  inShape.forEach((_d, i) => {
    const r = axes.indexOf(i);
    if (r >= 0) {
      inIdx.push(ivar(vars[r]!.name));
      if (keep) o++;
    } else inIdx.push(idx[o++]!);
  });
  return { k: 'reduce' as const, op, vars, body: ctx.input(0, inIdx), dtype: ctx.out.dtype };
}

defineOp({
  name: 'sum',
  kind: 'reduce',
  infer(ins, attrs, site) {
    const t = ins[0]!;
    requireDType('sum', ins, (d) => d !== 'bool', 'a numeric tensor', site);
    return { dtype: t.dtype, shape: reducedShape(t.shape, axesOf('sum', t, attrs, site), attrs['keepdims'] === true) };
  },
  vjp(g, ins, _out, ct, node) {
    const x = ins[0]!;
    const axes = axesOf('sum', x, node.attrs);
    const kept = g.reshape(ct, reducedShape(x.shape, axes, true));
    return [g.broadcastTo(kept, x.shape)];
  },
  lower: (ctx, idx) => lowerReduce('sum', ctx, idx),
});

for (const name of ['max', 'min'] as const) {
  defineOp({
    name: `reduce_${name}`,
    kind: 'reduce',
    infer(ins, attrs, site) {
      const t = ins[0]!;
      requireDType(name, ins, (d) => d !== 'bool', 'a numeric tensor', site);
      return { dtype: t.dtype, shape: reducedShape(t.shape, axesOf(name, t, attrs, site), attrs['keepdims'] === true) };
    },
    // The gradient goes to the extreme elements, split evenly between ties.
    vjp(g, ins, out, ct, node) {
      const x = ins[0]!;
      const keptShape = reducedShape(x.shape, axesOf(name, x, node.attrs), true);
      const y = g.broadcastTo(g.reshape(out, keptShape), x.shape);
      const mask = g.cast(g.eq(x, y), x.dtype);
      const count = g.sum(mask, node.attrs['axes'] as number[] | null, true);
      const share = g.div(g.reshape(ct, keptShape), count);
      return [g.mul(mask, g.broadcastTo(share, x.shape))];
    },
    lower: (ctx, idx) => lowerReduce(name, ctx, idx),
  });
}

for (const name of ['argmax', 'argmin'] as const) {
  defineOp({
    name,
    kind: 'reduce',
    infer(ins, attrs, site) {
      const t = ins[0]!;
      requireDType(name, ins, (d) => d !== 'bool', 'a numeric tensor', site);
      const axis = normalizeAxis(name, Number(attrs['axis']), t.shape.length, [t.shape], site);
      return { dtype: 'i32', shape: reducedShape(t.shape, [axis], attrs['keepdims'] === true) };
    },
    vjp: () => [null],
    lower(ctx, idx) {
      const axis = normalizeAxis(name, Number(ctx.attrs['axis']), ctx.ins[0]!.shape.length, [ctx.ins[0]!.shape]);
      return lowerReduce(name, { ...ctx, attrs: { axes: [axis], keepdims: ctx.attrs['keepdims'] ?? false } } as LowerCtx, idx);
    },
  });
}
