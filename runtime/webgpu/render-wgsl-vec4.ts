// Map kernels four outputs at a time. When the output's last axis is a multiple of 4 and the
// expression has no reductions, each invocation computes four consecutive elements as vec4s: a
// contiguous, aligned read is one vec4 load, a value that does not vary along the last axis is
// computed once and splatted, the arithmetic runs on vectors, and whatever has no vector form
// (rand, iota, integer division, mod, pow, unaligned reads) is computed per lane by the scalar
// emitter. The output is written with one vec4 store. Measured on llvmpipe: about 2x faster than
// one element per invocation on a 1M-element elementwise chain. Source text only.

import type { DType } from '../../graphs/types.js';
import { numel } from '../../graphs/types.js';
import { hasReduce, stridesOf, type Expr, type IndexExpr, type IndexPred, type MapKernel } from '../../ops/kernel-ir.js';
import type { RenderedKernel } from './render-wgsl.js';
import { ExprEmitter, bindingTypes, convert, declareBindings, grid, storageType, valueType } from './wgsl-expr.js';

/** Whether `renderMapVec4` can render this kernel. */
export function vectorizable(k: MapKernel): boolean {
  const last = k.out.shape[k.out.shape.length - 1];
  return last !== undefined && last % 4 === 0 && numel(k.out.shape) > 0 && !hasReduce(k.expr);
}

// ---------------------------------------------------------------- index analysis

const usesVar = (e: IndexExpr, v: string): boolean => {
  switch (e.k) {
    case 'var': return e.name === v;
    case 'const': return false;
    case 'add': return usesVar(e.a, v) || usesVar(e.b, v);
    case 'mul': case 'div': case 'mod': return usesVar(e.a, v);
    case 'loadIndex': return usesVar(e.at, v);
  }
};

const predUses = (p: IndexPred, v: string): boolean => (p.k === 'and' ? predUses(p.a, v) || predUses(p.b, v) : usesVar(p.a, v));

/** The coefficient of `v` when `e` is (terms without v) + c·v; null when v appears otherwise. */
function laneCoefficient(e: IndexExpr, v: string): number | null {
  switch (e.k) {
    case 'var': return e.name === v ? 1 : 0;
    case 'const': return 0;
    case 'add': {
      const a = laneCoefficient(e.a, v), b = laneCoefficient(e.b, v);
      return a === null || b === null ? null : a + b;
    }
    case 'mul': {
      const a = laneCoefficient(e.a, v);
      return a === null ? null : a * e.c;
    }
    default: return usesVar(e, v) ? null : 0;
  }
}

/** Whether every value of `e` is a multiple of 4, given that `v` (the lane base) is. */
function aligned(e: IndexExpr, v: string): boolean {
  switch (e.k) {
    case 'var': return e.name === v;
    case 'const': return e.v % 4 === 0;
    case 'add': return aligned(e.a, v) && aligned(e.b, v);
    case 'mul': return e.c % 4 === 0 || aligned(e.a, v);
    default: return false;
  }
}

// ---------------------------------------------------------------- the vector emitter

const isFloat = (d: DType | undefined) => d === 'f32' || d === 'f16';
const vecType = (d: DType) => `vec4<${valueType(d)}>`;
const LANES = [0, 1, 2, 3];

class VecEmitter {
  private readonly cache = new Map<Expr, string>();
  private readonly laneDependent = new Map<Expr, boolean>();

  constructor(
    readonly em: ExprEmitter,
    /** the last output variable: the lane base, a multiple of 4 */
    readonly lane: string,
    readonly inputs: MapKernel['inputs'],
    readonly vec4Inputs: ReadonlySet<number>,
  ) {}

  /** Whether `e` varies along the last output axis. */
  dependsOnLane(e: Expr): boolean {
    let d = this.laneDependent.get(e);
    if (d === undefined) {
      const sub = (x: Expr) => this.dependsOnLane(x);
      switch (e.k) {
        case 'load': case 'index': d = usesVar(e.at, this.lane); break;
        case 'rand': d = usesVar(e.at, this.lane) || (e.key !== undefined && sub(e.key)); break;
        case 'unary': case 'cast': d = sub(e.a); break;
        case 'binary': d = sub(e.a) || sub(e.b); break;
        case 'where': d = sub(e.c) || sub(e.a) || sub(e.b); break;
        case 'select': d = predUses(e.pred, this.lane) || sub(e.a) || sub(e.b); break;
        default: d = false;
      }
      this.laneDependent.set(e, d);
    }
    return d;
  }

  private bind(d: DType, code: string): string {
    const t = this.em.fresh('v');
    this.em.emit(`let ${t}: ${vecType(d)} = ${code};`);
    return t;
  }

  private splat(x: string, d: DType): string {
    return this.bind(d, `${vecType(d)}(${x})`);
  }

  private perLane(e: Expr): string {
    const parts = LANES.map((l) => this.em.inScope(new Map([[this.lane, `(${this.lane} + ${l}i)`]]), () => this.em.value(e)));
    return this.bind(e.dtype, `${vecType(e.dtype)}(${parts.join(', ')})`);
  }

  /** A vec4 of `e`'s values at the four lanes, of type vec4<valueType(e.dtype)>. */
  value(e: Expr): string {
    let v = this.cache.get(e);
    if (v === undefined) {
      v = this.dependsOnLane(e) ? this.varying(e) : this.splat(this.em.value(e), e.dtype);
      this.cache.set(e, v);
    }
    return v;
  }

  private varying(e: Expr): string {
    switch (e.k) {
      case 'load': {
        const d = this.inputs[e.buf]!.dtype;
        if (this.vec4Inputs.has(e.buf) && laneCoefficient(e.at, this.lane) === 1 && aligned(e.at, this.lane)) {
          const raw = `in${e.buf}[(${this.em.index(e.at)}) >> 2u]`;
          return this.bind(e.dtype, vconvert(d === 'f16' && this.em.half ? `vec4<f32>(${raw})` : raw, d, e.dtype));
        }
        return this.perLane(e);
      }
      case 'cast': {
        // a cast to f16 rounds to binary16 (the registers stay f32)
        const v = vconvert(this.value(e.a), e.a.dtype, e.dtype);
        return this.bind(e.dtype, e.dtype === 'f16' && e.a.dtype !== 'f16' && e.a.dtype !== 'bool' ? `quantizeToF16(${v})` : v);
      }
      case 'where': {
        const c = vconvert(this.value(e.c), e.c.dtype, 'bool');
        return this.bind(e.dtype, `select(${vconvert(this.value(e.b), e.b.dtype, e.dtype)}, ${vconvert(this.value(e.a), e.a.dtype, e.dtype)}, ${c})`);
      }
      case 'select': {
        const preds = LANES.map((l) => this.em.inScope(new Map([[this.lane, `(${this.lane} + ${l}i)`]]), () => this.em.pred(e.pred)));
        const a = vconvert(this.value(e.a), e.a.dtype, e.dtype), b = vconvert(this.value(e.b), e.b.dtype, e.dtype);
        return this.bind(e.dtype, `select(${b}, ${a}, vec4<bool>(${preds.join(', ')}))`);
      }
      case 'unary': {
        const r = this.unary(e.op, e.a, e.dtype);
        return r === null ? this.perLane(e) : this.bind(e.dtype, r);
      }
      case 'binary': {
        const r = this.binary(e.op, e.a, e.b, e.dtype);
        return r === null ? this.perLane(e) : this.bind(e.dtype, r);
      }
      default: return this.perLane(e);
    }
  }

  /** Vector forms of the scalar emitter's unary ops (same math, splatted constants). */
  private unary(op: Extract<Expr, { k: 'unary' }>['op'], a: Expr, d: DType): string | null {
    const intOk = op === 'neg' || op === 'abs' || op === 'sign' || op === 'relu' || op === 'square' || op === 'not';
    const ct: DType = op === 'not' && d === 'bool' ? 'bool' : intOk && d === 'i32' ? 'i32' : 'f32';
    if (ct === 'i32' && op === 'sign') return null; // sign() of integer vectors is not in every WGSL
    const x = vconvert(this.value(a), a.dtype, ct);
    const T = vecType(ct);
    const zero = `${T}(${ct === 'i32' ? '0i' : '0.0f'})`, one = `${T}(${ct === 'i32' ? '1i' : '1.0f'})`;
    let r: string;
    switch (op) {
      case 'neg': r = `(-${x})`; break;
      case 'exp': case 'log': case 'sqrt': case 'abs': case 'sin': case 'cos': case 'floor': case 'ceil':
      case 'sign': case 'round':
        r = `${op}(${x})`; break;
      case 'rsqrt': r = `(${one} / sqrt(${x}))`; break;
      case 'recip': r = `(${one} / ${x})`; break;
      case 'tanh': r = `tanh(clamp(${x}, ${T}(-20.0f), ${T}(20.0f)))`; break;
      case 'sigmoid': r = `(${one} / (${one} + exp(-${x})))`; break;
      case 'relu': r = `max(${x}, ${zero})`; break;
      case 'square': r = `(${x} * ${x})`; break;
      case 'step': r = `select(${zero}, ${one}, ${x} > ${zero})`; break;
      case 'not': r = ct === 'bool' ? `(!${x})` : `select(${zero}, ${one}, ${x} == ${zero})`; break;
    }
    return vconvert(r, ct, d);
  }

  /** Vector forms of the scalar emitter's binary ops; null for those computed per lane. */
  private binary(op: Extract<Expr, { k: 'binary' }>['op'], ea: Expr, eb: Expr, d: DType): string | null {
    const cmp = op === 'lt' || op === 'le' || op === 'gt' || op === 'ge' || op === 'eq' || op === 'ne';
    const logic = op === 'and' || op === 'or';
    const wide = (x: DType, y: DType): DType =>
      isFloat(x) || isFloat(y) ? 'f32' : x === 'i32' || y === 'i32' ? 'i32' : 'bool';
    const ct: DType = cmp ? wide(ea.dtype, eb.dtype) : logic ? 'bool' : d === 'bool' ? 'i32' : d;
    if (op === 'mod' || op === 'pow' || (op === 'div' && ct === 'i32')) return null;
    const a = vconvert(this.value(ea), ea.dtype, ct), b = vconvert(this.value(eb), eb.dtype, ct);
    const sym = { add: '+', sub: '-', mul: '*', div: '/', lt: '<', le: '<=', gt: '>', ge: '>=', eq: '==', ne: '!=', and: '&', or: '|' } as const;
    const r = op === 'max' || op === 'min' ? `${op}(${a}, ${b})` : `(${a} ${sym[op]} ${b})`;
    return vconvert(r, cmp ? 'bool' : ct, d);
  }
}

/** `convert` for vec4 values. */
function vconvert(x: string, from: DType, to: DType): string {
  const f = valueType(from), t = valueType(to);
  if (f === t) return x;
  const T = vecType(to);
  if (t === 'bool') return f === 'f32' ? `(${x} != vec4<f32>(0.0f))` : `(${x} != vec4<i32>(0i))`;
  if (f === 'bool') return t === 'f32' ? `select(${T}(0.0f), ${T}(1.0f), ${x})` : `select(${T}(0i), ${T}(1i), ${x})`;
  return `${T}(${x})`;
}

// ---------------------------------------------------------------- the kernel

/** WGSL for a vectorizable map kernel (see `vectorizable`): one invocation per four outputs. */
export function renderMapVec4(k: MapKernel, wg: number, maxDim: number, half = false): RenderedKernel {
  const shape = k.out.shape;
  const r = shape.length;
  const lane = `i${r - 1}`;
  const quads = numel(shape) / 4;
  const workgroups = grid(Math.ceil(quads / wg), maxDim);
  // float inputs read contiguously along the last axis are bound as vec4 arrays
  const vec4Inputs = new Set<number>();
  const scan = (e: Expr): void => {
    switch (e.k) {
      case 'load':
        if (isFloat(k.inputs[e.buf]?.dtype) && laneCoefficient(e.at, lane) === 1 && aligned(e.at, lane)) vec4Inputs.add(e.buf);
        return;
      case 'unary': case 'cast': return scan(e.a);
      case 'binary': case 'select': scan(e.a); return scan(e.b);
      case 'where': scan(e.c); scan(e.a); return scan(e.b);
      default: return;
    }
  };
  scan(k.expr);
  const em = new ExprEmitter(k.inputs, vec4Inputs, 1, half);
  em.emit(`let quad = gid.x + gid.y * ${workgroups[0] * wg}u;`);
  em.emit(`if (quad >= ${quads}u) { return; }`);
  em.emit('let f = i32(quad) * 4i;');
  const st = stridesOf(shape);
  shape.forEach((d, i) => {
    const q = st[i] === 1 ? 'f' : `(f / ${st[i]}i)`;
    em.emit(`let i${i}: i32 = ${d === 1 ? '0i' : i === 0 ? q : `${q} % ${d}i`};`);
    em.bindVar(`i${i}`, `i${i}`);
  });
  const ve = new VecEmitter(em, lane, k.inputs, vec4Inputs);
  const v = vconvert(ve.value(k.expr), k.expr.dtype, k.out.dtype);
  const od = k.out.dtype;
  const stored = od === 'bool' ? `select(vec4<u32>(0u), vec4<u32>(1u), ${v})` : od === 'f16' ? (half ? `vec4<f16>(${v})` : `quantizeToF16(${v})`) : v;
  em.emit(`out[quad] = ${stored};`);
  const decls = declareBindings(k.inputs, od, vec4Inputs, half);
  decls[decls.length - 1] = `@group(0) @binding(${k.inputs.length}) var<storage, read_write> out: array<vec4<${storageType(od, half)}>>;`;
  const code = `${[...em.helpers, ...decls].join('\n')}

@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
${em.lines.join('\n')}
}
`;
  const types = bindingTypes(k.inputs, od, vec4Inputs, half);
  types[types.length - 1] = `vec4<${storageType(od, half)}>`;
  return { passes: [{ code, workgroups }], bindings: types, loopIterations: 0 };
}
