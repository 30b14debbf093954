// Elementwise unary ops, one table row each: dtype rule, VJP and kernel-IR scalar op.
// Each row is the whole story of its op; the renderers know the scalar ops by name.

import { defineOp } from './registry.js';
import type { OpBuilder } from './registry.js';
import type { Tensor } from './types.js';
import { isFloat } from './types.js';
import { requireDType } from './shape.js';
import type { UnaryOp } from './kernel-ir.js';

type Vjp = (g: OpBuilder, x: Tensor, y: Tensor, ct: Tensor) => Tensor | null;

interface UnaryRow {
  /** float: f32/f16 in and out; num: f32/f16/i32; bool: bool only */
  readonly domain: 'float' | 'num' | 'bool';
  readonly vjp: Vjp | null;
}

const zero = null;
export const UNARY: Readonly<Record<UnaryOp | 'stopGradient', UnaryRow>> = {
  neg: { domain: 'num', vjp: (g, _x, _y, ct) => g.neg(ct) },
  exp: { domain: 'float', vjp: (g, _x, y, ct) => g.mul(ct, y) },
  log: { domain: 'float', vjp: (g, x, _y, ct) => g.div(ct, x) },
  sqrt: { domain: 'float', vjp: (g, _x, y, ct) => g.div(g.mul(ct, g.scalar(0.5, y)), y) },
  rsqrt: { domain: 'float', vjp: (g, _x, y, ct) => g.mul(ct, g.mul(g.scalar(-0.5, y), g.mul(y, g.mul(y, y)))) },
  abs: { domain: 'num', vjp: (g, x, _y, ct) => g.mul(ct, g.sign(x)) },
  sin: { domain: 'float', vjp: (g, x, _y, ct) => g.mul(ct, g.cos(x)) },
  cos: { domain: 'float', vjp: (g, x, _y, ct) => g.neg(g.mul(ct, g.sin(x))) },
  tanh: { domain: 'float', vjp: (g, _x, y, ct) => g.mul(ct, g.sub(g.scalar(1, y), g.mul(y, y))) },
  sigmoid: { domain: 'float', vjp: (g, _x, y, ct) => g.mul(ct, g.mul(y, g.sub(g.scalar(1, y), y))) },
  // step(y) = step(x) for y = relu(x): using the output lets the pre-activation fuse away
  relu: { domain: 'num', vjp: (g, _x, y, ct) => g.mul(ct, g.step(y)) },
  recip: { domain: 'float', vjp: (g, _x, y, ct) => g.neg(g.mul(ct, g.mul(y, y))) },
  square: { domain: 'num', vjp: (g, x, _y, ct) => g.mul(ct, g.mul(g.scalar(2, x), x)) },
  floor: { domain: 'float', vjp: zero },
  ceil: { domain: 'float', vjp: zero },
  round: { domain: 'float', vjp: zero },
  sign: { domain: 'num', vjp: zero },
  /** step(x) = x > 0 ? 1 : 0 (the derivative of relu) */
  step: { domain: 'num', vjp: zero },
  not: { domain: 'bool', vjp: zero },
  /** identity whose gradient is zero */
  stopGradient: { domain: 'num', vjp: zero },
};

const ALLOWED = {
  float: { ok: isFloat, what: 'a float tensor (f32 or f16)' },
  num: { ok: (d: string) => d !== 'bool', what: 'a numeric tensor' },
  bool: { ok: (d: string) => d === 'bool', what: 'a bool tensor' },
} as const;

for (const [name, row] of Object.entries(UNARY)) {
  const rule = ALLOWED[row.domain];
  defineOp({
    name,
    kind: 'elementwise',
    infer(ins, _attrs, site) {
      requireDType(name, ins, rule.ok, rule.what, site);
      return ins[0]!;
    },
    vjp: row.vjp ? (g, ins, out, ct) => [row.vjp!(g, ins[0]!, out, ct)] : (_g, ins) => ins.map(() => null),
    lower(ctx, idx) {
      const a = ctx.input(0, idx);
      if (name === 'stopGradient') return a;
      return { k: 'unary', op: name as UnaryOp, a, dtype: ctx.out.dtype };
    },
  });
}
