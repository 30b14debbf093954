// n-ary einsum. As a builder call it lowers at once to pairwise contractions, each pair becoming
// transpose → reshape → batched matmul → reshape, so every contraction runs on the tiled matmul
// primitive; `path` says which pairs to contract in which order (left to right by default).
// As a graph node (op 'einsum', made by `einsumNode`) it stays n-ary until the contraction-ordering
// rewrite pass picks an order and lowers it; its own lowering is one naive reduction over every
// contracted index, correct but slow. Repeated indices within one operand (diagonals) and
// ellipses are refused with a clear error.

import type { OpBuilder } from './registry.js';
import { defineOp } from './registry.js';
import { ivar, iconst, type Expr, type IndexExpr, type LoopVar } from './kernel-ir.js';
import { callSite, ShapeError } from './errors.js';
import type { Dim, MatmulCheck, Shape, Tensor, TensorType } from './types.js';
import { requireSameDType } from './shape.js';

interface Term {
  t: Tensor;
  idx: string[];
}

export function parseEinsum(spec: string, shapes: readonly (readonly Dim[])[], site?: string): { inputs: string[][]; output: string[] } {
  const fail = (why: string): never => {
    throw new ShapeError('einsum', shapes, `'${spec}': ${why}`, site);
  };
  const clean = spec.replace(/\s+/g, '');
  if (clean.includes('.')) fail('ellipsis is not supported');
  const [lhs, rhs] = clean.split('->') as [string, string | undefined];
  const inputs = lhs.split(',').map((s) => [...s]);
  if (inputs.length !== shapes.length) fail(`${inputs.length} operand subscripts for ${shapes.length} operands`);
  // every size each index has, in operand order
  const sizes = new Map<string, Dim[]>();
  inputs.forEach((ix, j) => {
    if (!ix.every((c) => /[a-zA-Z]/.test(c))) fail('subscripts must be letters');
    if (new Set(ix).size !== ix.length) fail(`operand ${j} repeats an index (diagonals are not supported)`);
    if (ix.length !== shapes[j]!.length) fail(`operand ${j} has rank ${shapes[j]!.length} but ${ix.length} subscripts`);
    ix.forEach((c, i) => sizes.set(c, [...(sizes.get(c) ?? []), shapes[j]![i]!]));
  });
  let output: string[];
  if (rhs === undefined) {
    const counts = new Map<string, number>();
    inputs.flat().forEach((c) => counts.set(c, (counts.get(c) ?? 0) + 1));
    output = [...counts.entries()].filter(([, n]) => n === 1).map(([c]) => c).sort();
  } else {
    output = [...rhs];
    if (new Set(output).size !== output.length) fail('output repeats an index');
    for (const c of output) if (!sizes.has(c)) fail(`output index '${c}' appears in no operand`);
  }
  // An index kept in the output may broadcast from size 1; a summed index has one size.
  for (const [c, ds] of sizes) {
    const other = ds.find((d) => d !== ds[0]);
    if (other === undefined) continue;
    const [a, b] = [ds[0]!, other];
    if (a !== 1 && b !== 1) fail(`index '${c}' has sizes ${a} and ${b}`);
    const big = a === 1 ? b : a;
    const clash = ds.find((d) => d !== 1 && d !== big);
    if (clash !== undefined) fail(`index '${c}' has sizes ${big} and ${clash}`);
    if (!output.includes(c)) fail(`index '${c}' has sizes ${a} and ${b}; it is summed over, so its sizes must be equal (only indices of the output broadcast from 1)`);
  }
  return { inputs, output };
}

/**
 * A contraction order: each pair [i, j] contracts positions i and j of the current operand list,
 * removes both and appends the result (opt_einsum's convention).
 */
export type ContractionPath = readonly (readonly [number, number])[];

/** Left-to-right contraction of n operands, as a path. */
export function leftToRightPath(n: number): ContractionPath {
  return Array.from({ length: Math.max(0, n - 1) }, (_, k) => (k === 0 ? [0, 1] as const : [n - 1 - k, 0] as const));
}

export function einsum(g: OpBuilder, spec: string, operands: readonly Tensor[], path: ContractionPath = leftToRightPath(operands.length)): Tensor {
  const site = g.site ?? callSite();
  const shapes = operands.map((t) => t.shape);
  const { inputs, output } = parseEinsum(spec, shapes, site);
  if (operands.length === 0) throw new ShapeError('einsum', [], 'needs at least one operand', site);
  const saved = g.site;
  g.site = site ?? undefined;
  try {
    let terms: Term[] = operands.map((t, j) => ({ t, idx: inputs[j]! }));
    // Indices that only one operand has and the output lacks are summed out first.
    terms = terms.map((term, j) => {
      const elsewhere = new Set([...output, ...terms.filter((_, k) => k !== j).flatMap((u) => u.idx)]);
      return sumOut(g, term, (c) => !elsewhere.has(c));
    });
    if (path.length !== terms.length - 1) throw new ShapeError('einsum', shapes, `'${spec}': a path of ${path.length} pairs cannot contract ${terms.length} operands`, site);
    for (const [i, j] of path) {
      const a = terms[i], b = terms[j];
      if (!a || !b || i === j) throw new ShapeError('einsum', shapes, `'${spec}': path pair [${i}, ${j}] is not two of ${terms.length} operands`, site);
      const rest = terms.filter((_, k) => k !== i && k !== j);
      const later = new Set([...output, ...rest.flatMap((u) => u.idx)]);
      terms = [...rest, contractPair(g, a, b, later)];
    }
    const acc = sumOut(g, terms[0]!, (c) => !output.includes(c));
    const perm = output.map((c) => acc.idx.indexOf(c));
    return g.transpose(acc.t, perm);
  } finally {
    g.site = saved;
  }
}

function sumOut(g: OpBuilder, term: Term, drop: (c: string) => boolean): Term {
  const axes = term.idx.map((c, i) => (drop(c) ? i : -1)).filter((i) => i >= 0);
  if (!axes.length) return term;
  return { t: g.sum(term.t, axes, false), idx: term.idx.filter((c) => !drop(c)) };
}

function sizeOf(term: Term, c: string): Dim {
  return term.t.shape[term.idx.indexOf(c)]!;
}

function prod(ds: readonly Dim[]): Dim {
  const syms = ds.filter((d) => typeof d === 'string' && d !== '');
  const n = ds.reduce<number>((p, d) => (typeof d === 'number' ? p * d : p), 1);
  if (syms.length === 0) return n;
  if (syms.length === 1 && n === 1) return syms[0]!;
  return NaN; // several symbols cannot be merged into one dim
}

/** Contract a pair: indices in both are batch dims if needed later, else summed by the matmul. */
function contractPair(g: OpBuilder, a: Term, b: Term, later: Set<string>): Term {
  const inB = new Set(b.idx);
  const batch = a.idx.filter((c) => inB.has(c) && later.has(c));
  const contracted = a.idx.filter((c) => inB.has(c) && !later.has(c));
  const freeA = a.idx.filter((c) => !inB.has(c));
  const freeB = b.idx.filter((c) => !a.idx.includes(c));
  const bd = batch.map((c) => broadcastDim(sizeOf(a, c), sizeOf(b, c)));
  const fa = freeA.map((c) => sizeOf(a, c));
  const fb = freeB.map((c) => sizeOf(b, c));
  const kd = contracted.map((c) => sizeOf(a, c));
  const grouped = (t: Term, order: string[]) => g.transpose(t.t, order.map((c) => t.idx.indexOf(c)));
  const at = grouped(a, [...batch, ...freeA, ...contracted]);
  const bt = grouped(b, [...batch, ...contracted, ...freeB]);
  const bShape = batch.map((c) => sizeOf(a, c));
  const bShapeB = batch.map((c) => sizeOf(b, c));
  const [M, K, N] = [prod(fa), prod(kd), prod(fb)];
  if ([M, K, N].some((d) => typeof d === 'number' && Number.isNaN(d))) {
    throw new ShapeError('einsum', [a.t.shape, b.t.shape], 'cannot merge several symbolic dims into one matmul axis', g.site ?? undefined);
  }
  const a3 = g.reshape(at, [...bShape, M, K]);
  const b3 = g.reshape(bt, [...bShapeB, K, N]);
  const c3 = g.matmul(a3, b3 as Tensor & MatmulCheck<Shape, Shape>);
  const out = g.reshape(c3, [...bd, ...fa, ...fb]);
  return { t: out, idx: [...batch, ...freeA, ...freeB] };
}

function broadcastDim(x: Dim, y: Dim): Dim {
  return x === 1 ? y : x;
}

// ------------------------------------------------------------------ the n-ary graph node

/** Size of every index of an einsum over operands of these shapes (size-1 dims broadcast). */
export function einsumSizes(inputs: readonly (readonly string[])[], shapes: readonly (readonly Dim[])[]): Map<string, Dim> {
  const sizes = new Map<string, Dim>();
  inputs.forEach((ix, j) => ix.forEach((c, i) => {
    const d = shapes[j]![i]!;
    if (!sizes.has(c) || sizes.get(c) === 1) sizes.set(c, d);
  }));
  return sizes;
}

/** An n-ary einsum node, left for the contraction-ordering pass to lower in a good order. */
export function einsumNode(g: OpBuilder, spec: string, ...operands: Tensor[]): Tensor {
  return g.op('einsum', operands, { spec });
}

defineOp({
  name: 'einsum',
  kind: 'reduce',
  infer(ins, attrs, site): TensorType {
    const spec = String(attrs['spec']);
    const shapes = ins.map((t) => t.shape);
    if (ins.length === 0) throw new ShapeError('einsum', [], 'needs at least one operand', site);
    const dtype = requireSameDType('einsum', ins, site);
    const { inputs, output } = parseEinsum(spec, shapes, site);
    const sizes = einsumSizes(inputs, shapes);
    return { dtype, shape: output.map((c) => sizes.get(c)!) };
  },
  // d/dx_j = einsum of the cotangent with the other operands, summed back to x_j's shape
  vjp(g, ins, _out, ct, node) {
    const spec = String(node.attrs['spec']);
    const { inputs, output } = parseEinsum(spec, ins.map((t) => t.shape));
    // operands that broadcast an output index from size 1 are widened first: in the cotangent's
    // einsum that index may be summed, and summed indices do not broadcast
    const full = einsumSizes(inputs, ins.map((t) => t.shape));
    const wide = ins.map((t, k) => g.broadcastTo(t, inputs[k]!.map((c) => full.get(c)!)));
    return ins.map((x, j) => {
      const others = inputs.filter((_, k) => k !== j);
      const seen = new Set([...output, ...others.flat()]);
      const kept = inputs[j]!.filter((c) => seen.has(c));
      const operands = [...wide.filter((_, k) => k !== j), ct];
      let d = g.op('einsum', operands, { spec: `${[...others, output].map((ix) => ix.join('')).join(',')}->${kept.join('')}` });
      const sizes = einsumSizes([...others, output], operands.map((t) => t.shape));
      const full = inputs[j]!.map((c) => (kept.includes(c) ? sizes.get(c)! : 1));
      if (kept.length !== inputs[j]!.length) d = g.reshape(d, full);
      return g.broadcastTo(g.sumTo(d, x.shape), x.shape);
    });
  },
  lower(ctx, idx) {
    const { inputs, output } = parseEinsum(String(ctx.attrs['spec']), ctx.ins.map((t) => t.shape));
    const sizes = einsumSizes(inputs, ctx.ins.map((t) => t.shape)) as Map<string, number>;
    const at = new Map<string, IndexExpr>(output.map((c, i) => [c, idx[i]!]));
    const vars: LoopVar[] = [];
    for (const c of new Set(inputs.flat())) {
      if (at.has(c)) continue;
      const v = ctx.fresh(sizes.get(c)!);
      vars.push(v);
      at.set(c, ivar(v.name));
    }
    let body: Expr | null = null;
    inputs.forEach((ix, j) => {
      const x = ctx.input(j, ix.map((c, i) => (ctx.ins[j]!.shape[i] === 1 ? iconst(0) : at.get(c)!)));
      body = body ? { k: 'binary', op: 'mul', a: body, b: x, dtype: ctx.out.dtype } : x;
    });
    if (vars.length === 0) return body!;
    return { k: 'reduce', op: 'sum', vars, body: body!, dtype: ctx.out.dtype };
  },
});
