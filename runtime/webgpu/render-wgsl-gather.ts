// Gathered matmul operands in WGSL (implicit GEMM): element (row, col) of an operand whose
// address is an index expression (conv2d's windows) and whose padding is a mask, read inside the
// matmul's loads instead of from an im2col copy. A mask's two bounds on one index become one
// unsigned comparison. Where the address and every mask index are a part of the operand's outer
// index (its row of A, column of B) plus a part of k, the register kernel computes the outer parts
// once per invocation and the k parts once per k step. It renders reads only; the matmul kernels
// (render-wgsl-matmul.ts) decide where they go.

import type { IndexExpr, MatmulKernel, MatmulOperand } from '../../ops/kernel-ir.js';
import { iadd, iconst, idiv, imod, imul, indexVars, ivar, predAtoms } from '../../ops/kernel-ir.js';
import { ExprEmitter, convert } from './wgsl-expr.js';

/** Scalar read of input `buf` at i32 `at` as f32, through its vec4 binding where it has one. */
export function readF32(k: MatmulKernel, vec4: ReadonlySet<number>, buf: number, at: string): string {
  return vec4.has(buf) ? `in${buf}[(${at}) >> 2u][(${at}) & 3i]` : convert(`in${buf}[${at}]`, k.inputs[buf]!.dtype, 'f32');
}

/** One mask test: lo <= a < hi (either bound may be absent). */
interface Range {
  readonly a: IndexExpr;
  readonly lo: number | null;
  readonly hi: number | null;
}

/** The mask's comparisons, those on the same index merged into one range. */
function ranges(op: MatmulOperand): Range[] {
  const out = new Map<string, { a: IndexExpr; lo: number | null; hi: number | null }>();
  for (const p of predAtoms(op.gather!.valid)) {
    const key = JSON.stringify(p.a);
    const r = out.get(key) ?? { a: p.a, lo: null, hi: null };
    if (p.k === 'ge') r.lo = Math.max(r.lo ?? -Infinity, p.c);
    else r.hi = Math.min(r.hi ?? Infinity, p.c);
    out.set(key, r);
  }
  return [...out.values()];
}

/** The test of range `r` on index text `x`; with both bounds, `x` must already have `lo` taken off. */
function testText(r: Range, x: string): string {
  if (r.lo !== null && r.hi !== null) return r.hi > r.lo ? `u32(${x}) < ${r.hi - r.lo}u` : 'false';
  return r.lo !== null ? `${x} >= ${r.lo}i` : `${x} < ${r.hi}i`;
}

/** The index a range tests, with `lo` taken off where the test is one unsigned comparison. */
const shifted = (r: Range): IndexExpr => (r.lo !== null && r.hi !== null ? iadd(r.a, iconst(-r.lo)) : r.a);

/** WGSL index text of `e` with the gather's variables bound (`b0`... are the batch vars `i0`...). */
function indexText(k: MatmulKernel, e: IndexExpr, row: string, col: string): string {
  const em = new ExprEmitter(k.inputs);
  k.batch.forEach((_, i) => em.bindVar(`b${i}`, `i${i}`));
  em.bindVar('row', row);
  em.bindVar('col', col);
  return em.index(e);
}

/**
 * The masked read from address text `at` and the test texts, as f32. A masked-off address may
 * fall outside the buffer; WebGPU's robust buffer access makes such a read return some value
 * (never fault), and the select discards it.
 */
function maskedRead(k: MatmulKernel, op: MatmulOperand, vec4: ReadonlySet<number>, at: string, tests: readonly string[]): string {
  const read = readF32(k, vec4, op.buf, at);
  return tests.length ? `select(0.0f, ${read}, ${tests.join(' && ')})` : read;
}

/** Element (row, col) of a gathered operand, as f32 WGSL, every index computed in place. */
export function gatherRead(k: MatmulKernel, op: MatmulOperand, vec4: ReadonlySet<number>, row: string, col: string): string {
  const tests = ranges(op).map((r) => testText(r, indexText(k, shifted(r), row, col)));
  return maskedRead(k, op, vec4, indexText(k, op.gather!.at, row, col), tests);
}

/** An index expression as an outer part plus a part of `kVar` alone, or null when they mix. */
function splitAlong(e: IndexExpr, kVar: string): [IndexExpr, IndexExpr] | null {
  switch (e.k) {
    case 'const': return [e, iconst(0)];
    case 'add': {
      const a = splitAlong(e.a, kVar), b = splitAlong(e.b, kVar);
      return a && b ? [iadd(a[0], b[0]), iadd(a[1], b[1])] : null;
    }
    case 'mul': {
      const a = splitAlong(e.a, kVar);
      return a && [imul(a[0], e.c), imul(a[1], e.c)];
    }
    default: {
      const vs = indexVars(e);
      if (!vs) return null;
      if (!vs.has(kVar)) return [e, iconst(0)];
      return vs.size === 1 ? [iconst(0), e] : null;
    }
  }
}

/**
 * A gathered operand read many times by one invocation (the register kernel): `outer(o, idx)`
 * declares the outer parts for outer index `idx` under the name suffix `o`, `inner(kk)` the k
 * parts for one k step, and `read(o)` the element from both. Null when some part mixes the
 * outer index and k (then use `gatherRead`).
 */
export interface SplitGather {
  outer(o: string, idx: string): string[];
  inner(kk: string): string[];
  read(o: string): string;
  /** the k loop as two, where the masks allow (see `BlockedGather`) */
  readonly blocked: BlockedGather | null;
}

/**
 * k split as kk = bc·P + bq where the masks depend on bq alone and the address on bc only
 * through a stride (conv2d's forward: bq the window offset, bc the input channel; its dW: bq the
 * output pixel, bc the image). The register kernel then loops over bq outside and bc inside,
 * testing the masks once per outer index and bq: `perQ` declares them (and the base addresses)
 * inside the bq loop, `read(o)` is the element inside the bc loop.
 */
export interface BlockedGather {
  readonly P: number;
  readonly C: number;
  perQ(outer: readonly string[]): string[];
  read(o: string): string;
}

/** `e` with `v` replaced by `by`, simplified again (div/mod fold with the variables' `sizes`). */
function substitute(e: IndexExpr, v: string, by: IndexExpr, sizes: ReadonlyMap<string, number>): IndexExpr {
  switch (e.k) {
    case 'var': return e.name === v ? by : e;
    case 'const': return e;
    case 'add': return iadd(substitute(e.a, v, by, sizes), substitute(e.b, v, by, sizes));
    case 'mul': return imul(substitute(e.a, v, by, sizes), e.c);
    case 'div': return idiv(substitute(e.a, v, by, sizes), e.c, sizes);
    case 'mod': return imod(substitute(e.a, v, by, sizes), e.c, sizes);
    case 'loadIndex': return e;
  }
}

/** The coefficient of `v` in an expression that is a multiple of `v` (or 0), else null. */
function multipleOf(e: IndexExpr, v: string): number | null {
  if (e.k === 'const' && e.v === 0) return 0;
  if (e.k === 'var' && e.name === v) return 1;
  if (e.k === 'mul' && e.a.k === 'var' && e.a.name === v) return e.c;
  return null;
}

/** The smallest P that blocks k (see `BlockedGather`) for these k parts of the address and the masks. */
function blocking(kParts: readonly IndexExpr[], kVar: string, K: number): { P: number; q: IndexExpr[]; stride: number } | null {
  for (let P = 2; P < K; P++) {
    if (K % P !== 0) continue;
    const sizes = new Map([['bq', P], ['bc', K / P]]);
    const kk = iadd(imul(ivar('bc'), P), ivar('bq'));
    const split = kParts.map((e) => splitAlong(substitute(e, kVar, kk, sizes), 'bc'));
    if (split.some((x) => x === null)) continue;
    const [addr, ...masks] = split as [IndexExpr, IndexExpr][];
    const stride = multipleOf(addr[1], 'bc');
    if (stride === null || masks.some(([, c]) => multipleOf(c, 'bc') !== 0)) continue;
    return { P, q: [addr[0], ...masks.map(([q]) => q)], stride };
  }
  return null;
}

export function splitGather(k: MatmulKernel, op: MatmulOperand, vec4: ReadonlySet<number>, side: 'a' | 'b'): SplitGather | null {
  const kVar = side === 'a' ? 'col' : 'row';
  const rs = ranges(op);
  const slots = [op.gather!.at, ...rs.map(shifted)].map((e) => splitAlong(e, kVar));
  if (slots.some((s) => s === null)) return null;
  const parts = slots as [IndexExpr, IndexExpr][];
  const at = (outer: string, kk: string) => (side === 'a' ? [outer, kk] : [kk, outer]) as [string, string];
  const p = `g${side}`;
  const b = rs.length > 0 ? blocking(parts.map(([, e]) => e), kVar, k.k) : null;
  const qText = (e: IndexExpr) => {
    const em = new ExprEmitter(k.inputs);
    em.bindVar('bq', 'bq');
    return em.index(e);
  };
  return {
    outer: (o, idx) => parts.map(([e], s) => `let ${p}${o}_${s}: i32 = ${indexText(k, e, ...at(idx, '0i'))};`),
    inner: (kk) => parts.map(([, e], s) => `let ${p}k_${s}: i32 = ${indexText(k, e, ...at('0i', kk))};`),
    read: (o) => maskedRead(k, op, vec4, `${p}${o}_0 + ${p}k_0`, rs.map((r, i) => testText(r, `${p}${o}_${i + 1} + ${p}k_${i + 1}`))),
    blocked: b && {
      P: b.P,
      C: k.k / b.P,
      perQ: (outer) => [
        ...b.q.map((e, s) => `let ${p}q_${s}: i32 = ${qText(e)};`),
        ...outer.flatMap((o) => [
          `let ${p}v${o} = ${rs.map((r, i) => testText(r, `${p}${o}_${i + 1} + ${p}q_${i + 1}`)).join(' && ')};`,
          `let ${p}a${o}: i32 = ${p}${o}_0 + ${p}q_0;`,
        ]),
      ],
      read: (o) => `select(0.0f, ${readF32(k, vec4, op.buf, `${p}a${o} + bc * ${b.stride}i`)}, ${p}v${o})`,
    },
  };
}
