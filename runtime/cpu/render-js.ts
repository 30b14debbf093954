// The CPU renderer: kernel IR -> JavaScript source, one function per kernel signature, compiled
// with `new Function` once and cached. Map kernels become loop nests (reductions are hoisted
// into inner loops); matmul kernels go to the GEMM generator in matmul-js.ts with their
// epilogue rendered here. Values are computed in doubles and rounded when stored to f32; f16 outputs are then rounded to
// binary16 (runtime/f16.ts).

import type { BinaryOp, Expr, IndexExpr, IndexPred, Kernel, MapKernel, ScatterAddKernel, UnaryOp } from '../../ops/kernel-ir.js';
import { kernelSignature } from '../../ops/kernel-ir.js';
import { keyedSeed, randUniform } from '../../ops/rand.js';
import { f16round, f16roundArray } from '../../ops/f16.js';
import { compileMatmulJs } from './matmul-js.js';
import { RheoError } from '../../ops/errors.js';

export type CpuArray = Float32Array | Float64Array | Int32Array | Uint8Array;
export type CpuKernelFn = (ins: readonly CpuArray[], out: CpuArray) => void;

export function renderIndex(e: IndexExpr): string {
  switch (e.k) {
    case 'var': return e.name;
    case 'const': return String(e.v);
    case 'add': return `(${renderIndex(e.a)} + ${renderIndex(e.b)})`;
    case 'mul': return `${renderIndex(e.a)} * ${e.c}`;
    case 'div': return `((${renderIndex(e.a)} / ${e.c}) | 0)`;
    case 'mod': return `(${renderIndex(e.a)} % ${e.c})`;
    case 'loadIndex': return `clampi(in${e.buf}[${renderIndex(e.at)}], ${e.hi})`;
  }
}

export function renderPred(p: IndexPred): string {
  switch (p.k) {
    case 'lt': return `(${renderIndex(p.a)} < ${p.c})`;
    case 'ge': return `(${renderIndex(p.a)} >= ${p.c})`;
    case 'and': return `(${renderPred(p.a)} && ${renderPred(p.b)})`;
  }
}

const UNARY_JS: Record<UnaryOp, (a: string) => string> = {
  neg: (a) => `(-${a})`,
  exp: (a) => `Math.exp(${a})`,
  log: (a) => `Math.log(${a})`,
  sqrt: (a) => `Math.sqrt(${a})`,
  rsqrt: (a) => `(1 / Math.sqrt(${a}))`,
  abs: (a) => `Math.abs(${a})`,
  sin: (a) => `Math.sin(${a})`,
  cos: (a) => `Math.cos(${a})`,
  tanh: (a) => `Math.tanh(${a})`,
  sigmoid: (a) => `(1 / (1 + Math.exp(-${a})))`,
  // x > 0 ? x : 0 (ops/scalar.ts): NaN and -0 give +0, which Math.max alone does not
  relu: (a) => `(Math.max(${a}, 0) || 0)`,
  recip: (a) => `(1 / ${a})`,
  floor: (a) => `Math.floor(${a})`,
  ceil: (a) => `Math.ceil(${a})`,
  round: (a) => `rne(${a})`,
  sign: (a) => `Math.sign(${a})`,
  not: (a) => `(${a} ? 0 : 1)`,
  square: (a) => `sq(${a})`,
  step: (a) => `(${a} > 0 ? 1 : 0)`,
};

const BINARY_JS: Record<BinaryOp, (a: string, b: string, int: boolean) => string> = {
  add: (a, b, int) => (int ? `((${a} + ${b}) | 0)` : `(${a} + ${b})`),
  sub: (a, b, int) => (int ? `((${a} - ${b}) | 0)` : `(${a} - ${b})`),
  mul: (a, b, int) => (int ? `Math.imul(${a}, ${b})` : `(${a} * ${b})`),
  div: (a, b, int) => (int ? `((${a} / ${b}) | 0)` : `(${a} / ${b})`),
  pow: (a, b, int) => (int ? `(Math.pow(${a}, ${b}) | 0)` : `Math.pow(${a}, ${b})`),
  max: (a, b) => `Math.max(${a}, ${b})`,
  min: (a, b) => `Math.min(${a}, ${b})`,
  mod: (a, b, int) => (int ? `imod(${a}, ${b})` : `fmod(${a}, ${b})`),
  lt: (a, b) => `(${a} < ${b} ? 1 : 0)`,
  le: (a, b) => `(${a} <= ${b} ? 1 : 0)`,
  gt: (a, b) => `(${a} > ${b} ? 1 : 0)`,
  ge: (a, b) => `(${a} >= ${b} ? 1 : 0)`,
  eq: (a, b) => `(${a} === ${b} ? 1 : 0)`,
  ne: (a, b) => `(${a} !== ${b} ? 1 : 0)`,
  and: (a, b) => `(${a} && ${b} ? 1 : 0)`,
  or: (a, b) => `(${a} || ${b} ? 1 : 0)`,
};

/** Helpers every kernel may call; passed in as arguments so the generated code stays pure. */
const PRELUDE_NAMES = ['rne', 'sq', 'fmod', 'imod', 'clampi', 'rand', 'keyed', 'f16r'] as const;
const PRELUDE = [
  (x: number) => { const r = Math.round(x); return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; },
  (x: number) => x * x,
  (a: number, b: number) => a - b * Math.floor(a / b),
  (a: number, b: number) => { const r = a % b | 0; return r !== 0 && (r < 0) !== (b < 0) ? r + b : r; },
  (i: number, hi: number) => (i < 0 ? 0 : i > hi ? hi : i),
  randUniform,
  keyedSeed,
  f16round,
];

/** Renders expressions, hoisting reductions into loops emitted before the current statement. */
class JsExprRenderer {
  private tmp = 0;
  constructor(private readonly lines: string[], private indent: string) {}

  expr(e: Expr): string {
    switch (e.k) {
      case 'const': return Number.isFinite(e.v) ? (Object.is(e.v, -0) ? '-0' : String(e.v)) : e.v > 0 ? 'Infinity' : e.v < 0 ? '-Infinity' : 'NaN';
      case 'load': return `in${e.buf}[${renderIndex(e.at)}]`;
      case 'unary': return UNARY_JS[e.op](this.expr(e.a));
      case 'binary': return BINARY_JS[e.op](this.expr(e.a), this.expr(e.b), e.dtype === 'i32');
      case 'where': return `(${this.expr(e.c)} ? ${this.expr(e.a)} : ${this.expr(e.b)})`;
      case 'cast': return castJs(this.expr(e.a), e.a.dtype, e.dtype);
      case 'select': return `(${renderPred(e.pred)} ? ${this.expr(e.a)} : ${this.expr(e.b)})`;
      case 'index': return renderIndex(e.at);
      case 'rand': return `rand(${e.key ? `keyed(${e.seed}, ${this.expr(e.key)})` : e.seed}, ${renderIndex(e.at)})`;
      case 'acc': return 'acc';
      case 'reduce': return this.reduce(e);
    }
  }

  private reduce(e: Extract<Expr, { k: 'reduce' }>): string {
    const t = `t${this.tmp++}`;
    const ind = this.indent;
    const arg = e.op === 'argmax' || e.op === 'argmin';
    const init = e.op === 'sum' ? '0' : e.op === 'max' || e.op === 'argmax' ? '-Infinity' : 'Infinity';
    this.lines.push(`${ind}let ${t} = ${init};${arg ? ` let ${t}i = 0;` : ''}`);
    e.vars.forEach((v, i) => this.lines.push(`${ind}${'  '.repeat(i)}for (let ${v.name} = 0; ${v.name} < ${v.size}; ${v.name}++) {`));
    const inner = ind + '  '.repeat(e.vars.length);
    const saved = this.indent;
    this.indent = inner;
    const body = this.expr(e.body);
    this.indent = saved;
    const v = `${t}v`;
    this.lines.push(`${inner}const ${v} = ${body};`);
    if (e.op === 'sum') this.lines.push(`${inner}${t} += ${v};`);
    else if (e.op === 'max') this.lines.push(`${inner}${t} = Math.max(${t}, ${v});`);
    else if (e.op === 'min') this.lines.push(`${inner}${t} = Math.min(${t}, ${v});`);
    else {
      const cmp = e.op === 'argmax' ? '>' : '<';
      this.lines.push(`${inner}if (${v} ${cmp} ${t}) { ${t} = ${v}; ${t}i = ${e.vars[0]!.name}; }`);
    }
    e.vars.forEach((_, i) => this.lines.push(`${ind}${'  '.repeat(e.vars.length - 1 - i)}}`));
    return arg ? `${t}i` : e.dtype === 'i32' ? `(${t} | 0)` : t;
  }
}

function castJs(a: string, from: string, to: string): string {
  if (to === 'bool') return `(${a} !== 0 ? 1 : 0)`;
  if (to === 'i32' && from !== 'i32' && from !== 'bool') return `(Math.trunc(${a}) | 0)`;
  if (to === 'f16' && (from === 'f32' || from === 'i32')) return `f16r(${a})`;
  return a;
}

function inputDecls(n: number): string {
  return n ? `const ${Array.from({ length: n }, (_, j) => `in${j} = ins[${j}]`).join(', ')};` : '';
}

export function renderMapJs(k: MapKernel): string {
  const lines: string[] = [inputDecls(k.inputs.length), 'let o = 0;'];
  const shape = k.out.shape;
  shape.forEach((d, i) => lines.push(`${'  '.repeat(i)}for (let i${i} = 0; i${i} < ${d}; i${i}++) {`));
  const ind = '  '.repeat(shape.length);
  const r = new JsExprRenderer(lines, ind);
  const v = r.expr(k.expr);
  lines.push(`${ind}out[o++] = ${v};`);
  shape.forEach((_, i) => lines.push(`${'  '.repeat(shape.length - 1 - i)}}`));
  return lines.join('\n');
}

export function renderScatterAddJs(k: ScatterAddKernel): string {
  return [
    inputDecls(k.inputs.length),
    `out.set(in${k.base});`,
    `for (let r = 0; r < ${k.rows}; r++) {`,
    `  const row = clampi(in${k.indices}[r], ${k.outRows - 1}) * ${k.inner};`,
    `  const src = r * ${k.inner};`,
    `  for (let j = 0; j < ${k.inner}; j++) out[row + j] += in${k.updates}[src + j];`,
    `}`,
  ].join('\n');
}

function wrap(name: string, body: string): CpuKernelFn {
  const safe = name.replace(/[^A-Za-z0-9_$]/g, '_');
  const factory = new Function(...PRELUDE_NAMES, `'use strict';\nreturn function ${safe}(ins, out) {\n${body}\n};`);
  return factory(...PRELUDE) as CpuKernelFn;
}

/** Compile a kernel to a JS function (uncached). */
export function compileKernelJs(k: Kernel): CpuKernelFn {
  switch (k.kind) {
    case 'map': return wrap(k.name, renderMapJs(k));
    case 'scatterAdd': return wrap(k.name, renderScatterAddJs(k));
    case 'matmul': {
      if (k.reduce) throw new RheoError(`matmul '${k.name}': a fused reduction is a WebGPU kernel form; plans for the CPU never contain one`);
      const epi = k.epilogue;
      if (!epi) return compileMatmulJs(k, null) as unknown as CpuKernelFn;
      // The epilogue is rendered into a helper closed over the inputs, evaluated per element.
      const lines: string[] = [];
      const r = new JsExprRenderer(lines, '  ');
      const rank = k.out.shape.length;
      const value = r.expr(epi);
      const params = ['acc', ...Array.from({ length: rank }, (_, i) => `i${i}`)];
      const epiSrc = `function (${['ins', ...params].join(', ')}) {\n${inputDecls(k.inputs.length)}\n${lines.join('\n')}\nreturn ${value};\n}`;
      // Simple epilogues (no reductions, no prelude helpers, which the GEMM's scope lacks) are
      // inlined into the GEMM loop for speed.
      const usesPrelude = new RegExp(`\\b(${PRELUDE_NAMES.join('|')})\\(`).test(value);
      if (lines.length === 0 && !usesPrelude) {
        return compileMatmulJs(k, (acc, vars) => value.replace(/\bacc\b/g, acc).replace(/\bi(\d+)\b/g, (_, d: string) => vars[Number(d)]!)) as unknown as CpuKernelFn;
      }
      const epiFn = new Function(...PRELUDE_NAMES, `'use strict';\nreturn ${epiSrc};`)(...PRELUDE) as (...a: unknown[]) => number;
      const mm = compileMatmulJs({ ...k, epilogue: null }, null);
      return (ins, out) => {
        mm(ins as unknown as ArrayLike<unknown>[], out as Float32Array);
        applyEpilogue(out as Float32Array, k.out.shape, (acc, idx) => epiFn(ins, acc, ...idx));
      };
    }
  }
}

function applyEpilogue(out: Float32Array, shape: readonly number[], f: (acc: number, idx: number[]) => number): void {
  const idx = shape.map(() => 0);
  for (let o = 0; o < out.length; o++) {
    out[o] = f(out[o]!, idx);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
}

const cache = new Map<string, CpuKernelFn>();

/** Compile once per kernel signature. */
export function cpuKernel(k: Kernel): CpuKernelFn {
  const sig = kernelSignature(k);
  let f = cache.get(sig);
  if (!f) {
    f = compileKernelJs(k);
    if (k.out.dtype === 'f16') f = roundsF16(f);
    cache.set(sig, f);
  }
  return f;
}

/** An f16 output is rounded to binary16 once the kernel has stored it (f64 devices keep doubles). */
function roundsF16(f: CpuKernelFn): CpuKernelFn {
  return (ins, out) => {
    f(ins, out);
    if (out instanceof Float32Array) f16roundArray(out);
  };
}

export function cpuKernelCacheSize(): number {
  return cache.size;
}
