// Tensor types: dtypes, dims (literal numbers or named symbols) and shapes, at run time and in
// TypeScript's types. Literal shapes flow through the builder's signatures so that a literal
// inner-dimension mismatch in matmul fails to compile; everything is checked again at run time.
// This module does no shape inference of its own (that lives with each op in ops/).

/**
 * Element types. `f16` is IEEE binary16 on every device: each kernel that stores an f16 output
 * rounds it (to nearest, ties to even; overflow to ±Infinity; subnormals kept; NaN stays NaN);
 * inside one fused kernel arithmetic may run in f32 (CPU; WebGPU without `shader-f16`) or f16
 * (WebGPU matmul products with it), so devices agree to f16 tolerance, not bit for bit. A cast
 * from f32 to f16 rounds, from f16 to f32 is exact. Host tensors keep f16 in a Float32Array.
 */
export type DType = 'f32' | 'f16' | 'i32' | 'bool';
export const DTYPES: readonly DType[] = ['f32', 'f16', 'i32', 'bool'];

/** A dimension: a literal size or a named symbol such as `'batch'`, bound when the graph runs. */
export type Dim = number | string;
export type Shape = readonly Dim[];

export interface TensorType<D extends DType = DType, S extends Shape = Shape> {
  readonly dtype: D;
  readonly shape: S;
}

/** A handle to a value in a graph under construction. The type parameters are phantom. */
export interface Tensor<D extends DType = DType, S extends Shape = Shape> {
  readonly id: number;
  readonly dtype: D;
  readonly shape: S;
}

/** A named symbolic dimension: `const B = dim('batch')`. */
export function dim<const N extends string>(name: N): N {
  return name;
}

export function f32<const S extends readonly Dim[]>(...shape: S): TensorType<'f32', S> {
  return { dtype: 'f32', shape };
}
export function f16<const S extends readonly Dim[]>(...shape: S): TensorType<'f16', S> {
  return { dtype: 'f16', shape };
}
export function i32<const S extends readonly Dim[]>(...shape: S): TensorType<'i32', S> {
  return { dtype: 'i32', shape };
}
export function bool<const S extends readonly Dim[]>(...shape: S): TensorType<'bool', S> {
  return { dtype: 'bool', shape };
}

export function isFloat(d: DType): boolean {
  return d === 'f32' || d === 'f16';
}

export function shapeToString(s: Shape): string {
  return `[${s.join(', ')}]`;
}

export function typeToString(t: TensorType): string {
  return `${t.dtype}${shapeToString(t.shape)}`;
}

/** Number of elements of a concrete shape. */
export function numel(s: readonly number[]): number {
  let n = 1;
  for (const d of s) n *= d;
  return n;
}

export function isConcrete(s: Shape): s is readonly number[] {
  return s.every((d) => typeof d === 'number');
}

export function bytesPerElement(d: DType): number {
  return d === 'f16' ? 2 : d === 'bool' ? 1 : 4;
}

/** Bytes per element in host memory, where f16 is held in a Float32Array (binary16 values). */
export function hostBytesPerElement(d: DType): number {
  return bytesPerElement(d === 'f16' ? 'f32' : d);
}

// ---- type-level shape arithmetic (best effort: falls back to `Shape` where it cannot tell) ----

/** `unknown` when two dims may agree, an error-carrying object type when two literals differ. */
export type DimsAgree<A, B, Op extends string> = A extends number
  ? B extends number
    ? number extends A
      ? unknown
      : number extends B
        ? unknown
        : [A] extends [B]
          ? unknown
          : { readonly [K in `${Op}: inner dimensions differ (${A} vs ${B})`]: never }
    : unknown
  : unknown;

type Last2<S extends Shape> = S extends readonly [...infer _B, infer X, infer Y] ? [X, Y] : never;
type Batch<S extends Shape> = S extends readonly [...infer B extends Dim[], unknown, unknown] ? B : never;

export type MatmulCheck<SA extends Shape, SB extends Shape> = [Last2<SA>, Last2<SB>] extends [
  [unknown, infer K],
  [infer K2, unknown],
]
  ? DimsAgree<K, K2, 'matmul'>
  : unknown;

export type MatmulShape<SA extends Shape, SB extends Shape> = [Last2<SA>, Last2<SB>] extends [
  [infer M, unknown],
  [unknown, infer N],
]
  ? Batch<SA> extends readonly []
    ? Batch<SB> extends readonly []
      ? readonly [M & Dim, N & Dim]
      : readonly [...Batch<SB>, M & Dim, N & Dim]
    : readonly [...Batch<SA>, M & Dim, N & Dim]
  : Shape;

/** Shape of a broadcasting binary op: exact when both shapes are the same or one is a scalar. */
export type BroadcastShape<SA extends Shape, SB extends Shape> = SA extends SB
  ? SB extends SA
    ? SA
    : Shape
  : SB extends readonly []
    ? SA
    : SA extends readonly []
      ? SB
      : Shape;

// ---- graph nodes, as ops see them (the graph IR itself is graphs/graph.ts) ----

export type AttrValue = number | string | boolean | null | readonly AttrValue[] | { readonly [k: string]: AttrValue };
export type Attrs = { readonly [k: string]: AttrValue };

export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly number[];
  readonly attrs: Attrs;
  readonly dtype: DType;
  readonly shape: Shape;
  /** set on named nodes: inputs, params, state */
  readonly name?: string;
  /** the user's source line that created the node */
  readonly site?: string;
}
