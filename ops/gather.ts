// gather (embedding lookup) and scatter-add (its adjoint), along axis 0 of the table:
// gather(table[V, ...], idx[...]) = out[...idx, ...] and scatterAdd(base[V, ...], idx, upd).
// Indices are i32 and clamped to [0, V-1]; the builder handles other axes with transposes.

import { defineOp } from './registry.js';
import { ShapeError } from './errors.js';
import { requireDType, requireSameDType } from './shape.js';
import type { IndexExpr } from './kernel-ir.js';
import { numel, type Tensor, type TensorType } from './types.js';

defineOp({
  name: 'gather',
  kind: 'elementwise',
  indexOperands: [1],
  infer(ins, _attrs, site) {
    const [table, idx] = ins as readonly [TensorType, TensorType];
    requireDType('gather', [idx], (d) => d === 'i32', 'i32 indices', site);
    if (table.shape.length < 1) throw new ShapeError('gather', [table.shape, idx.shape], 'table must have rank >= 1', site);
    return { dtype: table.dtype, shape: [...idx.shape, ...table.shape.slice(1)] };
  },
  vjp(g, ins, _out, ct) {
    const [table, idx] = ins as readonly [Tensor, Tensor];
    return [g.scatterAdd(g.zeros(table.shape, table.dtype), idx, ct), null];
  },
  lower(ctx, idx) {
    const r = ctx.ins[1]!.shape.length;
    const row = ctx.inputIndex(1, idx.slice(0, r), ctx.ins[0]!.shape[0]! - 1);
    const at: IndexExpr[] = [row, ...idx.slice(r)];
    return ctx.input(0, at);
  },
});

defineOp({
  name: 'scatterAdd',
  kind: 'scatterAdd',
  bufferOperands: [0, 1, 2],
  infer(ins, _attrs, site) {
    const [base, idx, upd] = ins as readonly [TensorType, TensorType, TensorType];
    const shapes = [base.shape, idx.shape, upd.shape];
    requireDType('scatterAdd', [idx], (d) => d === 'i32', 'i32 indices', site);
    requireSameDType('scatterAdd', [base, upd], site);
    const want = [...idx.shape, ...base.shape.slice(1)];
    if (base.shape.length < 1 || want.length !== upd.shape.length || want.some((d, i) => d !== upd.shape[i])) {
      throw new ShapeError('scatterAdd', shapes, `updates must have shape [${want.join(', ')}]`, site);
    }
    return base;
  },
  vjp(g, ins, _out, ct) {
    return [ct, null, g.gather(ct, ins[1]!)];
  },
  kernel(ctx) {
    const [base, indices, updates] = [ctx.buffer(0), ctx.buffer(1), ctx.buffer(2)];
    const shape = ctx.out.shape;
    return {
      kind: 'scatterAdd', name: ctx.name, inputs: ctx.params(), out: { dtype: ctx.out.dtype, shape: [...shape] },
      base, indices, updates, rows: numel(ctx.ins[1]!.shape), outRows: shape[0]!, inner: numel(shape.slice(1)), outer: 1,
    };
  },
});
