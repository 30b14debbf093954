// SIMD128 map kernels: the innermost output axis runs four lanes at a time (f32x4; booleans as
// i32x4 masks) when every load walks that axis contiguously or not at all and every node of the
// expression has a lane form; sums, maxima and minima over other axes keep vector accumulators.
// Lanes compute in f32 where the scalar path computes in doubles (within f32 tolerance). Any
// other kernel (integers, transcendentals, gathers along the axis, ...) stays scalar-wasm.ts's.

import type { Expr, IndexExpr, MapKernel } from '../../ops/kernel-ir.js';
import { Op, Simd } from './encoder.js';
import { elementBytes, type ScalarEmitter } from './scalar-wasm.js';

/** The coefficient of variable `v` in `e` when `e` is linear in it (null: inside div/mod/gathers). */
export function coefOf(e: IndexExpr, v: string): number | null {
  switch (e.k) {
    case 'var': return e.name === v ? 1 : 0;
    case 'const': return 0;
    case 'add': {
      const a = coefOf(e.a, v), b = coefOf(e.b, v);
      return a === null || b === null ? null : a + b;
    }
    case 'mul': {
      const a = coefOf(e.a, v);
      return a === null ? null : a * e.c;
    }
    case 'div':
    case 'mod': return coefOf(e.a, v) === 0 ? 0 : null;
    case 'loadIndex': return coefOf(e.at, v) === 0 ? 0 : null;
  }
}

const LANE_UNARY = new Set(['neg', 'abs', 'sqrt', 'rsqrt', 'relu', 'recip', 'floor', 'ceil', 'round', 'square', 'step']);
const LANE_BINARY = new Set(['add', 'sub', 'mul', 'div', 'max', 'min', 'lt', 'le', 'gt', 'ge', 'eq', 'ne', 'and', 'or']);

const isFloat = (d: string) => d === 'f32' || d === 'f16';

/** vectors a step of the main loop */
const UNROLL = 4;

/** Whether `e` has a lane form along `v` (floats and booleans only). */
function vectorizable(e: Expr, v: string, inputs: MapKernel['inputs']): boolean {
  const ok = (x: Expr) => vectorizable(x, v, inputs);
  if (!isFloat(e.dtype) && e.dtype !== 'bool') return false;
  switch (e.k) {
    case 'const': return true;
    case 'load': {
      const d = inputs[e.buf]!.dtype;
      const c = coefOf(e.at, v);
      return d === e.dtype && (c === 0 || c === 1);
    }
    case 'unary':
      if (e.op === 'not') return e.a.dtype === 'bool' && ok(e.a);
      return LANE_UNARY.has(e.op) && isFloat(e.a.dtype) && ok(e.a);
    case 'binary': {
      if (!LANE_BINARY.has(e.op)) return false;
      if (e.op === 'and' || e.op === 'or') return e.a.dtype === 'bool' && e.b.dtype === 'bool' && ok(e.a) && ok(e.b);
      const cmp = e.dtype === 'bool';
      if (cmp && (e.op === 'eq' || e.op === 'ne') && e.a.dtype === 'bool' && e.b.dtype === 'bool') return ok(e.a) && ok(e.b);
      return isFloat(e.a.dtype) && isFloat(e.b.dtype) && (cmp || isFloat(e.dtype)) && ok(e.a) && ok(e.b);
    }
    case 'where': return e.c.dtype === 'bool' && e.a.dtype === e.dtype && e.b.dtype === e.dtype && ok(e.c) && ok(e.a) && ok(e.b);
    // a cast to f16 rounds to binary16, which the scalar code does
    case 'cast': return (isFloat(e.a.dtype) || e.a.dtype === 'bool') && !(e.dtype === 'f16' && e.a.dtype === 'f32') && ok(e.a);
    case 'reduce': return (e.op === 'sum' || e.op === 'max' || e.op === 'min') && isFloat(e.dtype) && e.vars.every((x) => x.name !== v) && ok(e.body);
    default: return false;
  }
}

/** Whether the last output axis of `k` runs four lanes at a time (on an f32 device). */
export function simdMappable(k: MapKernel): boolean {
  const rank = k.out.shape.length;
  if (rank === 0) return false;
  return k.out.shape[rank - 1]! >= 4 && (isFloat(k.out.dtype) || k.out.dtype === 'bool') && vectorizable(k.expr, `i${rank - 1}`, k.inputs);
}

/**
 * Emits the last axis's loop (variable `i{rank-1}`, over [lo, hi) when `range` is given, else the
 * whole axis) with four lanes a step and a scalar tail, advancing the output pointer `o`, and
 * returns true; or emits nothing and returns false.
 */
export function emitSimdMap(k: MapKernel, em: ScalarEmitter, o: number, range: { lo: number; hi: number } | null): boolean {
  const rank = k.out.shape.length;
  const n = k.out.shape[rank - 1]!;
  const L = `i${rank - 1}`;
  if (!simdMappable(k)) return false;
  const c = em.c;
  const l = em.varLocal(L);
  const end = c.local('i32');
  const eb = elementBytes(k.out.dtype, 4);
  if (range) c.get(range.lo).set(l).get(range.hi).set(end);
  else c.i32(0).set(l).i32(n).set(end);
  const emitter = new LaneEmitter(em, k);
  // sixteen lanes a step while they fit (f32 outputs): four vectors stored at offsets from one
  // output pointer, one loop test
  if (k.out.dtype === 'f32') {
    c.block().loop();
    c.get(l).i32(4 * UNROLL).op(Op.i32Add).get(end).op(Op.i32GtS).brIf(1);
    for (let u = 0; u < UNROLL; u++) {
      c.get(o);
      emitter.expr(k.expr);
      c.simdMem(Simd.store, 0, 16 * u);
      c.get(l).i32(4).op(Op.i32Add).set(l);
    }
    c.get(o).i32(16 * UNROLL).op(Op.i32Add).set(o);
    c.br(0);
    c.end().end();
  }
  // four lanes while they fit
  c.block().loop();
  c.get(l).i32(4).op(Op.i32Add).get(end).op(Op.i32GtS).brIf(1);
  c.get(o);
  emitter.expr(k.expr);
  if (k.out.dtype === 'bool') {
    c.i32(1).simd(Simd.i32x4Splat).simd(Simd.and);
    narrowToBytes(c);
    c.simdMem(Simd.store32Lane, 0, 0).op(0);
  } else c.simdMem(Simd.store, 0);
  c.get(o).i32(4 * eb).op(Op.i32Add).set(o);
  c.get(l).i32(4).op(Op.i32Add).set(l).br(0);
  c.end().end();
  // the tail, one element at a time
  c.block().loop();
  c.get(l).get(end).op(Op.i32GeS).brIf(1);
  c.get(o);
  em.exprAs(k.expr, k.out.dtype);
  if (k.out.dtype === 'bool') c.mem(Op.i32Store8, 0);
  else c.op(Op.f32DemoteF64).mem(Op.f32Store, 2);
  c.get(o).i32(eb).op(Op.i32Add).set(o);
  c.get(l).i32(1).op(Op.i32Add).set(l).br(0);
  c.end().end();
  return true;
}

/** i32x4 of 0/1 -> its four low bytes in lane 0 (i8x16) */
function narrowToBytes(c: ScalarEmitter['c']): void {
  const t = c.local('v128');
  c.tee(t).get(t).simd(Simd.i16x8NarrowI32x4U);
  c.tee(t).get(t).simd(Simd.i8x16NarrowI16x8U);
}

class LaneEmitter {
  constructor(private readonly em: ScalarEmitter, private readonly k: MapKernel) {}

  /** pushes `e` as a v128: f32x4 for floats, an i32x4 mask for booleans */
  expr(e: Expr): void {
    const c = this.em.c;
    const L = `i${this.k.out.shape.length - 1}`;
    switch (e.k) {
      case 'const':
        if (e.dtype === 'bool') c.i32(e.v ? -1 : 0).simd(Simd.i32x4Splat);
        else c.f32x4(e.v);
        return;
      case 'load': {
        const d = this.k.inputs[e.buf]!.dtype;
        if (coefOf(e.at, L) === 0) {
          this.em.load(e.buf, e.at);
          return this.splat(d);
        }
        this.em.address(e.buf, e.at);
        if (d === 'bool') {
          c.simdMem(Simd.load32Zero, 0).simd(Simd.i16x8ExtendLowI8x16U).simd(Simd.i32x4ExtendLowI16x8U);
          c.i32(0).simd(Simd.i32x4Splat).simd(Simd.i32x4Ne);
        } else c.simdMem(Simd.load, 0);
        return;
      }
      case 'unary': return this.unary(e);
      case 'binary': return this.binary(e);
      case 'where':
        this.expr(e.a);
        this.expr(e.b);
        this.expr(e.c);
        c.simd(Simd.bitselect);
        return;
      case 'cast':
        this.expr(e.a);
        if (e.dtype === 'bool' && isFloat(e.a.dtype)) c.f32x4(0).simd(Simd.f32x4Ne);
        else if (isFloat(e.dtype) && e.a.dtype === 'bool') c.f32x4(1).simd(Simd.and);
        return;
      case 'reduce': return this.reduce(e);
      default: throw new Error(`simd: no lane form for ${e.k}`);
    }
  }

  /** a scalar of dtype d on the stack -> all four lanes */
  private splat(d: string): void {
    const c = this.em.c;
    if (d === 'bool') {
      const t = c.local('i32');
      c.set(t).i32(0).get(t).op(Op.i32Sub).simd(Simd.i32x4Splat);
    } else c.op(Op.f32DemoteF64).simd(Simd.f32x4Splat);
  }

  private unary(e: Extract<Expr, { k: 'unary' }>): void {
    const c = this.em.c;
    this.expr(e.a);
    const t = c.local('v128');
    switch (e.op) {
      case 'not': c.simd(Simd.not); return;
      case 'neg': c.simd(Simd.f32x4Neg); return;
      case 'abs': c.simd(Simd.f32x4Abs); return;
      case 'sqrt': c.simd(Simd.f32x4Sqrt); return;
      case 'rsqrt': c.simd(Simd.f32x4Sqrt).set(t).f32x4(1).get(t).simd(Simd.f32x4Div); return;
      // x > 0 ? x : 0 (NaN and -0 give +0, as ops/scalar.ts says): pmax(0, x), one maxps
      case 'relu': c.set(t).f32x4(0).get(t).simd(Simd.f32x4Pmax); return;
      case 'recip': c.set(t).f32x4(1).get(t).simd(Simd.f32x4Div); return;
      case 'floor': c.simd(Simd.f32x4Floor); return;
      case 'ceil': c.simd(Simd.f32x4Ceil); return;
      case 'round': c.simd(Simd.f32x4Nearest); return;
      case 'square': c.tee(t).get(t).simd(Simd.f32x4Mul); return;
      case 'step': c.f32x4(0).simd(Simd.f32x4Gt).f32x4(1).simd(Simd.and); return;
      default: throw new Error(`simd: no lane form for ${e.op}`);
    }
  }

  private binary(e: Extract<Expr, { k: 'binary' }>): void {
    const c = this.em.c;
    this.expr(e.a);
    this.expr(e.b);
    if (e.a.dtype === 'bool') {
      const ops = { and: Simd.and, or: Simd.or, eq: Simd.i32x4Eq, ne: Simd.i32x4Ne } as Record<string, number>;
      c.simd(ops[e.op]!);
      return;
    }
    const ops: Record<string, number> = {
      add: Simd.f32x4Add, sub: Simd.f32x4Sub, mul: Simd.f32x4Mul, div: Simd.f32x4Div, max: Simd.f32x4Max, min: Simd.f32x4Min,
      lt: Simd.f32x4Lt, le: Simd.f32x4Le, gt: Simd.f32x4Gt, ge: Simd.f32x4Ge, eq: Simd.f32x4Eq, ne: Simd.f32x4Ne,
    };
    c.simd(ops[e.op]!);
  }

  private reduce(e: Extract<Expr, { k: 'reduce' }>): void {
    const c = this.em.c;
    const acc = c.local('v128');
    c.f32x4(e.op === 'sum' ? 0 : e.op === 'max' ? -Infinity : Infinity).set(acc);
    const nest = (d: number): void => {
      if (d === e.vars.length) {
        c.get(acc);
        this.expr(e.body);
        c.simd(e.op === 'sum' ? Simd.f32x4Add : e.op === 'max' ? Simd.f32x4Max : Simd.f32x4Min).set(acc);
        return;
      }
      const lv = e.vars[d]!;
      const l = this.em.varLocal(lv.name);
      c.for(l, () => c.i32(0), () => c.i32(lv.size), 1, () => nest(d + 1));
    };
    nest(0);
    c.get(acc);
  }
}
