// conv2d as implicit GEMM on WebGPU: the plan reads the unfolded windows inside its matmuls (no
// kernel writes the im2col tensor, and the planned peak drops by its bytes); every matmul of a
// conv2d's forward and gradient plan, in every variant the tuner can pick for it (forced one at a
// time), gives the reference interpreter's numbers; and the whole forward and backward on WebGPU
// give the CPU device's. The index simplification the gathers rely on is checked as a law here
// too. Without an adapter the device part skips, except under CI.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compileAsync, f32, grad, graph, planGraph, type Graph, type HostTensor } from '../index.js';
import { HOST_CAPS, type DeviceCaps } from '../scheduler/caps.js';
import { delinearize, iadd, idiv, imul, ivar, linearize, recombine, type IndexExpr, type MatmulKernel } from '../ops/kernel-ir.js';
import { mulberry32 } from '../runtime/rng.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';
import { candidates } from '../runtime/webgpu/tuner.js';
import { reference, runOn } from './fixtures/kernel-runs.js';
import { describeForcedVariants } from './fixtures/dawn-forced.js';
import { fcParams } from './arbitraries.js';

interface Conv { n: number; c: number; h: number; w: number; o: number; kh: number; kw: number; stride: number; padding: number }

/** Random conv2d shapes: padding 0..2, stride 1..3, kernels from 1x1 up to the padded input. */
const convArb: fc.Arbitrary<Conv> = fc
  .record({
    n: fc.integer({ min: 1, max: 3 }), c: fc.integer({ min: 1, max: 4 }), h: fc.integer({ min: 1, max: 10 }), w: fc.integer({ min: 1, max: 10 }),
    o: fc.integer({ min: 1, max: 5 }), stride: fc.integer({ min: 1, max: 3 }), padding: fc.integer({ min: 0, max: 2 }),
    fh: fc.double({ min: 0, max: 1, noNaN: true }), fw: fc.double({ min: 0, max: 1, noNaN: true }),
  })
  .map(({ fh, fw, ...r }) => ({
    ...r,
    kh: 1 + Math.floor(fh * (r.h + 2 * r.padding - 1)),
    kw: 1 + Math.floor(fw * (r.w + 2 * r.padding - 1)),
  }));

/** loss = sum(conv2d(x, w)²), with x and w both parameters, so the gradients need dx and dW. */
function convGraph(s: Conv): Graph {
  return grad(graph('conv', (g) => {
    const x = g.param('x', f32(s.n, s.c, s.h, s.w));
    const w = g.param('w', f32(s.o, s.c, s.kh, s.kw));
    const y = g.conv2d(x, w, { stride: s.stride, padding: s.padding });
    return { y, loss: g.sum(g.mul(y, y)) };
  }), 'loss');
}

const shapesOf = (g: Graph) => g.nodes.map((n) => n.shape as number[]);

/** The element sizes and implicit GEMM of a WebGPU device, the host's limits otherwise. */
const GPU_LIKE: DeviceCaps = { ...HOST_CAPS, kind: 'webgpu', implicitGemm: true, inPlace: false, sync: false, f64: false, elementBytes: { f32: 4, f16: 4, i32: 4, bool: 4 } };

const unfoldedElements = (s: Conv) => {
  const oh = Math.floor((s.h + 2 * s.padding - s.kh) / s.stride) + 1, ow = Math.floor((s.w + 2 * s.padding - s.kw) / s.stride) + 1;
  return s.n * s.c * s.kh * s.kw * oh * ow;
};

describe('implicit GEMM plans', () => {
  it('floor((d*W + R) / (d*q)) simplifies to floor(W / q) and keeps its value', () => {
    fc.assert(fc.property(
      fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 3 }),
      (d, q, rowSize, extra, mult) => {
        // row*(d*mult) + col with col < d: a row-major index divided by a multiple of d
        const colSize = Math.min(d, extra);
        const sizes = new Map([['row', rowSize], ['col', colSize]]);
        const e: IndexExpr = iadd(imul(ivar('row'), d * mult), ivar('col'));
        const s = idiv(e, d * q, sizes);
        for (let row = 0; row < rowSize; row++) {
          for (let col = 0; col < colSize; col++) {
            expect(evalIndex(s, new Map([['row', row], ['col', col]]))).toBe(Math.floor((row * d * mult + col) / (d * q)));
          }
        }
      }), fcParams(100));
  });

  it('an index taken apart into digits and read back at the same strides is put together again, keeping its value', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 5 }), (shape, s) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const sizes = new Map([['x', size]]);
      const digits = delinearize(ivar('x'), shape, sizes);
      const e = imul(linearize(digits, shape), s);
      const r = recombine(e);
      if (size > 1) expect(r).toEqual(imul(ivar('x'), s));
      for (let x = 0; x < size; x++) {
        expect(evalIndex(e, new Map([['x', x]]))).toBe(x * s);
        expect(evalIndex(r, new Map([['x', x]]))).toBe(x * s);
      }
    }), fcParams(100));
  });

  it('on WebGPU no kernel writes the im2col tensor (unless copying it peaks lower), and the planned peak never grows', () => {
    fc.assert(fc.property(convArb, (s) => {
      const g = convGraph(s);
      const gpu = planGraph(g, shapesOf(g), { caps: GPU_LIKE });
      const host = planGraph(g, shapesOf(g), { caps: { ...GPU_LIKE, implicitGemm: false } });
      // a kernel of its own computing the windows (or their reshape for the matmul) writes the im2col tensor
      const writesWindows = (p: typeof gpu) =>
        p.steps.filter((st) => st.kind === 'launch' && st.kernel.kind !== 'matmul' && st.fused.some((id) => g.nodes[id]!.op === 'unfold2d'));
      expect(writesWindows(host).length).toBeGreaterThan(0);
      // the gathered plan is kept unless copying the windows peaks lower, which only windows no
      // larger than what gathering copies instead can do: a strided 1x1 kernel's (a subsample
      // smaller than the input), or windows of fewer values a position than the output has
      // channels (the output gradient, copied for dW beside the gathered windows, is larger)
      expect(gpu.peakBytes).toBeLessThanOrEqual(host.peakBytes);
      const gathers = gpu.steps.some((st) => st.kind === 'launch' && st.kernel.kind === 'matmul' && (st.kernel.a.gather || st.kernel.b.gather));
      if (writesWindows(gpu).length > 0) {
        expect(gathers, 'a plan that copies the windows has no gathers').toBe(false);
        expect((s.kh * s.kw === 1 && s.stride > 1) || s.c * s.kh * s.kw <= s.o, 'only strided 1x1 windows, or windows smaller than the output gradient, are copied').toBe(true);
        expect(gpu.peakBytes, 'the copies were the plan with the lower peak').toBe(host.peakBytes);
      }
    }), fcParams(100));
  });

  it('a ResNet-like layer (N=32, C=64, 56x56, 3x3, O=64) peaks at its output, not its windows', () => {
    const s: Conv = { n: 32, c: 64, h: 56, w: 56, o: 64, kh: 3, kw: 3, stride: 1, padding: 1 };
    const fwd = graph('conv', (g) => ({ y: g.conv2d(g.input('x', f32(32, 64, 56, 56)), g.param('w', f32(64, 64, 3, 3)), { padding: 1 }) }));
    const gpu = planGraph(fwd, shapesOf(fwd), { caps: GPU_LIKE });
    const host = planGraph(fwd, shapesOf(fwd), { caps: { ...GPU_LIKE, implicitGemm: false } });
    // without implicit GEMM the windows are written twice (unfolded, then reshaped for the
    // matmul): 2 x 231 MB; with it the peak is the matmul's output and its NCHW transpose, 2 x 25.7 MB
    expect(host.peakBytes).toBe(2 * unfoldedElements(s) * 4);
    expect(gpu.peakBytes).toBe(2 * 32 * 64 * 56 * 56 * 4);
    // the weights' row-major copy (64 x 576), the matmul, the output's NCHW transpose
    expect(gpu.steps.filter((st) => st.kind === 'launch').map((st) => st.kind === 'launch' && st.kernel.kind)).toEqual(['map', 'matmul', 'map']);
  });
});

/** An index expression's value as the backends compute it (division and remainder truncate). */
function evalIndex(e: IndexExpr, env: ReadonlyMap<string, number>): number {
  switch (e.k) {
    case 'var': return env.get(e.name)!;
    case 'const': return e.v;
    case 'add': return evalIndex(e.a, env) + evalIndex(e.b, env);
    case 'mul': return evalIndex(e.a, env) * e.c;
    case 'div': return Math.trunc(evalIndex(e.a, env) / e.c);
    case 'mod': return evalIndex(e.a, env) % e.c;
    case 'loadIndex': throw new Error('no buffers here');
  }
}

const be0 = await sharedWebGpuBackend();
if (!be0) console.warn(`WebGPU conv2d tests skipped: no adapter (${WebGpuBackend.unavailableReason})`);

describeForcedVariants('conv2d on WebGPU', be0, (d) => {

  /**
   * Every matmul kernel of `g`'s WebGPU plan, in every variant the tuner can pick (`all`) or one
   * of each kind (register with and without vec4 stores, workgroup with and without vec4 tiles,
   * split-K: their tiles differ
   * only in sizes, and each compile takes a while on llvmpipe), forced one at a time, against
   * the interpreter on random operands. Returns the kernels and the kinds run.
   */
  async function everyMatmulVariant(g: Graph, seed: number, all: boolean, what: string): Promise<{ kernels: MatmulKernel[]; kinds: Set<string> }> {
    const plan = planGraph(g, shapesOf(g), { caps: d.caps });
    const r = mulberry32(seed);
    const kernels: MatmulKernel[] = [];
    const seen = new Set<string>();
    for (const st of plan.steps) {
      if (st.kind !== 'launch' || st.kernel.kind !== 'matmul') continue;
      const k = st.kernel;
      kernels.push(k);
      const arrays = k.inputs.map((p) => Float32Array.from({ length: p.size }, () => Math.fround(r() * 2 - 1)));
      const want = reference(k, arrays);
      const kinds = new Set<string>();
      for (const v of candidates(k, d.lim(), d.be.variantOf(k))) {
        if (v.kind !== 'matmul') continue;
        const kind = `${v.matmul}${v.wgTile?.vec4 ?? ''}${v.tile?.vec4Store ?? v.wgTile?.vec4Store ?? ''}`;
        if (!all && kinds.has(kind)) continue;
        kinds.add(kind);
        seen.add(v.matmul);
        d.force(k, v);
        const got = await runOn(d.be, k, arrays);
        const atol = 2e-6 * k.k + 1e-5;
        for (let i = 0; i < want.length; i++) {
          if (!(Math.abs(got[i]! - want[i]!) <= atol + 1e-4 * Math.abs(want[i]!))) {
            expect.fail(`${what} ${k.name} ${JSON.stringify(v)}: element ${i}: webgpu ${got[i]}, reference ${want[i]}`);
          }
        }
      }
    }
    return { kernels, kinds: seen };
  }

  it('every matmul of the forward and gradient plans, in every variant the tuner can pick, matches the interpreter', async () => {
    const seen = new Set<string>();
    let gathers = 0;
    const check = async (s: Conv, seed: number, all = false) => {
      const { kernels, kinds } = await everyMatmulVariant(convGraph(s), seed, all, JSON.stringify(s));
      kinds.forEach((v) => seen.add(v));
      gathers += kernels.filter((k) => k.a.gather || k.b.gather).length;
      return kernels;
    };
    // every candidate of one layer; its dW has k = 2*13*13 = 338 against 2*3*3*3 outputs, so split-K is one
    const layer = await check({ n: 2, c: 2, h: 13, w: 13, o: 3, kh: 3, kw: 3, stride: 1, padding: 1 }, 1, true);
    // windows with padding: the forward tests its masks once per window offset (9), not per
    // channel; dW once per output pixel (13 x 13), not per image
    const masked = layer.filter((k) => k.a.gather?.valid && !k.b.gather);
    const code = masked.map((k) => d.be.render(k, { kind: 'matmul', matmul: 'register' }).passes[0]!.code);
    expect(masked.map((k) => k.m)).toEqual([2 * 13 * 13, 2 * 3 * 3]);
    expect(code[0]).toContain('for (var bq: i32 = 0i; bq < 9i;');
    expect(code[1]).toContain('for (var bq: i32 = 0i; bq < 169i;');
    await fc.assert(fc.asyncProperty(convArb, fc.integer(), async (s, seed) => {
      await check(s, seed);
    }), fcParams(4));
    expect(gathers).toBeGreaterThan(0);
    expect([...seen].sort()).toEqual(d.lim().workgroupMatmul ? ['register', 'splitk', 'workgroup'] : ['register', 'splitk']);
  }, 600_000);

  it('batched matmuls in every variant: broadcast batch operands (stride 0) and conv2d with the images as batch', async () => {
    // a[2, 1, m, k] · b[3, k, n]: a broadcasts over the second batch dim, b over the first
    const bm = (m: number, n: number, k: number) => graph('bmm', (g) => ({
      c: g.relu(g.matmul(g.param('a', f32(2, 1, m, k)), g.param('b', f32(3, k, n)))),
    }));
    // out[n] = W[O, C·KH·KW] · windows[n][C·KH·KW, OH·OW]: W is shared by every image, the
    // windows a gather with the image as its batch index
    const batchedConv = (s: Conv) => graph('bconv', (g) => {
      const x = g.pad(g.param('x', f32(s.n, s.c, s.h, s.w)), [0, 0, s.padding, s.padding], [0, 0, s.padding, s.padding]);
      const win = g.op('unfold2d', [x], { kernel: [s.kh, s.kw], stride: s.stride });
      const [, , , , oh, ow] = win.shape as number[];
      const w = g.reshape(g.param('w', f32(s.o, s.c, s.kh, s.kw)), [s.o, s.c * s.kh * s.kw]);
      return { y: g.matmul(w, g.reshape(win, [s.n, s.c * s.kh * s.kw, oh! * ow!])) };
    });
    const run = async (g: Graph, seed: number, what: string) => {
      const { kernels } = await everyMatmulVariant(g, seed, false, what);
      expect(kernels.length).toBe(1);
      return kernels[0]!;
    };
    const k1 = await run(bm(9, 70, 33), 3, 'bmm');
    expect([k1.a.batchStrides, k1.b.batchStrides]).toEqual([[9 * 33, 0], [0, 33 * 70]]);
    // the windows are a gather, except where the sizes of 1 make them strided (a 1x1 kernel;
    // a single row of windows over a single row, ...): a fixed layer that must gather, then random ones
    const fixed: Conv = { n: 2, c: 3, h: 6, w: 5, o: 4, stride: 1, padding: 1, kh: 3, kw: 3 };
    expect((await run(batchedConv(fixed), 7, JSON.stringify(fixed))).b.gather).toBeDefined();
    await fc.assert(fc.asyncProperty(convArb, fc.integer(), async (s, seed) => {
      const k = await run(batchedConv(s), seed, JSON.stringify(s));
      expect(k.batch).toEqual(s.n > 1 ? [s.n] : [1]);
      expect(k.a.batchStrides).toEqual([0]);
    }), fcParams(3));
  }, 600_000);

  it('forward and gradients equal the CPU device', async () => {
    await fc.assert(fc.asyncProperty(convArb, fc.integer(), async (s, seed) => {
      const g = convGraph(s);
      const r = mulberry32(seed);
      const vars = {
        'param:x': Float32Array.from({ length: s.n * s.c * s.h * s.w }, () => Math.fround(r() * 2 - 1)),
        'param:w': Float32Array.from({ length: s.o * s.c * s.kh * s.kw }, () => Math.fround(r() * 2 - 1)),
      };
      const out: Record<string, HostTensor>[] = [];
      for (const backend of ['cpu', 'webgpu'] as const) {
        const exe = await compileAsync(g, { backend });
        exe.setVariables(vars);
        out.push(await exe.run({}));
      }
      const [cpu, gpu] = out as [Record<string, HostTensor>, Record<string, HostTensor>];
      for (const name of Object.keys(cpu)) {
        const want = cpu[name]!.data, got = gpu[name]!.data;
        const scale = Math.max(1, ...Array.from(want, (x) => Math.abs(Number(x))));
        for (let i = 0; i < want.length; i++) {
          if (!(Math.abs(Number(got[i]) - Number(want[i])) <= 1e-5 * scale * Math.max(1, s.c * s.kh * s.kw))) {
            expect.fail(`${JSON.stringify(s)} ${name}[${i}]: webgpu ${got[i]}, cpu ${want[i]}`);
          }
        }
      }
    }), fcParams(4));
  }, 600_000);
});
