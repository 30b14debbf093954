// Elementwise binary ops with NumPy broadcasting: arithmetic, comparisons (bool results) and
// logical ops, one table row each. Gradients of broadcast operands are summed back to their
// shapes with `sumTo`. Operand dtypes must agree; there is no implicit promotion.

import { defineOp } from './registry.js';
import type { OpBuilder } from './registry.js';
import type { Tensor } from './types.js';
import { broadcastIndex, broadcastShapes, requireDType, requireSameDType } from './shape.js';
import type { BinaryOp } from './kernel-ir.js';

type Vjp = (g: OpBuilder, a: Tensor, b: Tensor, y: Tensor, ct: Tensor) => [Tensor | null, Tensor | null];

interface BinaryRow {
  readonly domain: 'num' | 'bool' | 'any';
  readonly result: 'same' | 'bool';
  readonly vjp: Vjp | null;
}

export const BINARY: Readonly<Record<BinaryOp, BinaryRow>> = {
  add: { domain: 'num', result: 'same', vjp: (_g, _a, _b, _y, ct) => [ct, ct] },
  sub: { domain: 'num', result: 'same', vjp: (g, _a, _b, _y, ct) => [ct, g.neg(ct)] },
  mul: { domain: 'num', result: 'same', vjp: (g, a, b, _y, ct) => [g.mul(ct, b), g.mul(ct, a)] },
  div: {
    domain: 'num',
    result: 'same',
    vjp: (g, a, b, _y, ct) => [g.div(ct, b), g.neg(g.div(g.mul(ct, a), g.mul(b, b)))],
  },
  pow: {
    domain: 'num',
    result: 'same',
    vjp: (g, a, b, y, ct) => [
      g.mul(ct, g.mul(b, g.pow(a, g.sub(b, g.scalar(1, b))))),
      g.mul(ct, g.mul(y, g.log(a))),
    ],
  },
  max: {
    domain: 'num',
    result: 'same',
    vjp: (g, a, b, _y, ct) => {
      const pick = g.ge(a, b);
      const zero = g.scalar(0, ct);
      return [g.where(pick, ct, zero), g.where(pick, zero, ct)];
    },
  },
  min: {
    domain: 'num',
    result: 'same',
    vjp: (g, a, b, _y, ct) => {
      const pick = g.le(a, b);
      const zero = g.scalar(0, ct);
      return [g.where(pick, ct, zero), g.where(pick, zero, ct)];
    },
  },
  mod: { domain: 'num', result: 'same', vjp: (g, a, b, _y, ct) => [ct, g.neg(g.mul(ct, g.floor(g.div(a, b))))] },
  lt: { domain: 'num', result: 'bool', vjp: null },
  le: { domain: 'num', result: 'bool', vjp: null },
  gt: { domain: 'num', result: 'bool', vjp: null },
  ge: { domain: 'num', result: 'bool', vjp: null },
  eq: { domain: 'any', result: 'bool', vjp: null },
  ne: { domain: 'any', result: 'bool', vjp: null },
  and: { domain: 'bool', result: 'bool', vjp: null },
  or: { domain: 'bool', result: 'bool', vjp: null },
};

for (const [name, row] of Object.entries(BINARY)) {
  defineOp({
    name,
    kind: 'elementwise',
    infer(ins, _attrs, site) {
      const dtype = requireSameDType(name, ins, site);
      if (row.domain === 'num') requireDType(name, ins, (d) => d !== 'bool', 'numeric operands', site);
      if (row.domain === 'bool') requireDType(name, ins, (d) => d === 'bool', 'bool operands', site);
      const shape = broadcastShapes(name, ins.map((t) => t.shape), site);
      return { dtype: row.result === 'bool' ? 'bool' : dtype, shape };
    },
    vjp(g, ins, out, ct) {
      if (!row.vjp) return [null, null];
      const [da, db] = row.vjp(g, ins[0]!, ins[1]!, out, ct);
      return [da && g.sumTo(da, ins[0]!.shape), db && g.sumTo(db, ins[1]!.shape)];
    },
    lower(ctx, idx) {
      const a = ctx.input(0, broadcastIndex(idx, ctx.ins[0]!.shape));
      const b = ctx.input(1, broadcastIndex(idx, ctx.ins[1]!.shape));
      return { k: 'binary', op: name as BinaryOp, a, b, dtype: ctx.out.dtype };
    },
  });
}
