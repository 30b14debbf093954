// The WebAssembly GEMM: a MatmulKernel as one function over a range of output rows, in the
// Goto/BLIS shape: cache blocks of B (kc × nc) and A (mc × kc) packed into panels in a scratch
// area, and an mr × nr register tile of f32x4 accumulators (relaxed-SIMD FMA where the engine
// has it). Edges are zero-padded in the panels and stored through a small tile buffer.
// Threads split the rows; each packs its own panels in its own scratch. f64 storage gets a
// plain scalar loop (it is for gradient checks, not speed). The epilogue is scalar-wasm.ts's.

import type { Expr, IndexExpr, MapKernel, MatmulKernel } from '../../ops/kernel-ir.js';
import { iconst, ivar, linearize } from '../../ops/kernel-ir.js';
import { Code, Op, Simd } from './encoder.js';
import { elementBytes, ScalarEmitter } from './scalar-wasm.js';
import { emitSimdMap } from './simd-wasm.js';

export interface GemmTiling {
  /** register tile rows and columns (nr a multiple of 4) */
  readonly mr: number;
  readonly nr: number;
  /** packed block depth, rows and columns (mc a multiple of mr, nc of nr) */
  readonly kc: number;
  readonly mc: number;
  readonly nc: number;
}

// Measured on a 2-core Zen 4 (V8 11.3, no FMA), 768³ on one thread: 4×8 (8 f32x4 accumulators)
// ~45 GFLOP/s, 5×8 ~42, 4×12 ~41, 3×16 ~40, 6×8 ~38 (12 accumulators, two B vectors and an A
// broadcast leave V8 no spare xmm register). kc 128..512, mc 48..128 and nc 256..1024 were all
// within 2%: the B block (kc × nc × 4 = 512 KiB) sits in L2, the panels (4 and 8 KiB) in L1.
// Unrolling the k loop by two measured slower (~39 GFLOP/s).
// On a 2-core Intel Xeon (AVX-512 server core, ~3.9 GHz; V8 11.3), 1024³ on one thread: 4×8 with
// relaxed-SIMD FMA ~51 GFLOP/s (2×16 ~49, 6×8 ~46, 5×8 ~38); without FMA ~45, at the ceiling of
// multiplies and adds sharing three ports (12 flops a cycle, ~47 GFLOP/s). V8 unrolls the k loop
// itself and keeps all eleven vectors in registers. Storing A pre-broadcast (a plain load in
// the loop instead of a load-splat) and skipping both packings each moved it under 3%.
export const DEFAULT_GEMM_TILING: GemmTiling = { mr: 4, nr: 8, kc: 256, mc: 96, nc: 512 };

/** Bytes of scratch one thread needs for the tiling. */
export function gemmScratchBytes(t: GemmTiling = DEFAULT_GEMM_TILING): number {
  return (t.mc * t.kc + t.kc * t.nc + t.mr * t.nr) * 4 + 64;
}

/** The locals holding the kernel's arguments. */
export interface GemmArgs {
  readonly out: number;
  readonly ins: readonly number[];
  readonly mLo: number;
  readonly mHi: number;
  readonly scratch: number;
}

/** base element offset of operand `which` (or the output) for flat batch index in local `bt` */
function batchBase(c: Code, k: MatmulKernel, bt: number, strides: readonly number[] | null, offset: number): void {
  c.i32(offset);
  let div = 1;
  for (let d = k.batch.length - 1; d >= 0; d--) {
    const size = k.batch[d]!;
    const stride = strides ? strides[d]! : 0;
    if (strides && stride !== 0 && size > 1) {
      c.get(bt).i32(div).op(Op.i32DivS).i32(size).op(Op.i32RemS).i32(stride).op(Op.i32Mul).op(Op.i32Add);
    }
    div *= size;
  }
  if (!strides) c.get(bt).i32(k.m * k.n).op(Op.i32Mul).op(Op.i32Add);
}

/** min(local a, constant or local b) pushed */
function minOf(c: Code, a: () => void, b: () => void): void {
  const x = c.local('i32'), y = c.local('i32');
  a();
  c.set(x);
  b();
  c.set(y);
  c.get(x).get(y).get(x).get(y).op(Op.i32LtS).op(Op.select);
}

/** f32 load at local ptr + constant byte offset */
function ldf(c: Code, ptr: number, off: number): void {
  if (off >= 0) c.get(ptr).mem(Op.f32Load, 2, off);
  else c.get(ptr).i32(off).op(Op.i32Add).mem(Op.f32Load, 2);
}

/** Emits the GEMM (rows [mLo, mHi) of every batch) into `c`. */
export function emitGemm(c: Code, k: MatmulKernel, args: GemmArgs, t: GemmTiling, relaxed: boolean): void {
  const M = k.m, N = k.n, K = k.k;
  const BT = k.batch.reduce((p, d) => p * d, 1);
  const { mr: MR, nr: NR } = t;
  const inA = args.ins[k.a.buf]!, inB = args.ins[k.b.buf]!;
  const bt = c.local('i32'), aB = c.local('i32'), bB = c.local('i32'), cB = c.local('i32');
  if (BT === 0 || M === 0 || N === 0) return;
  if (K === 0) {
    c.for(bt, () => c.i32(0), () => c.i32(BT), 1, () => {
      c.get(args.out).get(bt).i32(M).op(Op.i32Mul).get(args.mLo).op(Op.i32Add).i32(N * 4).op(Op.i32Mul).op(Op.i32Add);
      c.i32(0);
      c.get(args.mHi).get(args.mLo).op(Op.i32Sub).i32(N * 4).op(Op.i32Mul);
      c.misc(11, 0); // memory.fill
    });
    return;
  }
  const KC = Math.ceil(K / Math.ceil(K / t.kc));
  const MC = Math.min(t.mc, Math.ceil(M / MR) * MR);
  const NC = Math.min(t.nc, Math.ceil(N / NR) * NR);
  const jc = c.local('i32'), pc = c.local('i32'), ic = c.local('i32'), jr = c.local('i32'), ir = c.local('i32'), p = c.local('i32');
  const nc = c.local('i32'), kc = c.local('i32'), mc = c.local('i32'), w = c.local('i32'), h = c.local('i32');
  const src = c.local('i32'), dst = c.local('i32'), sA = c.local('i32'), sB = c.local('i32'), sT = c.local('i32');
  const pa = c.local('i32'), pb = c.local('i32'), end = c.local('i32'), cp = c.local('i32'), v = c.local('f32'), ii = c.local('i32'), jj = c.local('i32');
  const NV = NR / 4;
  const acc = Array.from({ length: MR * NV }, () => c.local('v128'));
  const bv = Array.from({ length: NV }, () => c.local('v128'));
  const av = c.local('v128');

  c.get(args.scratch).set(sA);
  c.get(args.scratch).i32(MC * KC * 4).op(Op.i32Add).set(sB);
  c.get(sB).i32(KC * NC * 4).op(Op.i32Add).set(sT);

  const rsA = k.a.rowStride, csA = k.a.colStride, rsB = k.b.rowStride, csB = k.b.colStride;

  c.for(bt, () => c.i32(0), () => c.i32(BT), 1, () => {
    batchBase(c, k, bt, k.a.batchStrides, k.a.offset);
    c.set(aB);
    batchBase(c, k, bt, k.b.batchStrides, k.b.offset);
    c.set(bB);
    batchBase(c, k, bt, null, 0);
    c.set(cB);
    c.for(jc, () => c.i32(0), () => c.i32(N), NC, () => {
      minOf(c, () => c.i32(NC), () => c.i32(N).get(jc).op(Op.i32Sub));
      c.set(nc);
      c.for(pc, () => c.i32(0), () => c.i32(K), KC, () => {
        minOf(c, () => c.i32(KC), () => c.i32(K).get(pc).op(Op.i32Sub));
        c.set(kc);
        // ---- pack B (kc × nc) into panels of NR columns
        c.get(sB).set(dst);
        c.for(jr, () => c.i32(0), () => c.get(nc), NR, () => {
          minOf(c, () => c.i32(NR), () => c.get(nc).get(jr).op(Op.i32Sub));
          c.set(w);
          c.get(inB).get(bB).get(pc).i32(rsB).op(Op.i32Mul).op(Op.i32Add).get(jc).get(jr).op(Op.i32Add).i32(csB).op(Op.i32Mul).op(Op.i32Add).i32(4).op(Op.i32Mul).op(Op.i32Add).set(src);
          c.get(w).i32(NR).op(Op.i32Eq).if();
          c.for(p, () => c.i32(0), () => c.get(kc), 1, () => {
            if (csB === 1) {
              for (let j = 0; j < NV; j++) c.get(dst).get(src).simdMem(Simd.load, 0, 16 * j).simdMem(Simd.store, 0, 16 * j);
            } else {
              for (let j = 0; j < NR; j++) {
                c.get(dst);
                ldf(c, src, j * csB * 4);
                c.mem(Op.f32Store, 2, 4 * j);
              }
            }
            c.get(src).i32(rsB * 4).op(Op.i32Add).set(src);
            c.get(dst).i32(NR * 4).op(Op.i32Add).set(dst);
          });
          c.else();
          c.for(p, () => c.i32(0), () => c.get(kc), 1, () => {
            for (let j = 0; j < NR; j++) {
              c.get(dst);
              c.i32(j).get(w).op(Op.i32LtS).if('f32');
              ldf(c, src, j * csB * 4);
              c.else().f32(0);
              c.end();
              c.mem(Op.f32Store, 2, 4 * j);
            }
            c.get(src).i32(rsB * 4).op(Op.i32Add).set(src);
            c.get(dst).i32(NR * 4).op(Op.i32Add).set(dst);
          });
          c.end();
        });
        c.for(ic, () => c.get(args.mLo), () => c.get(args.mHi), MC, () => {
          minOf(c, () => c.i32(MC), () => c.get(args.mHi).get(ic).op(Op.i32Sub));
          c.set(mc);
          // ---- pack A (mc × kc) into panels of MR rows
          c.get(sA).set(dst);
          c.for(ir, () => c.i32(0), () => c.get(mc), MR, () => {
            minOf(c, () => c.i32(MR), () => c.get(mc).get(ir).op(Op.i32Sub));
            c.set(h);
            c.get(inA).get(aB).get(ic).get(ir).op(Op.i32Add).i32(rsA).op(Op.i32Mul).op(Op.i32Add).get(pc).i32(csA).op(Op.i32Mul).op(Op.i32Add).i32(4).op(Op.i32Mul).op(Op.i32Add).set(src);
            // a whole panel without the row test (every panel but the last of a ragged M)
            c.get(h).i32(MR).op(Op.i32Eq).if();
            c.for(p, () => c.i32(0), () => c.get(kc), 1, () => {
              // a transposed A (rows adjacent in memory) packs a vector at a time
              if (rsA === 1 && MR % 4 === 0) {
                for (let i = 0; i < MR; i += 4) c.get(dst).get(src).simdMem(Simd.load, 0, 4 * i).simdMem(Simd.store, 0, 4 * i);
              } else {
                for (let i = 0; i < MR; i++) {
                  c.get(dst);
                  ldf(c, src, i * rsA * 4);
                  c.mem(Op.f32Store, 2, 4 * i);
                }
              }
              c.get(src).i32(csA * 4).op(Op.i32Add).set(src);
              c.get(dst).i32(MR * 4).op(Op.i32Add).set(dst);
            });
            c.else();
            c.for(p, () => c.i32(0), () => c.get(kc), 1, () => {
              for (let i = 0; i < MR; i++) {
                c.get(dst);
                c.i32(i).get(h).op(Op.i32LtS).if('f32');
                ldf(c, src, i * rsA * 4);
                c.else().f32(0);
                c.end();
                c.mem(Op.f32Store, 2, 4 * i);
              }
              c.get(src).i32(csA * 4).op(Op.i32Add).set(src);
              c.get(dst).i32(MR * 4).op(Op.i32Add).set(dst);
            });
            c.end();
          });
          // ---- the tiles
          c.for(jr, () => c.i32(0), () => c.get(nc), NR, () => {
            c.for(ir, () => c.i32(0), () => c.get(mc), MR, () => {
              microKernel();
            });
          });
        });
      });
    });
  });

  function microKernel(): void {
    c.get(sA).get(ir).get(kc).op(Op.i32Mul).i32(4).op(Op.i32Mul).op(Op.i32Add).set(pa);
    c.get(sB).get(jr).get(kc).op(Op.i32Mul).i32(4).op(Op.i32Mul).op(Op.i32Add).tee(pb);
    c.get(kc).i32(NR * 4).op(Op.i32Mul).op(Op.i32Add).set(end);
    for (const a of acc) c.f32x4(0).set(a);
    c.loop();
    for (let j = 0; j < NV; j++) c.get(pb).simdMem(Simd.load, 0, 16 * j).set(bv[j]!);
    for (let i = 0; i < MR; i++) {
      c.get(pa).simdMem(Simd.load32Splat, 2, 4 * i).set(av);
      for (let j = 0; j < NV; j++) {
        const a = acc[i * NV + j]!;
        if (relaxed) c.get(av).get(bv[j]!).get(a).simd(Simd.f32x4RelaxedMadd).set(a);
        else c.get(a).get(av).get(bv[j]!).simd(Simd.f32x4Mul).simd(Simd.f32x4Add).set(a);
      }
    }
    c.get(pa).i32(MR * 4).op(Op.i32Add).set(pa);
    c.get(pb).i32(NR * 4).op(Op.i32Add).tee(pb);
    c.get(end).op(Op.i32LtU).brIf(0);
    c.end();
    // the output tile's address
    c.get(args.out).get(cB).get(ic).get(ir).op(Op.i32Add).i32(N).op(Op.i32Mul).op(Op.i32Add).get(jc).op(Op.i32Add).get(jr).op(Op.i32Add).i32(4).op(Op.i32Mul).op(Op.i32Add).set(cp);
    minOf(c, () => c.i32(MR), () => c.get(mc).get(ir).op(Op.i32Sub));
    c.set(h);
    minOf(c, () => c.i32(NR), () => c.get(nc).get(jr).op(Op.i32Sub));
    c.set(w);
    c.get(h).i32(MR).op(Op.i32Eq).get(w).i32(NR).op(Op.i32Eq).op(Op.i32And).if();
    {
      c.get(pc).op(Op.i32Eqz).if();
      for (let i = 0; i < MR; i++) for (let j = 0; j < NV; j++) c.get(cp).get(acc[i * NV + j]!).simdMem(Simd.store, 0, (i * N + 4 * j) * 4);
      c.else();
      for (let i = 0; i < MR; i++) {
        for (let j = 0; j < NV; j++) {
          const off = (i * N + 4 * j) * 4;
          c.get(cp).get(cp).simdMem(Simd.load, 0, off).get(acc[i * NV + j]!).simd(Simd.f32x4Add).simdMem(Simd.store, 0, off);
        }
      }
      c.end();
    }
    c.else();
    {
      for (let i = 0; i < MR; i++) for (let j = 0; j < NV; j++) c.get(sT).get(acc[i * NV + j]!).simdMem(Simd.store, 0, (i * NR + 4 * j) * 4);
      c.for(ii, () => c.i32(0), () => c.get(h), 1, () => {
        c.for(jj, () => c.i32(0), () => c.get(w), 1, () => {
          c.get(sT).get(ii).i32(NR).op(Op.i32Mul).get(jj).op(Op.i32Add).i32(4).op(Op.i32Mul).op(Op.i32Add).mem(Op.f32Load, 2).set(v);
          c.get(cp).get(ii).i32(N).op(Op.i32Mul).get(jj).op(Op.i32Add).i32(4).op(Op.i32Mul).op(Op.i32Add).set(dst);
          c.get(pc).if().get(v).get(dst).mem(Op.f32Load, 2).op(Op.f32Add).set(v).end();
          c.get(dst).get(v).mem(Op.f32Store, 2);
        });
      });
    }
    c.end();
  }
}

/** f64 storage: out[b, m, n] = sum_k a·b in doubles, rows [mLo, mHi), no tiling. */
export function emitGemmF64(c: Code, k: MatmulKernel, args: GemmArgs): void {
  const M = k.m, N = k.n, K = k.k;
  const BT = k.batch.reduce((p, d) => p * d, 1);
  const inA = args.ins[k.a.buf]!, inB = args.ins[k.b.buf]!;
  const bt = c.local('i32'), aB = c.local('i32'), bB = c.local('i32'), cB = c.local('i32');
  const m = c.local('i32'), n = c.local('i32'), kk = c.local('i32'), s = c.local('f64');
  if (BT === 0 || M === 0 || N === 0) return;
  c.for(bt, () => c.i32(0), () => c.i32(BT), 1, () => {
    batchBase(c, k, bt, k.a.batchStrides, k.a.offset);
    c.set(aB);
    batchBase(c, k, bt, k.b.batchStrides, k.b.offset);
    c.set(bB);
    batchBase(c, k, bt, null, 0);
    c.set(cB);
    c.for(m, () => c.get(args.mLo), () => c.get(args.mHi), 1, () => {
      c.for(n, () => c.i32(0), () => c.i32(N), 1, () => {
        c.f64(0).set(s);
        c.for(kk, () => c.i32(0), () => c.i32(K), 1, () => {
          c.get(inA).get(aB).get(m).i32(k.a.rowStride).op(Op.i32Mul).op(Op.i32Add).get(kk).i32(k.a.colStride).op(Op.i32Mul).op(Op.i32Add).i32(8).op(Op.i32Mul).op(Op.i32Add).mem(Op.f64Load, 3);
          c.get(inB).get(bB).get(kk).i32(k.b.rowStride).op(Op.i32Mul).op(Op.i32Add).get(n).i32(k.b.colStride).op(Op.i32Mul).op(Op.i32Add).i32(8).op(Op.i32Mul).op(Op.i32Add).mem(Op.f64Load, 3);
          c.op(Op.f64Mul).get(s).op(Op.f64Add).set(s);
        });
        c.get(args.out).get(cB).get(m).i32(N).op(Op.i32Mul).op(Op.i32Add).get(n).op(Op.i32Add).i32(8).op(Op.i32Mul).op(Op.i32Add).get(s).mem(Op.f64Store, 3);
      });
    });
  });
}

/** `e` with its accumulator leaf read from buffer `buf` at `at` */
function accAsLoad(e: Expr, buf: number, at: IndexExpr): Expr {
  const r = (x: Expr) => accAsLoad(x, buf, at);
  switch (e.k) {
    case 'acc': return { k: 'load', buf, at, dtype: e.dtype };
    case 'unary': return { ...e, a: r(e.a) };
    case 'cast': return { ...e, a: r(e.a) };
    case 'binary': return { ...e, a: r(e.a), b: r(e.b) };
    case 'where': return { ...e, c: r(e.c), a: r(e.a), b: r(e.b) };
    case 'select': return { ...e, a: r(e.a), b: r(e.b) };
    case 'reduce': return { ...e, body: r(e.body) };
    case 'rand': return e.key ? { ...e, key: r(e.key) } : e;
    default: return e;
  }
}

/**
 * The epilogue over rows [mLo, mHi) of every batch: out = epilogue(acc = out), with the output
 * variables i0... bound as the IR expects. With f32 storage it is a map kernel over those rows
 * reading the accumulator from the output itself, so simd-wasm.ts runs its rows four lanes at a
 * time where the expression allows (a scalar loop of f64 conversions took a third of a small
 * GEMM's time).
 */
export function emitEpilogue(em: ScalarEmitter, k: MatmulKernel, args: GemmArgs): void {
  if (em.layout.floatBytes === 4 && k.out.shape.length >= 2) {
    emitMapEpilogue(em, k, args);
    return;
  }
  const c = em.c;
  const rank = k.out.shape.length;
  const nb = k.batch.length;
  const fb = em.layout.floatBytes;
  const addr = c.local('i32');
  em.accLocal = c.local('f64');
  const idx = linearize(Array.from({ length: rank }, (_, d) => ivar(`i${d}`)), k.out.shape);
  const nest = (d: number): void => {
    if (d === rank) {
      c.get(args.out);
      em.index(idx);
      c.i32(Math.log2(fb)).op(Op.i32Shl).op(Op.i32Add).set(addr);
      c.get(addr);
      if (fb === 8) c.get(addr).mem(Op.f64Load, 3).set(em.accLocal);
      else c.get(addr).mem(Op.f32Load, 2).op(Op.f64PromoteF32).set(em.accLocal);
      em.exprAs(k.epilogue!, 'f32');
      if (fb === 8) c.mem(Op.f64Store, 3);
      else c.op(Op.f32DemoteF64).mem(Op.f32Store, 2);
      return;
    }
    const l = em.varLocal(`i${d}`);
    if (d === nb) c.for(l, () => c.get(args.mLo), () => c.get(args.mHi), 1, () => nest(d + 1));
    else c.for(l, () => c.i32(0), () => c.i32(k.out.shape[d]!), 1, () => nest(d + 1));
  };
  nest(0);
}

function emitMapEpilogue(em0: ScalarEmitter, k: MatmulKernel, args: GemmArgs): void {
  const c = em0.c;
  const rank = k.out.shape.length;
  const nb = k.batch.length;
  const numel = k.out.shape.reduce((p, d) => p * d, 1);
  const at = linearize(Array.from({ length: rank }, (_, d) => ivar(`i${d}`)), k.out.shape);
  const acc = k.inputs.length;
  const map: MapKernel = {
    kind: 'map',
    name: k.name,
    inputs: [...k.inputs, { dtype: k.out.dtype, size: numel }],
    out: k.out,
    expr: accAsLoad(k.epilogue!, acc, at),
  };
  const em = new ScalarEmitter(c, { ...em0.layout, inputs: [...em0.layout.inputs, k.out.dtype], inputPtr: [...em0.layout.inputPtr, args.out] });
  const o = c.local('i32');
  const eb = elementBytes(k.out.dtype, 4);
  const n = k.out.shape[rank - 1]!;
  const l = em.varLocal(`i${rank - 1}`);
  const nest = (d: number): void => {
    if (d === rank - 1) {
      // the row's first element
      c.get(args.out);
      em.index(linearize([...Array.from({ length: rank - 1 }, (_, j) => ivar(`i${j}`)), iconst(0)], k.out.shape));
      c.i32(Math.log2(eb)).op(Op.i32Shl).op(Op.i32Add).set(o);
      if (emitSimdMap(map, em, o, null)) return;
      c.for(l, () => c.i32(0), () => c.i32(n), 1, () => {
        c.get(o);
        em.exprAs(map.expr, k.out.dtype);
        if (k.out.dtype === 'i32') c.mem(Op.i32Store, 2);
        else if (k.out.dtype === 'bool') c.mem(Op.i32Store8, 0);
        else c.op(Op.f32DemoteF64).mem(Op.f32Store, 2);
        c.get(o).i32(eb).op(Op.i32Add).set(o);
      });
      return;
    }
    const v = em.varLocal(`i${d}`);
    if (d === nb) c.for(v, () => c.get(args.mLo), () => c.get(args.mHi), 1, () => nest(d + 1));
    else c.for(v, () => c.i32(0), () => c.i32(k.out.shape[d]!), 1, () => nest(d + 1));
  };
  nest(0);
}
