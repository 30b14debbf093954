// The reference interpreter of the kernel IR: walks expression trees element by element with
// no code generation and no cleverness. Tests compare generated kernels (CPU JS, WGSL) with it;
// it is far too slow to be a backend and is never used as one.

import type { Expr, IndexExpr, IndexPred, Kernel, MatmulOperand } from '../ops/kernel-ir.js';
import { keyedSeed, randUniform } from '../ops/rand.js';
import { evalBinary, evalCast, evalUnary } from '../ops/scalar.js';
import type { CpuArray } from './cpu/render-js.js';
import { f16roundArray } from '../ops/f16.js';

type Env = Map<string, number>;

function idx(e: IndexExpr, env: Env, ins: readonly CpuArray[]): number {
  switch (e.k) {
    case 'var': return env.get(e.name)!;
    case 'const': return e.v;
    case 'add': return idx(e.a, env, ins) + idx(e.b, env, ins);
    case 'mul': return idx(e.a, env, ins) * e.c;
    case 'div': return Math.floor(idx(e.a, env, ins) / e.c);
    case 'mod': return idx(e.a, env, ins) % e.c;
    case 'loadIndex': return Math.min(Math.max(ins[e.buf]![idx(e.at, env, ins)]!, 0), e.hi);
  }
}

function pred(p: IndexPred, env: Env, ins: readonly CpuArray[]): boolean {
  switch (p.k) {
    case 'lt': return idx(p.a, env, ins) < p.c;
    case 'ge': return idx(p.a, env, ins) >= p.c;
    case 'and': return pred(p.a, env, ins) && pred(p.b, env, ins);
  }
}

export function evalExpr(e: Expr, env: Env, ins: readonly CpuArray[], acc = 0): number {
  const ev = (x: Expr) => evalExpr(x, env, ins, acc);
  switch (e.k) {
    case 'const': return e.v;
    case 'load': return ins[e.buf]![idx(e.at, env, ins)]!;
    case 'unary': return evalUnary(e.op, ev(e.a));
    case 'binary': return evalBinary(e.op, ev(e.a), ev(e.b), e.dtype === 'i32');
    case 'where': return ev(e.c) ? ev(e.a) : ev(e.b);
    case 'cast': return evalCast(ev(e.a), e.a.dtype, e.dtype);
    case 'select': return pred(e.pred, env, ins) ? ev(e.a) : ev(e.b);
    case 'index': return idx(e.at, env, ins);
    case 'rand': return randUniform(e.key ? keyedSeed(e.seed, ev(e.key)) : e.seed, idx(e.at, env, ins));
    case 'acc': return acc;
    case 'reduce': {
      let best = e.op === 'sum' ? 0 : e.op === 'max' || e.op === 'argmax' ? -Infinity : Infinity;
      let bestI = 0;
      const sizes = e.vars.map((v) => v.size);
      const total = sizes.reduce((p, s) => p * s, 1);
      for (let t = 0; t < total; t++) {
        let rem = t;
        for (let i = e.vars.length - 1; i >= 0; i--) {
          env.set(e.vars[i]!.name, rem % sizes[i]!);
          rem = Math.floor(rem / sizes[i]!);
        }
        const v = ev(e.body);
        if (e.op === 'sum') best += v;
        else if (e.op === 'max') best = Math.max(best, v);
        else if (e.op === 'min') best = Math.min(best, v);
        else if (e.op === 'argmax' ? v > best : v < best) {
          best = v;
          bestI = env.get(e.vars[0]!.name)!;
        }
      }
      return e.op === 'argmax' || e.op === 'argmin' ? bestI : e.dtype === 'i32' ? best | 0 : best;
    }
  }
}

function forEachIndex(shape: readonly number[], f: (env: Env, o: number) => void): void {
  const env: Env = new Map();
  const n = shape.reduce((p, d) => p * d, 1);
  for (let o = 0; o < n; o++) {
    let rem = o;
    for (let i = shape.length - 1; i >= 0; i--) {
      env.set(`i${i}`, rem % shape[i]!);
      rem = Math.floor(rem / shape[i]!);
    }
    f(env, o);
  }
}

/**
 * Evaluate a kernel into `out`, the slow and obvious way. An f16 output is rounded to binary16
 * once stored (in an f64 array, for gradient checks, it is kept in double precision).
 */
export function interpretKernel(k: Kernel, ins: readonly CpuArray[], out: CpuArray): void {
  evaluate(k, ins, out);
  if (k.out.dtype === 'f16' && out instanceof Float32Array) f16roundArray(out);
}

function evaluate(k: Kernel, ins: readonly CpuArray[], out: CpuArray): void {
  switch (k.kind) {
    case 'map':
      forEachIndex(k.out.shape, (env, o) => (out[o] = evalExpr(k.expr, env, ins)));
      return;
    case 'scatterAdd': {
      out.set(ins[k.base]!);
      // each sum is rounded to the output's precision by the store (f64 for gradient checks)
      for (let r = 0; r < k.rows; r++) {
        const row = Math.min(Math.max(ins[k.indices]![r]!, 0), k.outRows - 1);
        for (let j = 0; j < k.inner; j++) out[row * k.inner + j] = out[row * k.inner + j]! + ins[k.updates]![r * k.inner + j]!;
      }
      return;
    }
    case 'matmul': {
      const nb = k.batch.length;
      // element (row, col) of an operand at the output's batch index
      const operand = (op: MatmulOperand, env: Env) => {
        if (op.gather) {
          const { at, valid } = op.gather;
          const g: Env = new Map(Array.from({ length: nb }, (_, d) => [`b${d}`, env.get(`i${d}`)!]));
          return (row: number, col: number) => {
            g.set('row', row).set('col', col);
            return !valid || pred(valid, g, ins) ? ins[op.buf]![idx(at, g, ins)]! : 0;
          };
        }
        let off = op.offset;
        for (let d = 0; d < nb; d++) off += env.get(`i${d}`)! * op.batchStrides[d]!;
        return (row: number, col: number) => ins[op.buf]![off + row * op.rowStride + col * op.colStride]!;
      };
      const product = (env: Env) => {
        const a = operand(k.a, env), b = operand(k.b, env);
        const m = env.get(`i${nb}`)!, n = env.get(`i${nb + 1}`)!;
        let acc = 0;
        for (let kk = 0; kk < k.k; kk++) acc += a(m, kk) * b(kk, n);
        return k.epilogue ? evalExpr(k.epilogue, env, ins, acc) : acc;
      };
      const red = k.reduce;
      if (!red) {
        forEachIndex(k.out.shape, (env, o) => (out[o] = product(env)));
        return;
      }
      // a fused reduction: reduce the epilogue's values over the dims from `keep` on, then `post`
      const dims = [...k.batch, k.m, k.n];
      const inner = dims.slice(red.keep).reduce((p, d) => p * d, 1);
      const vals = new Float64Array(dims.slice(0, red.keep).reduce((p, d) => p * d, 1)).fill(red.op === 'sum' ? 0 : red.op === 'max' ? -Infinity : Infinity);
      forEachIndex(dims, (env, o) => {
        const q = Math.floor(o / inner), v = product(env);
        vals[q] = red.op === 'sum' ? vals[q]! + v : red.op === 'max' ? Math.max(vals[q]!, v) : Math.min(vals[q]!, v);
      });
      forEachIndex(k.out.shape, (env, o) => (out[o] = red.post ? evalExpr(red.post, env, ins, vals[o]!) : vals[o]!));
      return;
    }
  }
}
