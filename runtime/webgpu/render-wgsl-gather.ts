// Gathered matmul operands in WGSL (implicit GEMM): element (row, col) of an operand whose
// address is an index expression (conv2d's windows) and whose padding is a mask, read inside the
// matmul's loads instead of from an im2col copy. Where the address and every mask comparison are
// a part of the operand's outer index (its row of A, column of B) plus a part of k, the register
// kernel computes the outer parts once per invocation and the k parts once per k step. It renders
// reads only; the matmul kernels (render-wgsl-matmul.ts) decide where they go.

import type { IndexExpr, MatmulKernel, MatmulOperand, OperandGather } from '../../ops/kernel-ir.js';
import { iadd, iconst, imul, indexVars, predAtoms } from '../../ops/kernel-ir.js';
import { ExprEmitter, convert } from './wgsl-expr.js';

/** Scalar read of input `buf` at i32 `at` as f32, through its vec4 binding where it has one. */
export function readF32(k: MatmulKernel, vec4: ReadonlySet<number>, buf: number, at: string): string {
  return vec4.has(buf) ? `in${buf}[(${at}) >> 2u][(${at}) & 3i]` : convert(`in${buf}[${at}]`, k.inputs[buf]!.dtype, 'f32');
}

/** WGSL index text of `e` with the gather's variables bound (`b0`... are the batch vars `i0`...). */
function indexText(k: MatmulKernel, e: IndexExpr, row: string, col: string): string {
  const em = new ExprEmitter(k.inputs);
  k.batch.forEach((_, i) => em.bindVar(`b${i}`, `i${i}`));
  em.bindVar('row', row);
  em.bindVar('col', col);
  return em.index(e);
}

/** The masked read from a gather's address `at` and its comparisons, as f32. */
function maskedRead(k: MatmulKernel, op: MatmulOperand, vec4: ReadonlySet<number>, at: string, tests: readonly string[]): string {
  const size = k.inputs[op.buf]!.size;
  // masked-off addresses can fall outside the buffer: clamp them (their value is discarded)
  const read = readF32(k, vec4, op.buf, `clamp(${at}, 0i, ${size - 1}i)`);
  return tests.length ? `select(0.0f, ${read}, ${tests.join(' && ')})` : read;
}

/** Element (row, col) of a gathered operand, as f32 WGSL, every index computed in place. */
export function gatherRead(k: MatmulKernel, op: MatmulOperand, vec4: ReadonlySet<number>, row: string, col: string): string {
  const g = op.gather!;
  const tests = predAtoms(g.valid).map((p) => `${indexText(k, p.a, row, col)} ${p.k === 'lt' ? '<' : '>='} ${p.c}i`);
  return maskedRead(k, op, vec4, indexText(k, g.at, row, col), tests);
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
}

export function splitGather(k: MatmulKernel, op: MatmulOperand, vec4: ReadonlySet<number>, side: 'a' | 'b'): SplitGather | null {
  const g: OperandGather = op.gather!;
  const kVar = side === 'a' ? 'col' : 'row';
  const atoms = predAtoms(g.valid);
  const slots = [g.at, ...atoms.map((p) => p.a)].map((e) => splitAlong(e, kVar));
  if (slots.some((s) => s === null)) return null;
  const parts = slots as [IndexExpr, IndexExpr][];
  const at = (outer: string, kk: string) => (side === 'a' ? [outer, kk] : [kk, outer]) as [string, string];
  const p = `g${side}`;
  return {
    outer: (o, idx) => parts.map(([e], s) => `let ${p}${o}_${s}: i32 = ${indexText(k, e, ...at(idx, '0i'))};`),
    inner: (kk) => parts.map(([, e], s) => `let ${p}k_${s}: i32 = ${indexText(k, e, ...at('0i', kk))};`),
    read: (o) => maskedRead(k, op, vec4, `${p}${o}_0 + ${p}k_0`, atoms.map((a, i) => `${p}${o}_${i + 1} + ${p}k_${i + 1} ${a.k === 'lt' ? '<' : '>='} ${a.c}i`)),
  };
}
