// Reductions of matmul products fused into the matmul (MatmulKernel.reduce). On a device whose
// caps say `matmulReduce`, a sum, max or min over a product's trailing dims (through an
// elementwise epilogue, before an elementwise tail such as mean's division) is one kernel and the
// product gets no buffer; that plan, run kernel by kernel through the kernel-IR interpreter,
// gives the CPU backend's numbers, and its peak is never above the unfused plan's. What must not
// fuse does not: a product read twice, argmax, a reduction that leaves a trailing dim, an f16
// product, and every plan for the CPU. On WebGPU, every variant the tuner can pick (forced one at
// a time) equals the interpreter, and whole graphs equal the CPU device. Without an adapter the
// device part skips, except under CI.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compileAsync, f16, f32, graph, planGraph, type Graph } from '../index.js';
import type { Builder as OpBuilder } from '../graphs/builder.js';
import type { Tensor } from '../ops/types.js';
import { HOST_CAPS, type DeviceCaps } from '../scheduler/caps.js';
import type { MatmulKernel } from '../ops/kernel-ir.js';
import { interpretKernel } from '../runtime/interpreter.js';
import { mulberry32 } from '../runtime/rng.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';
import { TuningStore, candidates } from '../runtime/webgpu/tuner.js';
import { renderMatmulReduce } from '../runtime/webgpu/render-wgsl-matmul-reduce.js';
import { reference, runOn } from './fixtures/kernel-runs.js';
import { describeForcedVariants } from './fixtures/dawn-forced.js';
import { fcParams } from './arbitraries.js';

/** A reduction of a matmul product: out = tail(reduce(epilogue(x·w), trailing axes)). */
interface Case {
  batch: number[];
  m: number;
  k: number;
  n: number;
  /** w broadcast over the batch (2-D) or batched like x */
  wBatched: boolean;
  epilogue: 'none' | 'biasRelu' | 'squaredError' | 'tanh';
  op: 'sum' | 'max' | 'min';
  /** trailing axes reduced, 1 (n only) up to every axis */
  axes: number;
  keepdims: boolean;
  tail: 'none' | 'mean' | 'logAbs';
}

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    batch: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
    m: fc.integer({ min: 1, max: 40 }),
    k: fc.integer({ min: 1, max: 40 }),
    n: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 100, max: 300 })),
    wBatched: fc.boolean(),
    epilogue: fc.constantFrom('none', 'biasRelu', 'squaredError', 'tanh'),
    op: fc.constantFrom('sum', 'max', 'min'),
    axesFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    keepdims: fc.boolean(),
    tail: fc.constantFrom('none', 'mean', 'logAbs'),
  })
  .map(({ axesFrac, ...c }) => ({ ...c, axes: 1 + Math.min(c.batch.length + 1, Math.floor(axesFrac * (c.batch.length + 2))) }));

const ALL: readonly string[] = ['x', 'w', 'b', 'y'];

function caseGraph(c: Case, dtype: typeof f32 | typeof f16 = f32): Graph {
  return graph('mr', (g) => {
    const x = g.param('x', dtype(...c.batch, c.m, c.k));
    const w = g.param('w', dtype(...(c.wBatched ? c.batch : []), c.k, c.n));
    const b = g.param('b', dtype(c.n));
    const y = g.param('y', dtype(...c.batch, c.m, c.n));
    return { out: reduction(g, c, x, w, b, y) };
  });
}

function reduction(g: OpBuilder, c: Case, x: Tensor, w: Tensor, b: Tensor, y: Tensor): Tensor {
  const p = g.matmul(x, w);
  const e = c.epilogue === 'biasRelu' ? g.relu(g.add(p, b)) : c.epilogue === 'squaredError' ? g.square(g.sub(p, y)) : c.epilogue === 'tanh' ? g.tanh(p) : p;
  const rank = c.batch.length + 2;
  const axes = Array.from({ length: c.axes }, (_, i) => rank - c.axes + i);
  if (c.tail === 'mean' && c.op === 'sum') return g.mean(e, axes, c.keepdims);
  const r = c.op === 'sum' ? g.sum(e, axes, c.keepdims) : c.op === 'max' ? g.max(e, axes, c.keepdims) : g.min(e, axes, c.keepdims);
  return c.tail === 'logAbs' ? g.log(g.add(g.abs(r), 1)) : r;
}

const shapesOf = (g: Graph) => g.nodes.map((n) => n.shape as number[]);

/** A WebGPU device's planning caps without an adapter: implicit GEMM and fused matmul reductions. */
const GPU_LIKE: DeviceCaps = {
  ...HOST_CAPS, kind: 'webgpu', implicitGemm: true, matmulReduce: true, inPlace: false, sync: false, f64: false,
  elementBytes: { f32: 4, f16: 4, i32: 4, bool: 4 },
};

function paramValues(g: Graph, seed: number): Record<string, Float32Array> {
  const r = mulberry32(seed);
  const out: Record<string, Float32Array> = {};
  for (const n of g.nodes) {
    if (n.op !== 'param') continue;
    const len = (n.shape as number[]).reduce((a, d) => a * d, 1);
    out[n.name!] = Float32Array.from({ length: len }, () => Math.fround(r() * 2 - 1));
  }
  return out;
}

/** The plan's output, every kernel run through the kernel-IR interpreter. */
function interpretPlan(g: Graph, caps: DeviceCaps, values: Record<string, Float32Array>): Float32Array {
  const plan = planGraph(g, shapesOf(g), { caps });
  const buf = new Map<number, Float32Array>();
  for (const n of g.nodes) if (n.op === 'param') buf.set(n.id, values[n.name!]!);
  for (const st of plan.steps) {
    if (st.kind !== 'launch') continue;
    const out = new Float32Array(st.kernel.out.shape.reduce((a, d) => a * d, 1));
    interpretKernel(st.kernel, st.inputs.map((id) => buf.get(id)!), out);
    buf.set(st.output, out);
  }
  return buf.get(g.outputs['out']!)!;
}

async function onCpu(g: Graph, values: Record<string, Float32Array>): Promise<Float32Array> {
  const exe = await compileAsync(g, { backend: 'cpu', threads: 1 });
  exe.setVariables(Object.fromEntries(Object.entries(values).map(([k, v]) => [`param:${k}`, v])));
  return (await exe.run({})).out!.data as Float32Array;
}

/** |got - want| within f32 rounding of sums of `terms` products of values in [-1, 1]. */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, terms: number, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  const atol = 4e-6 * terms + 1e-5;
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= atol + 2e-5 * Math.abs(want[i]!))) expect.fail(`${what}: element ${i}: ${got[i]}, expected ${want[i]}`);
  }
}

const terms = (c: Case) => c.k * (c.op === 'sum' ? c.n * [...c.batch, c.m].slice(c.batch.length + 2 - c.axes).reduce((a, d) => a * d, 1) : 1);

const fusedKernels = (g: Graph, caps: DeviceCaps) =>
  planGraph(g, shapesOf(g), { caps }).steps.flatMap((s) => (s.kind === 'launch' && s.kernel.kind === 'matmul' ? [s.kernel] : []));

describe('fused matmul reductions: plans', () => {
  it('one matmul kernel with the reduction, no buffer for the product, a peak never above the unfused plan, and the CPU backend\'s numbers', async () => {
    await fc.assert(fc.asyncProperty(caseArb, fc.integer(), async (c, seed) => {
      const g = caseGraph(c);
      const mms = fusedKernels(g, GPU_LIKE);
      expect(mms.length).toBe(1);
      const red = mms[0]!.reduce;
      expect(red, 'the reduction is fused').toBeDefined();
      expect(red!.op).toBe(c.op);
      expect(red!.keep).toBe(c.batch.length + 2 - c.axes);
      const fused = planGraph(g, shapesOf(g), { caps: GPU_LIKE });
      const plain = planGraph(g, shapesOf(g), { caps: { ...GPU_LIKE, matmulReduce: false } });
      // the product (or its epilogue) is an intermediate buffer only where the reduction is not fused
      const size = [...c.batch, c.m, c.n].reduce((a, d) => a * d, 1);
      const holdsProduct = (p: typeof fused) => [...p.buffers.values()].some((b) => b.role === 'intermediate' && b.elements === size);
      expect(holdsProduct(fused)).toBe(false);
      expect(holdsProduct(plain)).toBe(true);
      expect(fused.peakBytes).toBeLessThanOrEqual(plain.peakBytes);
      const values = paramValues(g, seed);
      expectClose(interpretPlan(g, GPU_LIKE, values), await onCpu(g, values), terms(c), JSON.stringify(c));
    }), fcParams(40));
  }, 120_000);

  it('does not fuse a product read twice, argmax, a reduction that keeps the last dim, an f16 product, anything on the CPU, or a reduction past n with no binding left for its scratch buffer', () => {
    const c: Case = { batch: [2], m: 5, k: 4, n: 6, wBatched: false, epilogue: 'biasRelu', op: 'sum', axes: 1, keepdims: false, tail: 'none' };
    expect(fusedKernels(caseGraph(c), GPU_LIKE)[0]!.reduce).toBeDefined();
    expect(fusedKernels(caseGraph(c), HOST_CAPS)[0]!.reduce).toBeUndefined();
    expect(fusedKernels(caseGraph(c, f16), GPU_LIKE)[0]!.reduce).toBeUndefined();
    // x, w, y and the output take 4 bindings: a reduction past n needs a scratch buffer too
    const full: Case = { ...c, epilogue: 'squaredError', axes: 2 };
    expect(fusedKernels(caseGraph(full), GPU_LIKE)[0]!.reduce).toBeDefined();
    expect(fusedKernels(caseGraph(full), { ...GPU_LIKE, maxKernelBuffers: 4 })[0]!.reduce).toBeUndefined();
    const rows = fusedKernels(caseGraph({ ...full, axes: 1, n: 300 }), { ...GPU_LIKE, maxKernelBuffers: 4 })[0]!;
    expect(rows.reduce).toBeDefined();
    expect(renderMatmulReduce(rows, 65535, { tm: 4, tn: 4, wx: 8, wy: 4, groups: 4 }, false, 8).passes.length).toBe(2);
    expect(renderMatmulReduce(rows, 65535, { tm: 4, tn: 4, wx: 8, wy: 4, groups: 4 }, false, 4).passes.length).toBe(1);
    const variants: Record<string, (g: OpBuilder, p: Tensor) => Record<string, Tensor>> = {
      readTwice: (g, p) => ({ out: g.sum(p, -1), p }),
      argmax: (g, p) => ({ out: g.argmax(p, -1) }),
      keepsLastDim: (g, p) => ({ out: g.sum(p, 1) }),
    };
    for (const [name, f] of Object.entries(variants)) {
      const g = graph(name, (b) => f(b, b.matmul(b.param('x', f32(2, 5, 4)), b.param('w', f32(4, 6)))));
      expect(fusedKernels(g, GPU_LIKE).map((k) => k.reduce), name).toEqual([undefined]);
    }
  });
});

const be0 = await sharedWebGpuBackend();
if (!be0) console.warn(`WebGPU fused matmul reduction tests skipped: no adapter (${WebGpuBackend.unavailableReason})`);

describeForcedVariants('fused matmul reductions on WebGPU', be0, (d) => {

  /** The case's fused kernel in every candidate (`all`) or a few, against the interpreter; returns the accumulation forms run. */
  async function everyVariant(c: Case, seed: number, all: boolean): Promise<string[]> {
    const [k] = fusedKernels(caseGraph(c), d.caps) as [MatmulKernel];
    expect(k.reduce).toBeDefined();
    const r = mulberry32(seed);
    const arrays = k.inputs.map((p) => Float32Array.from({ length: p.size }, () => Math.fround(r() * 2 - 1)));
    const want = reference(k, arrays);
    const cands = candidates(k, d.lim(), d.be.variantOf(k));
    expect(cands.length).toBeGreaterThan(1);
    expect(cands.every((v) => v.kind === 'matmulReduce')).toBe(true);
    // all, or the default, the first in workgroup memory and one drawn
    const wg = cands.find((v) => v.kind === 'matmulReduce' && 'workgroup' in v.tile);
    const chosen = all ? cands : [...new Set([cands[0]!, ...(wg ? [wg] : []), cands[1 + Math.floor(r() * (cands.length - 1))]!])];
    for (const v of chosen) {
      d.force(k, v);
      expectClose(await runOn(d.be, k, arrays), want, terms(c), `${JSON.stringify(c)} ${JSON.stringify(v)}`);
    }
    return chosen.map((v) => (v.kind === 'matmulReduce' && 'workgroup' in v.tile ? 'workgroup' : 'register'));
  }

  it('every variant the tuner can pick equals the interpreter', async () => {
    // every candidate of a row reduction and of a full one, over several column blocks and groups
    const forms = [
      ...await everyVariant({ batch: [2], m: 37, k: 19, n: 290, wBatched: false, epilogue: 'biasRelu', op: 'sum', axes: 1, keepdims: false, tail: 'none' }, 1, true),
      ...await everyVariant({ batch: [], m: 70, k: 9, n: 133, wBatched: false, epilogue: 'squaredError', op: 'sum', axes: 2, keepdims: false, tail: 'mean' }, 2, false),
    ];
    // the register and workgroup accumulations both ran (llvmpipe runs 256-invocation workgroups)
    expect(new Set(forms)).toEqual(new Set(['register', 'workgroup']));
    await fc.assert(fc.asyncProperty(caseArb, fc.integer(), async (c, seed) => {
      await everyVariant(c, seed, false);
    }), fcParams(8));
  }, 300_000);

  it('whole graphs equal the CPU device', async () => {
    await fc.assert(fc.asyncProperty(caseArb, fc.integer(), async (c, seed) => {
      const g = caseGraph(c);
      const values = paramValues(g, seed);
      const exe = await compileAsync(g, { backend: 'webgpu', webgpu: d.be });
      exe.setVariables(Object.fromEntries(Object.entries(values).map(([k, v]) => [`param:${k}`, v])));
      expectClose((await exe.run({})).out!.data, await onCpu(g, values), terms(c), JSON.stringify(c));
    }), fcParams(10));
  }, 300_000);

  it('defaults to workgroup-memory tiles where plain matmuls do (GPUs), else to register tiles', () => {
    const [k] = fusedKernels(caseGraph({ batch: [], m: 300, k: 8, n: 700, wBatched: false, epilogue: 'none', op: 'sum', axes: 1, keepdims: false, tail: 'none' }), d.caps) as [MatmulKernel];
    for (const matmul of ['workgroup', 'register'] as const) {
      const b = new WebGpuBackend(d.be.gpu, { matmul, tuning: new TuningStore(null) });
      try {
        const v = b.variantOf(k);
        expect(v?.kind).toBe('matmulReduce');
        expect(v?.kind === 'matmulReduce' && 'workgroup' in v.tile).toBe(matmul === 'workgroup');
      } finally {
        b.dispose();
      }
    }
  });

  it('the one-pass form (one column group, only n reduced) writes the result itself', () => {
    const [k] = fusedKernels(caseGraph({ batch: [], m: 9, k: 3, n: 20, wBatched: false, epilogue: 'none', op: 'max', axes: 1, keepdims: true, tail: 'logAbs' }), d.caps) as [MatmulKernel];
    const one = renderMatmulReduce(k, 65535, { tm: 8, tn: 4, wx: 8, wy: 8, groups: 1 });
    expect(one.passes.length).toBe(1);
    expect(one.scratchWords).toBeUndefined();
    const two = renderMatmulReduce(k, 65535, { tm: 4, tn: 4, wx: 2, wy: 4, groups: 2 });
    expect(two.passes.length).toBe(2);
    // n = 20 is one 32-column block of the 8x8 workgroup kernel: one pass whatever the groups
    expect(renderMatmulReduce(k, 65535, { workgroup: { wt: 8, bk: 8 }, groups: 4 }).passes.length).toBe(1);
  });
});
