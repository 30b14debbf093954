// Matmul and batched matmul: a[..., m, k] · b[..., k, n] with broadcasting batch dims. Lowered
// to the kernel IR's tiled matmul primitive; transposed operands stay views (strides), never
// copies. Both operands must be at least rank 2.

import { defineOp } from './registry.js';
import { ShapeError } from './errors.js';
import type { Dim, MatmulCheck, Shape, Tensor } from './types.js';
import { broadcastShapes, requireDType, requireSameDType } from './shape.js';
import { iconst, ivar, type IndexExpr } from './kernel-ir.js';

export function matmulShape(a: readonly Dim[], b: readonly Dim[], site?: string): Dim[] {
  const shapes = [a, b];
  if (a.length < 2 || b.length < 2) {
    throw new ShapeError('matmul', shapes, 'operands must have rank >= 2 (reshape vectors to [1, n] or [n, 1])', site);
  }
  const k1 = a[a.length - 1]!, k2 = b[b.length - 2]!;
  if (k1 !== k2) throw new ShapeError('matmul', shapes, `inner dimensions differ (${k1} vs ${k2})`, site);
  const batch = broadcastShapes('matmul', [a.slice(0, -2), b.slice(0, -2)], site);
  return [...batch, a[a.length - 2]!, b[b.length - 1]!];
}

defineOp({
  name: 'matmul',
  kind: 'matmul',
  infer(ins, _attrs, site) {
    const dtype = requireSameDType('matmul', ins, site);
    requireDType('matmul', ins, (d) => d === 'f32' || d === 'f16', 'float operands', site);
    return { dtype, shape: matmulShape(ins[0]!.shape, ins[1]!.shape, site) };
  },
  vjp(g, ins, _out, ct) {
    const [a, b] = ins as readonly [Tensor, Tensor];
    // the operands' shapes are only known at run time here, so the literal-shape check is moot
    const da = g.matmul(ct, g.transposeLast2(b) as Tensor & MatmulCheck<Shape, Shape>);
    const db = g.matmul(g.transposeLast2(a), ct as Tensor & MatmulCheck<Shape, Shape>);
    return [g.sumTo(da, a.shape), g.sumTo(db, b.shape)];
  },
  // out[b..., m, n] = epilogue(sum_k a[b..., m, k] * b[b..., k, n]); operands broadcast over
  // the output's batch dims, and their views fold into strides.
  kernel(ctx) {
    const shape = ctx.out.shape;
    const r = shape.length;
    const batch = shape.slice(0, r - 2);
    const sa = ctx.ins[0]!, sb = ctx.ins[1]!;
    const k = sa.shape[sa.shape.length - 1]!;
    const kv = ctx.fresh(k).name;
    const bvars = batch.map((_, i) => `i${i}`);
    const at = (s: readonly number[], row: string, col: string): IndexExpr[] => {
      const nb = s.length - 2;
      const bi = s.slice(0, nb).map((d, i) => (d === 1 ? iconst(0) : ivar(bvars[batch.length - nb + i]!)));
      return [...bi, ivar(row), ivar(col)];
    };
    const a = ctx.strided(0, at(sa.shape, `i${r - 2}`, kv), { batch: bvars, row: `i${r - 2}`, col: kv });
    const b = ctx.strided(1, at(sb.shape, kv, `i${r - 1}`), { batch: bvars, row: kv, col: `i${r - 1}` });
    return {
      kind: 'matmul', name: ctx.name, inputs: ctx.params(), out: { dtype: ctx.out.dtype, shape: [...shape] },
      batch, m: shape[r - 2]!, n: shape[r - 1]!, k, a, b, epilogue: ctx.epilogue,
    };
  },
});
