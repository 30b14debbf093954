// Per-op SBP signature tables: for a node, every (inputs' annotations → output annotation) that
// computes the right value when each device runs the op on its local pieces, on one mesh axis.
// Ops not listed run replicated (all broadcast). Partial sums pass only through ops that add
// (add/sub of two partials, matmul with a broadcast operand, views): anything else asks for them
// to be reduced first, so one reduction serves every consumer.

import type { Node } from '../../graphs/graph.js';
import { opDef } from '../../ops/registry.js';
import { broadcast as B, partialSum as P, split as S, fits, type Sbp } from './sbp.js';

export interface Signature {
  readonly ins: readonly Sbp[];
  readonly out: Sbp;
}

const num = (v: unknown): number[] => (v as number[]).map(Number);
const norm = (a: number, r: number) => (a < 0 ? a + r : a);

/** Input i's axis for output axis k under right-aligned broadcasting, or null where it broadcasts. */
function bcastAxis(inShape: readonly number[], outShape: readonly number[], k: number): number | null {
  const j = k - (outShape.length - inShape.length);
  return j >= 0 && inShape[j] === outShape[k] && outShape[k] !== 1 ? j : null;
}

function elementwiseSigs(node: Node, ins: readonly (readonly number[])[], out: readonly number[]): Signature[] {
  const sigs: Signature[] = [{ ins: ins.map(() => B), out: B }];
  for (let k = 0; k < out.length; k++) {
    sigs.push({ ins: ins.map((s) => { const j = bcastAxis(s, out, k); return j === null ? B : S(j); }), out: S(k) });
  }
  if (['add', 'sub'].includes(node.op) && ins.length === 2) sigs.push({ ins: [P, P], out: P });
  if (['neg', 'cast', 'stopGradient'].includes(node.op)) sigs.push({ ins: [P], out: P });
  return sigs;
}

function reduceSigs(node: Node, x: readonly number[]): Signature[] {
  const r = x.length;
  const raw = node.attrs['axes'] ?? (node.attrs['axis'] !== undefined ? [node.attrs['axis']] : null);
  const axes = raw === null ? x.map((_, i) => i) : num(raw).map((a) => norm(a, r));
  const keep = node.attrs['keepdims'] === true;
  const sigs: Signature[] = [{ ins: [B], out: B }];
  for (let k = 0; k < r; k++) {
    if (axes.includes(k)) {
      if (node.op === 'sum') sigs.push({ ins: [S(k)], out: P });
    } else sigs.push({ ins: [S(k)], out: S(keep ? k : k - axes.filter((a) => a < k).length) });
  }
  return sigs;
}

function matmulSigs(a: readonly number[], b: readonly number[], out: readonly number[]): Signature[] {
  const r = out.length, ra = a.length, rb = b.length;
  const sigs: Signature[] = [
    { ins: [B, B], out: B },
    { ins: [S(ra - 2), B], out: S(r - 2) },
    { ins: [B, S(rb - 1)], out: S(r - 1) },
    { ins: [S(ra - 1), S(rb - 2)], out: P },
    { ins: [P, B], out: P },
    { ins: [B, P], out: P },
  ];
  for (let k = 0; k < r - 2; k++) {
    const ja = bcastAxis(a.slice(0, -2), out.slice(0, -2), k), jb = bcastAxis(b.slice(0, -2), out.slice(0, -2), k);
    sigs.push({ ins: [ja === null ? B : S(ja), jb === null ? B : S(jb)], out: S(k) });
  }
  return sigs;
}

/** Reshape keeps a split where the dims before it hold as many elements on both sides. */
function reshapeSigs(x: readonly number[], out: readonly number[]): Signature[] {
  const sigs: Signature[] = [{ ins: [B], out: B }, { ins: [P], out: P }];
  const prefix = (s: readonly number[], k: number) => s.slice(0, k).reduce((p, d) => p * d, 1);
  for (let i = 0; i < x.length; i++) {
    for (let j = 0; j < out.length; j++) {
      // both sides cut each block of prod(dims from here on) into n equal contiguous pieces
      if (x[i]! > 1 && out[j]! > 1 && prefix(x, i) === prefix(out, j)) sigs.push({ ins: [S(i)], out: S(j) });
    }
  }
  return sigs;
}

/**
 * The signatures of `node` on one mesh axis of `n` devices, given its inputs' and output's
 * global shapes; only those whose splits divide the dims they split.
 */
export function sbpSignatures(node: Node, ins: readonly (readonly number[])[], out: readonly number[], n: number): Signature[] {
  const def = opDef(node.op);
  let sigs: Signature[];
  if (node.op === 'matmul') sigs = matmulSigs(ins[0]!, ins[1]!, out);
  else if (node.op === 'reshape') sigs = reshapeSigs(ins[0]!, out);
  else if (node.op === 'transpose') {
    const perm = num(node.attrs['perm']);
    sigs = [{ ins: [B], out: B }, { ins: [P], out: P }, ...perm.map((p, j) => ({ ins: [S(p)], out: S(j) }))];
  } else if (node.op === 'broadcastTo') {
    sigs = [{ ins: [B], out: B }, { ins: [P], out: P }];
    for (let k = 0; k < out.length; k++) {
      const j = bcastAxis(ins[0]!, out, k);
      sigs.push({ ins: [j === null ? B : S(j)], out: S(k) });
    }
  } else if (node.op === 'slice' || node.op === 'pad') {
    const x = ins[0]!;
    const lo = num(node.attrs[node.op === 'slice' ? 'starts' : 'before']), hi = num(node.attrs[node.op === 'slice' ? 'ends' : 'after']);
    const untouched = (k: number) => (node.op === 'slice' ? lo[k] === 0 && hi[k] === x[k] : lo[k] === 0 && hi[k] === 0);
    sigs = [{ ins: [B], out: B }, ...x.map((_, k) => k).filter(untouched).map((k) => ({ ins: [S(k)], out: S(k) }))];
    if (node.op === 'slice' || Number(node.attrs['value'] ?? 0) === 0) sigs.push({ ins: [P], out: P });
  } else if (node.op === 'concat') {
    const axis = norm(Number(node.attrs['axis']), out.length);
    sigs = [{ ins: ins.map(() => B), out: B }, { ins: ins.map(() => P), out: P }];
    for (let k = 0; k < out.length; k++) if (k !== axis) sigs.push({ ins: ins.map(() => S(k)), out: S(k) });
  } else if (def.kind === 'reduce') sigs = reduceSigs(node, ins[0]!);
  else if (def.kind === 'elementwise' && ins.length > 0 && !def.indexOperands && node.op !== 'rand') sigs = elementwiseSigs(node, ins, out);
  else sigs = [{ ins: ins.map(() => B), out: B }];
  return sigs.filter((s) => fits(s.out, out, n) && s.ins.every((x, i) => fits(x, ins[i]!, n)));
}
