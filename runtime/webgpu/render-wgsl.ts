// Kernel IR -> WGSL compute shaders. Map kernels get one invocation per output element; scatter-add
// gets one invocation per (outer, inner) column looping over rows in order, so it needs no float
// atomics and adds in the same order as the CPU backend. Matmul is in render-wgsl-matmul.ts.
// Storage: f32 (and f16, stored as f32) as f32, i32 as i32, bool as u32 0/1; all math is f32/i32.
// This module produces source text only; compiling and dispatching belong to backend.ts.

import type { DType } from '../../graphs/types.js';
import { RheoError } from '../../graphs/errors.js';
import { numel } from '../../graphs/types.js';
import { RAND_WGSL } from '../../ops/rand.js';
import {
  stridesOf,
  type BufferParam, type Expr, type IndexExpr, type IndexPred, type Kernel, type MapKernel,
  type ScatterAddKernel,
} from '../../ops/kernel-ir.js';
import { renderMatmul, type MatmulVariant } from './render-wgsl-matmul.js';

/** WGSL did not accept a generated kernel; carries the kernel's name and the whole source. */
export class KernelCompileError extends RheoError {
  constructor(
    readonly kernel: string,
    readonly messages: readonly string[],
    readonly source: string,
  ) {
    super(
      `kernel '${kernel}' failed to compile to WGSL:\n${messages.join('\n')}\n--- generated WGSL ---\n` +
        numbered(source),
    );
  }
}

function numbered(src: string): string {
  return src.split('\n').map((l, i) => `${String(i + 1).padStart(4)}| ${l}`).join('\n');
}

export interface RenderOptions {
  /** which matmul kernel to render (see render-wgsl-matmul.ts); default 'workgroup' */
  readonly matmul?: MatmulVariant;
  /** invocations per workgroup for map and scatter kernels; default 64 */
  readonly workgroupSize?: number;
  /** the device's maxComputeWorkgroupsPerDimension; default 65535 */
  readonly maxWorkgroupsPerDimension?: number;
}

export interface RenderedKernel {
  readonly code: string;
  /** workgroups to dispatch in x, y, z; all zero when the output is empty */
  readonly workgroups: readonly [number, number, number];
  /** the WGSL element type of each input binding, then of the output */
  readonly bindings: readonly string[];
}

/** WGSL source and dispatch size for one kernel. */
export function renderWgsl(kernel: Kernel, opts: RenderOptions = {}): RenderedKernel {
  switch (kernel.kind) {
    case 'map': return renderMap(kernel, opts);
    case 'scatterAdd': return renderScatterAdd(kernel, opts);
    case 'matmul': return renderMatmul(kernel, opts.matmul ?? 'workgroup', opts.maxWorkgroupsPerDimension ?? 65535);
  }
}

// ---------------------------------------------------------------- types and literals

/** Element type in a storage buffer. */
export function storageType(d: DType): string {
  return d === 'i32' ? 'i32' : d === 'bool' ? 'u32' : 'f32';
}

/** Type of a value in registers. */
export function valueType(d: DType): string {
  return d === 'i32' ? 'i32' : d === 'bool' ? 'bool' : 'f32';
}

/** Convert a register value of dtype `from` to dtype `to`. f32 -> i32 truncates (saturating). */
export function convert(x: string, from: DType, to: DType): string {
  const f = valueType(from), t = valueType(to);
  if (f === t) return x;
  if (t === 'bool') return f === 'f32' ? `(${x} != 0.0f)` : `(${x} != 0i)`;
  if (f === 'bool') return t === 'f32' ? `select(0.0f, 1.0f, ${x})` : `select(0i, 1i, ${x})`;
  return `${t}(${x})`;
}

export function toStorage(x: string, d: DType): string {
  return d === 'bool' ? `select(0u, 1u, ${x})` : x;
}

export function fromStorage(x: string, d: DType): string {
  return d === 'bool' ? `(${x} != 0u)` : x;
}

/** Non-finite f32 values cannot be written as WGSL literals (a const NaN/inf is an error). */
const F32_BITS_FN = 'fn rheo_f32_bits(b: u32) -> f32 { return bitcast<f32>(b); }';

export function literal(v: number, d: DType): string {
  if (d === 'bool') return v ? 'true' : 'false';
  if (d === 'i32') {
    const i = v | 0;
    return i === -2147483648 ? 'i32(-2147483647 - 1)' : i < 0 ? `(${i}i)` : `${i}i`;
  }
  const f = Math.fround(v);
  if (Number.isNaN(f)) return 'rheo_f32_bits(0x7fc00000u)';
  if (f === Infinity) return 'rheo_f32_bits(0x7f800000u)';
  if (f === -Infinity) return 'rheo_f32_bits(0xff800000u)';
  if (f === 0) return Object.is(f, -0) ? '(-0.0f)' : '0.0f';
  return f < 0 ? `(${String(f)}f)` : `${String(f)}f`;
}

const POW_FN = `
fn rheo_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0f) { return 1.0f; }
  let m = pow(abs(a), b);
  if (a < 0.0f) {
    if (floor(b) != b) { return rheo_f32_bits(0x7fc00000u); }
    if (abs(b) < 16777216.0f && (i32(b) & 1i) == 1i) { return -m; }
  }
  return m;
}`;

// ---------------------------------------------------------------- expressions

/**
 * Emits statements for an expression DAG into `lines`: every node becomes a `let`, shared nodes
 * are rendered once per scope, and `reduce` nodes become loops with their own variables.
 */
export class ExprEmitter {
  readonly lines: string[] = [];
  private depth: number;
  private readonly scopes: Map<Expr, string>[] = [new Map()];
  private readonly vars: Map<string, string>[] = [new Map()];
  private n = 0;
  private readonly literals = new Set<string>();
  /** helper functions the emitted code calls */
  readonly helpers = new Set<string>();
  /** the value of `acc` leaves (matmul epilogues) */
  acc: string | null = null;

  constructor(
    private readonly inputs: readonly BufferParam[],
    /** inputs bound as array<vec4<f32>> (matmul operands); scalar reads index into them */
    private readonly vec4Inputs: ReadonlySet<number> = new Set(),
    indent = 1,
  ) {
    this.depth = indent;
  }

  emit(line: string): void {
    this.lines.push('  '.repeat(this.depth) + line);
  }

  bindVar(name: string, wgsl: string): void {
    this.vars[this.vars.length - 1]!.set(name, wgsl);
  }

  private fresh(prefix: string): string {
    return `${prefix}${this.n++}`;
  }

  /** A scalar read of input `buf` at i32 index `at`, as a register value of the buffer's dtype. */
  load(buf: number, at: string): string {
    const p = this.inputs[buf];
    if (!p) throw new RheoError(`kernel IR reads input ${buf}, but the kernel has ${this.inputs.length} inputs`);
    const raw = this.vec4Inputs.has(buf) ? `in${buf}[(${at}) >> 2u][(${at}) & 3i]` : `in${buf}[${at}]`;
    return fromStorage(raw, p.dtype);
  }

  index(e: IndexExpr): string {
    switch (e.k) {
      case 'var': {
        for (let s = this.vars.length - 1; s >= 0; s--) {
          const v = this.vars[s]!.get(e.name);
          if (v !== undefined) return v;
        }
        throw new RheoError(`kernel IR uses index variable '${e.name}' outside its loop`);
      }
      case 'const': return literal(e.v, 'i32');
      case 'add': return `(${this.index(e.a)} + ${this.index(e.b)})`;
      case 'mul': return `(${this.index(e.a)} * ${literal(e.c, 'i32')})`;
      case 'div': return `(${this.index(e.a)} / ${literal(e.c, 'i32')})`;
      case 'mod': return `(${this.index(e.a)} % ${literal(e.c, 'i32')})`;
      case 'loadIndex': {
        const d = this.inputs[e.buf]?.dtype ?? 'i32';
        return `clamp(${convert(this.load(e.buf, this.index(e.at)), d, 'i32')}, 0i, ${literal(e.hi, 'i32')})`;
      }
    }
  }

  pred(p: IndexPred): string {
    switch (p.k) {
      case 'lt': return `(${this.index(p.a)} < ${literal(p.c, 'i32')})`;
      case 'ge': return `(${this.index(p.a)} >= ${literal(p.c, 'i32')})`;
      case 'and': return `(${this.pred(p.a)} && ${this.pred(p.b)})`;
    }
  }

  private lit(v: number, d: DType): string {
    const s = literal(v, d);
    if (s.startsWith('rheo_f32_bits')) this.helpers.add(F32_BITS_FN);
    this.literals.add(s);
    return s;
  }

  /** Give a literal a `let` so that the expression using it is not a const-expression (which
   * WGSL rejects when it overflows, e.g. exp(100.0)). */
  private runtime(x: string, d: DType): string {
    if (!this.literals.has(x)) return x;
    const t = this.fresh('k');
    this.emit(`let ${t}: ${valueType(d)} = ${x};`);
    return t;
  }

  private bind(e: Expr, code: string): string {
    const t = this.fresh('t');
    this.emit(`let ${t}: ${valueType(e.dtype)} = ${code};`);
    this.scopes[this.scopes.length - 1]!.set(e, t);
    return t;
  }

  /** A WGSL expression for `e`'s value, of type valueType(e.dtype). */
  value(e: Expr): string {
    for (let s = this.scopes.length - 1; s >= 0; s--) {
      const v = this.scopes[s]!.get(e);
      if (v !== undefined) return v;
    }
    switch (e.k) {
      case 'const': return this.lit(e.v, e.dtype);
      case 'acc':
        if (this.acc === null) throw new RheoError("kernel IR uses 'acc' outside a matmul epilogue");
        return convert(this.acc, 'f32', e.dtype);
      case 'load': {
        const d = this.inputs[e.buf]?.dtype ?? e.dtype;
        return this.bind(e, convert(this.load(e.buf, this.index(e.at)), d, e.dtype));
      }
      case 'index': return this.bind(e, convert(this.index(e.at), 'i32', e.dtype));
      case 'rand':
        this.helpers.add(RAND_WGSL);
        return this.bind(e, convert(`rheo_rand(${e.seed >>> 0}u, bitcast<u32>(${this.index(e.at)}))`, 'f32', e.dtype));
      case 'cast': return this.bind(e, convert(this.runtime(this.value(e.a), e.a.dtype), e.a.dtype, e.dtype));
      case 'where': {
        const c = convert(this.value(e.c), e.c.dtype, 'bool');
        const a = convert(this.value(e.a), e.a.dtype, e.dtype), b = convert(this.value(e.b), e.b.dtype, e.dtype);
        return this.bind(e, `select(${b}, ${a}, ${c})`);
      }
      case 'select': {
        const a = convert(this.value(e.a), e.a.dtype, e.dtype), b = convert(this.value(e.b), e.b.dtype, e.dtype);
        return this.bind(e, `select(${b}, ${a}, ${this.pred(e.pred)})`);
      }
      case 'unary': return this.bind(e, this.unary(e.op, e.a, e.dtype));
      case 'binary': return this.bind(e, this.binary(e.op, e.a, e.b, e.dtype));
      case 'reduce': return this.reduce(e);
    }
  }

  private unary(op: Extract<Expr, { k: 'unary' }>['op'], a: Expr, d: DType): string {
    const intOk = op === 'neg' || op === 'abs' || op === 'sign' || op === 'relu' || op === 'square' || op === 'not';
    const ct: DType = op === 'not' && d === 'bool' ? 'bool' : intOk && d === 'i32' ? 'i32' : 'f32';
    const x = convert(this.runtime(this.value(a), a.dtype), a.dtype, ct);
    const zero = ct === 'i32' ? '0i' : '0.0f', one = ct === 'i32' ? '1i' : '1.0f';
    let r: string;
    switch (op) {
      case 'neg': r = `(-${x})`; break;
      case 'exp': case 'log': case 'sqrt': case 'abs': case 'sin': case 'cos': case 'floor': case 'ceil':
      case 'sign':
        r = `${op}(${x})`; break;
      case 'round': r = `round(${x})`; break; // half to even, like numpy and WGSL
      case 'rsqrt': r = `(1.0f / sqrt(${x}))`; break;
      case 'recip': r = `(1.0f / ${x})`; break;
      // tanh's exponential form overflows to NaN on some drivers beyond |x| ~ 44
      case 'tanh': r = `tanh(clamp(${x}, -20.0f, 20.0f))`; break;
      case 'sigmoid': r = `(1.0f / (1.0f + exp(-${x})))`; break;
      case 'relu': r = `max(${x}, ${zero})`; break;
      case 'square': r = `(${x} * ${x})`; break;
      case 'step': r = `select(${zero}, ${one}, ${x} > ${zero})`; break;
      case 'not': r = ct === 'bool' ? `(!${x})` : `select(${zero}, ${one}, ${x} == ${zero})`; break;
    }
    return convert(r, ct, d);
  }

  private binary(op: Extract<Expr, { k: 'binary' }>['op'], ea: Expr, eb: Expr, d: DType): string {
    const cmp = op === 'lt' || op === 'le' || op === 'gt' || op === 'ge' || op === 'eq' || op === 'ne';
    const logic = op === 'and' || op === 'or';
    // comparisons compare in the wider operand type; arithmetic happens in the result type
    const wide = (x: DType, y: DType): DType =>
      x === 'f32' || x === 'f16' || y === 'f32' || y === 'f16' ? 'f32' : x === 'i32' || y === 'i32' ? 'i32' : 'bool';
    const ct: DType = cmp ? wide(ea.dtype, eb.dtype) : logic ? (d === 'i32' ? 'i32' : 'bool') : d === 'bool' ? 'i32' : d;
    let va = this.value(ea), vb = this.value(eb);
    if (this.literals.has(va) && this.literals.has(vb)) va = this.runtime(va, ea.dtype);
    const a = convert(va, ea.dtype, ct), b = convert(vb, eb.dtype, ct);
    const isInt = ct === 'i32';
    const sym = { add: '+', sub: '-', mul: '*', lt: '<', le: '<=', gt: '>', ge: '>=', eq: '==', ne: '!=' } as const;
    let r: string;
    switch (op) {
      case 'add': case 'sub': case 'mul': case 'lt': case 'le': case 'gt': case 'ge': case 'eq': case 'ne':
        r = `(${a} ${sym[op]} ${b})`; break;
      // integer division truncates toward zero and x / 0 = x % 0 = 0, as `(a / b) | 0` does in JS
      case 'div': r = isInt ? `select(${a} / ${b}, 0i, ${b} == 0i)` : `(${a} / ${b})`; break;
      case 'mod': r = isInt ? `select(${a} % ${b}, 0i, ${b} == 0i)` : `(${a} % ${b})`; break;
      case 'pow':
        this.helpers.add(F32_BITS_FN).add(POW_FN);
        r = isInt ? `i32(rheo_pow(f32(${a}), f32(${b})))` : `rheo_pow(${a}, ${b})`; break;
      case 'max': case 'min': r = `${op}(${a}, ${b})`; break;
      case 'and': case 'or': r = `(${a} ${op === 'and' ? '&' : '|'} ${b})`; break;
    }
    return convert(r, cmp ? 'bool' : ct, d);
  }

  private reduce(e: Extract<Expr, { k: 'reduce' }>): string {
    const t = this.fresh('t');
    const arg = e.op === 'argmax' || e.op === 'argmin';
    const bt = e.body.dtype;
    // accumulate in the body's type; argmax/argmin keep the best value and its (flattened) index
    const at: DType = arg ? bt : e.dtype === 'bool' ? 'bool' : e.dtype;
    const worst = (op: 'max' | 'min', d: DType): string => {
      const lo = op === 'max';
      if (d === 'bool') return lo ? 'false' : 'true';
      if (d === 'i32') return lo ? 'i32(-2147483647 - 1)' : '2147483647i';
      this.helpers.add(F32_BITS_FN);
      return lo ? 'rheo_f32_bits(0xff800000u)' : 'rheo_f32_bits(0x7f800000u)';
    };
    const init = arg ? worst(e.op === 'argmax' ? 'max' : 'min', at)
      : e.op === 'sum' ? literal(0, at) : worst(e.op as 'max' | 'min', at);
    this.emit(`var ${t}: ${valueType(at)} = ${init};`);
    if (arg) this.emit(`var ${t}i: i32 = 0i;`);
    const loopVars: string[] = [];
    for (const v of e.vars) {
      const r = this.fresh('r');
      loopVars.push(r);
      this.emit(`for (var ${r}: i32 = 0i; ${r} < ${literal(v.size, 'i32')}; ${r} = ${r} + 1i) {`);
      this.depth++;
      this.vars.push(new Map([[v.name, r]]));
      this.scopes.push(new Map());
    }
    const body = convert(this.value(e.body), bt, at);
    if (arg) {
      let flat = loopVars[0] ?? '0i';
      for (let i = 1; i < loopVars.length; i++) flat = `(${flat} * ${literal(e.vars[i]!.size, 'i32')} + ${loopVars[i]})`;
      const better = at === 'bool'
        ? (e.op === 'argmax' ? `(${body} && !${t})` : `(!${body} && ${t})`)
        : `(${body} ${e.op === 'argmax' ? '>' : '<'} ${t})`;
      this.emit(`if (${better}) { ${t} = ${body}; ${t}i = ${flat}; }`);
    } else if (at === 'bool') {
      this.emit(`${t} = ${t} ${e.op === 'min' ? '&' : '|'} ${body};`);
    } else {
      this.emit(`${t} = ${e.op === 'sum' ? `${t} + ${body}` : `${e.op}(${t}, ${body})`};`);
    }
    for (let i = 0; i < e.vars.length; i++) {
      this.vars.pop();
      this.scopes.pop();
      this.depth--;
      this.emit('}');
    }
    const result = arg ? convert(`${t}i`, 'i32', e.dtype) : convert(t, at, e.dtype);
    return this.bind(e, result);
  }
}

/** Binding declarations: inputs read-only, the output read-write at binding inputs.length. */
export function declareBindings(inputs: readonly BufferParam[], out: DType, vec4: ReadonlySet<number> = new Set()): string[] {
  const elem = (i: number, d: DType) => (vec4.has(i) ? 'vec4<f32>' : storageType(d));
  const lines = inputs.map(
    (p, i) => `@group(0) @binding(${i}) var<storage, read> in${i}: array<${elem(i, p.dtype)}>;`,
  );
  lines.push(`@group(0) @binding(${inputs.length}) var<storage, read_write> out: array<${storageType(out)}>;`);
  return lines;
}

/** Split a 1-D count of workgroups over x and y when it exceeds the per-dimension limit. */
export function grid(groups: number, maxPerDim: number): [number, number, number] {
  if (groups === 0) return [0, 0, 0];
  if (groups <= maxPerDim) return [groups, 1, 1];
  const y = Math.ceil(groups / maxPerDim);
  if (y > maxPerDim) throw new RheoError(`kernel needs ${groups} workgroups, more than this device can dispatch`);
  return [maxPerDim, y, 1];
}

function header(helpers: Iterable<string>, bindings: string[]): string {
  return [...helpers, ...bindings].join('\n');
}

function renderMap(k: MapKernel, opts: RenderOptions): RenderedKernel {
  const wg = opts.workgroupSize ?? 64;
  const total = numel(k.out.shape);
  const workgroups = grid(Math.ceil(total / wg), opts.maxWorkgroupsPerDimension ?? 65535);
  const em = new ExprEmitter(k.inputs);
  em.emit(`let flat = gid.x + gid.y * ${workgroups[0] * wg}u;`);
  em.emit(`if (flat >= ${total}u) { return; }`);
  em.emit('let f = i32(flat);');
  const st = stridesOf(k.out.shape);
  k.out.shape.forEach((d, i) => {
    const q = st[i] === 1 ? 'f' : `(f / ${st[i]}i)`;
    em.emit(`let i${i}: i32 = ${d === 1 ? '0i' : i === 0 ? q : `${q} % ${d}i`};`);
    em.bindVar(`i${i}`, `i${i}`);
  });
  const v = convert(em.value(k.expr), k.expr.dtype, k.out.dtype);
  em.emit(`out[flat] = ${toStorage(v, k.out.dtype)};`);
  const code = `${header(em.helpers, declareBindings(k.inputs, k.out.dtype))}

@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
${em.lines.join('\n')}
}
`;
  return { code, workgroups, bindings: bindingTypes(k.inputs, k.out.dtype) };
}

function renderScatterAdd(k: ScatterAddKernel, opts: RenderOptions): RenderedKernel {
  const wg = opts.workgroupSize ?? 64;
  const cols = k.outer * k.inner;
  const workgroups = grid(numel(k.out.shape) === 0 ? 0 : Math.ceil(cols / wg), opts.maxWorkgroupsPerDimension ?? 65535);
  const em = new ExprEmitter(k.inputs);
  const d = k.out.dtype;
  const upd = k.inputs[k.updates]!.dtype;
  const base = k.base >= 0 ? convert(em.load(k.base, 'o'), k.inputs[k.base]!.dtype, d) : literal(0, d);
  const idx = convert(em.load(k.indices, 'r'), k.inputs[k.indices]!.dtype, 'i32');
  // bool scatter-add is an or: add in i32 and store (x != 0)
  const ad: DType = d === 'bool' ? 'i32' : d;
  const body = `
  let flat = gid.x + gid.y * ${workgroups[0] * wg}u;
  if (flat >= ${cols}u) { return; }
  let c = i32(flat);
  let col0 = (c / ${k.inner}i) * ${k.outRows * k.inner}i + c % ${k.inner}i;
  let ucol0 = (c / ${k.inner}i) * ${k.rows * k.inner}i + c % ${k.inner}i;
  for (var t: i32 = 0i; t < ${k.outRows}i; t = t + 1i) {
    let o = col0 + t * ${k.inner}i;
    out[o] = ${toStorage(base, d)};
  }
  for (var r: i32 = 0i; r < ${k.rows}i; r = r + 1i) {
    let o = col0 + clamp(${idx}, 0i, ${k.outRows - 1}i) * ${k.inner}i;
    let u = ${convert(em.load(k.updates, `ucol0 + r * ${k.inner}i`), upd, ad)};
    out[o] = ${toStorage(convert(`(${convert(fromStorage('out[o]', d), d, ad)} + u)`, ad, d), d)};
  }`;
  const code = `${declareBindings(k.inputs, d).join('\n')}

@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {${body}
}
`;
  return { code, workgroups: k.outRows === 0 ? [0, 0, 0] : workgroups, bindings: bindingTypes(k.inputs, d) };
}

export function bindingTypes(inputs: readonly BufferParam[], out: DType, vec4: ReadonlySet<number> = new Set()): string[] {
  return [...inputs.map((p, i) => (vec4.has(i) ? 'vec4<f32>' : storageType(p.dtype))), storageType(out)];
}
