// The CPU backend's matmul code generator: renders a MatmulKernel as plain JavaScript in the
// GEMM shape (cache blocks, packed panels, a register-tiled micro-kernel), with every size,
// stride and offset baked in as a literal so V8 compiles a kernel per shape.
// It does not lower the epilogue Expr itself: the caller renders that to JS text; and it does
// not thread or use SIMD (scalar JS on one core).

import type { MatmulKernel, MatmulOperand } from '../../ops/kernel-ir.js';
import { RheoError } from '../../ops/errors.js';

/** Renders the epilogue given the accumulator's name and the output index variables' names. */
export type MatmulEpilogueJs = (acc: string, vars: readonly string[]) => string;

/** A compiled kernel: `ins` in the order of `k.inputs`, `out` of size prod(k.out.shape). */
export type MatmulJsFn = (ins: ArrayLike<unknown>[], out: Float32Array) => void;

/**
 * Blocking parameters. mr×nr is the register tile, kc the depth of one packed panel, mc/nc the
 * rows/columns of a packed block (multiples of mr/nr). `packed` is the scratch element type:
 * Float64Array spares the micro-kernel a float→double conversion per load.
 */
export interface MatmulTiling {
  readonly mr: number;
  readonly nr: number;
  readonly kc: number;
  readonly mc: number;
  readonly nc: number;
  readonly packed: 'f32' | 'f64';
}

// Chosen with bench/matmul-js-kernel.ts on a 2-core Zen 4: 4×3 and 3×4 (~6.2 GFLOP/s) edged
// out 4×4 (~6.0); 4×8, 8×4 and 6×8 spill enough accumulators to fall to ~4.5, and 2×4 has too
// few flops per load (~4.8). Block sizes barely matter at scalar-JS speeds; f32 packing is ~3%
// slower for the conversion on every load.
export const DEFAULT_MATMUL_TILING: MatmulTiling = { mr: 4, nr: 3, kc: 256, mc: 64, nc: 1020, packed: 'f64' };

/**
 * JS source for the body of `new Function('ins', 'out', src)`. This form allocates its packing
 * scratch on every call; `compileMatmulJs` is the one to run repeatedly.
 */
export function renderMatmulJs(
  k: MatmulKernel,
  epilogue: MatmulEpilogueJs | null,
  tiling: MatmulTiling = DEFAULT_MATMUL_TILING,
): string {
  const { decl, scratch, body } = renderParts(k, epilogue, tiling);
  const alloc = scratch ? `const ws = new ${scratch.array}(${scratch.size});` : '';
  return `${decl}\n${alloc}\n${body}`;
}

/**
 * Scratch shared by every compiled kernel, grown to the largest one's need: kernels run one at a
 * time and the scratch holds nothing between calls, so one buffer serves them all.
 */
const scratchPool = { Float64Array: new Float64Array(0), Float32Array: new Float32Array(0) };

/**
 * Compiles the kernel once. Its packing scratch comes from a pool that only grows, so a call
 * allocates nothing once the largest kernel has run.
 *
 *   const f = compileMatmulJs(kernel, (acc, v) => `Math.max(0, ${acc} + in2[${v[1]}])`);
 *   f([x, w, bias], out);
 */
export function compileMatmulJs(
  k: MatmulKernel,
  epilogue: MatmulEpilogueJs | null,
  tiling: MatmulTiling = DEFAULT_MATMUL_TILING,
): MatmulJsFn {
  const { decl, scratch, body } = renderParts(k, epilogue, tiling);
  // `ws` must be a local: read from the closure on every load, the kernel ran ~25% slower
  const take = scratch
    ? `let ws = pool.${scratch.array};\n` +
      `if (ws.length < ${scratch.size}) ws = pool.${scratch.array} = new ${scratch.array}(${scratch.size});`
    : '';
  const factory = new Function('pool', `'use strict';\nreturn function ${jsName(k.name)}(ins, out) {\n${decl}\n${take}\n${body}\n};`);
  return factory(scratchPool) as MatmulJsFn;
}

/** The kernel's name on the function, for profiles; prefixed so it is never a reserved word. */
function jsName(name: string): string {
  return `matmul_${name.replace(/[^A-Za-z0-9_$]/g, '_')}`;
}

// ---------------------------------------------------------------- plan

/** The batch loops left after dropping size-1 dims and folding the rest that can into rows. */
interface BatchLoop {
  readonly size: number;
  readonly a: number;
  readonly b: number;
  readonly out: number;
}

/**
 * x[b, m, k]·w[k, n] with w shared across b is one [b·m, k]·[k, n] matmul: a batch dim folds
 * into the rows when B ignores it and A's rows continue across it. Bigger blocks, fewer edges.
 */
function planBatch(k: MatmulKernel): { loops: BatchLoop[]; m: number } {
  const dims = k.batch
    .map((size, d) => ({ size, a: k.a.batchStrides[d] ?? 0, b: k.b.batchStrides[d] ?? 0 }))
    .filter((d) => d.size !== 1);
  let m = k.m;
  while (dims.length > 0) {
    const d = dims[dims.length - 1]!;
    if (d.b !== 0 || d.a !== m * k.a.rowStride) break;
    m *= d.size;
    dims.pop();
  }
  const loops: BatchLoop[] = [];
  let outStride = m * k.n;
  for (let i = dims.length - 1; i >= 0; i--) {
    loops.unshift({ ...dims[i]!, out: outStride });
    outStride *= dims[i]!.size;
  }
  return { loops, m };
}

// ---------------------------------------------------------------- rendering

/** `base + c` as source, folding the literal. */
function plus(base: string, c: number): string {
  return c === 0 ? base : c > 0 ? `${base} + ${c}` : `${base} - ${-c}`;
}

interface Scratch {
  readonly array: 'Float64Array' | 'Float32Array';
  readonly size: number;
}

function renderParts(
  k: MatmulKernel,
  epilogue: MatmulEpilogueJs | null,
  t: MatmulTiling,
): { decl: string; scratch: Scratch | null; body: string } {
  // planned only for devices whose caps say implicitGemm, which the CPU's do not
  if (k.a.gather || k.b.gather) throw new RheoError(`matmul kernel '${k.name}': the CPU renders strided operands only, not gathers`);
  const { mr: MR, nr: NR } = t;
  if (t.mc % MR !== 0 || t.nc % NR !== 0) throw new Error(`matmul tiling: mc/nc must be multiples of mr/nr`);
  const decl = k.inputs.length > 0 ? `const ${k.inputs.map((_, j) => `in${j} = ins[${j}]`).join(', ')};` : '';
  const total = k.out.shape.reduce((x, y) => x * y, 1);
  const lines: string[] = [];
  if (total === 0) return { decl, scratch: null, body: '' };

  const { loops, m: M } = planBatch(k);
  const N = k.n, K = k.k;
  // equal k blocks: 784 as 4×196 rather than 3×256 + 16, whose short tail would cost a full pass
  const KC = K === 0 ? 0 : Math.ceil(K / Math.ceil(K / t.kc));
  const MC = Math.min(t.mc, roundUp(M, MR)), NC = Math.min(t.nc, roundUp(N, NR));
  // packed A block at 0, packed B block after it
  const array = t.packed === 'f64' ? 'Float64Array' : 'Float32Array';
  const scratch = K === 0 ? null : { array, size: MC * KC + NC * KC } as const;

  if (K === 0) {
    lines.push('out.fill(0);');
  } else {
    // batch loops: aB/bB/cB are the operands' and the output's bases for this batch index
    let aB = `${k.a.offset}`, bB = `${k.b.offset}`, cB = '0';
    loops.forEach((l, d) => {
      lines.push(`for (let b${d} = 0; b${d} < ${l.size}; b${d}++) {`);
      if (l.a !== 0) aB += ` + b${d} * ${l.a}`;
      if (l.b !== 0) bB += ` + b${d} * ${l.b}`;
      cB += ` + b${d} * ${l.out}`;
    });
    lines.push(`const aB = ${aB}, bB = ${bB}, cB = ${cB};`);
    lines.push(...renderGemm(k, M, { KC, MC, NC }, t));
    for (let d = 0; d < loops.length; d++) lines.push('}');
  }

  if (epilogue) lines.push(...renderEpiloguePass(k.out.shape, epilogue));
  return { decl, scratch, body: lines.join('\n') };
}

function roundUp(x: number, to: number): number {
  return Math.ceil(x / to) * to;
}

/** One [M, K]·[K, N] product at bases aB, bB into out at cB (row stride N). */
function renderGemm(
  k: MatmulKernel,
  M: number,
  blocks: { KC: number; MC: number; NC: number },
  t: MatmulTiling,
): string[] {
  const { mr: MR, nr: NR } = t;
  const { KC, MC, NC } = blocks;
  const N = k.n, K = k.k;
  const A = `in${k.a.buf}`, B = `in${k.b.buf}`;
  const ME = M % MR, NE = N % NR;
  const kBlocked = K > KC;
  const L: string[] = [];
  const min = (limit: number, v: string, block: number) =>
    limit <= block ? `${limit}` : `(${limit} - ${v} < ${block} ? ${limit} - ${v} : ${block})`;

  L.push(`for (let jc = 0; jc < ${N}; jc += ${NC}) {`);
  L.push(`const nc = ${min(N, 'jc', NC)};`);
  L.push(`for (let pc = 0; pc < ${K}; pc += ${KC}) {`);
  L.push(`const kc = ${min(K, 'pc', KC)};`);
  // B block -> pb: panels of NR columns, each kc rows of NR contiguous values
  L.push(`{ let d = ${MC * KC}, jr = 0;`);
  L.push(`for (; jr + ${NR} <= nc; jr += ${NR}) {`);
  L.push(...packPanel(B, k.b, 'ws', `bB + pc * ${k.b.rowStride} + (jc + jr) * ${k.b.colStride}`, NR, NR, 'col'));
  L.push('}');
  if (NE > 0) {
    L.push('if (jr < nc) {');
    L.push(...packPanel(B, k.b, 'ws', `bB + pc * ${k.b.rowStride} + (jc + jr) * ${k.b.colStride}`, NE, NR, 'col'));
    L.push('}');
  }
  L.push('}');
  L.push(`for (let ic = 0; ic < ${M}; ic += ${MC}) {`);
  L.push(`const mc = ${min(M, 'ic', MC)};`);
  // A block -> pa: panels of MR rows, each kc columns of MR contiguous values
  L.push('{ let d = 0, ir = 0;');
  L.push(`for (; ir + ${MR} <= mc; ir += ${MR}) {`);
  L.push(...packPanel(A, k.a, 'ws', `aB + (ic + ir) * ${k.a.rowStride} + pc * ${k.a.colStride}`, MR, MR, 'row'));
  L.push('}');
  if (ME > 0) {
    L.push('if (ir < mc) {');
    L.push(...packPanel(A, k.a, 'ws', `aB + (ic + ir) * ${k.a.rowStride} + pc * ${k.a.colStride}`, ME, MR, 'row'));
    L.push('}');
  }
  L.push('}');
  // the edge widths ME/NE are literals: only the last block in each direction has them
  L.push('let jr = 0;');
  L.push(`for (; jr + ${NR} <= nc; jr += ${NR}) {`);
  const tile: Tile = { MR, NR, N, kBlocked, pbAt: MC * KC };
  L.push(...rowSweep(tile, NR, ME));
  L.push('}');
  if (NE > 0) {
    L.push('if (jr < nc) {');
    L.push(...rowSweep(tile, NE, ME));
    L.push('}');
  }
  L.push('}', '}', '}');
  return L;
}

/**
 * Copies `width` strided vectors of an operand into contiguous steps of `stride` (the register
 * tile's size). For A the vectors are rows (advance along k by colStride); for B, columns.
 */
function packPanel(
  src: string,
  op: MatmulOperand,
  dst: string,
  start: string,
  width: number,
  stride: number,
  along: 'row' | 'col',
): string[] {
  const across = along === 'row' ? op.rowStride : op.colStride; // between the vectors
  const step = along === 'row' ? op.colStride : op.rowStride; // along k
  const L = [`let s = ${start};`, `for (let p = 0; p < kc; p++) {`];
  for (let i = 0; i < width; i++) L.push(`${dst}[${plus('d', i)}] = ${src}[${plus('s', i * across)}];`);
  L.push(step === 0 ? `d += ${stride};` : `s += ${step}; d += ${stride};`, '}');
  return L;
}

/** What every micro-kernel of one GEMM shares. */
interface Tile {
  /** the register tile, which is also the packed panels' step */
  readonly MR: number;
  readonly NR: number;
  /** the output's row stride */
  readonly N: number;
  /** k comes in several blocks: the first stores, later ones add */
  readonly kBlocked: boolean;
  /** where the packed B block starts in the scratch */
  readonly pbAt: number;
}

/** For one B panel (nr columns) at jr: the micro-kernel over every full A panel, then the edge. */
function rowSweep(t: Tile, nr: number, ME: number): string[] {
  const L = ['let ir = 0;', `for (; ir + ${t.MR} <= mc; ir += ${t.MR}) {`];
  L.push(...microKernel(t, t.MR, nr), '}');
  if (ME > 0) L.push('if (ir < mc) {', ...microKernel(t, ME, nr), '}');
  return L;
}

/** A scratch load. `| 0` keeps the index add in int32, so V8 drops its overflow check. */
function at(base: string, o: number): string {
  return o === 0 ? `ws[${base}]` : `ws[(${base} + ${o}) | 0]`;
}

/**
 * out tile (mr×nr at row ic + ir, column jc + jr) = A panel · B panel, accumulators in locals.
 * An edge tile reads the first mr/nr values of each packed step.
 */
function microKernel(t: Tile, mr: number, nr: number): string[] {
  const { MR, NR, N } = t;
  const c = (i: number, j: number) => `c${i}_${j}`;
  const L: string[] = [];
  const accs: string[] = [];
  for (let i = 0; i < mr; i++) for (let j = 0; j < nr; j++) accs.push(`${c(i, j)} = 0`);
  L.push(`let ${accs.join(', ')};`);
  L.push(`let ap = ir * kc, bp = ${t.pbAt} + jr * kc;`);
  // Unrolling this loop measured slower: the extra live values spill.
  L.push(`for (const ae = ap + kc * ${MR}; ap < ae; ap += ${MR}, bp += ${NR}) {`);
  const bs: string[] = [];
  for (let j = 0; j < nr; j++) bs.push(`b${j} = ${at('bp', j)}`);
  L.push(`const ${bs.join(', ')};`);
  for (let i = 0; i < mr; i++) {
    L.push(`const a${i} = ${at('ap', i)};`);
    for (let j = 0; j < nr; j++) L.push(`${c(i, j)} += a${i} * b${j};`);
  }
  L.push('}');
  L.push(`const co = cB + (ic + ir) * ${N} + jc + jr;`);
  const store = (opr: string) => {
    const S: string[] = [];
    for (let i = 0; i < mr; i++) for (let j = 0; j < nr; j++) S.push(`out[${plus('co', i * N + j)}] ${opr} ${c(i, j)};`);
    return S;
  };
  if (t.kBlocked) L.push('if (pc === 0) {', ...store('='), '} else {', ...store('+='), '}');
  else L.push(...store('='));
  return L;
}

/** The epilogue as a last pass over the finished output, with the index variables in scope. */
function renderEpiloguePass(shape: readonly number[], epilogue: MatmulEpilogueJs): string[] {
  const vars = shape.map((_, d) => `i${d}`);
  const L = ['{ let o = 0;'];
  shape.forEach((s, d) => {
    const last = d === shape.length - 1;
    L.push(`for (let ${vars[d]} = 0; ${vars[d]} < ${s}; ${vars[d]}++${last ? ', o++' : ''}) {`);
  });
  L.push(`{ const acc = out[o]; out[o] = ${epilogue('acc', vars)}; }`);
  shape.forEach(() => L.push('}'));
  L.push('}');
  return L;
}
