// Kernel construction: for every materialized node, the kernel that computes it, built by
// inlining the lowering of every non-materialized producer (ops/*.lower) at the index where it
// is read; ops that are kernels of their own kind (matmul, scatter-add) build them through
// their OpDef's `kernel`. A producer that cannot be inlined where it is met (a matmul read at
// another index, a view a matmul operand cannot express as strides, one producer too many for
// the device's buffer bindings) is reported so the caller can give it a buffer and try again.

import type { Graph } from '../graphs/graph.js';
import { opDef, type KernelCtx, type LowerCtx } from '../ops/registry.js';
import {
  exprChildren, exprVars, indexVars, linearize, mapExpr, outVars, predAtoms, recombine, renameExprVars, renamePredVars, renameVars,
  type BufferParam, type Expr, type IndexExpr, type IndexPred, type Kernel, type LoopVar, type MatmulOperand, type MatmulReduce,
} from '../ops/kernel-ir.js';
import { numel } from '../graphs/types.js';
import { bufferBytes, HOST_CAPS, type DeviceCaps } from './caps.js';
import { chooseCut, DeviceLimitError } from './limits.js';

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
  /** where the matmul is read when that is not the root's own index (a fused reduction), and its `acc` leaf */
  matmulIdx: readonly IndexExpr[] | null = null;
  acc: Expr | null = null;
  /** an operand of this kernel's matmul is a gather (implicit GEMM) */
  private gathered = false;

  constructor(
    readonly g: Graph,
    readonly shapes: readonly (readonly number[])[],
    readonly mat: ReadonlySet<number>,
    readonly root: number,
    readonly caps: DeviceCaps,
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
      // read at another index: only inside a reduction the matmul takes in (see `fuseReduction`)
      if (id === this.root || (!identity && !this.caps.matmulReduce) || this.matmul !== null) throw new NeedsBuffer(id);
      this.matmul = id;
      this.matmulIdx = identity ? null : idx;
      this.acc = { k: 'acc', dtype: n.dtype };
      return this.acc;
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

  /**
   * The strides of a matmul operand, if its expression is a load at an affine index; on a device
   * with implicit GEMM also a gather: a load at any index of the operand's variables, under pad
   * masks whose fill is 0.
   */
  operand(id: number, idx: readonly IndexExpr[], vars: { readonly batch: readonly string[]; readonly row: string; readonly col: string }): MatmulOperand {
    let e = this.exprOf(id, idx);
    // a reshaped view read back at its own strides is strided again (only where gathers are
    // planned: elsewhere such views keep the copy they always had)
    if (this.caps.implicitGemm && e.k === 'load') e = { ...e, at: recombine(e.at) };
    const known = new Set([...vars.batch, vars.row, vars.col]);
    const aff = e.k === 'load' ? affine(e.at) : null;
    if (e.k !== 'load' || !aff || [...aff.coefs.keys()].some((v) => !known.has(v))) {
      if (this.caps.implicitGemm) return this.gather(id, e, vars, known);
      throw new NeedsBuffer(id);
    }
    // beside a gathered operand k goes one step at a time: a strided operand whose rows are not
    // contiguous (conv2d's weights, transposed for the matmul) is read faster from a row-major copy
    const colStride = aff.coefs.get(vars.col) ?? 0;
    if (this.gathered && colStride !== 0 && colStride !== 1 && !this.mat.has(id)) throw new NeedsBuffer(id);
    return {
      buf: e.buf,
      offset: aff.c,
      batchStrides: vars.batch.map((v) => aff.coefs.get(v) ?? 0),
      rowStride: aff.coefs.get(vars.row) ?? 0,
      colStride: aff.coefs.get(vars.col) ?? 0,
    };
  }

  private gather(id: number, e: Expr, vars: { readonly batch: readonly string[]; readonly row: string; readonly col: string }, known: ReadonlySet<string>): MatmulOperand {
    // peel the pad masks: select(pred, x, 0)
    let valid: IndexPred | null = null;
    while (e.k === 'select' && e.b.k === 'const' && e.b.v === 0) {
      valid = valid ? { k: 'and', a: valid, b: e.pred } : e.pred;
      e = e.a;
    }
    if (e.k !== 'load') throw new NeedsBuffer(id);
    // f16 held as 2-byte f16 (WebGPU's shader-f16) is multiplied in f16 tiles, which gathers do not fill
    if (e.dtype === 'f16' && this.caps.elementBytes.f16 === 2) throw new NeedsBuffer(id);
    // beside another gather, one that only rearranges its buffer (conv2d's output gradient as dW's
    // operand: no more elements than the buffer) is read faster from a copy, which costs no more
    // memory than the buffer itself
    const elements = [...vars.batch, vars.row, vars.col].reduce((n, v) => n * (this.sizes.get(v) ?? 1), 1);
    if (this.gathered && elements <= this.params[e.buf]!.size && !this.mat.has(id)) throw new NeedsBuffer(id);
    const read = [indexVars(e.at), ...predAtoms(valid).map((p) => indexVars(p.a))];
    if (read.some((vs) => vs === null || [...vs].some((v) => !known.has(v)))) throw new NeedsBuffer(id);
    const names = new Map<string, string>([[vars.row, 'row'], [vars.col, 'col'], ...vars.batch.map((v, i) => [v, `b${i}`] as [string, string])]);
    this.gathered = true;
    return {
      buf: e.buf, offset: 0, batchStrides: vars.batch.map(() => 0), rowStride: 0, colStride: 0,
      gather: { at: renameVars(e.at, names), valid: valid && renamePredVars(valid, names) },
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

/** The kernel of an op that is a kernel of its own kind, with an epilogue read from `acc`. */
function ownKernel(b: KernelBuilder, id: number, name: string, epilogue: Expr | null): Kernel {
  const n = b.g.nodes[id]!;
  const def = opDef(n.op);
  if (!def.kernel) throw new Error(`op '${n.op}' of kind '${def.kind}' has no kernel`);
  const ctx: KernelCtx = {
    name,
    out: { dtype: b.g.nodes[b.root]!.dtype, shape: b.shapes[id]! },
    ins: n.inputs.map((j) => ({ dtype: b.g.nodes[j]!.dtype, shape: b.shapes[j]! })),
    attrs: n.attrs,
    epilogue,
    params: () => b.params,
    buffer: (j) => b.param(n.inputs[j]!),
    strided: (j, idx, vars) => b.operand(n.inputs[j]!, idx, vars),
    fresh: (size) => b.fresh(size),
  };
  return def.kernel(ctx);
}

/**
 * Build the kernel computing materialized node `root`. Throws NeedsBuffer to ask for a buffer
 * (also when the kernel binds more buffers than `caps` allows and a fused producer can be split
 * off), and DeviceLimitError when a buffer or the kernel cannot fit the device at all.
 */
export function buildKernel(
  g: Graph, shapes: readonly (readonly number[])[], mat: ReadonlySet<number>, root: number, caps: DeviceCaps = HOST_CAPS,
): BuiltKernel {
  const b = new KernelBuilder(g, shapes, mat, root, caps);
  const node = g.nodes[root]!;
  const def = opDef(node.op);
  const shape = shapes[root]!;
  const name = `${node.op}_${root}`;
  let kernel: Kernel;
  if (def.kernel) {
    kernel = ownKernel(b, root, name, null);
  } else {
    const expr = b.exprOf(root, outVars(shape.length));
    if (b.matmul !== null && b.matmulIdx !== null) {
      const fused = fuseReduction(b, expr);
      // the matmul's own variables i0... range over the product's dims, not the root's
      b.shapes[b.matmul]!.forEach((d, j) => b.sizes.set(`i${j}`, d));
      const mm = ownKernel(b, b.matmul, `${g.nodes[b.matmul]!.op}_${b.matmul}_${name}`, fused.epilogue);
      if (mm.kind !== 'matmul' || mm.a.gather || mm.b.gather) throw new NeedsBuffer(b.matmul);
      // reducing more than n takes a second pass through a scratch buffer, one binding more
      if (fused.reduce.keep <= mm.batch.length && mm.inputs.length + 2 > caps.maxKernelBuffers) throw new NeedsBuffer(b.matmul);
      kernel = { ...mm, out: { dtype: node.dtype, shape: [...shape] }, reduce: fused.reduce };
    } else if (b.matmul !== null) {
      kernel = ownKernel(b, b.matmul, `${g.nodes[b.matmul]!.op}_${b.matmul}_${name}`, expr);
    } else {
      kernel = { kind: 'map', name: b.fused.size > 1 ? `fused_${name}` : name, inputs: b.params, out: { dtype: node.dtype, shape: [...shape] }, expr };
    }
  }
  b.fused.add(root);
  checkLimits(g, shapes, mat, root, b, caps);
  return { kernel, inputs: b.inputs, fused: [...b.fused] };
}

const REDUCE_OPS: ReadonlySet<string> = new Set(['sum', 'max', 'min']);

/**
 * A root expression that reads the matmul inside one reduction over the product's trailing dims,
 * split into the matmul's epilogue (the reduction's body, at the product's own index) and the
 * reduction with what follows it (MatmulReduce). Anything else asks for a buffer for the matmul.
 */
function fuseReduction(b: KernelBuilder, expr: Expr): { epilogue: Expr; reduce: MatmulReduce } {
  const mm = b.matmul!;
  const idx = b.matmulIdx!;
  const refuse = () => new NeedsBuffer(mm);
  // the reduction whose body holds the acc leaf, with no other reduction between them
  let found: Extract<Expr, { k: 'reduce' }> | null = null;
  let outside = false;
  const walk = (e: Expr, inReduce: Extract<Expr, { k: 'reduce' }> | null, seen: Set<Expr>): void => {
    if (seen.has(e)) return;
    seen.add(e);
    if (e.k === 'reduce') return walk(e.body, e, new Set());
    if (e === b.acc) {
      if (!inReduce || (found && found !== inReduce)) outside = true;
      else found = inReduce;
    }
    for (const c of exprChildren(e)) walk(c, inReduce, seen);
  };
  walk(expr, null, new Set());
  const r = found as Extract<Expr, { k: 'reduce' }> | null;
  if (!r || outside || !REDUCE_OPS.has(r.op) || r.dtype !== 'f32' || r.body.dtype !== 'f32' || expr.dtype !== 'f32') throw refuse();
  // the product's index: the root's own variables, then the reduction's variables (a dim of size
  // 1 may be read at 0 instead, as broadcasting lowers it)
  const rootShape = b.shapes[b.root]!;
  const mmShape = b.shapes[mm]!;
  const keep = idx.length - r.vars.length;
  if (keep < 0 || keep > mmShape.length - 1) throw refuse();
  const unit = (x: IndexExpr, j: number) => x.k === 'const' && x.v === 0 && mmShape[j] === 1;
  for (let j = 0; j < keep; j++) {
    const x = idx[j]!;
    if (!unit(x, j) && (x.k !== 'var' || x.name !== `i${j}` || rootShape[j] !== mmShape[j])) throw refuse();
  }
  const names = new Map<string, string>();
  for (let j = keep; j < idx.length; j++) {
    const x = idx[j]!;
    if (unit(x, j)) continue;
    const v = x.k === 'var' ? r.vars.find((rv) => rv.name === x.name) : undefined;
    if (!v || names.has(v.name) || v.size !== mmShape[j]) throw refuse();
    names.set(v.name, `i${j}`);
  }
  const bodyVars = exprVars(r.body);
  // the reduction's variables the product is not read at run over 1 value and are read nowhere
  if (r.vars.some((v) => !names.has(v.name) && (v.size !== 1 || bodyVars.has(v.name)))) throw refuse();
  // the root's own dims past `keep` must be the 1s keepdims leaves, read nowhere in the body
  if (rootShape.slice(keep).some((d) => d !== 1) || [...bodyVars].some((v) => /^i\d+$/.test(v) && Number(v.slice(1)) >= keep)) throw refuse();
  const post = r === expr ? null : mapExpr(expr, (x) => (x === r ? { k: 'acc', dtype: 'f32' } : undefined));
  return { epilogue: renameExprVars(r.body, names), reduce: { op: r.op as MatmulReduce['op'], keep, post } };
}

function checkLimits(
  g: Graph, shapes: readonly (readonly number[])[], mat: ReadonlySet<number>, root: number, b: KernelBuilder, caps: DeviceCaps,
): void {
  for (const id of [root, ...b.inputs]) {
    const n = g.nodes[id]!;
    const bytes = bufferBytes(caps, n.dtype, numel(shapes[id]!));
    if (bytes > caps.maxBufferBytes) throw new DeviceLimitError(id, n.op, 'maxBufferBytes', bytes, caps.maxBufferBytes, caps.kind, n.site);
  }
  const bindings = b.inputs.length + 1;
  if (bindings <= caps.maxKernelBuffers) return;
  const cut = chooseCut(g, root, mat, caps.maxKernelBuffers, [...b.fused].filter((id) => id !== root && opDef(g.nodes[id]!.op).kind !== 'source'));
  if (cut !== null) throw new NeedsBuffer(cut);
  const n = g.nodes[root]!;
  throw new DeviceLimitError(root, n.op, 'maxKernelBuffers', bindings, caps.maxKernelBuffers, caps.kind, n.site);
}
