// WGSL for kernel IR expressions: value and storage types, literals, conversions, and the
// emitter that turns an expression DAG into `let` statements and loops. Shared by the map,
// scatter and matmul renderers; it knows nothing about dispatch shapes or pipelines.
// Storage: f32 as f32, i32 as i32, bool as u32 0/1; f16 as f16 where the device has 'shader-f16'
// (`half`: loads widen to f32, stores round with f16(...)), else as f32 words holding binary16
// values (stores round with quantizeToF16). Math is f32/i32 (matmul products may be f16).

import type { DType } from '../../graphs/types.js';
import { RheoError } from '../../graphs/errors.js';
import { RAND_WGSL } from '../../ops/rand.js';
import type { BufferParam, Expr, IndexExpr, IndexPred } from '../../ops/kernel-ir.js';

// ---------------------------------------------------------------- types and literals

/** Element type in a storage buffer; `half`: f16 tensors are array<f16> (the 'shader-f16' feature). */
export function storageType(d: DType, half = false): string {
  return d === 'i32' ? 'i32' : d === 'bool' ? 'u32' : d === 'f16' && half ? 'f16' : 'f32';
}

/** The directive a shader that declares f16 buffers needs first. */
export const ENABLE_F16 = 'enable f16;';

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

/** A register value (f32 for floats) as its storage value: f16 rounds to binary16 (ties to even). */
export function toStorage(x: string, d: DType, half = false): string {
  if (d === 'f16') return half ? `f16(${x})` : `quantizeToF16(${x})`;
  return d === 'bool' ? `select(0u, 1u, ${x})` : x;
}

export function fromStorage(x: string, d: DType, half = false): string {
  if (d === 'f16' && half) return `f32(${x})`;
  return d === 'bool' ? `(${x} != 0u)` : x;
}

/** Non-finite f32 values cannot be written as WGSL literals (a const NaN/inf is an error). */
const F32_BITS_FN = 'fn rheo_f32_bits(b: u32) -> f32 { return bitcast<f32>(b); }';

export function literal(v: number, d: DType): string {
  if (d === 'bool') return v ? 'true' : 'false';
  if (d === 'i32') {
    // a value that is not an i32 is left as written, so WGSL rejects the kernel rather than wrap
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) return `${v}i`;
    return v === -2147483648 ? 'i32(-2147483647 - 1)' : v < 0 ? `(${v}i)` : `${v}i`;
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

const FMOD_FN = 'fn rheo_fmod(a: f32, b: f32) -> f32 { return a - b * floor(a / b); }';
const IMOD_FN = `fn rheo_imod(a: i32, b: i32) -> i32 {
  if (b == 0i) { return 0i; }
  let r = a % b;
  return select(r, r + b, r != 0i && ((r < 0i) != (b < 0i)));
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
  /** set when a workgroup of `wg` invocations (index `lid`) computes one output together:
   * top-level reductions are then split over the workgroup and combined in workgroup memory */
  coop: { readonly wg: number } | null = null;
  /** workgroup-memory declarations the emitted code needs */
  readonly shared = new Set<string>();
  private reduceDepth = 0;

  constructor(
    private readonly inputs: readonly BufferParam[],
    /** inputs bound as array<vec4<f32>> (matmul operands); scalar reads index into them */
    private readonly vec4Inputs: ReadonlySet<number> = new Set(),
    indent = 1,
    /** f16 buffers are array<f16> ('shader-f16'): loads widen them to f32 */
    readonly half = false,
  ) {
    this.depth = indent;
  }

  emit(line: string): void {
    this.lines.push('  '.repeat(this.depth) + line);
  }

  bindVar(name: string, wgsl: string): void {
    this.vars[this.vars.length - 1]!.set(name, wgsl);
  }

  /**
   * Run `f` with index variables rebound (e.g. an output index plus a lane offset) and values
   * cached in a scope of its own; the `let`s it emits stay visible after it returns.
   */
  inScope<T>(vars: ReadonlyMap<string, string>, f: () => T): T {
    this.vars.push(new Map(vars));
    this.scopes.push(new Map());
    try {
      return f();
    } finally {
      this.vars.pop();
      this.scopes.pop();
    }
  }

  /** Use `wgsl` as the value of `e` wherever it occurs (a reduction computed by an earlier pass). */
  provide(e: Expr, wgsl: string): void {
    this.scopes[0]!.set(e, wgsl);
  }

  /** A runtime (non-const) copy of `x` when it is a literal: see `runtime`. */
  nonConst(x: string, d: DType): string {
    return this.runtime(x, d);
  }

  fresh(prefix: string): string {
    return `${prefix}${this.n++}`;
  }

  /** A scalar read of input `buf` at i32 index `at`, as a register value of the buffer's dtype. */
  load(buf: number, at: string): string {
    const p = this.inputs[buf];
    if (!p) throw new RheoError(`kernel IR reads input ${buf}, but the kernel has ${this.inputs.length} inputs`);
    const raw = this.vec4Inputs.has(buf) ? `in${buf}[(${at}) >> 2u][(${at}) & 3i]` : `in${buf}[${at}]`;
    return fromStorage(raw, p.dtype, this.half);
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
        {
          const seed = e.key ? `${e.seed >>> 0}u + rheo_hash32(bitcast<u32>(${convert(this.value(e.key), e.key.dtype, 'i32')}))` : `${e.seed >>> 0}u`;
          return this.bind(e, convert(`rheo_rand(${seed}, bitcast<u32>(${this.index(e.at)}))`, 'f32', e.dtype));
        }
      case 'cast': {
        // a cast to f16 rounds to binary16 (the register stays f32)
        const v = convert(this.runtime(this.value(e.a), e.a.dtype), e.a.dtype, e.dtype);
        return this.bind(e, e.dtype === 'f16' && e.a.dtype !== 'f16' && e.a.dtype !== 'bool' ? `quantizeToF16(${v})` : v);
      }
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
    const ct: DType = cmp ? wide(ea.dtype, eb.dtype) : logic ? 'bool' : d === 'bool' ? 'i32' : d;
    let va = this.value(ea), vb = this.value(eb);
    if (this.literals.has(va) && this.literals.has(vb)) va = this.runtime(va, ea.dtype);
    // a literal zero divisor is a compile error in WGSL even when the dividend is not constant
    if (op === 'div' || op === 'mod') vb = this.runtime(vb, eb.dtype);
    const a = convert(va, ea.dtype, ct), b = convert(vb, eb.dtype, ct);
    const isInt = ct === 'i32';
    const sym = { add: '+', sub: '-', mul: '*', lt: '<', le: '<=', gt: '>', ge: '>=', eq: '==', ne: '!=' } as const;
    let r: string;
    switch (op) {
      case 'add': case 'sub': case 'mul': case 'lt': case 'le': case 'gt': case 'ge': case 'eq': case 'ne':
        r = `(${a} ${sym[op]} ${b})`; break;
      // integer division truncates toward zero and x / 0 = 0, as `(a / b) | 0` does in JS
      case 'div': r = isInt ? `select(${a} / ${b}, 0i, ${b} == 0i)` : `(${a} / ${b})`; break;
      // mod takes the sign of the divisor (floor mod, as in numpy); integer x mod 0 = 0
      case 'mod':
        this.helpers.add(isInt ? IMOD_FN : FMOD_FN);
        r = `rheo_${isInt ? 'i' : 'f'}mod(${a}, ${b})`; break;
      case 'pow':
        this.helpers.add(F32_BITS_FN).add(POW_FN);
        r = isInt ? `i32(rheo_pow(f32(${a}), f32(${b})))` : `rheo_pow(${a}, ${b})`; break;
      case 'max': case 'min': r = `${op}(${a}, ${b})`; break;
      // logical on every dtype: the result is true/1 or false/0
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
    const coop = this.coop !== null && this.reduceDepth === 0;
    const sizes = e.vars.map((v) => v.size);
    let flat: string;
    if (coop) {
      // the workgroup shares the loop: invocation l takes flat indices l, l + wg, ...
      // (the loop's condition stays uniform so that the barriers after it are allowed)
      const from = this.fresh('r');
      flat = this.fresh('r');
      const total = sizes.reduce((a, b) => a * b, 1);
      this.emit(`for (var ${from}: i32 = 0i; ${from} < ${literal(total, 'i32')}; ${from} = ${from} + ${this.coop!.wg}i) {`);
      this.emit(`  let ${flat}: i32 = ${from} + lid;`);
      this.emit(`  if (${flat} < ${literal(total, 'i32')}) {`);
      this.depth += 2;
      const names = new Map<string, string>();
      let inner = 1;
      for (let i = e.vars.length - 1; i >= 0; i--) {
        const r = this.fresh('r');
        const q = inner === 1 ? flat : `(${flat} / ${inner}i)`;
        // an empty axis never runs the loop, but WGSL rejects a division by a literal zero
        this.emit(`let ${r}: i32 = ${i === 0 ? q : `${q} % ${Math.max(1, sizes[i]!)}i`};`);
        names.set(e.vars[i]!.name, r);
        inner *= Math.max(1, sizes[i]!);
      }
      this.vars.push(names);
      this.scopes.push(new Map());
    } else {
      const loopVars: string[] = [];
      for (const v of e.vars) {
        const r = this.fresh('r');
        loopVars.push(r);
        this.emit(`for (var ${r}: i32 = 0i; ${r} < ${literal(v.size, 'i32')}; ${r} = ${r} + 1i) {`);
        this.depth++;
        this.vars.push(new Map([[v.name, r]]));
        this.scopes.push(new Map());
      }
      flat = loopVars[0] ?? '0i';
      for (let i = 1; i < loopVars.length; i++) flat = `(${flat} * ${literal(sizes[i]!, 'i32')} + ${loopVars[i]})`;
    }
    this.reduceDepth++;
    const body = convert(this.value(e.body), bt, at);
    this.reduceDepth--;
    if (arg) {
      const better = at === 'bool'
        ? (e.op === 'argmax' ? `(${body} && !${t})` : `(!${body} && ${t})`)
        : `(${body} ${e.op === 'argmax' ? '>' : '<'} ${t})`;
      this.emit(`if (${better}) { ${t} = ${body}; ${t}i = ${flat}; }`);
    } else if (at === 'bool') {
      this.emit(`${t} = ${t} ${e.op === 'min' ? '&' : '|'} ${body};`);
    } else {
      this.emit(`${t} = ${e.op === 'sum' ? `${t} + ${body}` : `${e.op}(${t}, ${body})`};`);
    }
    for (let i = 0; i < (coop ? 1 : e.vars.length); i++) {
      this.vars.pop();
      this.scopes.pop();
      this.depth--;
      this.emit('}');
    }
    if (coop) {
      this.depth--;
      this.emit('}');
    }
    if (coop) this.combine(t, at, e.op);
    const result = arg ? convert(`${t}i`, 'i32', e.dtype) : convert(t, at, e.dtype);
    return this.bind(e, result);
  }

  /** Tree-combine each invocation's partial result `t` through workgroup memory; all get the total. */
  private combine(t: string, at: DType, op: Extract<Expr, { k: 'reduce' }>['op']): void {
    const wg = this.coop!.wg;
    const arg = op === 'argmax' || op === 'argmin';
    const fl = at === 'f32' || at === 'f16';
    const red = fl ? 'rheo_red_f' : 'rheo_red_i';
    this.shared.add(`var<workgroup> ${red}: array<${fl ? 'f32' : 'i32'}, ${wg}>;`);
    if (arg) this.shared.add(`var<workgroup> rheo_red_x: array<i32, ${wg}>;`);
    const toShared = at === 'bool' ? `select(0i, 1i, ${t})` : t;
    this.emit(`${red}[lid] = ${toShared};`);
    if (arg) this.emit(`rheo_red_x[lid] = ${t}i;`);
    this.emit('workgroupBarrier();');
    for (let s = wg / 2; s >= 1; s /= 2) {
      const a = `${red}[lid]`, b = `${red}[lid + ${s}i]`;
      let upd: string;
      if (arg) {
        const cmp = op === 'argmax' ? '>' : '<';
        const xa = 'rheo_red_x[lid]', xb = `rheo_red_x[lid + ${s}i]`;
        upd = `if (${b} ${cmp} ${a} || (${b} == ${a} && ${xb} < ${xa})) { ${a} = ${b}; ${xa} = ${xb}; }`;
      } else if (op === 'sum' && at !== 'bool') {
        upd = `${a} = ${a} + ${b};`;
      } else {
        upd = `${a} = ${op === 'min' ? 'min' : 'max'}(${a}, ${b});`;
      }
      this.emit(`if (lid < ${s}i) { ${upd} }`);
      this.emit('workgroupBarrier();');
    }
    this.emit(`${t} = ${convert(`${red}[0]`, at === 'bool' ? 'i32' : at, at)};`);
    if (arg) this.emit(`${t}i = rheo_red_x[0];`);
    this.emit('workgroupBarrier();');
  }
}

/**
 * An upper bound on the loop iterations one invocation runs for `e` (reductions nest
 * multiplicatively; shared subtrees are counted each time). With `coopWg`, top-level reductions
 * are shared by a workgroup of that size. llvmpipe stops any invocation after 65535 iterations.
 */
export function loopIterations(e: Expr, coopWg = 0): number {
  const sub = (x: Expr) => loopIterations(x, coopWg);
  switch (e.k) {
    case 'const': case 'acc': case 'load': case 'index': case 'rand': return 0;
    case 'unary': case 'cast': return sub(e.a);
    case 'binary': case 'select': return sub(e.a) + sub(e.b);
    case 'where': return sub(e.c) + sub(e.a) + sub(e.b);
    case 'reduce': {
      const body = loopIterations(e.body);
      if (coopWg > 0) {
        const n = Math.ceil(e.vars.reduce((a, v) => a * v.size, 1) / coopWg);
        return n * (1 + body) + Math.log2(coopWg);
      }
      let edges = 0, prod = 1;
      for (const v of e.vars) edges += (prod *= v.size);
      return edges + prod * body;
    }
  }
}

/** Binding declarations: inputs read-only, the output read-write at binding inputs.length. */
export function declareBindings(inputs: readonly BufferParam[], out: DType, vec4: ReadonlySet<number> = new Set(), half = false): string[] {
  const types = bindingTypes(inputs, out, vec4, half);
  const lines = inputs.map(
    (_, i) => `@group(0) @binding(${i}) var<storage, read> in${i}: array<${types[i]}>;`,
  );
  lines.push(`@group(0) @binding(${inputs.length}) var<storage, read_write> out: array<${types[inputs.length]}>;`);
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

export function bindingTypes(inputs: readonly BufferParam[], out: DType, vec4: ReadonlySet<number> = new Set(), half = false): string[] {
  return [...inputs.map((p, i) => (vec4.has(i) ? `vec4<${storageType(p.dtype, half)}>` : storageType(p.dtype, half))), storageType(out, half)];
}
