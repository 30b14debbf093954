// One op suite, run once per device (the reference interpreter's, JavaScript, WebAssembly and
// WebGPU), each through the one plan interpreter: every op family, executed through
// `compile(...).run`, must give what the reference interpreter gives one op at a time (f32
// tolerance for floats, exactly for integers and booleans), and a training step with Adam must
// keep doing so step after step; random f16 graphs agree to f16 tolerance. Without a WebGPU
// adapter its half of the suite skips with the reason, except under CI, where it fails.

import { describe, expect, it } from 'vitest';
import { graph, type Builder } from '../graphs/builder.js';
import { grad } from '../graphs/autodiff.js';
import { adam } from '../graphs/optim.js';
import type { Graph } from '../graphs/graph.js';
import fc from 'fast-check';
import { bool, dim, f16, f32, i32, numel, type Tensor } from '../graphs/types.js';
import { f16round } from '../ops/f16.js';
import { arbGraph, fcParams } from './arbitraries.js';
import { compile, compileAsync, BackendError, OutputError, type Executable, type Outputs } from '../runtime/executor.js';
import { tensor, type HostTensor } from '../runtime/tensor.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { wasmAvailable } from '../runtime/wasm/device.js';

const gpu = await sharedWebGpuBackend();
if (!gpu) console.warn(`WebGPU half of the backend suite skipped: no adapter (${WebGpuBackend.unavailableReason})`);

const backends = [
  { name: 'reference' as const, available: true },
  { name: 'js' as const, available: true },
  { name: 'wasm' as const, available: wasmAvailable() || Boolean(process.env.CI) },
  { name: 'webgpu' as const, available: gpu !== null || Boolean(process.env.CI) },
];

// ---------------------------------------------------------------- values and comparison

/** Seeded values in [lo, hi], multiples of 2^-10 (exact in f32; ties possible only when asked). */
function values(n: number, seed: number, lo = -2, hi = 2): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.round((lo + ((s >>> 8) / 2 ** 24) * (hi - lo)) * 1024) / 1024;
  });
}

/** Distinct values (a shuffled ramp): argmax and max have one answer. */
function distinct(n: number, seed: number): Float32Array {
  const v = Float32Array.from({ length: n }, (_, i) => (i - n / 2) / 8);
  let s = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [v[i], v[j]] = [v[j]!, v[i]!];
  }
  return v;
}

const t = (data: Float32Array | Int32Array | Uint8Array, shape: number[]): HostTensor => tensor(data, shape);

function expectClose(got: Outputs, want: Outputs, label: string, rtol = 2e-4, atol = 2e-5): void {
  expect(Object.keys(got).sort(), label).toEqual(Object.keys(want).sort());
  for (const [name, w] of Object.entries(want)) {
    const g = got[name]!;
    expect(g.shape, `${label}: ${name} shape`).toEqual(w.shape);
    expect(g.dtype, `${label}: ${name} dtype`).toBe(w.dtype);
    const exact = w.dtype === 'i32' || w.dtype === 'bool';
    for (let i = 0; i < w.data.length; i++) {
      const a = g.data[i]!, b = w.data[i]!;
      if (a === b || (Number.isNaN(a) && Number.isNaN(b))) continue;
      if (exact || !(Math.abs(a - b) <= rtol * Math.max(Math.abs(a), Math.abs(b)) + atol)) {
        expect.fail(`${label}: output '${name}' [${w.shape.join(', ')}] element ${i}: got ${a}, reference ${b}`);
      }
    }
  }
}

// ---------------------------------------------------------------- running a case

type Backend = (typeof backends)[number]['name'];

async function compileOn(backend: Backend, g: Graph, opts: Parameters<typeof compile>[1] = {}): Promise<Executable> {
  return compileAsync(g, { ...opts, backend });
}

function reference(g: Graph, feeds: Record<string, HostTensor>, variables: Record<string, HostTensor> = {}): Outputs {
  const exe = compile(g, { backend: 'reference', fuse: false });
  exe.setVariables(variables);
  return exe.runSync(feeds);
}

interface Case {
  readonly graph: Graph;
  readonly feeds: Record<string, HostTensor>;
  readonly variables?: Record<string, HostTensor>;
  readonly rtol?: number;
  readonly atol?: number;
}

async function check(backend: Backend, label: string, c: Case): Promise<void> {
  const exe = await compileOn(backend, c.graph);
  exe.setVariables(c.variables ?? {});
  const got = await exe.run(c.feeds);
  expectClose(got, reference(c.graph, c.feeds, c.variables), `${backend} ${label}`, c.rtol, c.atol);
}

/** A graph of one input x (and optional y) with outputs from `build`. */
function unaryCase(shape: number[], x: Float32Array, build: (g: Builder, x: Tensor) => Record<string, Tensor>): Case {
  return { graph: graph('case', (g) => build(g, g.input('x', f32(...shape)))), feeds: { x: t(x, shape) } };
}

function binaryCase(sa: number[], sb: number[], a: Float32Array, b: Float32Array, build: (g: Builder, a: Tensor, b: Tensor) => Record<string, Tensor>): Case {
  return {
    graph: graph('case', (g) => build(g, g.input('a', f32(...sa)), g.input('b', f32(...sb)))),
    feeds: { a: t(a, sa), b: t(b, sb) },
  };
}

// ---------------------------------------------------------------- the suite

describe('backend suite', () => {
  it('has a WebGPU adapter when CI is set (skips elsewhere)', () => {
    if (!gpu && process.env.CI) expect.fail(`CI is set but no WebGPU adapter was found: ${WebGpuBackend.unavailableReason}`);
  });
});

describe.each(backends)('$name backend equals the reference interpreter', ({ name: backend, available }) => {
  describe.skipIf(!available)('ops', () => {
    it('elementwise unary ops', async () => {
      const shape = [3, 5, 7];
      const n = numel(shape);
      const pos = values(n, 1, 0.05, 3);
      const any = values(n, 2, -3, 3);
      const halves = Float32Array.from(values(n, 3, -6, 6), (v) => Math.round(v * 2) / 2);
      await check(backend, 'unary', {
        graph: graph('unary', (g) => {
          const p = g.input('p', f32(...shape)), x = g.input('x', f32(...shape)), h = g.input('h', f32(...shape));
          return {
            neg: g.neg(x), exp: g.exp(x), log: g.log(p), sqrt: g.sqrt(p), rsqrt: g.rsqrt(p), abs: g.abs(x),
            sin: g.sin(x), cos: g.cos(x), tanh: g.tanh(x), sigmoid: g.sigmoid(x), relu: g.relu(x),
            recip: g.recip(p), square: g.square(x), floor: g.floor(h), ceil: g.ceil(h), round: g.round(h),
            sign: g.sign(h), step: g.step(h),
          };
        }),
        feeds: { p: t(pos, shape), x: t(any, shape), h: t(halves, shape) },
      });
    });

    it('elementwise binary ops with broadcasting, odd sizes and scalars', async () => {
      for (const [sa, sb] of [[[5, 7], [7]], [[3, 1, 5], [4, 1]], [[], [6, 3]], [[2, 3, 4, 5], [1, 3, 1, 5]]] as number[][][]) {
        const a = values(numel(sa!), 4, 0.25, 3), b = values(numel(sb!), 5, 0.25, 2);
        await check(backend, `binary ${JSON.stringify([sa, sb])}`, binaryCase(sa!, sb!, a, b, (g, x, y) => ({
          add: g.add(x, y), sub: g.sub(x, y), mul: g.mul(x, y), div: g.div(x, y), pow: g.pow(x, y),
          max: g.maximum(x, y), min: g.minimum(x, y), mod: g.mod(g.neg(x), y), scaled: g.add(g.mul(x, 2.5), 1),
        })));
      }
    });

    it('comparisons, logical ops and where', async () => {
      const sa = [4, 6], sb = [6];
      const a = Float32Array.from(values(24, 6, -2, 2), (v) => Math.round(v)), b = Float32Array.from(values(6, 7, -2, 2), (v) => Math.round(v));
      await check(backend, 'comparisons', binaryCase(sa, sb, a, b, (g, x, y) => {
        const lt = g.lt(x, y), ge = g.ge(x, y);
        return {
          lt, le: g.le(x, y), gt: g.gt(x, y), ge, eq: g.eq(x, y), ne: g.ne(x, y),
          and: g.and(lt, g.gt(x, 0)), or: g.or(ge, g.lt(y, -1)), not: g.not(lt),
          where: g.where(lt, x, y), whereScalar: g.where(ge, g.mul(x, 3), 0),
        };
      }));
    });

    it('casts between f32, i32 and bool', async () => {
      const shape = [3, 11];
      const x = values(33, 8, -5, 5);
      await check(backend, 'cast', {
        graph: graph('cast', (g) => {
          const v = g.input('x', f32(...shape)), k = g.input('k', i32(...shape)), m = g.input('m', bool(...shape));
          return {
            toI32: g.cast(v, 'i32'), toBool: g.cast(v, 'bool'), fromI32: g.cast(g.add(k, 3), 'f32'), fromBool: g.cast(m, 'f32'),
            boolToI32: g.cast(m, 'i32'), i32ToBool: g.cast(k, 'bool'), i32Math: g.mul(g.sub(k, 2), k),
          };
        }),
        feeds: {
          x: t(x, shape),
          k: t(Int32Array.from(x, (v) => Math.round(v)), shape),
          m: t(Uint8Array.from(x, (v) => (v > 0 ? 1 : 0)), shape),
        },
      });
    });

    it('reductions over any axes, keepdims, argmax and argmin', async () => {
      const shape = [3, 4, 5];
      await check(backend, 'reductions', unaryCase(shape, distinct(60, 9), (g, x) => ({
        sumAll: g.sum(x), sum0: g.sum(x, 0), sum12: g.sum(x, [1, 2]), sumKeep: g.sum(x, [0, 2], true),
        mean: g.mean(x, 1), max: g.max(x, [0, 2]), min: g.min(x, 2, true), lse: g.logsumexp(x, -1),
        argmax: g.argmax(x, 1), argmin: g.argmin(x, 0), argmaxKeep: g.argmax(x, -1, true),
      })));
      // a long reduction (over 1 << 17 elements) and ties in argmax (the first index wins)
      const long = values(1 << 17, 10, -1, 1);
      await check(backend, 'long reduction', { ...unaryCase([1 << 17], long, (g, x) => ({ s: g.sum(x), m: g.max(x) })), atol: 1e-3 });
      const ties = Float32Array.from(values(40, 11), (v) => Math.round(v));
      await check(backend, 'argmax ties', unaryCase([5, 8], ties, (g, x) => ({ a: g.argmax(x, -1), b: g.argmin(x, 0) })));
    });

    it('matmul, batched matmul with broadcasting, and einsum', async () => {
      for (const [sa, sb] of [[[7, 13], [13, 5]], [[1, 9], [9, 1]], [[2, 3, 6, 4], [3, 4, 5]], [[65, 33], [33, 70]]] as number[][][]) {
        await check(backend, `matmul ${JSON.stringify([sa, sb])}`, {
          ...binaryCase(sa!, sb!, values(numel(sa!), 12), values(numel(sb!), 13), (g, a, b) => ({ c: g.matmul(a, b), relu: g.relu(g.add(g.matmul(a, b), 0.5)) })),
          atol: 1e-4,
        });
      }
      await check(backend, 'einsum', {
        graph: graph('einsum', (g) => {
          const a = g.input('a', f32(3, 4, 5)), b = g.input('b', f32(5, 6)), c = g.input('c', f32(6, 2)), v = g.input('v', f32(4));
          return {
            contract: g.einsum('ijk,kl->ijl', a, b), chain: g.einsum('ijk,kl,lm->imj', a, b, c),
            outer: g.einsum('j,lm->jlm', v, c), reduce: g.einsum('ijk->j', a), permute: g.einsum('ijk->kij', a),
          };
        }),
        feeds: { a: t(values(60, 14), [3, 4, 5]), b: t(values(30, 15), [5, 6]), c: t(values(12, 16), [6, 2]), v: t(values(4, 17), [4]) },
        atol: 1e-4,
      });
    });

    it('layout ops: reshape, transpose, broadcastTo, slice, concat, pad', async () => {
      const shape = [2, 3, 4];
      await check(backend, 'layout', unaryCase(shape, values(24, 18), (g, x) => ({
        reshape: g.reshape(g.exp(x), [6, 4]), transpose: g.transpose(x, [2, 0, 1]), t2: g.add(g.transpose(x), 1),
        broadcast: g.broadcastTo(g.sum(x, 1, true), [2, 5, 4]), slice: g.slice(x, [1, 0, 1], [2, 3, 4]),
        concat: g.concat([x, g.neg(x), g.slice(x, [0, 0, 0], [2, 3, 1])].slice(0, 2), 1),
        concatOdd: g.concat([g.slice(x, [0, 0, 0], [2, 3, 1]), x], 2),
        pad: g.pad(x, [0, 1, 2], [1, 0, 1], -1), padMath: g.mul(g.pad(g.relu(x), [1, 0, 0], [0, 0, 3]), 2),
      })));
    });

    it('gather and scatter-add (out-of-range indices clamp)', async () => {
      await check(backend, 'gather/scatterAdd', {
        graph: graph('embed', (g) => {
          const table = g.input('table', f32(7, 5)), idx = g.input('idx', i32(4, 3)), upd = g.input('upd', f32(12, 5));
          const flat = g.reshape(idx, [12]);
          return {
            gathered: g.gather(table, idx), scaled: g.mul(g.gather(table, flat), 2),
            scattered: g.scatterAdd(table, flat, upd), fromZero: g.scatterAdd(g.zeros([7, 5], 'f32'), flat, g.exp(upd)),
          };
        }),
        feeds: {
          table: t(values(35, 19), [7, 5]), idx: t(Int32Array.from({ length: 12 }, (_, i) => ((i * 5) % 9) - 1), [4, 3]),
          upd: t(values(60, 20), [12, 5]),
        },
      });
    });

    it('softmax, log-softmax and layer norm', async () => {
      const shape = [5, 9];
      await check(backend, 'nn', {
        graph: graph('nn', (g) => {
          const x = g.input('x', f32(...shape)), gamma = g.input('gamma', f32(9)), beta = g.input('beta', f32(9));
          return { softmax: g.softmax(x), softmax0: g.softmax(x, 0), logSoftmax: g.logSoftmax(x), layerNorm: g.layerNorm(x, gamma, beta), plain: g.layerNorm(x) };
        }),
        feeds: { x: t(values(45, 21, -4, 4), shape), gamma: t(values(9, 22), [9]), beta: t(values(9, 23), [9]) },
        atol: 1e-4,
      });
    });

    it('conv2d with stride and padding', async () => {
      await check(backend, 'conv2d', {
        ...binaryCase([2, 3, 7, 6], [4, 3, 3, 2], values(252, 24), values(72, 25), (g, x, w) => ({
          same: g.conv2d(x, w, { padding: 1 }), strided: g.relu(g.conv2d(x, w, { stride: 2, padding: 1 })), valid: g.conv2d(x, w),
        })),
        atol: 1e-4,
      });
    });

    it('dropout with an explicit seed gives the same mask on every backend', async () => {
      await check(backend, 'dropout', unaryCase([17, 33], values(561, 26), (g, x) => ({ d: g.dropout(x, 0.3, 1234), d2: g.dropout(g.exp(x), 0.5, 7) })));
    });

    it('losses: softmax cross-entropy and MSE', async () => {
      const labels = new Float32Array(6 * 10);
      for (let i = 0; i < 6; i++) labels[i * 10 + ((i * 7) % 10)] = 1;
      await check(backend, 'losses', binaryCase([6, 10], [6, 10], values(60, 27, -3, 3), labels, (g, a, b) => ({
        xent: g.softmaxCrossEntropy(a, b), mse: g.mse(a, b),
      })));
    });

    it('gradients of a small network', async () => {
      const fwd = graph('net', (g) => {
        const x = g.input('x', f32(5, 6));
        const w = g.param('w', f32(6, 4)), b = g.param('b', f32(4));
        const h = g.tanh(g.add(g.matmul(x, w), b));
        return { loss: g.add(g.mean(g.square(h)), g.sum(g.logSoftmax(h)) as Tensor) };
      });
      await check(backend, 'grad', {
        graph: grad(fwd, 'loss'), feeds: { x: t(values(30, 28), [5, 6]) },
        variables: { 'param:w': t(values(24, 29), [6, 4]), 'param:b': t(values(4, 30), [4]) }, atol: 1e-4,
      });
    });

    it('a training step with Adam follows the reference step after step', async () => {
      const sizes = [12, 16, 5];
      const step = grad(mlpGraph(sizes), 'loss');
      const opt = { optimizer: adam(0.01), seed: 3 };
      const exe = await compileOn(backend, step, opt);
      const ref = compile(step, { ...opt, backend: 'reference', fuse: false });
      const batch = 7;
      for (let s = 0; s < 4; s++) {
        const y = new Float32Array(batch * 5);
        for (let i = 0; i < batch; i++) y[i * 5 + ((i + s) % 5)] = 1;
        const feeds = { x: t(values(batch * 12, 40 + s), [batch, 12]), y: t(y, [batch, 5]) };
        expectClose(await exe.run(feeds), ref.runSync(feeds), `${backend} adam step ${s}`, 1e-4, 1e-5);
      }
      const [got, want] = [await exe.readVariables(), ref.variables()];
      expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
      expectClose(got, want, `${backend} variables after 4 steps`, 1e-4, 1e-5);
      // evaluation leaves params alone; a second batch size gets a plan of its own
      const before = await exe.readVariables();
      await exe.run({ x: t(values(3 * 12, 50), [3, 12]) }, ['logits'], { update: false });
      expectClose(await exe.readVariables(), before, `${backend} update: false`, 0, 0);
    });
  });

  describe.skipIf(!available)('f16', () => {
    // f16 is binary16 on every device: each kernel rounds what it stores, and the reference rounds
    // after every op where fused kernels keep f32 between ops, so values agree to f16 tolerance
    it('random f16 graphs equal the reference interpreter to f16 tolerance, and hold binary16 values', async () => {
      await fc.assert(fc.asyncProperty(arbGraph({ maxOps: 8, float: 'f16', params: true }), async ({ graph: g, feeds, variables }) => {
        const exe = await compileOn(backend, g);
        exe.setVariables(variables);
        const got = await exe.run(feeds);
        for (const [name, o] of Object.entries(got)) {
          if (o.dtype !== 'f16') continue;
          const off = Array.from(o.data).findIndex((v) => !Number.isNaN(v) && f16round(v) !== v);
          if (off >= 0) expect.fail(`${backend}: f16 output '${name}' element ${off} is ${o.data[off]}, not a binary16 value`);
        }
        expectClose(got, reference(g, feeds, variables), `${backend} f16 graph`, 1e-2, 1e-2);
      }), fcParams(backend === 'webgpu' ? 25 : 60));
    }, 600_000);

    it('f32 data fed to an f16 input is rounded to binary16; a cast back to f32 is exact', async () => {
      const g = graph('h', (b) => {
        const x = b.input('x', f16(6));
        return { x, y: b.cast(x, 'f32'), z: b.cast(b.input('w', f32(6)), 'f16') };
      });
      const exe = await compileOn(backend, g);
      const raw = new Float32Array([0.1, 65519, 70000, -1e-8, 3e-8, 1 / 3]);
      const want = [0.0999755859375, 65504, Infinity, -0, 5.960464477539063e-8, 0.333251953125];
      const out = await exe.run({ x: tensor(raw, [6], 'f16'), w: raw });
      for (const name of ['x', 'y', 'z']) expect([...out[name]!.data], name).toEqual(want);
      expect(out.y!.dtype).toBe('f32');
    });

    it('f16 params written after a run (setVariables) are rounded to binary16', async () => {
      const exe = await compileOn(backend, graph('w', (b) => {
        const w = b.param('w', f16(3));
        return { y: b.mul(w, 2) };
      }));
      await exe.run({});
      exe.setVariables({ 'param:w': new Float32Array([0.1, 70000, 1 / 3]) });
      const want = [0.0999755859375, Infinity, 0.333251953125];
      expect([...(await exe.run({})).y!.data]).toEqual(want.map((v) => 2 * v));
      expect([...(await exe.readVariables())['param:w']!.data]).toEqual(want);
    });

    it('a cast to f16 inside a fused kernel rounds there (the kernel stores f32)', async () => {
      const n = 64;
      const g = graph('inner', (b) => {
        const x = b.input('x', f32(n));
        return { y: b.add(b.cast(b.cast(b.mul(x, 0.5), 'f16'), 'f32'), 1) };
      });
      // x * 0.5 is exact in any precision: ties (odd integers past 2048), values past 65520,
      // subnormals, ordinary values
      const x = Float32Array.from({ length: n }, (_, i) => (i % 4 === 0 ? 2 * (2049 + 2 * i) : i % 4 === 1 ? 131000 + i * 20 : i % 4 === 2 ? i * 1e-8 : Math.sin(i) * 7));
      const exe = await compileOn(backend, g);
      if (backend !== 'reference') expect(exe.plan({ x: [n] }).kernelCount).toBe(1);
      const got = (await exe.run({ x })).y!.data;
      for (let i = 0; i < n; i++) expect(got[i], `element ${i}`).toBe(Math.fround(f16round(x[i]! * 0.5) + 1));
    });
  });

  describe.skipIf(!available)('executor', () => {
    it('setVariables uploads, readVariables reads back, and outputs may be params or inputs', async () => {
      const g = graph('ids', (b) => {
        const x = b.input('x', f32(dim('n'))), w = b.param('w', f32(3));
        return { x, w, y: b.mul(b.sum(x), w) };
      });
      const exe = await compileOn(backend, g);
      exe.setVariables({ 'param:w': new Float32Array([1, 2, 3]) });
      const out = await exe.run({ x: new Float32Array([0.5, 1.5]) });
      expect([...out.y!.data]).toEqual([2, 4, 6]);
      expect([...out.w!.data]).toEqual([1, 2, 3]);
      expect([...out.x!.data]).toEqual([0.5, 1.5]);
      expect([...(await exe.readVariables())['param:w']!.data]).toEqual([1, 2, 3]);
    });

    it("outputs read `into` given arrays are those arrays, holding what a run without them returns; a wrong array is an OutputError naming the output", async () => {
      await fc.assert(
        fc.asyncProperty(arbGraph({ maxOps: 8, params: true }), async ({ graph: g, feeds, variables }) => {
          const exe = await compileOn(backend, g);
          exe.setVariables(variables);
          const want = await exe.run(feeds, undefined, { update: false });
          const into = Object.fromEntries(Object.entries(want).map(([name, o]) => [name, (o.data.slice() as typeof o.data).fill(3)]));
          const got = await exe.run(feeds, undefined, { update: false, into });
          for (const [name, o] of Object.entries(want)) {
            expect(got[name]!.data, name).toBe(into[name]);
            expect([...got[name]!.data], name).toEqual([...o.data]);
          }
          const [name, o] = Object.entries(want)[0]!;
          const short = new Float64Array(o.data.length + 1);
          await expect(exe.run(feeds, undefined, { update: false, into: { [name]: short } })).rejects.toThrow(OutputError);
          await expect(exe.run(feeds, undefined, { update: false, into: { [name]: short } })).rejects.toThrow(`into['${name}']`);
          await expect(exe.run(feeds, undefined, { update: false, into: { nothing: o.data } })).rejects.toThrow(OutputError);
        }),
        fcParams(15),
      );
    }, 120_000);

    it('runs started back to back apply their updates in order', async () => {
      const g = graph('counter', (b) => {
        const c = b.state('c', f32(2));
        const next = b.add(c, b.input('d', f32(2)));
        b.update(c, next);
        return { c: next };
      });
      const exe = await compileOn(backend, g);
      const d = new Float32Array([1, 10]);
      const outs = await Promise.all([exe.run({ d }), exe.run({ d }), exe.run({ d })]);
      expect(outs.map((o) => [...o.c!.data])).toEqual([[1, 10], [2, 20], [3, 30]]);
      expect([...(await exe.readVariables())['state:c']!.data]).toEqual([3, 30]);
    });

  });
});

describe.skipIf(!gpu)('WebGPU executables', () => {
  it('runSync and variables() refuse on WebGPU and say what to use', async () => {
    const exe = await compileOn('webgpu', graph('g', (b) => ({ y: b.exp(b.input('x', f32(2))) })));
    expect(exe.backendInfo.backend).toBe('webgpu');
    expect(exe.backendInfo.adapter).toBeTruthy();
    expect(() => exe.runSync({ x: [1, 2] })).toThrow(BackendError);
    expect(() => exe.runSync({ x: [1, 2] })).toThrow(/await exe.run/);
    expect(() => exe.variables()).toThrow(/readVariables/);
  });
});
