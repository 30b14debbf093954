// The scalar semantics of the kernel IR's unary and binary ops and of casts (a cast to f16 rounds to binary16), as plain numbers:
// what the reference interpreter computes per element and what constant folding computes once at
// compile time, so both agree by construction. No tensors, shapes or rounding to f32 here.

import type { DType } from './types.js';
import type { BinaryOp, UnaryOp } from './kernel-ir.js';
import { f16round } from './f16.js';

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function evalUnary(op: UnaryOp | string, a: number): number {
  switch (op) {
    case 'neg': return -a;
    case 'exp': return Math.exp(a);
    case 'log': return Math.log(a);
    case 'sqrt': return Math.sqrt(a);
    case 'rsqrt': return 1 / Math.sqrt(a);
    case 'abs': return Math.abs(a);
    case 'sin': return Math.sin(a);
    case 'cos': return Math.cos(a);
    case 'tanh': return Math.tanh(a);
    case 'sigmoid': return 1 / (1 + Math.exp(-a));
    case 'relu': return a > 0 ? a : 0;
    case 'recip': return 1 / a;
    case 'floor': return Math.floor(a);
    case 'ceil': return Math.ceil(a);
    case 'round': return roundHalfEven(a);
    case 'sign': return Math.sign(a);
    case 'not': return a ? 0 : 1;
    case 'square': return a * a;
    case 'step': return a > 0 ? 1 : 0;
  }
  throw new Error(`scalar semantics: unknown unary op ${op}`);
}

/** `int`: the i32 semantics (wrapping arithmetic, floored integer mod). */
export function evalBinary(op: BinaryOp | string, a: number, b: number, int: boolean): number {
  const w = (x: number) => (int ? x | 0 : x);
  switch (op) {
    case 'add': return w(a + b);
    case 'sub': return w(a - b);
    case 'mul': return int ? Math.imul(a, b) : a * b;
    case 'div': return w(a / b);
    case 'pow': return w(Math.pow(a, b));
    case 'max': return Math.max(a, b);
    case 'min': return Math.min(a, b);
    case 'mod': return int ? ((a % b) + b) % b : a - b * Math.floor(a / b);
    case 'lt': return a < b ? 1 : 0;
    case 'le': return a <= b ? 1 : 0;
    case 'gt': return a > b ? 1 : 0;
    case 'ge': return a >= b ? 1 : 0;
    case 'eq': return a === b ? 1 : 0;
    case 'ne': return a !== b ? 1 : 0;
    case 'and': return a && b ? 1 : 0;
    case 'or': return a || b ? 1 : 0;
  }
  throw new Error(`scalar semantics: unknown binary op ${op}`);
}

export function evalCast(v: number, from: DType, to: DType): number {
  if (to === 'bool') return v !== 0 ? 1 : 0;
  if (to === 'i32' && from !== 'i32' && from !== 'bool') return Math.trunc(v) | 0;
  if (to === 'f16' && from !== 'f16') return f16round(v);
  return v;
}
