// The op registry: one definition per op (shape/dtype rule, VJP, lowering), looked up by name.
// Op files register themselves here; graphs/, scheduler/ and runtime/ only ever go through
// `opDef`. This module holds the contracts, not any op.

import type { Attrs, Node } from './types.js';
import type { DType, Tensor, TensorType } from './types.js';
import { UnknownOpError } from './errors.js';
import type { BufferParam, Expr, IndexExpr, Kernel, LoopVar, MatmulOperand } from './kernel-ir.js';

/**
 * How an op lowers. `elementwise` and `view` ops are expressions at the output index and fuse
 * freely; `reduce` ops are expressions with their own loop variables; `matmul` and `scatterAdd`
 * build kernels of their own kind (`OpDef.kernel`), and a `matmul` takes an elementwise
 * epilogue; `source` ops are buffers.
 */
export type OpKind = 'source' | 'elementwise' | 'view' | 'reduce' | 'matmul' | 'scatterAdd';

/**
 * The graph builder that VJP rules and op compositions (ops/nn.ts, ops/einsum.ts) are written
 * with. Declared empty here and completed by graphs/builder.ts (declaration merging: it extends
 * the Builder class), so ops/ never imports the builder, which imports ops/.
 */
export interface OpBuilder {}

/** What a lowering sees: concrete input types and the expressions of its inputs. */
export interface LowerCtx {
  readonly out: { readonly dtype: DType; readonly shape: readonly number[] };
  readonly ins: readonly { readonly dtype: DType; readonly shape: readonly number[] }[];
  readonly attrs: Attrs;
  /** the value of input j at a multi-index */
  input(j: number, idx: readonly IndexExpr[]): Expr;
  /** the value of i32 input j, as an index expression clamped to [0, hi] (gather) */
  inputIndex(j: number, idx: readonly IndexExpr[], hi: number): IndexExpr;
  /** a fresh loop variable for a reduction */
  fresh(size: number): LoopVar;
  /** ranges of every loop variable in scope, for simplifying div/mod */
  readonly sizes: Map<string, number>;
}

/**
 * What an op that is a kernel of its own kind (`matmul`, `scatterAdd`) sees when it builds that
 * kernel: its operands as buffers, or, for strided primitives, as strided views of buffers.
 */
export interface KernelCtx {
  readonly name: string;
  readonly out: { readonly dtype: DType; readonly shape: readonly number[] };
  readonly ins: readonly { readonly dtype: DType; readonly shape: readonly number[] }[];
  readonly attrs: Attrs;
  /** the elementwise epilogue fused after the op (reading `acc`), or null */
  readonly epilogue: Expr | null;
  /** every buffer the kernel binds so far, in binding order (call after `buffer` / `strided`) */
  params(): readonly BufferParam[];
  /** input j bound whole as a buffer: its binding index */
  buffer(j: number): number;
  /**
   * input j read at `idx` as a strided operand: the views between it and a buffer folded into
   * an offset and one stride per variable (batch vars, row var, col var). The caller gives the
   * input a buffer of its own and retries when the views are not affine in those variables.
   */
  strided(j: number, idx: readonly IndexExpr[], vars: { readonly batch: readonly string[]; readonly row: string; readonly col: string }): MatmulOperand;
  /** a fresh loop variable (a contraction axis) */
  fresh(size: number): LoopVar;
}

export interface OpDef {
  readonly name: string;
  readonly kind: OpKind;
  /**
   * Operands the op's kernel binds whole as plain buffers (scatter-add's base, indices and
   * updates): never inlined into it.
   */
  readonly bufferOperands?: readonly number[];
  /**
   * i32 operands read as indices (gather's indices): they need a buffer, and the op reads its
   * other operands at data-dependent positions, not at its own output index.
   */
  readonly indexOperands?: readonly number[];
  /** a view that only re-strides its input (no masks), so it may fold into a matmul operand */
  readonly stridedView?: boolean;
  /** a source whose value is computed by a kernel (a fill constant) rather than supplied */
  computedSource?(attrs: Attrs): boolean;
  /** Shape and dtype rule; throws ShapeError / DTypeError naming the op, shapes and site. */
  infer(ins: readonly TensorType[], attrs: Attrs, site?: string): TensorType;
  /**
   * Reverse-mode rule: given the cotangent of the output, the cotangents of the inputs (null
   * where an input has none). Written with the builder, so gradients are graphs too.
   */
  vjp?(g: OpBuilder, ins: readonly Tensor[], out: Tensor, ct: Tensor, node: Node): readonly (Tensor | null)[];
  /** The output's value at a multi-index (elementwise, view and reduce ops). */
  lower?(ctx: LowerCtx, idx: readonly IndexExpr[]): Expr;
  /** The op's own kernel (matmul, scatter-add): ops that are not an expression at an index. */
  kernel?(ctx: KernelCtx): Kernel;
}

const registry = new Map<string, OpDef>();

export function defineOp(def: OpDef): OpDef {
  if (registry.has(def.name)) throw new Error(`op '${def.name}' is defined twice`);
  registry.set(def.name, def);
  return def;
}

export function opDef(name: string, shapes: readonly (readonly (number | string)[])[] = [], site?: string): OpDef {
  const d = registry.get(name);
  if (!d) throw new UnknownOpError(name, shapes, site);
  return d;
}

export function hasOp(name: string): boolean {
  return registry.has(name);
}

export function allOps(): readonly OpDef[] {
  return [...registry.values()];
}
