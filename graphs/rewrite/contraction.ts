// Einsum contraction ordering: the order in which an n-ary einsum's operands are contracted
// pairwise. Optimal by dynamic programming over subsets of operands for small networks
// (optimalLimit, default 10 operands), greedy (cheapest next pair) for larger ones, and never
// worse than left to right. Cost = FLOPs of the pairwise contractions, 2 × the product of the
// sizes of every index either operand carries. The rule lowers `einsum` nodes through
// ops/einsum.ts along the chosen path and notes the FLOPs before (left to right) and after.

import type { Dim } from '../types.js';
import { ShapeError } from '../errors.js';
import { rule, type Rule } from './engine.js';
import { pat } from './pattern.js';
import { einsum, einsumSizes, leftToRightPath, parseEinsum, type ContractionPath } from '../../ops/einsum.js';

export interface ContractionOrder {
  readonly path: ContractionPath;
  readonly flops: number;
  readonly leftToRightFlops: number;
  readonly method: 'optimal' | 'greedy' | 'left-to-right';
}

export interface OrderOptions {
  /** the most operands ordered exactly (default 10) */
  readonly optimalLimit?: number;
}

type Sizes = ReadonlyMap<string, number>;

function prod(idx: Iterable<string>, sizes: Sizes): number {
  let p = 1;
  for (const c of idx) p *= sizes.get(c)!;
  return p;
}

/** Each operand's indices after summing out those no other operand or the output has. */
function presummed(inputs: readonly (readonly string[])[], output: readonly string[]): Set<string>[] {
  return inputs.map((ix, j) => {
    const elsewhere = new Set([...output, ...inputs.filter((_, k) => k !== j).flat()]);
    return new Set(ix.filter((c) => elsewhere.has(c)));
  });
}

/** FLOPs of contracting along `path` (see the module header for the cost). */
export function pathFlops(inputs: readonly (readonly string[])[], output: readonly string[], sizes: Sizes, path: ContractionPath): number {
  let terms = presummed(inputs, output);
  let total = 0;
  for (const [i, j] of path) {
    const a = terms[i]!, b = terms[j]!;
    const rest = terms.filter((_, k) => k !== i && k !== j);
    const union = new Set([...a, ...b]);
    total += 2 * prod(union, sizes);
    const later = new Set([...output, ...rest.flatMap((t) => [...t])]);
    terms = [...rest, new Set([...union].filter((c) => later.has(c)))];
  }
  return total;
}

/** The best order this module finds for contracting `inputs` into `output`. */
export function contractionOrder(inputs: readonly (readonly string[])[], output: readonly string[], sizes: Sizes, opts: OrderOptions = {}): ContractionOrder {
  const n = inputs.length;
  const ltrPath = leftToRightPath(n);
  const ltr = pathFlops(inputs, output, sizes, ltrPath);
  if (n <= 2) return { path: ltrPath, flops: ltr, leftToRightFlops: ltr, method: 'left-to-right' };
  const [path, method] = n <= (opts.optimalLimit ?? 10) ? [optimalPath(inputs, output, sizes), 'optimal' as const] : [greedyPath(inputs, output, sizes), 'greedy' as const];
  const flops = pathFlops(inputs, output, sizes, path);
  return flops <= ltr ? { path, flops, leftToRightFlops: ltr, method } : { path: ltrPath, flops: ltr, leftToRightFlops: ltr, method: 'left-to-right' };
}

/** Dynamic program over subsets: best[S] = min over splits S = A + B of best[A] + best[B] + cost(A, B). */
function optimalPath(inputs: readonly (readonly string[])[], output: readonly string[], sizes: Sizes): ContractionPath {
  const n = inputs.length, full = (1 << n) - 1;
  const ops = presummed(inputs, output);
  const outSet = new Set(output);
  // indices of the intermediate for subset S: those of S's operands still needed outside S
  const idxOf = new Map<number, Set<string>>();
  const indices = (s: number): Set<string> => {
    let r = idxOf.get(s);
    if (r) return r;
    const inside = new Set<string>(), outside = new Set<string>(outSet);
    for (let j = 0; j < n; j++) for (const c of ops[j]!) (s & (1 << j) ? inside : outside).add(c);
    r = new Set([...inside].filter((c) => outside.has(c)));
    idxOf.set(s, r);
    return r;
  };
  const best = new Float64Array(full + 1).fill(Infinity);
  const split = new Int32Array(full + 1);
  for (let j = 0; j < n; j++) best[1 << j] = 0;
  for (let s = 1; s <= full; s++) {
    if ((s & (s - 1)) === 0) continue;
    const low = s & -s;
    // each split once: the part holding the lowest operand is A
    for (let a = (s - 1) & s; a > 0; a = (a - 1) & s) {
      if (!(a & low)) continue;
      const b = s ^ a;
      const cost = best[a]! + best[b]! + 2 * prod(new Set([...indices(a), ...indices(b)]), sizes);
      if (cost < best[s]!) {
        best[s] = cost;
        split[s] = a;
      }
    }
  }
  // replay the tree as a path over opt_einsum's operand list
  const list: number[] = Array.from({ length: n }, (_, j) => 1 << j);
  const path: [number, number][] = [];
  const build = (s: number): void => {
    if ((s & (s - 1)) === 0) return;
    const a = split[s]!, b = s ^ a;
    build(a);
    build(b);
    const i = list.indexOf(a), j = list.indexOf(b);
    path.push([i, j]);
    list.splice(Math.max(i, j), 1);
    list.splice(Math.min(i, j), 1);
    list.push(s);
  };
  build(full);
  return path;
}

/** Repeatedly contract the cheapest pair, preferring pairs that share an index. */
function greedyPath(inputs: readonly (readonly string[])[], output: readonly string[], sizes: Sizes): ContractionPath {
  let terms = presummed(inputs, output);
  const path: [number, number][] = [];
  while (terms.length > 1) {
    let pick: [number, number] = [0, 1];
    let bestKey: [number, number, number] = [Infinity, Infinity, Infinity];
    for (let i = 0; i < terms.length; i++) {
      for (let j = i + 1; j < terms.length; j++) {
        const a = terms[i]!, b = terms[j]!;
        const shares = [...a].some((c) => b.has(c)) ? 0 : 1;
        const cost = 2 * prod(new Set([...a, ...b]), sizes);
        const key: [number, number, number] = [shares, cost, prod(a, sizes) + prod(b, sizes)];
        if (key[0] < bestKey[0] || (key[0] === bestKey[0] && (key[1] < bestKey[1] || (key[1] === bestKey[1] && key[2] < bestKey[2])))) {
          bestKey = key;
          pick = [i, j];
        }
      }
    }
    const [i, j] = pick;
    const rest = terms.filter((_, k) => k !== i && k !== j);
    const later = new Set([...output, ...rest.flatMap((t) => [...t])]);
    terms = [...rest, new Set([...terms[i]!, ...terms[j]!].filter((c) => later.has(c)))];
    path.push(pick);
  }
  return path;
}

export interface EinsumRuleOptions extends OrderOptions {
  /** what a symbolic dim counts as when ordering (default 32) */
  readonly symbolicSize?: number;
}

/** Lower each `einsum` node along the best contraction order found. */
export function einsumOrderRules(opts: EinsumRuleOptions = {}): readonly Rule[] {
  const sym = opts.symbolicSize ?? 32;
  return [
    rule('einsum-order', pat.op('einsum'), (b, m, ctx) => {
      const spec = String(m.root.attrs['spec']);
      const operands = m.root.inputs.map((i) => b.tensor(i));
      const shapes = operands.map((t) => t.shape);
      const { inputs, output } = parseEinsum(spec, shapes);
      const sizes = new Map([...einsumSizes(inputs, shapes)].map(([c, d]: [string, Dim]) => [c, typeof d === 'number' ? d : sym]));
      const order = contractionOrder(inputs, output, sizes, opts);
      for (const path of [order.path, leftToRightPath(operands.length)]) {
        try {
          const t = einsum(b, spec, operands, path);
          const flops = path === order.path ? order.flops : order.leftToRightFlops;
          ctx.note(`'${spec}': ${order.leftToRightFlops} FLOPs left to right, ${flops} ${path === order.path ? order.method : 'left to right'} (path ${JSON.stringify(path)})`);
          return t;
        } catch (e) {
          // several symbolic dims on one matmul axis: try the next path
          if (!(e instanceof ShapeError)) throw e;
        }
      }
      return null;
    }),
  ];
}

export const einsumRules: readonly Rule[] = einsumOrderRules();
