// `where(cond, a, b)` with broadcasting, and `cast` between dtypes. Cast to or from bool maps
// nonzero to 1; float to i32 truncates toward zero.

import { defineOp } from './registry.js';
import { isFloat, type DType, type Tensor } from './types.js';
import type { Expr } from './kernel-ir.js';
import { broadcastIndex, broadcastShapes, requireDType, requireSameDType } from './shape.js';

defineOp({
  name: 'where',
  kind: 'elementwise',
  infer(ins, _attrs, site) {
    requireDType('where', [ins[0]!], (d) => d === 'bool', 'a bool condition', site);
    const dtype = requireSameDType('where', [ins[1]!, ins[2]!], site);
    return { dtype, shape: broadcastShapes('where', ins.map((t) => t.shape), site) };
  },
  vjp(g, ins, _out, ct) {
    const zero = g.scalar(0, ct);
    const cond = ins[0] as Tensor<'bool'>;
    return [null, g.sumTo(g.where(cond, ct, zero), ins[1]!.shape), g.sumTo(g.where(cond, zero, ct), ins[2]!.shape)];
  },
  lower(ctx, idx) {
    const [c, a, b] = [0, 1, 2].map((j) => ctx.input(j, broadcastIndex(idx, ctx.ins[j]!.shape))) as [Expr, Expr, Expr];
    return { k: 'where', c, a, b, dtype: ctx.out.dtype };
  },
});

defineOp({
  name: 'cast',
  kind: 'elementwise',
  infer(ins, attrs) {
    return { dtype: attrs['dtype'] as DType, shape: ins[0]!.shape };
  },
  vjp(g, ins, out, ct) {
    return [isFloat(ins[0]!.dtype) && isFloat(out.dtype) ? g.cast(ct, ins[0]!.dtype) : null];
  },
  lower(ctx, idx) {
    return { k: 'cast', a: ctx.input(0, idx), dtype: ctx.out.dtype };
  },
});
