// Scalar expressions of the kernel IR as WebAssembly instructions: index arithmetic, loads,
// unary/binary math, where/select/cast, reductions (as inline loops) and the counter-based
// random numbers, with the same semantics as the JavaScript renderer (floats computed in
// doubles, integers with JS's `| 0` rules). It renders expressions only; loops over the output
// and the module around them are render-wasm.ts's, SIMD lanes are simd-wasm.ts's.

import type { DType } from '../../graphs/types.js';
import type { Expr, IndexExpr, IndexPred } from '../../ops/kernel-ir.js';
import { Code, Op, type ImportedFunction, type ValType } from './encoder.js';

/** Host functions every kernel module imports (module 'm'); workers provide them from `Math`. */
export const MATH_IMPORTS: readonly ImportedFunction[] = [
  ...['exp', 'log', 'sin', 'cos', 'tanh'].map((name) => ({ module: 'm', name, params: ['f64'] as ValType[], result: 'f64' as const })),
  { module: 'm', name: 'pow', params: ['f64', 'f64'], result: 'f64' },
];
const F = { exp: 0, log: 1, sin: 2, cos: 3, tanh: 4, pow: 5, toInt32: 6, imod: 7, sign: 8, truthy: 9, fmod: 10, hash32: 11, rand: 12 } as const;
/** index of the first function after the imports and helpers */
export const FIRST_KERNEL_FUNCTION = 13;

/** The helper functions (indices 6..12), in order. */
export function helperFunctions(): Code[] {
  // toInt32: JS's `x | 0` for doubles below 2^63 in magnitude; NaN and infinities give 0
  const toInt32 = new Code(['f64'], 'i32');
  toInt32.get(0).get(0).op(Op.f64Sub).f64(0).op(Op.f64Eq).if('i32').get(0).misc(6).op(Op.i32WrapI64).else().i32(0).end();
  // imod: the remainder with the divisor's sign; 0 for a zero divisor (JS: NaN | 0)
  const imod = new Code(['i32', 'i32'], 'i32');
  const r = imod.local('i32');
  imod.get(1).op(Op.i32Eqz).if().i32(0).op(Op.return).end();
  imod.get(0).get(1).op(Op.i32RemS).set(r);
  imod.get(r).get(1).op(Op.i32Add).get(r);
  imod.get(r).i32(0).op(Op.i32LtS).get(1).i32(0).op(Op.i32LtS).op(Op.i32Ne).get(r).i32(0).op(Op.i32Ne).op(Op.i32And);
  imod.op(Op.select); // select(a, b, c) = c ? a : b
  // sign: Math.sign (0, -0 and NaN return themselves)
  const sign = new Code(['f64'], 'f64');
  sign.get(0).f64(0).op(Op.f64Gt).if('f64').f64(1).else().get(0).f64(0).op(Op.f64Lt).if('f64').f64(-1).else().get(0).end().end();
  // truthy: JS truthiness of a double
  const truthy = new Code(['f64'], 'i32');
  truthy.get(0).f64(0).op(Op.f64Ne).get(0).get(0).op(Op.f64Eq).op(Op.i32And);
  // fmod: a - b * floor(a / b)
  const fmod = new Code(['f64', 'f64'], 'f64');
  fmod.get(0).get(1).get(0).get(1).op(Op.f64Div).op(Op.f64Floor).op(Op.f64Mul).op(Op.f64Sub);
  // hash32: the lowbias32 finalizer of ops/rand.ts
  const hash = new Code(['i32'], 'i32');
  const step = (shift: number, mul: number | null) => {
    hash.get(0).get(0).i32(shift).op(Op.i32ShrU).op(Op.i32Xor);
    if (mul !== null) hash.i32(mul | 0).op(Op.i32Mul);
    hash.set(0);
  };
  step(16, 0x7feb352d);
  step(15, 0x846ca68b);
  step(16, null);
  hash.get(0);
  // rand(seed, index): (hash32(hash32(index ^ k) + k) >>> 8) / 2^24, k = hash32(seed + 0x9e3779b9)
  const rand = new Code(['i32', 'i32'], 'f64');
  const k = rand.local('i32');
  rand.get(0).i32(0x9e3779b9 | 0).op(Op.i32Add).call(F.hash32).set(k);
  rand.get(1).get(k).op(Op.i32Xor).call(F.hash32).get(k).op(Op.i32Add).call(F.hash32);
  rand.i32(8).op(Op.i32ShrU).op(Op.f64ConvertI32U).f64(1 / 16777216).op(Op.f64Mul);
  return [toInt32, imod, sign, truthy, fmod, hash, rand];
}

/** The value type an IR dtype is computed in: integers and booleans in i32, floats in f64. */
export function valType(d: DType): 'i32' | 'f64' {
  return d === 'i32' || d === 'bool' ? 'i32' : 'f64';
}

/** How buffers are laid out: float element width (4, or 8 on an f64 device) and each input's dtype. */
export interface BufferLayout {
  readonly floatBytes: 4 | 8;
  readonly inputs: readonly DType[];
  /** the local holding each input's base address */
  readonly inputPtr: readonly number[];
}

export function elementBytes(d: DType, floatBytes: 4 | 8): number {
  return d === 'bool' ? 1 : d === 'i32' ? 4 : floatBytes;
}

/** Emits scalar expressions into `c`; loop variables live in locals named in `vars`. */
export class ScalarEmitter {
  readonly vars = new Map<string, number>();
  /** the local holding a matmul epilogue's accumulator (f64) */
  accLocal = -1;

  constructor(readonly c: Code, readonly layout: BufferLayout) {}

  varLocal(name: string): number {
    let l = this.vars.get(name);
    if (l === undefined) {
      l = this.c.local('i32');
      this.vars.set(name, l);
    }
    return l;
  }

  /** pushes the address of element `at` of input `buf` */
  address(buf: number, at: IndexExpr): void {
    const c = this.c;
    c.get(this.layout.inputPtr[buf]!);
    this.index(at);
    const eb = elementBytes(this.layout.inputs[buf]!, this.layout.floatBytes);
    if (eb > 1) c.i32(Math.log2(eb)).op(Op.i32Shl);
    c.op(Op.i32Add);
  }

  /** loads element `at` of input `buf` in its value type */
  load(buf: number, at: IndexExpr): void {
    const c = this.c;
    this.address(buf, at);
    const d = this.layout.inputs[buf]!;
    if (d === 'bool') c.mem(Op.i32Load8u, 0);
    else if (d === 'i32') c.mem(Op.i32Load, 2);
    else if (this.layout.floatBytes === 8) c.mem(Op.f64Load, 3);
    else c.mem(Op.f32Load, 2).op(Op.f64PromoteF32);
  }

  index(e: IndexExpr): void {
    const c = this.c;
    switch (e.k) {
      case 'var': c.get(this.varLocal(e.name)); return;
      case 'const': c.i32(e.v); return;
      case 'add': this.index(e.a); this.index(e.b); c.op(Op.i32Add); return;
      case 'mul': this.index(e.a); c.i32(e.c).op(Op.i32Mul); return;
      case 'div': this.index(e.a); c.i32(e.c).op(Op.i32DivS); return;
      case 'mod': this.index(e.a); c.i32(e.c).op(Op.i32RemS); return;
      case 'loadIndex': {
        this.load(e.buf, e.at);
        this.coerce(valType(this.layout.inputs[e.buf]!), 'i32');
        const t = c.local('i32');
        c.set(t);
        // clamp to [0, hi]
        c.i32(0).get(t).get(t).i32(0).op(Op.i32LtS).op(Op.select).set(t);
        c.i32(e.hi).get(t).get(t).i32(e.hi).op(Op.i32GtS).op(Op.select);
        return;
      }
    }
  }

  pred(p: IndexPred): void {
    const c = this.c;
    switch (p.k) {
      case 'lt': this.index(p.a); c.i32(p.c).op(Op.i32LtS); return;
      case 'ge': this.index(p.a); c.i32(p.c).op(Op.i32GeS); return;
      case 'and': this.pred(p.a); this.pred(p.b); c.op(Op.i32And); return;
    }
  }

  /** converts the value on the stack between value types (f64 -> i32 with JS's `| 0`) */
  coerce(from: 'i32' | 'f64', to: 'i32' | 'f64'): void {
    if (from === to) return;
    if (from === 'i32') this.c.op(Op.f64ConvertI32S);
    else this.c.call(F.toInt32);
  }

  /**
   * Rounds the f64 on the stack to binary16 (ops/f16.ts's method): adding 1.5 * 2^(e + 42), e the
   * value's binade (at least -14), leaves binary16's spacing to the f64 addition's rounding
   * (nearest, ties to even); |x| >= 65520 and NaN give x * Infinity. The binade is read from the
   * value demoted to f32, which can only round up to the next power of two, where both agree.
   */
  private f16round(): void {
    const c = this.c, x = c.local('f64'), a = c.local('f64'), k = c.local('f64'), e = c.local('i32');
    c.set(x).get(x).op(Op.f64Abs).set(a);
    c.get(a).op(Op.f32DemoteF64, 0xbc /* i32.reinterpret_f32 */).i32(23).op(Op.i32ShrU).set(e);
    c.get(e).i32(113).get(e).i32(113).op(Op.i32GtS).op(Op.select).set(e);
    c.get(e).i32(42).op(Op.i32Add).i32(23).op(Op.i32Shl).i32(0x400000).op(Op.i32Or);
    c.op(0xbe /* f32.reinterpret_i32 */, Op.f64PromoteF32).set(k);
    c.get(a).get(k).op(Op.f64Add).get(k).op(Op.f64Sub).get(x).op(0xa6 /* f64.copysign */);
    c.get(x).f64(Infinity).op(Op.f64Mul);
    c.get(a).f64(65520).op(Op.f64Lt).op(Op.select);
  }

  /** pushes `e` evaluated as dtype `to` */
  exprAs(e: Expr, to: DType): void {
    this.expr(e);
    this.convert(e.dtype, to);
  }

  private convert(from: DType, to: DType): void {
    if (to === 'bool' && from !== 'bool') {
      if (valType(from) === 'i32') this.c.i32(0).op(Op.i32Ne);
      else this.c.f64(0).op(Op.f64Ne);
      return;
    }
    this.coerce(valType(from), valType(to));
  }

  /** pushes 0/1: JS truthiness of `e` */
  private truthy(e: Expr): void {
    this.expr(e);
    if (valType(e.dtype) === 'i32') this.c.i32(0).op(Op.i32Ne);
    else this.c.call(F.truthy);
  }

  /** pushes `e` in valType(e.dtype) */
  expr(e: Expr): void {
    const c = this.c;
    const vt = valType(e.dtype);
    switch (e.k) {
      case 'const':
        if (vt === 'i32') c.i32(e.dtype === 'bool' ? (e.v ? 1 : 0) : e.v | 0);
        else c.f64(e.v);
        return;
      case 'load':
        this.load(e.buf, e.at);
        this.convert(this.layout.inputs[e.buf]!, e.dtype);
        return;
      case 'unary': return this.unary(e);
      case 'binary': return this.binary(e);
      case 'where':
        this.exprAs(e.a, e.dtype);
        this.exprAs(e.b, e.dtype);
        this.truthy(e.c);
        c.op(Op.select);
        return;
      case 'select':
        // a branch, not `select`: the branch not taken may load at an index outside its buffer
        // (a pad's border, another part of a concat)
        this.pred(e.pred);
        c.if(vt);
        this.exprAs(e.a, e.dtype);
        c.else();
        this.exprAs(e.b, e.dtype);
        c.end();
        return;
      case 'cast':
        this.expr(e.a);
        if (e.dtype === 'bool') this.convert(e.a.dtype, 'bool');
        else this.coerce(valType(e.a.dtype), vt);
        if (e.dtype === 'f16' && e.a.dtype !== 'f16' && e.a.dtype !== 'bool') this.f16round();
        return;
      case 'index':
        this.index(e.at);
        this.coerce('i32', vt);
        return;
      case 'rand': {
        const key = (e as { key?: Expr }).key;
        if (key) {
          this.exprAs(key, 'i32');
          c.call(F.hash32).i32(e.seed | 0).op(Op.i32Add);
        } else c.i32(e.seed | 0);
        this.index(e.at);
        c.call(F.rand);
        this.coerce('f64', vt);
        return;
      }
      case 'acc':
        c.get(this.accLocal);
        this.coerce('f64', vt);
        return;
      case 'reduce': return this.reduce(e);
    }
  }

  private unary(e: Extract<Expr, { k: 'unary' }>): void {
    const c = this.c;
    if (e.op === 'not') {
      this.truthy(e.a);
      c.op(Op.i32Eqz);
      this.coerce('i32', valType(e.dtype));
      return;
    }
    this.exprAs(e.a, 'f32');
    switch (e.op) {
      case 'neg': c.op(Op.f64Neg); break;
      case 'exp': c.call(F.exp); break;
      case 'log': c.call(F.log); break;
      case 'sin': c.call(F.sin); break;
      case 'cos': c.call(F.cos); break;
      case 'tanh': c.call(F.tanh); break;
      case 'sqrt': c.op(Op.f64Sqrt); break;
      case 'rsqrt': { const t = c.local('f64'); c.op(Op.f64Sqrt).set(t).f64(1).get(t).op(Op.f64Div); break; }
      case 'abs': c.op(Op.f64Abs); break;
      case 'sigmoid': { const t = c.local('f64'); c.op(Op.f64Neg).call(F.exp).set(t).f64(1).f64(1).get(t).op(Op.f64Add).op(Op.f64Div); break; }
      case 'relu': { const t = c.local('f64'); c.set(t).get(t).f64(0).get(t).f64(0).op(Op.f64Gt).op(Op.select); break; } // x > 0 ? x : 0 (NaN gives 0)
      case 'recip': { const t = c.local('f64'); c.set(t).f64(1).get(t).op(Op.f64Div); break; }
      case 'floor': c.op(Op.f64Floor); break;
      case 'ceil': c.op(Op.f64Ceil); break;
      case 'round': c.op(Op.f64Nearest); break;
      case 'sign': c.call(F.sign); break;
      case 'square': { const t = c.local('f64'); c.tee(t).get(t).op(Op.f64Mul); break; }
      case 'step': c.f64(0).op(Op.f64Gt).op(Op.f64ConvertI32S); break;
    }
    this.convert('f32', e.dtype);
  }

  private binary(e: Extract<Expr, { k: 'binary' }>): void {
    const c = this.c;
    const op = e.op;
    if (op === 'and' || op === 'or') {
      this.truthy(e.a);
      this.truthy(e.b);
      c.op(op === 'and' ? Op.i32And : Op.i32Or);
      this.coerce('i32', valType(e.dtype));
      return;
    }
    if (op === 'lt' || op === 'le' || op === 'gt' || op === 'ge' || op === 'eq' || op === 'ne') {
      const int = valType(e.a.dtype) === 'i32' && valType(e.b.dtype) === 'i32';
      const as: DType = int ? 'i32' : 'f32';
      this.exprAs(e.a, as);
      this.exprAs(e.b, as);
      const ops = int
        ? { lt: Op.i32LtS, le: Op.i32LeS, gt: Op.i32GtS, ge: Op.i32GeS, eq: Op.i32Eq, ne: Op.i32Ne }
        : { lt: Op.f64Lt, le: Op.f64Le, gt: Op.f64Gt, ge: Op.f64Ge, eq: Op.f64Eq, ne: Op.f64Ne };
      c.op(ops[op]);
      this.coerce('i32', valType(e.dtype));
      return;
    }
    if (e.dtype === 'i32' || e.dtype === 'bool') {
      if (op === 'div' || op === 'pow') {
        this.exprAs(e.a, 'f32');
        this.exprAs(e.b, 'f32');
        if (op === 'div') c.op(Op.f64Div);
        else c.call(F.pow);
        c.call(F.toInt32);
        return;
      }
      this.exprAs(e.a, 'i32');
      this.exprAs(e.b, 'i32');
      switch (op) {
        case 'add': c.op(Op.i32Add); return;
        case 'sub': c.op(Op.i32Sub); return;
        case 'mul': c.op(Op.i32Mul); return;
        case 'mod': c.call(F.imod); return;
        case 'max':
        case 'min': {
          const a = c.local('i32'), b = c.local('i32');
          c.set(b).set(a).get(a).get(b).get(a).get(b).op(op === 'max' ? Op.i32GtS : Op.i32LtS).op(Op.select);
          return;
        }
      }
      return;
    }
    this.exprAs(e.a, 'f32');
    this.exprAs(e.b, 'f32');
    switch (op) {
      case 'add': c.op(Op.f64Add); return;
      case 'sub': c.op(Op.f64Sub); return;
      case 'mul': c.op(Op.f64Mul); return;
      case 'div': c.op(Op.f64Div); return;
      case 'pow': c.call(F.pow); return;
      case 'max': c.op(Op.f64Max); return;
      case 'min': c.op(Op.f64Min); return;
      case 'mod': c.call(F.fmod); return;
    }
  }

  private reduce(e: Extract<Expr, { k: 'reduce' }>): void {
    const c = this.c;
    const arg = e.op === 'argmax' || e.op === 'argmin';
    const t = c.local('f64'), ti = arg ? c.local('i32') : -1, v = c.local('f64');
    c.f64(e.op === 'sum' ? 0 : e.op === 'max' || e.op === 'argmax' ? -Infinity : Infinity).set(t);
    if (arg) c.i32(0).set(ti);
    const nest = (d: number): void => {
      if (d === e.vars.length) {
        this.exprAs(e.body, 'f32');
        if (e.op === 'sum') c.get(t).op(Op.f64Add).set(t);
        else if (e.op === 'max') c.get(t).op(Op.f64Max).set(t);
        else if (e.op === 'min') c.get(t).op(Op.f64Min).set(t);
        else {
          c.tee(v).get(t).op(e.op === 'argmax' ? Op.f64Gt : Op.f64Lt);
          c.if().get(v).set(t).get(this.varLocal(e.vars[0]!.name)).set(ti).end();
        }
        return;
      }
      const lv = e.vars[d]!;
      const l = this.varLocal(lv.name);
      c.for(l, () => c.i32(0), () => c.i32(lv.size), 1, () => nest(d + 1));
    };
    nest(0);
    if (arg) {
      c.get(ti);
      this.coerce('i32', valType(e.dtype));
    }
    else {
      c.get(t);
      this.coerce('f64', valType(e.dtype));
    }
  }
}
