// The WebAssembly renderer: kernel IR -> the bytes of one module per kernel signature, each
// exporting `run` over a part of its iteration domain so that threads can share a launch.
// Map kernels are loop nests over the output (SIMD along the last axis where simd-wasm.ts can
// vectorize the expression, scalar otherwise), matmul kernels are matmul-wasm.ts's GEMM, and
// scatter-add is a copy and an accumulation loop. Every module imports the device's memory and
// a few Math functions; none has state of its own.

import type { Kernel, MapKernel, MatmulKernel, ScatterAddKernel } from '../../ops/kernel-ir.js';
import { stridesOf } from '../../ops/kernel-ir.js';
import { RheoError } from '../../ops/errors.js';
import { Code, encodeModule, Op, type ValType } from './encoder.js';
import { DEFAULT_GEMM_TILING, emitEpilogue, emitGemm, emitGemmF64, type GemmTiling } from './matmul-wasm.js';
import { elementBytes, FIRST_KERNEL_FUNCTION, helperFunctions, MATH_IMPORTS, ScalarEmitter, valType } from './scalar-wasm.js';
import { emitSimdMap } from './simd-wasm.js';

/** What the module may assume of the engine and the device. */
export interface WasmTarget {
  /** float tensors stored in 8 bytes (an f64 device) */
  readonly f64: boolean;
  /** the engine validates relaxed-SIMD's f32x4.relaxed_madd */
  readonly relaxed: boolean;
  /** the memory is shared between threads */
  readonly shared: boolean;
  readonly maxPages: number;
  readonly tiling?: GemmTiling;
}

/**
 * How a kernel's `run` is called: `run(out, ...inputs, lo, hi, scratch)`, all byte addresses
 * but lo/hi. `split` is the extent of the axis [lo, hi) ranges over (0 when it runs whole);
 * `align` is the granularity a split must respect.
 */
export interface WasmKernelInfo {
  readonly split: number;
  readonly align: number;
  /** elementary operations, roughly: small kernels stay on the calling thread */
  readonly work: number;
}

export function kernelInfo(k: Kernel, target: WasmTarget): WasmKernelInfo {
  const n = k.out.shape.reduce((p, d) => p * d, 1);
  switch (k.kind) {
    case 'map': {
      const rank = k.out.shape.length;
      return { split: rank === 0 ? 0 : k.out.shape[0]!, align: 1, work: n * (1 + reduceSize(k.expr)) };
    }
    case 'matmul':
      return { split: k.m, align: target.f64 ? 1 : (target.tiling ?? DEFAULT_GEMM_TILING).mr, work: n * k.k };
    case 'scatterAdd':
      return { split: 0, align: 1, work: n + k.rows * k.inner };
  }
}

function reduceSize(e: MapKernel['expr']): number {
  if (e.k === 'reduce') return e.vars.reduce((p, v) => p * v.size, 1) * (1 + reduceSize(e.body));
  let s = 0;
  for (const v of Object.values(e)) if (v && typeof v === 'object' && 'k' in v && 'dtype' in v) s += reduceSize(v as MapKernel['expr']);
  return s;
}

/** The module bytes for a kernel. */
export function renderWasm(k: Kernel, target: WasmTarget): Uint8Array {
  if (k.kind === 'matmul' && k.reduce) throw new RheoError(`matmul '${k.name}': a fused reduction is a WebGPU kernel form; plans for the CPU never contain one`);
  const nIn = k.inputs.length;
  const params: ValType[] = Array.from({ length: nIn + 4 }, () => 'i32');
  const c = new Code(params);
  const out = 0, ins = Array.from({ length: nIn }, (_, j) => 1 + j), lo = nIn + 1, hi = nIn + 2, scratch = nIn + 3;
  const layout = { floatBytes: target.f64 ? 8 as const : 4 as const, inputs: k.inputs.map((b) => b.dtype), inputPtr: ins };
  switch (k.kind) {
    case 'map': renderMap(k, c, new ScalarEmitter(c, layout), { out, lo, hi }, target); break;
    case 'scatterAdd': renderScatterAdd(k, c, { out, ins }, layout.floatBytes); break;
    case 'matmul': renderMatmul(k, c, new ScalarEmitter(c, layout), { out, ins, mLo: lo, mHi: hi, scratch }, target); break;
  }
  return encodeModule({
    memory: { min: 0, max: target.maxPages, shared: target.shared },
    imports: MATH_IMPORTS,
    functions: [...helperFunctions(), c],
    exports: { run: FIRST_KERNEL_FUNCTION },
  });
}

function storeValue(c: Code, dtype: MapKernel['out']['dtype'], floatBytes: 4 | 8, offset = 0): void {
  if (dtype === 'bool') c.mem(Op.i32Store8, 0, offset);
  else if (dtype === 'i32') c.mem(Op.i32Store, 2, offset);
  else if (floatBytes === 8) c.mem(Op.f64Store, 3, offset);
  else c.op(Op.f32DemoteF64).mem(Op.f32Store, 2, offset);
}

function renderMap(k: MapKernel, c: Code, em: ScalarEmitter, a: { out: number; lo: number; hi: number }, target: WasmTarget): void {
  const shape = k.out.shape;
  const rank = shape.length;
  const eb = elementBytes(k.out.dtype, em.layout.floatBytes);
  if (rank === 0) {
    c.get(a.out);
    em.exprAs(k.expr, k.out.dtype);
    storeValue(c, k.out.dtype, em.layout.floatBytes);
    return;
  }
  if (shape.some((d) => d === 0)) return;
  const o = c.local('i32');
  // the output pointer starts at row `lo` and walks the rest in order
  c.get(a.out).get(a.lo).i32(stridesOf(shape)[0]! * eb).op(Op.i32Mul).op(Op.i32Add).set(o);
  const nest = (d: number): void => {
    if (d === rank - 1 && !target.f64 && emitSimdMap(k, em, o, d === 0 ? a : null)) return;
    if (d === rank) {
      c.get(o);
      em.exprAs(k.expr, k.out.dtype);
      storeValue(c, k.out.dtype, em.layout.floatBytes);
      c.get(o).i32(eb).op(Op.i32Add).set(o);
      return;
    }
    const l = em.varLocal(`i${d}`);
    if (d === 0) c.for(l, () => c.get(a.lo), () => c.get(a.hi), 1, () => nest(1));
    else c.for(l, () => c.i32(0), () => c.i32(shape[d]!), 1, () => nest(d + 1));
  };
  nest(0);
}

function renderScatterAdd(k: ScatterAddKernel, c: Code, a: { out: number; ins: readonly number[] }, fb: 4 | 8): void {
  const eb = elementBytes(k.out.dtype, fb);
  const total = k.out.shape.reduce((p, d) => p * d, 1) * eb;
  c.get(a.out);
  if (k.base >= 0) c.get(a.ins[k.base]!).i32(total).misc(10, 0, 0); // memory.copy
  else c.i32(0).i32(total).misc(11, 0); // memory.fill
  const r = c.local('i32'), j = c.local('i32'), row = c.local('i32'), src = c.local('i32'), t = c.local('i32');
  const updates = a.ins[k.updates]!, indices = a.ins[k.indices]!;
  const int = valType(k.out.dtype) === 'i32';
  c.for(r, () => c.i32(0), () => c.i32(k.rows), 1, () => {
    c.get(indices).get(r).i32(4).op(Op.i32Mul).op(Op.i32Add).mem(Op.i32Load, 2).set(t);
    c.i32(0).get(t).get(t).i32(0).op(Op.i32LtS).op(Op.select).set(t);
    c.i32(k.outRows - 1).get(t).get(t).i32(k.outRows - 1).op(Op.i32GtS).op(Op.select);
    c.i32(k.inner * eb).op(Op.i32Mul).get(a.out).op(Op.i32Add).set(row);
    c.get(updates).get(r).i32(k.inner * eb).op(Op.i32Mul).op(Op.i32Add).set(src);
    c.for(j, () => c.i32(0), () => c.i32(k.inner * eb), eb, () => {
      c.get(row).get(j).op(Op.i32Add);
      c.get(row).get(j).op(Op.i32Add);
      if (int) c.mem(Op.i32Load, 2).get(src).get(j).op(Op.i32Add).mem(Op.i32Load, 2).op(Op.i32Add).mem(Op.i32Store, 2);
      else if (fb === 8) c.mem(Op.f64Load, 3).get(src).get(j).op(Op.i32Add).mem(Op.f64Load, 3).op(Op.f64Add).mem(Op.f64Store, 3);
      else c.mem(Op.f32Load, 2).get(src).get(j).op(Op.i32Add).mem(Op.f32Load, 2).op(Op.f32Add).mem(Op.f32Store, 2);
    });
  });
}

function renderMatmul(k: MatmulKernel, c: Code, em: ScalarEmitter, a: { out: number; ins: readonly number[]; mLo: number; mHi: number; scratch: number }, target: WasmTarget): void {
  if (target.f64) emitGemmF64(c, k, a);
  else emitGemm(c, k, a, target.tiling ?? DEFAULT_GEMM_TILING, target.relaxed);
  if (k.epilogue) emitEpilogue(em, k, a);
}
