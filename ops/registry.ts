// The op registry: one definition per op (shape/dtype rule, VJP, lowering), looked up by name.
// Op files register themselves here; graphs/, scheduler/ and runtime/ only ever go through
// `opDef`. This module holds the contracts, not any op.

import type { Attrs, Node } from '../graphs/graph.js';
import type { Builder } from '../graphs/builder.js';
import type { DType, Tensor, TensorType } from '../graphs/types.js';
import { UnknownOpError } from '../graphs/errors.js';
import type { Expr, IndexExpr, LoopVar } from './kernel-ir.js';

/**
 * How an op lowers. `elementwise` and `view` ops are expressions at the output index and fuse
 * freely; `reduce` ops are expressions with their own loop variables; `matmul` and `scatterAdd`
 * become kernels of their own kind; `source` ops are buffers.
 */
export type OpKind = 'source' | 'elementwise' | 'view' | 'reduce' | 'matmul' | 'scatterAdd';

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

export interface OpDef {
  readonly name: string;
  readonly kind: OpKind;
  /** Shape and dtype rule; throws ShapeError / DTypeError naming the op, shapes and site. */
  infer(ins: readonly TensorType[], attrs: Attrs, site?: string): TensorType;
  /**
   * Reverse-mode rule: given the cotangent of the output, the cotangents of the inputs (null
   * where an input has none). Written with the builder, so gradients are graphs too.
   */
  vjp?(g: Builder, ins: readonly Tensor[], out: Tensor, ct: Tensor, node: Node): readonly (Tensor | null)[];
  /** The output's value at a multi-index (elementwise, view and reduce ops). */
  lower?(ctx: LowerCtx, idx: readonly IndexExpr[]): Expr;
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
