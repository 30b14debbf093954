// Matmul kernels in WGSL, three ways, with the kernel's epilogue fused into the stores:
//   'workgroup': WTxWT invocations share (4·WT)² output tiles through workgroup memory (K steps of
//                BK), each invocation owning a strided 4x4 block: the usual shape for real GPUs
//                (16x16 invocations and BK 16 by default; the tuner also tries 8x8 and BK 8/32).
//   'register':  no workgroup memory; 8x8 invocations, each keeping an 8x4 tile in registers with
//                vec4 loads where the layout allows: measured ~4x faster on llvmpipe; optionally
//                (a tuner candidate) vec4 stores where the output's rows are whole vec4s.
//   'splitk':    for tall-skinny products (k ≫ m·n): invocations each take one output and one
//                chunk of k, write partial dot products to a scratch buffer, and a second pass
//                sums each output's chunks in order and applies the epilogue.
// Edge tiles clamp their load addresses (results outside the output are never stored), so the
// inner loops carry no bounds checks. f16 operands on a 'shader-f16' device are multiplied in f16
// (f16 workgroup tiles, vec4<f16> products) and accumulated in f32. Gathered operands (implicit
// GEMM, render-wgsl-gather.ts) are read in every variant. Which variant to use is the backend's choice.

import { RheoError } from '../../graphs/errors.js';
import type { DType } from '../../graphs/types.js';
import type { MatmulKernel, MatmulOperand } from '../../ops/kernel-ir.js';
import type { RenderedKernel } from './render-wgsl.js';
import { ExprEmitter, bindingTypes, convert, declareBindings, grid, loopIterations, toStorage } from './wgsl-expr.js';
import { gatherRead, splitGather } from './render-wgsl-gather.js';

export type MatmulVariant = 'register' | 'workgroup' | 'splitk';

/**
 * The workgroup variant's shape: WTxWT invocations (8 or 16), K steps of BK (8, 16 or 32); with
 * `vec4`, tiles of a row-major A and B are loaded from global memory as aligned vec4s where
 * their shapes allow.
 */
export interface WorkgroupTile {
  readonly wt: number;
  readonly bk: number;
  readonly vec4?: boolean;
  /**
   * each invocation owns 4 adjacent columns (not 4 strided by WT) and stores them as one vec4
   * where the output's rows are whole vec4s (n % 4 == 0, f32 output)
   */
  readonly vec4Store?: boolean;
}

export const DEFAULT_WORKGROUP_TILE: WorkgroupTile = { wt: 16, bk: 16 };

/** What the matmul renderer may be told besides the variant. */
export interface MatmulRenderOptions {
  readonly tile?: RegisterTileChoice;
  readonly workgroupTile?: WorkgroupTile;
  /** split-K: k elements per chunk (default: `splitKChunk`) */
  readonly kChunk?: number;
  /** storage buffers a kernel may bind (split-K binds a scratch buffer too); default 8 */
  readonly maxStorageBuffers?: number;
  /** f16 tensors are array<f16> ('shader-f16'); f16 operands are then multiplied in f16 */
  readonly half?: boolean;
}

const isFloat = (d: DType | undefined) => d === 'f32' || d === 'f16';

/** Whether an operand's addresses along its fast (column) axis can be read as aligned vec4s. */
function vec4Along(k: MatmulKernel, op: MatmulOperand, rows: number, cols: number): boolean {
  return (
    isFloat(k.inputs[op.buf]?.dtype) && !op.gather &&
    op.colStride === 1 && cols % 4 === 0 && cols >= 4 && op.offset % 4 === 0 &&
    (rows === 1 || op.rowStride % 4 === 0) &&
    op.batchStrides.every((s, i) => k.batch[i] === 1 || s % 4 === 0)
  );
}

/** Transposed view of an operand: its rows become columns (for vec4 reads along the other axis). */
const swapped = (op: MatmulOperand): MatmulOperand => ({ ...op, rowStride: op.colStride, colStride: op.rowStride });

/**
 * How the register kernel reads an operand: 'scalar', or vec4s along one of its axes. A: 'k' reads
 * A[row, k..k+3] (row-major A), 'm' reads A[row..row+3, k] (A stored transposed, as in xᵀ·dy).
 * B: 'n' reads B[k, col..col+3] (row-major B), 'k' reads B[k..k+3, col] (B stored transposed, as
 * in dy·Wᵀ).
 */
type AMode = 'k' | 'm' | 'scalar';
type BMode = 'n' | 'k' | 'scalar';

export interface Parts {
  readonly vec4: Set<number>;
  readonly aMode: AMode;
  readonly bMode: BMode;
  readonly prelude: string;
  /** statements computing `bt` (linear batch), `aBase`, `bBase`, batch vars `i0`.. */
  readonly batchDecode: (bt: string) => string;
  readonly batches: number;
  readonly epilogue: string;
  /** loop iterations of one epilogue call */
  readonly epilogueLoops: number;
  /** call of the epilogue for accumulator `acc` at (row, col): a storage value */
  readonly store: (acc: string, row: string, col: string) => string;
  /**
   * Operand values: 'f16' when both operands are f16 buffers on a 'shader-f16' device (products
   * are then f16, vec4<f16> where they can be, and each is widened to f32 before it is added
   * to an f32 accumulator), else 'f32'.
   */
  readonly E: 'f16' | 'f32';
  /** vec4 of operand values, and its zero */
  readonly V: string;
  readonly zero: string;
  /** a product of operand values as f32 (`x` itself when E is f32) */
  readonly up: (x: string, vec: boolean) => string;
}

/**
 * The kernel's epilogue as a WGSL function `epilogue(acc, i0, ..., row, col)` of the f32
 * accumulator and the output indices, returning the stored value; emitted through `em`, whose
 * helpers it may add to.
 */
export function epilogueDecl(k: MatmulKernel, em: ExprEmitter, half: boolean): string {
  em.acc = 'acc';
  const params = ['acc: f32'];
  for (let i = 0; i < k.batch.length + 2; i++) {
    em.bindVar(`i${i}`, `i${i}`);
    params.push(`i${i}: i32`);
  }
  const v = k.epilogue ? em.value(k.epilogue) : 'acc';
  const vd: DType = k.epilogue ? k.epilogue.dtype : 'f32';
  em.emit(`return ${toStorage(convert(v, vd, k.out.dtype), k.out.dtype, half)};`);
  const outT = bindingTypes([], k.out.dtype, new Set(), half)[0]!;
  return `fn epilogue(${params.join(', ')}) -> ${outT} {\n${em.lines.join('\n')}\n}`;
}

function parts(k: MatmulKernel, allowVec4: boolean, half = false, alongK = true): Parts {
  const nb = k.batch.length;
  const batches = k.batch.reduce((a, b) => a * b, 1);
  // an input used as a vec4 operand is bound as array<vec4<f32>> (vec4<f16>) everywhere in the shader
  // (vec4s along k pay only in the register kernel's four-k steps: `alongK` false leaves them out)
  const aMode: AMode = !allowVec4 ? 'scalar' : alongK && vec4Along(k, k.a, k.m, k.k) ? 'k' : vec4Along(k, swapped(k.a), k.k, k.m) ? 'm' : 'scalar';
  const bMode: BMode = !allowVec4 ? 'scalar' : vec4Along(k, k.b, k.k, k.n) ? 'n' : alongK && vec4Along(k, swapped(k.b), k.n, k.k) ? 'k' : 'scalar';
  const vec4 = new Set<number>();
  if (aMode !== 'scalar') vec4.add(k.a.buf);
  if (bMode !== 'scalar') vec4.add(k.b.buf);

  const em = new ExprEmitter(k.inputs, vec4, 1, half);
  const epilogue = epilogueDecl(k, em, half);
  const prelude = [...em.helpers, ...declareBindings(k.inputs, k.out.dtype, vec4, half)].join('\n');

  const batchDecode = (bt: string) => {
    const lines: string[] = [];
    let aBase = `${k.a.offset}i`, bBase = `${k.b.offset}i`;
    let inner = 1;
    for (let i = nb - 1; i >= 0; i--) {
      const d = k.batch[i]!;
      lines.push(`let i${i}: i32 = ${d === 1 ? '0i' : `(${bt} / ${inner}i) % ${d}i`};`);
      inner *= d;
      if (k.a.batchStrides[i]) aBase += ` + i${i} * ${k.a.batchStrides[i]}i`;
      if (k.b.batchStrides[i]) bBase += ` + i${i} * ${k.b.batchStrides[i]}i`;
    }
    lines.push(`let aBase: i32 = ${aBase};`, `let bBase: i32 = ${bBase};`);
    return lines.map((l) => `  ${l}`).join('\n');
  };
  const bv = Array.from({ length: nb }, (_, i) => `i${i}`);
  const store = (acc: string, row: string, col: string) =>
    `out[oBase + ${row} * ${k.n}i + ${col}] = epilogue(${[acc, ...bv, row, col].join(', ')});`;
  const epilogueLoops = k.epilogue ? loopIterations(k.epilogue) : 0;
  const E = half && k.inputs[k.a.buf]?.dtype === 'f16' && k.inputs[k.b.buf]?.dtype === 'f16' ? 'f16' : 'f32';
  const h = E === 'f16';
  const up = (x: string, vec: boolean) => (h ? `${vec ? 'vec4<f32>' : 'f32'}(${x})` : x);
  return { vec4, aMode, bMode, prelude, batchDecode, batches, epilogue, epilogueLoops, store, E, V: `vec4<${E}>`, zero: h ? '0.0h' : '0.0f', up };
}

/** Workgroups: x over column blocks, y (spilling into z) over (batch, row block) pairs. */
function dispatch(xBlocks: number, yBlocks: number, batches: number, maxPerDim: number): [number, number, number] {
  const yz = yBlocks * batches;
  if (xBlocks === 0 || yz === 0) return [0, 0, 0];
  const y = Math.min(yz, maxPerDim);
  const z = Math.ceil(yz / y);
  if (xBlocks > maxPerDim || z > maxPerDim) throw new RheoError('matmul output is too large to dispatch on this device');
  return [xBlocks, y, z];
}

/** WGSL for a matmul kernel in the given variant (split-K falls back to 'register' where it cannot bind its scratch). */
export function renderMatmul(k: MatmulKernel, variant: MatmulVariant, maxPerDim: number, o: MatmulRenderOptions = {}): RenderedKernel {
  const tile = o.tile ?? registerTile;
  const half = o.half ?? false;
  if (variant === 'splitk' && k.inputs.length + 2 <= (o.maxStorageBuffers ?? 8)) return renderSplitK(k, maxPerDim, o.kChunk ?? splitKChunk(k), half);
  if (variant === 'workgroup') return renderWorkgroup(k, maxPerDim, o.workgroupTile ?? DEFAULT_WORKGROUP_TILE, half);
  return renderRegister(k, maxPerDim, tile(k.m, k.n), half);
}

/** Whether a product is tall-skinny enough that split-K is the better default: k ≫ m·n. */
export function tallSkinny(k: MatmulKernel): boolean {
  const outs = k.m * k.n * k.batch.reduce((a, b) => a * b, 1);
  return k.k >= 4096 && k.k >= 16 * outs;
}

/**
 * Split-K's chunk of k: enough chunks that about 16K invocations run, at least 64 elements each,
 * and at most 16384 (llvmpipe stops loops at 65535).
 */
export function splitKChunk(k: MatmulKernel): number {
  const outs = Math.max(1, k.m * k.n * k.batch.reduce((a, b) => a * b, 1));
  const chunks = Math.max(1, Math.min(Math.ceil(16384 / outs), Math.ceil(k.k / 64)));
  return Math.min(16384, Math.max(1, Math.ceil(k.k / chunks)));
}

function renderSplitK(k: MatmulKernel, maxPerDim: number, kChunk: number, half: boolean): RenderedKernel {
  const P = parts(k, false, half);
  const { m: M, n: N, k: K, a, b } = k;
  const outs = M * N * P.batches;
  const chunks = Math.max(1, Math.ceil(K / kChunk));
  const WG = 64;
  const A = (row: string, kk: string) => a.gather ? gatherRead(k, a, P.vec4, row, kk) : convert(`in${a.buf}[aBase + ${row} * ${a.rowStride}i + ${kk} * ${a.colStride}i]`, k.inputs[a.buf]!.dtype, 'f32');
  const B = (kk: string, col: string) => b.gather ? gatherRead(k, b, P.vec4, kk, col) : convert(`in${b.buf}[bBase + ${kk} * ${b.rowStride}i + ${col} * ${b.colStride}i]`, k.inputs[b.buf]!.dtype, 'f32');
  const scratch = `@group(0) @binding(${k.inputs.length + 1}) var<storage, read_write> scratch: array<f32>;`;
  // e: the output (batch, row, col), col fastest, so neighbours read neighbouring columns of B
  const decode = (e: string) => `  let e = ${e};
  let col: i32 = e % ${N}i;
  let row: i32 = (e / ${N}i) % ${M}i;
  let bt: i32 = e / ${M * N}i;
${P.batchDecode('bt')}
  let oBase: i32 = bt * ${M * N}i;`;
  const g1 = grid(Math.ceil((outs * chunks) / WG), maxPerDim);
  const pass1 = `${P.prelude}
${scratch}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let g = i32(gid.x + gid.y * ${g1[0] * WG}u);
  if (g >= ${outs * chunks}i) { return; }
  let s = g / ${outs}i;
${decode(`g % ${outs}i`)}
  let k0 = s * ${kChunk}i;
  let k1 = min(k0 + ${kChunk}i, ${K}i);
  var acc = 0.0f;
  for (var kk: i32 = k0; kk < k1; kk = kk + 1i) {
    acc = acc + ${P.up(`${A('row', 'kk')} * ${B('kk', 'col')}`, false)};
  }
  scratch[g] = acc;
}
`;
  const g2 = grid(Math.ceil(outs / WG), maxPerDim);
  const pass2 = `${P.prelude}
${scratch}

${P.epilogue}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let f = i32(gid.x + gid.y * ${g2[0] * WG}u);
  if (f >= ${outs}i) { return; }
${decode('f')}
  var acc = 0.0f;
  for (var s: i32 = 0i; s < ${chunks}i; s = s + 1i) {
    acc = acc + scratch[s * ${outs}i + f];
  }
  ${P.store('acc', 'row', 'col')}
}
`;
  return {
    passes: outs === 0 ? [] : [{ code: pass1, workgroups: g1 }, { code: pass2, workgroups: g2 }],
    bindings: bindingTypes(k.inputs, k.out.dtype, P.vec4, half),
    loopIterations: Math.max(kChunk, chunks) + P.epilogueLoops,
    scratchWords: outs * chunks,
  };
}

/** Register variant shape: each invocation owns tm rows x tn columns (multiples of 4); workgroups
 * of wx x wy invocations. */
export interface RegisterTile {
  readonly tm: number;
  readonly tn: number;
  readonly wx: number;
  readonly wy: number;
  /** store each accumulator's 4 columns as one vec4 where rows are whole vec4s (n % 4 == 0, f32 output) */
  readonly vec4Store?: boolean;
}

export type RegisterTileChoice = (m: number, n: number) => RegisterTile;

/**
 * The register tile for an m x n output. Measured on llvmpipe (8 lanes along x): 16 x 16 tiles in
 * 8 x 4 workgroups run 512³ and the MLP's shapes 1.6-1.9x faster than 8 x 4 tiles, though their
 * accumulators spill; narrower workgroups leave lanes idle. A small output dim gets a small tile,
 * so that one invocation does not compute many columns nobody stores.
 */
export function registerTile(m: number, n: number): RegisterTile {
  const tm = m >= 64 ? 16 : 8;
  return { tm, tn: n >= 64 ? 16 : n >= 16 ? 8 : 4, wx: 8, wy: tm === 16 ? 4 : 8 };
}

/** The register kernel's parts (with a gathered operand k goes one step at a time, where vec4s along k would be taken apart). */
export function registerParts(k: MatmulKernel, half: boolean): Parts {
  return parts(k, true, half, !k.a.gather && !k.b.gather);
}

/**
 * The register kernel's accumulation: statements that, given `row0`, `col0`, `aBase` and
 * `bBase`, leave the invocation's TM x TN products of A·B in vec4s `acc{r}_{h}` (columns
 * col0 + 4h .. col0 + 4h + 3 of row row0 + r); and the loop iterations they take.
 */
export function registerTileLoop(k: MatmulKernel, P: Parts, tile: RegisterTile): { lines: string[]; iterations: number } {
  const { m: M, n: N, k: K, a, b } = k;
  const { tm: TM, tn: TN } = tile;
  const rows = [...Array(TM).keys()], cols = [...Array(TN).keys()], quads = [...Array(TN / 4).keys()];
  const L: string[] = [];
  // Index setup. Row and column indices are clamped, so edge tiles read valid addresses; their
  // results outside the output are never stored.
  if (P.aMode === 'm') {
    for (let h = 0; h < TM / 4; h++) L.push(`let ag${h}: i32 = (aBase + min(row0 + ${4 * h}i, ${M - 4}i)) >> 2u;`);
  } else {
    for (const r of rows) L.push(`let ar${r}: i32 = aBase + min(row0 + ${r}i, ${M - 1}i) * ${a.rowStride}i;`);
    if (P.aMode === 'k') for (const r of rows) L.push(`let ar4${r}: i32 = ar${r} >> 2u;`);
  }
  if (P.bMode === 'n') for (const h of quads) L.push(`let bq${h}: i32 = (bBase + min(col0 + ${4 * h}i, ${N - 4}i)) >> 2u;`);
  else for (const j of cols) L.push(`let bc${j}: i32 = bBase + min(col0 + ${j}i, ${N - 1}i) * ${b.colStride}i;`);
  if (P.bMode === 'k') for (const j of cols) L.push(`let bc4${j}: i32 = bc${j} >> 2u;`);
  for (const r of rows) for (const h of quads) L.push(`var acc${r}_${h} = vec4<f32>(0.0f);`);
  // gathered operands: outer parts of their addresses once per row of A / column of B
  const ga = a.gather ? splitGather(k, a, P.vec4, 'a') : null, gb = b.gather ? splitGather(k, b, P.vec4, 'b') : null;
  const aRow = (r: number) => `min(row0 + ${r}i, ${M - 1}i)`, bCol = (j: number) => `min(col0 + ${j}i, ${N - 1}i)`;
  // a gathered operand whose masks depend on a part of k only: k in two loops (see BlockedGather)
  // (the other operand strided, or a gather split the plain way)
  const blkA = ga?.blocked && (!b.gather || gb) ? ga.blocked : null, blkB = !blkA && gb?.blocked && (!a.gather || ga) ? gb.blocked : null;
  const blk = blkA ?? blkB;
  if (ga) for (const r of rows) L.push(...ga.outer(`${r}`, aRow(r)));
  if (gb) for (const j of cols) L.push(...gb.outer(`${j}`, bCol(j)));

  // One k: A(r) is A[row0 + r, k] as a scalar; B(k)[h] is B[k, col0 + 4h .. col0 + 4h + 3].
  const aScalar = (r: number, kk: string) => a.gather ? (blkA ? blkA.read(`${r}`) : ga ? ga.read(`${r}`) : gatherRead(k, a, P.vec4, aRow(r), kk)) : P.aMode === 'm'
    ? `in${a.buf}[ag${r >> 2} + ${kk} * ${K === 1 ? 0 : a.colStride / 4}i][${r & 3}]`
    : P.vec4.has(a.buf)
      ? `in${a.buf}[(ar${r} + ${kk} * ${a.colStride}i) >> 2u][(ar${r} + ${kk} * ${a.colStride}i) & 3i]`
      : convert(`in${a.buf}[ar${r} + ${kk} * ${a.colStride}i]`, k.inputs[a.buf]!.dtype, 'f32');
  const bRow = (kk: string, h: number) => b.gather
    ? `vec4<f32>(${[0, 1, 2, 3].map((j) => (blkB ? blkB.read(`${4 * h + j}`) : gb ? gb.read(`${4 * h + j}`) : gatherRead(k, b, P.vec4, kk, bCol(4 * h + j)))).join(', ')})`
    : P.bMode === 'n'
    ? `in${b.buf}[bq${h} + ${kk} * ${K === 1 ? 0 : b.rowStride / 4}i]`
    : `${P.V}(${[0, 1, 2, 3].map((j) => scalarB(k, `bc${4 * h + j} + ${kk} * ${b.rowStride}i`, P.vec4)).join(', ')})`;

  // Four k at a time: vec4 reads along k are taken apart, vec4 reads along m or n used whole.
  const K4 = K - (K % 4);
  const unrolled = K4 > 0 && P.aMode !== 'scalar' && (P.aMode === 'k' || P.bMode !== 'scalar') && !a.gather && !b.gather;
  if (unrolled) {
    L.push(`for (var kk: i32 = 0i; kk < ${K4}i; kk = kk + 4i) {`);
    if (P.bMode === 'k') {
      for (const j of cols) L.push(`  let bt${j} = in${b.buf}[bc4${j} + (kk >> 2u)];`);
      for (let q = 0; q < 4; q++) for (const h of quads) L.push(`  let b${q}_${h} = ${P.V}(${[0, 1, 2, 3].map((j) => `bt${4 * h + j}[${q}]`).join(', ')});`);
    } else {
      for (let q = 0; q < 4; q++) for (const h of quads) L.push(`  let b${q}_${h} = ${bRow(`(kk + ${q}i)`, h)};`);
    }
    if (P.aMode === 'k') {
      for (const r of rows) {
        L.push(`  let a${r} = in${a.buf}[ar4${r} + (kk >> 2u)];`);
        for (const h of quads) L.push(`  acc${r}_${h} = acc${r}_${h} + ${['x', 'y', 'z', 'w'].map((c, q) => P.up(`a${r}.${c} * b${q}_${h}`, true)).join(' + ')};`);
      }
    } else {
      for (let q = 0; q < 4; q++) {
        for (let g = 0; g < TM / 4; g++) L.push(`  let a${g}${q} = in${a.buf}[ag${g} + (kk + ${q}i) * ${a.colStride / 4}i];`);
      }
      for (const r of rows) {
        for (const h of quads) L.push(`  acc${r}_${h} = acc${r}_${h} + ${[0, 1, 2, 3].map((q) => P.up(`a${r >> 2}${q}[${r & 3}] * b${q}_${h}`, true)).join(' + ')};`);
      }
    }
    L.push('}');
  }
  const kStart = unrolled ? K4 : 0;
  if (blk && !unrolled) {
    L.push(`for (var bq: i32 = 0i; bq < ${blk.P}i; bq = bq + 1i) {`);
    L.push(...blk.perQ((blkA ? rows : cols).map(String)).map((l) => `  ${l}`));
    L.push(`  for (var bc: i32 = 0i; bc < ${blk.C}i; bc = bc + 1i) {`, `    let kk = bc * ${blk.P}i + bq;`);
    const other = blkA ? gb : ga;
    if (other) L.push(...other.inner('kk').map((l) => `    ${l}`));
    for (const h of quads) L.push(`    let bk${h} = ${bRow('kk', h)};`);
    for (const r of rows) {
      L.push(`    let ak${r} = ${aScalar(r, 'kk')};`);
      for (const h of quads) L.push(`    acc${r}_${h} = acc${r}_${h} + ${P.up(`ak${r} * bk${h}`, true)};`);
    }
    L.push('  }', '}');
  } else if (kStart < K) {
    L.push(`for (var kk: i32 = ${kStart}i; kk < ${K}i; kk = kk + 1i) {`);
    if (ga) L.push(...ga.inner('kk').map((l) => `  ${l}`));
    if (gb) L.push(...gb.inner('kk').map((l) => `  ${l}`));
    for (const h of quads) L.push(`  let bk${h} = ${bRow('kk', h)};`);
    for (const r of rows) {
      L.push(`  let ak${r} = ${aScalar(r, 'kk')};`);
      for (const h of quads) L.push(`  acc${r}_${h} = acc${r}_${h} + ${P.up(`ak${r} * bk${h}`, true)};`);
    }
    L.push('}');
  }
  return { lines: L, iterations: (unrolled ? K4 / 4 : 0) + (K - kStart) + (blk ? blk.P : 0) };
}

function renderRegister(k: MatmulKernel, maxPerDim: number, tile: RegisterTile, half: boolean): RenderedKernel {
  const P = registerParts(k, half);
  const { m: M, n: N } = k;
  const { tm: TM, tn: TN, wx: WX, wy: WY } = tile;
  const BM = WY * TM, BN = WX * TN;
  const yBlocks = Math.ceil(M / BM);
  const workgroups = dispatch(Math.ceil(N / BN), yBlocks, P.batches, maxPerDim);
  const rows = [...Array(TM).keys()], cols = [...Array(TN).keys()], quads = [...Array(TN / 4).keys()];
  const { lines: L, iterations } = registerTileLoop(k, P, tile);
  // each accumulator's 4 columns one vec4 store (col0 is a multiple of 4, so col0 + 4h < n covers all four)
  const store4 = tile.vec4Store === true && vec4Stores(k, P);
  for (const r of rows) {
    const row = `(row0 + ${r}i)`;
    L.push(`if (row0 + ${r}i < ${M}i) {`);
    for (const j of store4 ? quads.map((h) => 4 * h) : cols) {
      if (store4) {
        L.push(`  if (col0 + ${j}i < ${N}i) { ${storeVec4(k, `acc${r}_${j >> 2}`, row, `(col0 + ${j}i)`)} }`);
      } else {
        L.push(`  if (col0 + ${j}i < ${N}i) { ${P.store(`acc${r}_${j >> 2}[${j & 3}]`, row, `(col0 + ${j}i)`)} }`);
      }
    }
    L.push('}');
  }
  const code = `${store4 ? vec4Out(P.prelude) : P.prelude}

${P.epilogue}

@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let yz = wid.y + wid.z * ${workgroups[1]}u;
  if (yz >= ${yBlocks * P.batches}u) { return; }
  let bt = i32(yz / ${yBlocks}u);
${P.batchDecode('bt')}
  let oBase: i32 = bt * ${M * N}i;
  let row0: i32 = i32(yz % ${yBlocks}u) * ${BM}i + i32(lid.y) * ${TM}i;
  let col0: i32 = i32(wid.x) * ${BN}i + i32(lid.x) * ${TN}i;
${L.map((l) => `  ${l}`).join('\n')}
}
`;
  return {
    passes: workgroups[0] === 0 ? [] : [{ code, workgroups }],
    bindings: outBinding(bindingTypes(k.inputs, k.out.dtype, P.vec4, half), store4),
    loopIterations: iterations + 3 + TM * TN * P.epilogueLoops,
  };
}

// Vec4 stores: where the output's rows are whole vec4s (n % 4 == 0) of f32, 4 adjacent outputs
// starting at a multiple of 4 are one store, the epilogue applied per lane.
const OUT_F32 = 'var<storage, read_write> out: array<f32>;';
const vec4Stores = (k: MatmulKernel, P: Parts) => k.n % 4 === 0 && k.out.dtype === 'f32' && P.prelude.includes(OUT_F32);
const vec4Out = (prelude: string) => prelude.replace(OUT_F32, 'var<storage, read_write> out: array<vec4<f32>>;');
const outBinding = (types: string[], store4: boolean) => (store4 ? [...types.slice(0, -1), 'vec4<f32>'] : types);

/** The store of vec4 accumulator `acc` at (row, col..col+3), col a multiple of 4. */
function storeVec4(k: MatmulKernel, acc: string, row: string, col: string): string {
  const bv = k.batch.map((_, i) => `i${i}`);
  const lanes = [0, 1, 2, 3].map((q) => `epilogue(${[`${acc}[${q}]`, ...bv, row, `(${col} + ${q}i)`].join(', ')})`);
  return `out[(oBase + ${row} * ${k.n}i + ${col}) >> 2u] = vec4<f32>(${lanes.join(', ')});`;
}

function scalarB(k: MatmulKernel, at: string, vec4: ReadonlySet<number>): string {
  const buf = k.b.buf;
  return vec4.has(buf) ? `in${buf}[(${at}) >> 2u][(${at}) & 3i]` : convert(`in${buf}[${at}]`, k.inputs[buf]!.dtype, 'f32');
}

const TT = 4; // workgroup variant: each invocation owns a strided 4x4 block

/** The workgroup kernel's parts. */
export function workgroupParts(k: MatmulKernel, shape: WorkgroupTile, half: boolean): Parts {
  const { wt: WT, bk: BK } = shape;
  if (![8, 16].includes(WT) || ![8, 16, 32].includes(BK)) throw new RheoError(`workgroup matmul tile ${WT}x${WT}, BK ${BK}: expected 8 or 16 invocations a side and BK 8, 16 or 32`);
  return parts(k, shape.vec4 === true, half);
}

/**
 * The workgroup kernel's accumulation: statements that, given `rowB`, `colB`, `lx`, `ly`, `tid`,
 * `aBase` and `bBase`, leave the invocation's products in vec4s `acc{r}` (row rowB + ly + r·WT,
 * the 4 columns colB + colOf(0..3)); the workgroup-memory tiles they use, and the loop
 * iterations they take.
 */
export function workgroupTileLoop(k: MatmulKernel, P: Parts, shape: WorkgroupTile, store4: boolean): {
  lines: string[]; tiles: string; colOf: (c: number) => string; iterations: number;
} {
  const { wt: WT, bk: BK } = shape;
  const { m: M, n: N, k: K, a, b } = k;
  const BT = WT * TT; // 32 or 64
  const T = [...Array(TT).keys()];
  const vzero = P.E === 'f16' ? `${P.V}(0.0)` : 'vec4<f32>(0.0f)';
  const loads = (BT * BK) / (WT * WT); // elements of each tile loaded per invocation
  // the invocation's 4 columns of the tile: strided by WT, or adjacent (for vec4 stores)
  const colOf = (c: number) => (store4 ? `lx * 4i + ${c}i` : `lx + ${c * WT}i`);
  // a buffer bound as vec4s (for either operand or the epilogue) is read through its components
  const read = (buf: number, at: string) =>
    P.vec4.has(buf) ? `in${buf}[(${at}) >> 2u][(${at}) & 3i]` : convert(`in${buf}[${at}]`, k.inputs[buf]!.dtype, 'f32');
  const A = (row: string, kk: string) => a.gather ? gatherRead(k, a, P.vec4, row, kk) : read(a.buf, `aBase + ${row} * ${a.rowStride}i + ${kk} * ${a.colStride}i`);
  const B = (kk: string, col: string) => b.gather ? gatherRead(k, b, P.vec4, kk, col) : read(b.buf, `bBase + ${kk} * ${b.rowStride}i + ${col} * ${b.colStride}i`);
  // vec4 tile loads: 4 consecutive k of a row of A, 4 consecutive columns of a row of B
  const aVec = P.aMode === 'k' && loads % 4 === 0, bVec = P.bMode === 'n' && loads % 4 === 0;
  const L: string[] = [];
  for (const r of T) L.push(`var acc${r} = vec4<f32>(0.0f);`);
  L.push(`for (var t: i32 = 0i; t < ${K}i; t = t + ${BK}i) {`);
  for (let q = 0; q < loads; q++) {
    const quad = q % 4 === 0;
    L.push(`  {`);
    if (!aVec || quad) {
      L.push(`    let e = ${aVec ? `(tid + ${(q / 4) * WT * WT}i) * 4i` : `tid + ${q * WT * WT}i`};`);
      L.push(`    let ak = t + (e & ${BK - 1}i);`);
      L.push(`    let ar = min(rowB + (e >> ${Math.log2(BK)}u), ${M - 1}i);`);
      if (aVec) {
        L.push(`    let av = select(${vzero}, in${a.buf}[(aBase + ar * ${a.rowStride}i + min(ak, ${K - 4}i)) >> 2u], ak < ${K}i);`);
        for (let j = 0; j < 4; j++) L.push(`    tileA[e + ${j}i] = av[${j}];`);
      } else {
        L.push(`    tileA[e] = select(${P.zero}, ${A('ar', `min(ak, ${K - 1}i)`)}, ak < ${K}i);`);
      }
    }
    if (!bVec || quad) {
      L.push(`    let f = ${bVec ? `(tid + ${(q / 4) * WT * WT}i) * 4i` : `tid + ${q * WT * WT}i`};`);
      L.push(`    let bk = t + (f >> ${Math.log2(BT)}u);`);
      if (bVec) {
        L.push(`    let bc = min(colB + (f & ${BT - 1}i), ${N - 4}i);`);
        L.push(`    let bv4 = select(${vzero}, in${b.buf}[(bBase + min(bk, ${K - 1}i) * ${b.rowStride}i + bc) >> 2u], bk < ${K}i);`);
        for (let j = 0; j < 4; j++) L.push(`    tileB[f + ${j}i] = bv4[${j}];`);
      } else {
        L.push(`    let bc = min(colB + (f & ${BT - 1}i), ${N - 1}i);`);
        L.push(`    tileB[f] = select(${P.zero}, ${B(`min(bk, ${K - 1}i)`, 'bc')}, bk < ${K}i);`);
      }
    }
    L.push(`  }`);
  }
  L.push('  workgroupBarrier();');
  L.push(`  for (var kk: i32 = 0i; kk < ${BK}i; kk = kk + 1i) {`);
  L.push(`    let bv = ${P.V}(${T.map((c) => `tileB[kk * ${BT}i + ${colOf(c)}]`).join(', ')});`);
  for (const r of T) L.push(`    acc${r} = acc${r} + ${P.up(`tileA[(ly + ${r * WT}i) * ${BK}i + kk] * bv`, true)};`);
  L.push('  }');
  L.push('  workgroupBarrier();');
  L.push('}');
  const tiles = `var<workgroup> tileA: array<${P.E}, ${BT * BK}>;\nvar<workgroup> tileB: array<${P.E}, ${BT * BK}>;`;
  return { lines: L, tiles, colOf, iterations: Math.ceil(K / BK) * (BK + 1) };
}

function renderWorkgroup(k: MatmulKernel, maxPerDim: number, shape: WorkgroupTile, half: boolean): RenderedKernel {
  const P = workgroupParts(k, shape, half);
  const { wt: WT } = shape;
  const { m: M, n: N } = k;
  const BT = WT * TT;
  const T = [...Array(TT).keys()];
  const yBlocks = Math.ceil(M / BT);
  const workgroups = dispatch(Math.ceil(N / BT), yBlocks, P.batches, maxPerDim);
  const store4 = shape.vec4Store === true && vec4Stores(k, P);
  const { lines: L, tiles, colOf, iterations } = workgroupTileLoop(k, P, shape, store4);
  for (const r of T) {
    L.push(`if (rowB + ly + ${r * WT}i < ${M}i) {`);
    const row = `(rowB + ly + ${r * WT}i)`;
    if (store4) L.push(`  if (colB + lx * 4i < ${N}i) { ${storeVec4(k, `acc${r}`, row, '(colB + lx * 4i)')} }`);
    for (const c of store4 ? [] : T) {
      const col = `(colB + ${colOf(c)})`;
      L.push(`  if (${col} < ${N}i) { ${P.store(`acc${r}[${c}]`, row, col)} }`);
    }
    L.push('}');
  }
  const code = `${store4 ? vec4Out(P.prelude) : P.prelude}

${tiles}

${P.epilogue}

@compute @workgroup_size(${WT}, ${WT})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let yz = wid.y + wid.z * ${workgroups[1]}u;
  if (yz >= ${yBlocks * P.batches}u) { return; }
  let bt = i32(yz / ${yBlocks}u);
${P.batchDecode('bt')}
  let oBase: i32 = bt * ${M * N}i;
  let rowB: i32 = i32(yz % ${yBlocks}u) * ${BT}i;
  let colB: i32 = i32(wid.x) * ${BT}i;
  let lx = i32(lid.x);
  let ly = i32(lid.y);
  let tid = ly * ${WT}i + lx;
${L.map((l) => `  ${l}`).join('\n')}
}
`;
  return {
    passes: workgroups[0] === 0 ? [] : [{ code, workgroups }],
    bindings: outBinding(bindingTypes(k.inputs, k.out.dtype, P.vec4, half), store4),
    loopIterations: iterations + TT * TT * P.epilogueLoops,
  };
}
