// Cost models for choosing between rewritten graphs: floating-point operations, bytes of the
// values kernels write, or parameter count. Symbolic dims count as `dims[name]` (default 1).
// These are estimates for comparing graphs, not the scheduler's cost model.

import type { Graph, Node } from '../graph.js';
import type { Dim } from '../types.js';
import { opDef } from '../../ops/registry.js';
import { einsumSizes, parseEinsum } from '../../ops/einsum.js';

export type SymbolicSizes = Readonly<Record<string, number>>;
export type CostModel = 'flops' | 'bytes' | 'params' | ((g: Graph) => number);

const BYTES: Record<string, number> = { f32: 4, f16: 2, i32: 4, bool: 1 };

function size(d: Dim, dims: SymbolicSizes): number {
  return typeof d === 'number' ? d : dims[d] ?? 1;
}
function count(shape: readonly Dim[], dims: SymbolicSizes): number {
  return shape.reduce<number>((p, d) => p * size(d, dims), 1);
}

/** Floating-point operations of one node (multiply-adds count two). */
export function nodeFlops(g: Graph, n: Node, dims: SymbolicSizes = {}): number {
  const kind = opDef(n.op).kind;
  if (kind === 'source' || kind === 'view') return 0;
  const ins = n.inputs.map((i) => g.nodes[i]!);
  if (n.op === 'matmul') return 2 * count(n.shape, dims) * size(ins[0]!.shape[ins[0]!.shape.length - 1]!, dims);
  if (n.op === 'einsum') {
    const { inputs } = parseEinsum(String(n.attrs['spec']), ins.map((x) => x.shape));
    const sizes = einsumSizes(inputs, ins.map((x) => x.shape));
    return 2 * [...sizes.values()].reduce<number>((p, d) => p * size(d, dims), 1);
  }
  if (kind === 'reduce' || kind === 'scatterAdd') return Math.max(count(n.shape, dims), ...ins.map((x) => count(x.shape, dims)));
  return count(n.shape, dims);
}

export function flops(g: Graph, dims: SymbolicSizes = {}): number {
  return g.nodes.reduce((s, n) => s + nodeFlops(g, n, dims), 0);
}

/** Bytes of every value a kernel may write (views and one-value constants write none). */
export function bytes(g: Graph, dims: SymbolicSizes = {}): number {
  return g.nodes.reduce((s, n) => {
    const kind = opDef(n.op).kind;
    if (kind === 'view' || kind === 'source') return s;
    return s + count(n.shape, dims) * (BYTES[n.dtype] ?? 4);
  }, 0);
}

export function paramCount(g: Graph): number {
  return g.nodes.reduce((s, n) => s + (n.op === 'param' ? count(n.shape, {}) : 0), 0);
}

export function costFunction(model: CostModel, dims: SymbolicSizes = {}): (g: Graph) => number {
  if (typeof model === 'function') return model;
  return model === 'flops' ? (g) => flops(g, dims) : model === 'bytes' ? (g) => bytes(g, dims) : paramCount;
}
