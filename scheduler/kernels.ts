// Kernel construction: for every materialized node, the kernel that computes it, built by
// inlining the lowering of every non-materialized producer (ops/*.lower) at the index where it
// is read. A producer that cannot be inlined where it is met (a matmul read at another index,
// a view a matmul operand cannot express as strides) is reported so the caller can give it a
// buffer and try again.

import type { Graph } from '../graphs/graph.js';
import { opDef, type LowerCtx } from '../ops/registry.js';
import {
  ivar, iconst, linearize, outVars,
  type BufferParam, type Expr, type IndexExpr, type Kernel, type LoopVar, type MatmulOperand,
} from '../ops/kernel-ir.js';
import { numel } from '../graphs/types.js';

/** Thrown while building when node `id` needs a buffer of its own. */
export class NeedsBuffer extends Error {
  constructor(readonly id: number) {
    super(`node ${id} needs a buffer`);
  }
}

export interface BuiltKernel {
  readonly kernel: Kernel;
  /** node ids whose buffers are the kernel's inputs, in order */
  readonly inputs: readonly number[];
  /** nodes fused into this kernel (including the root) */
  readonly fused: readonly number[];
}

class KernelBuilder {
  readonly inputs: number[] = [];
  readonly params: BufferParam[] = [];
  readonly sizes = new Map<string, number>();
  readonly fused = new Set<number>();
  private nextVar = 0;
  matmul: number | null = null;

  constructor(
    readonly g: Graph,
    readonly shapes: readonly (readonly number[])[],
    readonly mat: ReadonlySet<number>,
    readonly root: number,
  ) {
    this.shapes[root]!.forEach((d, i) => this.sizes.set(`i${i}`, d));
  }

  param(id: number): number {
    let j = this.inputs.indexOf(id);
    if (j < 0) {
      j = this.inputs.length;
      this.inputs.push(id);
      const n = this.g.nodes[id]!;
      this.params.push({ dtype: n.dtype, size: numel(this.shapes[id]!) });
    }
    return j;
  }

  fresh(size: number): LoopVar {
    const v = { name: `r${this.nextVar++}`, size };
    this.sizes.set(v.name, size);
    return v;
  }

  load(id: number, idx: readonly IndexExpr[]): Expr {
    return { k: 'load', buf: this.param(id), at: linearize(idx, this.shapes[id]!), dtype: this.g.nodes[id]!.dtype };
  }

  exprOf(id: number, idx: readonly IndexExpr[]): Expr {
    if (id !== this.root && this.mat.has(id)) return this.load(id, idx);
    const n = this.g.nodes[id]!;
    const def = opDef(n.op);
    this.fused.add(id);
    if (def.kind === 'matmul') {
      const identity = idx.length === this.shapes[this.root]!.length && idx.every((x, i) => x.k === 'var' && x.name === `i${i}`);
      if (id === this.root || !identity || this.matmul !== null) throw new NeedsBuffer(id);
      this.matmul = id;
      return { k: 'acc', dtype: n.dtype };
    }
    if (!def.lower) throw new NeedsBuffer(id);
    const ctx: LowerCtx = {
      out: { dtype: n.dtype, shape: this.shapes[id]! },
      ins: n.inputs.map((j) => ({ dtype: this.g.nodes[j]!.dtype, shape: this.shapes[j]! })),
      attrs: n.attrs,
      input: (j, at) => this.exprOf(n.inputs[j]!, at),
      inputIndex: (j, at, hi) => {
        const src = n.inputs[j]!;
        if (!this.mat.has(src)) throw new NeedsBuffer(src);
        return { k: 'loadIndex', buf: this.param(src), at: linearize(at, this.shapes[src]!), hi };
      },
      fresh: (size) => this.fresh(size),
      sizes: this.sizes,
    };
    return def.lower(ctx, idx);
  }

  /** The strides of a matmul operand, if its expression is a load at an affine index. */
  operand(id: number, idx: readonly IndexExpr[], vars: { batch: string[]; row: string; col: string }): MatmulOperand {
    const e = this.exprOf(id, idx);
    if (e.k !== 'load') throw new NeedsBuffer(id);
    const aff = affine(e.at);
    if (!aff) throw new NeedsBuffer(id);
    const known = new Set([...vars.batch, vars.row, vars.col]);
    for (const v of aff.coefs.keys()) if (!known.has(v)) throw new NeedsBuffer(id);
    return {
      buf: e.buf,
      offset: aff.c,
      batchStrides: vars.batch.map((v) => aff.coefs.get(v) ?? 0),
      rowStride: aff.coefs.get(vars.row) ?? 0,
      colStride: aff.coefs.get(vars.col) ?? 0,
    };
  }
}

/** coefficients of an index expression that is affine in its variables, else null */
export function affine(e: IndexExpr): { coefs: Map<string, number>; c: number } | null {
  const coefs = new Map<string, number>();
  let c = 0;
  const walk = (x: IndexExpr, k: number): boolean => {
    switch (x.k) {
      case 'var': coefs.set(x.name, (coefs.get(x.name) ?? 0) + k); return true;
      case 'const': c += x.v * k; return true;
      case 'add': return walk(x.a, k) && walk(x.b, k);
      case 'mul': return walk(x.a, k * x.c);
      default: return false;
    }
  };
  return walk(e, 1) ? { coefs, c } : null;
}

function matmulKernel(b: KernelBuilder, mm: number, name: string, epilogue: Expr | null): Kernel {
  const g = b.g;
  const n = g.nodes[mm]!;
  const outShape = b.shapes[mm]!;
  const r = outShape.length;
  const batch = outShape.slice(0, r - 2);
  const [m, nn] = [outShape[r - 2]!, outShape[r - 1]!];
  const [ia, ib] = n.inputs as [number, number];
  const K = b.shapes[ia]![b.shapes[ia]!.length - 1]!;
  const kv = b.fresh(K).name;
  const bvars = batch.map((_, i) => `i${i}`);
  const operandIdx = (id: number, rowVar: string, colVar: string): IndexExpr[] => {
    const s = b.shapes[id]!;
    const nb = s.length - 2;
    const bi = s.slice(0, nb).map((d, i) => (d === 1 ? iconst(0) : ivar(bvars[batch.length - nb + i]!)));
    return [...bi, ivar(rowVar), ivar(colVar)];
  };
  const a = b.operand(ia, operandIdx(ia, `i${r - 2}`, kv), { batch: bvars, row: `i${r - 2}`, col: kv });
  const bb = b.operand(ib, operandIdx(ib, kv, `i${r - 1}`), { batch: bvars, row: kv, col: `i${r - 1}` });
  const root = g.nodes[b.root]!;
  return {
    kind: 'matmul', name, inputs: b.params, out: { dtype: root.dtype, shape: [...outShape] },
    batch, m, n: nn, k: K, a, b: bb, epilogue,
  };
}

/** Build the kernel computing materialized node `root`. Throws NeedsBuffer to ask for a buffer. */
export function buildKernel(g: Graph, shapes: readonly (readonly number[])[], mat: ReadonlySet<number>, root: number): BuiltKernel {
  const b = new KernelBuilder(g, shapes, mat, root);
  const node = g.nodes[root]!;
  const def = opDef(node.op);
  const shape = shapes[root]!;
  const name = `${node.op}_${root}`;
  let kernel: Kernel;
  if (def.kind === 'matmul') {
    kernel = matmulKernel(b, root, name, null);
  } else if (def.kind === 'scatterAdd') {
    const [base, idx, upd] = node.inputs.map((j) => b.param(j)) as [number, number, number];
    const outRows = shape[0]!;
    const inner = numel(shape.slice(1));
    kernel = {
      kind: 'scatterAdd', name, inputs: b.params, out: { dtype: node.dtype, shape: [...shape] },
      base, indices: idx, updates: upd, rows: numel(shapes[node.inputs[1]!]!), outRows, inner, outer: 1,
    };
  } else {
    const expr = b.exprOf(root, outVars(shape.length));
    if (b.matmul !== null) {
      kernel = matmulKernel(b, b.matmul, `${g.nodes[b.matmul]!.op}_${b.matmul}_${name}`, expr);
    } else {
      kernel = { kind: 'map', name: b.fused.size > 1 ? `fused_${name}` : name, inputs: b.params, out: { dtype: node.dtype, shape: [...shape] }, expr };
    }
  }
  b.fused.add(root);
  return { kernel, inputs: b.inputs, fused: [...b.fused] };
}

