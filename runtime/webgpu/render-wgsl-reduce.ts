// Reductions split over many workgroups: a map kernel whose reductions are long and whose outputs
// are few (a full sum, a loss, a per-row statistic of a few rows) runs as a tree in two passes.
// Pass 1 gives each output `parts` workgroups per reduction; each reduces a contiguous chunk in
// registers, combines its invocations (a workgroup-memory tree, or subgroup operations where the
// adapter has them) and writes one partial to a scratch buffer. Pass 2 gives each output one
// workgroup that combines its partials and evaluates the kernel's epilogue. WGSL has no float
// atomics, so the combine is a second dispatch, not an atomic. Argmax/argmin partials carry their
// index and ties go to the smaller index, which is the first occurrence, as on the CPU.
// Reductions nested in a reduction's body are left to the one-workgroup path (render-wgsl.ts).

import type { DType } from '../../graphs/types.js';
import { numel } from '../../graphs/types.js';
import { stridesOf, type Expr, type MapKernel, type ReduceOp } from '../../ops/kernel-ir.js';
import type { KernelPass, RenderedKernel } from './render-wgsl.js';
import {
  ExprEmitter, bindingTypes, convert, declareBindings, grid, literal, loopIterations, toStorage, valueType,
} from './wgsl-expr.js';

type Reduce = Extract<Expr, { k: 'reduce' }>;

/** How a kernel's reductions are laid out over workgroups (what the tuner picks among). */
export interface ReduceVariant {
  /**
   * partial results per output and reduction: 'auto' sizes them from the output count and the
   * reduction length, 'off' keeps one workgroup per output, a number forces that many (at most the
   * reduction length divided by the workgroup size; 1 is 'off')
   */
  readonly split: 'auto' | 'off' | number;
  /** combine a workgroup with subgroup operations (needs the adapter's 'subgroups' feature) */
  readonly subgroups: boolean;
  /** invocations per workgroup of both passes (a power of two; default 256) */
  readonly workgroupSize?: number;
  /**
   * workgroups pass 1 aims for under 'auto' (default 4096, enough to fill a large GPU; a software
   * adapter runs a workgroup per thread and wants few: barriers cost it more than they save)
   */
  readonly targetWorkgroups?: number;
}

export const DEFAULT_REDUCE: ReduceVariant = { split: 'auto', subgroups: false, workgroupSize: 256, targetWorkgroups: 4096 };

/** What 'auto' aims for on a software adapter (llvmpipe, SwiftShader): measured best on llvmpipe. */
export const SOFTWARE_REDUCE: ReduceVariant = { split: 'auto', subgroups: false, workgroupSize: 64, targetWorkgroups: 32 };
/** Elements an invocation of pass 1 reduces per loop step, without bounds checks (measured on llvmpipe: 4M sums 1.6 -> 2.5 GB/s). */
const UNROLL = 4;
/** Iterations one invocation of pass 1 runs at most (llvmpipe stops loops at 65535). */
const MAX_CHUNK_ITERATIONS = 16384;

/** The top-level reductions of a kernel when every one of them has a reduction-free body, else null. */
export function splittableReductions(expr: Expr): Reduce[] | null {
  const found: Reduce[] = [];
  const seen = new Set<Expr>();
  let ok = true;
  const hasReduce = (e: Expr): boolean => {
    switch (e.k) {
      case 'reduce': return true;
      case 'unary': case 'cast': return hasReduce(e.a);
      case 'binary': case 'select': return hasReduce(e.a) || hasReduce(e.b);
      case 'where': return hasReduce(e.c) || hasReduce(e.a) || hasReduce(e.b);
      case 'rand': return e.key !== undefined && hasReduce(e.key);
      default: return false;
    }
  };
  const walk = (e: Expr): void => {
    if (seen.has(e)) return;
    seen.add(e);
    switch (e.k) {
      case 'reduce':
        if (hasReduce(e.body)) ok = false;
        found.push(e);
        return;
      case 'unary': case 'cast': walk(e.a); return;
      case 'binary': case 'select': walk(e.a); walk(e.b); return;
      case 'where': walk(e.c); walk(e.a); walk(e.b); return;
      case 'rand': if (e.key) walk(e.key); return;
      default: return;
    }
  };
  walk(expr);
  return ok && found.length > 0 ? found : null;
}

const lengthOf = (r: Reduce) => r.vars.reduce((a, v) => a * v.size, 1);

/**
 * Partial results per output for a reduction of `length` elements over `outputs` outputs with
 * workgroups of `wg`; 1 means "do not split".
 */
export function chooseParts(variant: ReduceVariant, outputs: number, length: number, wg: number): number {
  if (length <= wg) return 1;
  const most = Math.max(1, Math.floor(length / wg));
  // a chunk must stay under the loop limit whatever was asked
  const least = Math.ceil(length / (wg * MAX_CHUNK_ITERATIONS));
  let parts: number;
  if (variant.split === 'off') parts = 1;
  else if (typeof variant.split === 'number') parts = Math.min(most, Math.max(1, Math.floor(variant.split)));
  else parts = Math.min(Math.ceil(length / (wg * 4)), Math.max(1, Math.floor((variant.targetWorkgroups ?? 4096) / outputs)));
  parts = Math.max(parts, least);
  // equal chunks that are whole multiples of the workgroup
  const chunk = Math.ceil(Math.ceil(length / parts) / wg) * wg;
  return Math.ceil(length / chunk);
}

/** Largest power of two at most `n` (the tree combine halves the workgroup). */
export function pow2Floor(n: number): number {
  return 2 ** Math.floor(Math.log2(Math.max(1, n)));
}

interface Plan {
  readonly r: Reduce;
  readonly length: number;
  readonly parts: number;
  readonly chunk: number;
  /** first scratch word of this reduction's values; its indices follow (argmax/argmin) */
  readonly base: number;
}

/**
 * The two-pass rendering of `k`, or null when its reductions are short, its outputs many, a
 * reduction is nested in another, or the scratch binding would exceed `maxBuffers`.
 */
export function renderSplitReduce(
  k: MapKernel, variant: ReduceVariant, wgAsked: number, maxDim: number, maxBuffers: number, half = false,
): RenderedKernel | null {
  if (variant.split === 'off' || k.inputs.length + 2 > maxBuffers) return null;
  const reduces = splittableReductions(k.expr);
  if (!reduces) return null;
  const total = numel(k.out.shape);
  if (total === 0) return null;
  const wg = pow2Floor(Math.min(variant.workgroupSize ?? 256, wgAsked));
  let words = 0;
  const plans: Plan[] = [];
  for (const r of reduces) {
    const length = lengthOf(r);
    const parts = chooseParts(variant, total, length, wg);
    const chunk = Math.ceil(length / parts / wg) * wg;
    plans.push({ r, length, parts, chunk, base: words });
    words += total * parts * (isArg(r.op) ? 2 : 1);
  }
  if (plans.every((p) => p.parts <= 1)) return null;
  const passes: KernelPass[] = plans.map((p) => partialPass(k, p, wg, maxDim, variant.subgroups, half));
  passes.push(finalPass(k, plans, wg, maxDim, half));
  const body = Math.max(...plans.map((p) => (Math.ceil(p.chunk / wg)) * (1 + loopIterations(p.r.body))));
  const combine = Math.max(...plans.map((p) => Math.ceil(p.parts / wg)));
  return {
    passes,
    bindings: bindingTypes(k.inputs, k.out.dtype, new Set(), half),
    loopIterations: Math.max(body, combine) + Math.log2(wg),
    scratchWords: words,
  };
}

const isArg = (op: ReduceOp) => op === 'argmax' || op === 'argmin';

/** The accumulator's dtype: the body's for argmax/argmin, else the result's. */
function accType(r: Reduce): DType {
  return isArg(r.op) ? r.body.dtype : r.dtype === 'bool' ? 'bool' : r.dtype;
}

function worst(op: 'max' | 'min', d: DType, em: ExprEmitter): string {
  const lo = op === 'max';
  if (d === 'bool') return lo ? 'false' : 'true';
  if (d === 'i32') return lo ? 'i32(-2147483647 - 1)' : '2147483647i';
  em.helpers.add('fn rheo_f32_bits(b: u32) -> f32 { return bitcast<f32>(b); }');
  return lo ? 'rheo_f32_bits(0xff800000u)' : 'rheo_f32_bits(0x7f800000u)';
}

function initial(r: Reduce, em: ExprEmitter): string {
  const at = accType(r);
  if (isArg(r.op)) return worst(r.op === 'argmax' ? 'max' : 'min', at, em);
  return r.op === 'sum' ? literal(0, at) : worst(r.op as 'max' | 'min', at, em);
}

/** Statements folding value `v` (index `vi` for argmax/argmin) into accumulator `t` (`ti`). */
function update(r: Reduce, t: string, v: string, vi: string, tieToSmaller: boolean): string {
  const at = accType(r);
  if (isArg(r.op)) {
    const better = at === 'bool'
      ? (r.op === 'argmax' ? `(${v} && !${t})` : `(!${v} && ${t})`)
      : `(${v} ${r.op === 'argmax' ? '>' : '<'} ${t})`;
    const tie = tieToSmaller ? ` || (${v} == ${t} && ${vi} < ${t}i)` : '';
    return `if (${better}${tie}) { ${t} = ${v}; ${t}i = ${vi}; }`;
  }
  if (at === 'bool') return `${t} = ${t} ${r.op === 'min' ? '&' : '|'} ${v};`;
  return `${t} = ${r.op === 'sum' ? `${t} + ${v}` : `${r.op}(${t}, ${v})`};`;
}

/** Scratch words are u32: floats and ints are bit-cast, bools are 0/1. */
function toWord(x: string, d: DType): string {
  const vt = valueType(d);
  return vt === 'bool' ? `select(0u, 1u, ${x})` : `bitcast<u32>(${x})`;
}
function fromWord(x: string, d: DType): string {
  const vt = valueType(d);
  return vt === 'bool' ? `(${x} != 0u)` : `bitcast<${vt}>(${x})`;
}

/**
 * Combine every invocation's (`t`, `ti`) into all of them: subgroup operations then a short tree
 * where allowed (sum/max/min), else a workgroup-memory tree. Ends with a barrier.
 */
function combineWorkgroup(em: ExprEmitter, r: Reduce, t: string, wg: number, subgroups: boolean): void {
  const at = accType(r);
  const vt = valueType(at) === 'bool' ? 'i32' : valueType(at);
  const arg = isArg(r.op);
  const sh = `rheo_part_${vt}`;
  em.shared.add(`var<workgroup> ${sh}: array<${vt}, ${wg}>;`);
  if (arg) em.shared.add(`var<workgroup> rheo_part_x: array<i32, ${wg}>;`);
  const asShared = valueType(at) === 'bool' ? `select(0i, 1i, ${t})` : t;
  const fromShared = (x: string) => (valueType(at) === 'bool' ? `(${x} != 0i)` : x);
  if (subgroups && !arg) {
    const op = r.op === 'sum' && valueType(at) !== 'bool' ? 'subgroupAdd' : r.op === 'min' ? 'subgroupMin' : 'subgroupMax';
    // the subgroups' results meet in workgroup memory, and the first invocation folds them. Each
    // subgroup claims a slot: WGSL does not promise that a subgroup is a run of consecutive
    // invocation indices, nor that all subgroups have subgroup_size invocations. The counter
    // starts at zero with the workgroup and is never reset: one subgroup combine per shader (pass 1
    // has one reduction; pass 2 combines through workgroup memory)
    em.shared.add('var<workgroup> rheo_sg_slots: atomic<u32>;');
    em.emit(`let ${t}s = ${op}(${asShared});`);
    em.emit(`if (sgi == 0u) { ${sh}[atomicAdd(&rheo_sg_slots, 1u)] = ${t}s; }`);
    em.emit('workgroupBarrier();');
    const fold = r.op === 'sum' && valueType(at) !== 'bool' ? 'a + b' : r.op === 'min' ? 'min(a, b)' : 'max(a, b)'; // a, b: locals of the fold below
    em.emit(`if (lidx == 0u) { var a = ${sh}[0]; for (var sgk: u32 = 1u; sgk < atomicLoad(&rheo_sg_slots); sgk = sgk + 1u) { let b = ${sh}[sgk]; a = ${fold}; } ${sh}[0] = a; }`);
    em.emit('workgroupBarrier();');
    em.emit(`${t} = ${fromShared(`${sh}[0]`)};`);
    em.emit('workgroupBarrier();');
    return;
  }
  em.emit(`${sh}[lid] = ${asShared};`);
  if (arg) em.emit(`rheo_part_x[lid] = ${t}i;`);
  em.emit('workgroupBarrier();');
  for (let s = wg / 2; s >= 1; s /= 2) {
    const a = `${sh}[lid]`, b = `${sh}[lid + ${s}i]`;
    let upd: string;
    if (arg) {
      const cmp = r.op === 'argmax' ? '>' : '<';
      const xa = 'rheo_part_x[lid]', xb = `rheo_part_x[lid + ${s}i]`;
      upd = `if (${b} ${cmp} ${a} || (${b} == ${a} && ${xb} < ${xa})) { ${a} = ${b}; ${xa} = ${xb}; }`;
    } else if (r.op === 'sum' && valueType(at) !== 'bool') {
      upd = `${a} = ${a} + ${b};`;
    } else {
      upd = `${a} = ${r.op === 'min' ? 'min' : 'max'}(${a}, ${b});`;
    }
    em.emit(`if (lid < ${s}i) { ${upd} }`);
    em.emit('workgroupBarrier();');
  }
  em.emit(`${t} = ${fromShared(`${sh}[0]`)};`);
  if (arg) em.emit(`${t}i = rheo_part_x[0];`);
  em.emit('workgroupBarrier();');
}

/** Bind the output variables `i0...` from the flat output index `f`. */
function bindOutputs(em: ExprEmitter, shape: readonly number[]): void {
  const st = stridesOf(shape);
  shape.forEach((d, i) => {
    const q = st[i] === 1 ? 'f' : `(f / ${st[i]}i)`;
    em.emit(`let i${i}: i32 = ${d === 1 ? '0i' : i === 0 ? q : `${q} % ${d}i`};`);
    em.bindVar(`i${i}`, `i${i}`);
  });
}

function shader(em: ExprEmitter, k: MapKernel, wg: number, subgroups: boolean): string {
  const enable = subgroups ? 'enable subgroups;\n' : '';
  const sg = subgroups ? ', @builtin(subgroup_invocation_id) sgi: u32' : '';
  return `${enable}${[...em.helpers, ...declareBindings(k.inputs, k.out.dtype, new Set(), em.half), SCRATCH_DECL(k.inputs.length + 1), ...em.shared].join('\n')}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lidx: u32${sg}) {
${em.lines.join('\n')}
}
`;
}

const SCRATCH_DECL = (binding: number) => `@group(0) @binding(${binding}) var<storage, read_write> scratch: array<u32>;`;

/** Pass 1 for one reduction: workgroup w reduces chunk (w mod parts) of output (w / parts). */
function partialPass(k: MapKernel, p: Plan, wg: number, maxDim: number, subgroups: boolean, half: boolean): KernelPass {
  const total = numel(k.out.shape);
  const groups = total * p.parts;
  const workgroups = grid(groups, maxDim);
  const em = new ExprEmitter(k.inputs, new Set(), 1, half);
  const { r } = p;
  em.emit(`let w = wid.x + wid.y * ${workgroups[0]}u;`);
  // uniform per workgroup: the early return and the loop bounds keep the barriers legal
  em.emit(`if (w >= ${groups}u) { return; }`);
  em.emit('let lid = i32(lidx);');
  em.emit(`let f = i32(w / ${p.parts}u);`);
  em.emit(`let lo = i32(w % ${p.parts}u) * ${p.chunk}i;`);
  em.emit(`let hi = min(lo + ${p.chunk}i, ${p.length}i);`);
  bindOutputs(em, k.out.shape);
  const at = accType(r);
  em.emit(`var t: ${valueType(at)} = ${initial(r, em)};`);
  if (isArg(r.op)) em.emit('var ti: i32 = 0i;');
  /** Emit `q`'s loop variables and the body's value there (the accumulator's type). */
  const element = (q: string, tag: string): string => {
    const names = new Map<string, string>();
    let inner = 1;
    for (let i = r.vars.length - 1; i >= 0; i--) {
      const v = r.vars[i]!;
      const name = `q${tag}_${i}`;
      const qq = inner === 1 ? q : `(${q} / ${inner}i)`;
      em.emit(`    let ${name}: i32 = ${i === 0 ? qq : `${qq} % ${Math.max(1, v.size)}i`};`);
      names.set(v.name, name);
      inner *= Math.max(1, v.size);
    }
    return em.inScope(names, () => convert(em.value(r.body), r.body.dtype, at));
  };
  // UNROLL elements per step while whole steps fit (no bounds checks; the condition is uniform),
  // then single elements with checks. An invocation sees increasing indices, so with strict
  // comparisons the first occurrence wins argmax/argmin ties.
  const step = wg * UNROLL;
  em.emit('var s: i32 = lo;');
  em.emit(`for (; s + ${step}i <= hi; s = s + ${step}i) {`);
  const vs: string[] = [];
  for (let j = 0; j < UNROLL; j++) {
    em.emit(`    let qa${j}: i32 = s + ${j * wg}i + lid;`);
    vs.push(element(`qa${j}`, `a${j}`));
  }
  if (r.op === 'sum' && valueType(at) !== 'bool') em.emit(`    t = t + ((${vs[0]} + ${vs[1]}) + (${vs[2]} + ${vs[3]}));`);
  else vs.forEach((v, j) => em.emit(`    ${update(r, 't', v, `qa${j}`, false)}`));
  em.emit('}');
  em.emit(`for (; s < hi; s = s + ${wg}i) {`);
  em.emit('  let q = s + lid;');
  em.emit('  if (q < hi) {');
  em.emit(`    ${update(r, 't', element('q', ''), 'q', false)}`);
  em.emit('  }');
  em.emit('}');
  combineWorkgroup(em, r, 't', wg, subgroups);
  em.emit('if (lid == 0i) {');
  em.emit(`  scratch[${p.base}u + w] = ${toWord('t', at)};`);
  if (isArg(r.op)) em.emit(`  scratch[${p.base + total * p.parts}u + w] = bitcast<u32>(ti);`);
  em.emit('}');
  return { code: shader(em, k, wg, subgroups), workgroups };
}

/** Pass 2: workgroup f combines output f's partials of every reduction, then evaluates the epilogue. */
function finalPass(k: MapKernel, plans: readonly Plan[], wg: number, maxDim: number, half: boolean): KernelPass {
  const total = numel(k.out.shape);
  const workgroups = grid(total, maxDim);
  const em = new ExprEmitter(k.inputs, new Set(), 1, half);
  em.emit(`let w = wid.x + wid.y * ${workgroups[0]}u;`);
  em.emit(`if (w >= ${total}u) { return; }`);
  em.emit('let lid = i32(lidx);');
  em.emit('let f = i32(w);');
  bindOutputs(em, k.out.shape);
  plans.forEach((p, j) => {
    const { r } = p;
    const at = accType(r);
    const t = `c${j}`;
    em.emit(`var ${t}: ${valueType(at)} = ${initial(r, em)};`);
    if (isArg(r.op)) em.emit(`var ${t}i: i32 = 0i;`);
    em.emit(`for (var s: i32 = 0i; s < ${p.parts}i; s = s + ${wg}i) {`);
    em.emit('  let q = s + lid;');
    em.emit(`  if (q < ${p.parts}i) {`);
    const at0 = `${p.base}i + f * ${p.parts}i + q`;
    em.emit(`    let v = ${fromWord(`scratch[${at0}]`, at)};`);
    if (isArg(r.op)) em.emit(`    let vi = bitcast<i32>(scratch[${p.base + total * p.parts}i + f * ${p.parts}i + q]);`);
    // partials arrive in chunk order per invocation, but indices decide ties: see `update`
    em.emit(`    ${update(r, t, 'v', 'vi', true)}`);
    em.emit('  }');
    em.emit('}');
    combineWorkgroup(em, r, t, wg, false);
    em.provide(r, isArg(r.op) ? convert(`${t}i`, 'i32', r.dtype) : convert(t, at, r.dtype));
  });
  const v = toStorage(convert(em.value(k.expr), k.expr.dtype, k.out.dtype), k.out.dtype, half);
  em.emit(`if (lid == 0i) { out[w] = ${v}; }`);
  return { code: shader(em, k, wg, false), workgroups };
}
