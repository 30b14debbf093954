import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import type { MatmulKernel, MatmulOperand, BufferParam } from '../ops/kernel-ir.js';
import {
  compileMatmulJs,
  renderMatmulJs,
  DEFAULT_MATMUL_TILING,
  type MatmulEpilogueJs,
  type MatmulTiling,
} from '../runtime/cpu/matmul-js.js';

// Small blocks make every loop (k blocking, several row/column blocks, edge tiles) run at these
// sizes; odd register tiles check that nothing assumes 4×8.
const TILINGS: MatmulTiling[] = [
  DEFAULT_MATMUL_TILING,
  { mr: 4, nr: 8, kc: 16, mc: 8, nc: 16, packed: 'f64' },
  { mr: 3, nr: 5, kc: 7, mc: 6, nc: 10, packed: 'f32' },
  { mr: 1, nr: 1, kc: 3, mc: 2, nc: 3, packed: 'f64' },
];

/** A layout of an operand with logical dims [...batch, rows, cols]. */
interface Layout {
  order: number[]; // dims, outermost first
  broadcast: boolean[]; // per batch dim: stride 0
  rowBroadcast: boolean;
  gap: number; // the innermost stride (1 = dense)
  offset: number;
}

function layoutArb(nBatch: number): fc.Arbitrary<Layout> {
  const n = nBatch + 2;
  return fc.record({
    order: fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
    broadcast: fc.array(fc.boolean(), { minLength: nBatch, maxLength: nBatch }),
    rowBroadcast: fc.integer({ min: 0, max: 9 }).map((x) => x === 0),
    gap: fc.constantFrom(1, 1, 2),
    offset: fc.integer({ min: 0, max: 5 }),
  });
}

function operand(buf: number, dims: number[], l: Layout, nBatch: number): { op: MatmulOperand; size: number } {
  const strides = new Array<number>(dims.length).fill(0);
  let s = l.gap;
  for (let i = l.order.length - 1; i >= 0; i--) {
    const d = l.order[i]!;
    const zero = (d < nBatch && l.broadcast[d]) || (d === nBatch && l.rowBroadcast);
    if (zero) continue;
    strides[d] = s;
    s *= Math.max(1, dims[d]!);
  }
  const maxAddr = dims.reduce((acc, size, d) => acc + Math.max(0, size - 1) * strides[d]!, l.offset);
  return {
    op: {
      buf,
      offset: l.offset,
      batchStrides: strides.slice(0, nBatch),
      rowStride: strides[nBatch]!,
      colStride: strides[nBatch + 1]!,
    },
    size: maxAddr + 1 + 3,
  };
}

const caseArb = fc
  .record({
    batch: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
    m: fc.integer({ min: 0, max: 70 }),
    n: fc.integer({ min: 0, max: 70 }),
    k: fc.integer({ min: 0, max: 70 }),
    shared: fc.integer({ min: 0, max: 7 }).map((x) => x === 0),
    aInt: fc.integer({ min: 0, max: 7 }).map((x) => x === 0),
    bias: fc.boolean(),
    tiling: fc.constantFrom(...TILINGS),
    compiled: fc.boolean(),
    seed: fc.integer(),
  })
  .chain((c) =>
    fc.record({ a: layoutArb(c.batch.length), b: layoutArb(c.batch.length) }).map((l) => ({ ...c, ...l })),
  );

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/**
 * out against a float64 triple loop over the kernel's own strides, with the bias+relu epilogue
 * when biasBuf is given; tolerance relative to sum |a·b|.
 */
function expectMatches(k: MatmulKernel, ins: ArrayLike<number>[], out: Float32Array, biasBuf: number | null): void {
  const a = ins[k.a.buf]!, b = ins[k.b.buf]!;
  const bias = biasBuf === null ? null : ins[biasBuf]!;
  const batches = k.batch.reduce((x, y) => x * y, 1);
  let o = 0;
  for (let bi = 0; bi < batches; bi++) {
    const idx: number[] = [];
    let rest = bi;
    for (let d = k.batch.length - 1; d >= 0; d--) {
      idx.unshift(rest % k.batch[d]!);
      rest = Math.floor(rest / k.batch[d]!);
    }
    const aBase = idx.reduce((s, x, d) => s + x * k.a.batchStrides[d]!, k.a.offset);
    const bBase = idx.reduce((s, x, d) => s + x * k.b.batchStrides[d]!, k.b.offset);
    for (let i = 0; i < k.m; i++) {
      for (let j = 0; j < k.n; j++, o++) {
        let acc = 0, mag = 0;
        for (let p = 0; p < k.k; p++) {
          const x = a[aBase + i * k.a.rowStride + p * k.a.colStride]!;
          const y = b[bBase + p * k.b.rowStride + j * k.b.colStride]!;
          acc += x * y;
          mag += Math.abs(x * y);
        }
        const want = bias ? Math.max(0, acc + bias[j]!) : acc;
        const tol = 1e-4 * (mag + (bias ? Math.abs(bias[j]!) : 0)) + 1e-6;
        if (!(Math.abs(out[o]! - Math.fround(want)) <= tol)) {
          throw new Error(`out[${o}] = ${out[o]}, want ${want} (batch ${idx}, row ${i}, col ${j})`);
        }
      }
    }
  }
}

const relu = (bias: number): MatmulEpilogueJs => (acc, v) => `Math.max(0, ${acc} + in${bias}[${v[v.length - 1]}])`;

describe('matmul-js', () => {
  it('matches a float64 triple loop for any layout, batch, size and epilogue', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const nb = c.batch.length;
        const rand = rng(c.seed);
        const A = operand(0, [...c.batch, c.m, c.k], c.a, nb);
        const bBuf = c.shared ? 0 : 1;
        const B = operand(bBuf, [...c.batch, c.k, c.n], c.b, nb);
        const aSize = c.shared ? Math.max(A.size, B.size) : A.size;
        const aDtype = c.aInt && !c.shared ? 'i32' : 'f32';
        const inputs: BufferParam[] = [{ dtype: aDtype, size: aSize }];
        if (!c.shared) inputs.push({ dtype: 'f32', size: B.size });
        const biasBuf = inputs.length;
        if (c.bias) inputs.push({ dtype: 'f32', size: c.n });
        const kernel: MatmulKernel = {
          kind: 'matmul',
          name: 'mm',
          inputs,
          out: { dtype: 'f32', shape: [...c.batch, c.m, c.n] },
          batch: c.batch,
          m: c.m,
          n: c.n,
          k: c.k,
          a: A.op,
          b: B.op,
          epilogue: null,
        };
        const ins = inputs.map((p) => {
          if (p.dtype === 'i32') return Int32Array.from({ length: p.size }, () => Math.floor(rand() * 9) - 4);
          return Float32Array.from({ length: p.size }, () => rand() * 2 - 1);
        });
        const epi = c.bias ? relu(biasBuf) : null;

        const out = new Float32Array(c.batch.reduce((x, y) => x * y, c.m * c.n)).fill(NaN);
        if (c.compiled) {
          const f = compileMatmulJs(kernel, epi, c.tiling);
          f(ins, out);
          f(ins, out); // a second call must not see the first's scratch
        } else {
          new Function('ins', 'out', renderMatmulJs(kernel, epi, c.tiling))(ins, out);
        }

        expectMatches(kernel, ins, out, c.bias ? biasBuf : null);
      }),
      { numRuns: 100 },
    );
  });

  it('a weight shared across the batch, with rows continuing across it, gives the same result', () => {
    // x[2, 3, 5, 7]·w[7, 6]: both batch dims fold into one 30-row product
    const [B0, B1, m, k, n] = [2, 3, 5, 7, 6];
    const kernel: MatmulKernel = {
      kind: 'matmul', name: 'mm', batch: [B0, B1], m, n, k, epilogue: null,
      inputs: [{ dtype: 'f32', size: B0 * B1 * m * k }, { dtype: 'f32', size: k * n }, { dtype: 'f32', size: n }],
      out: { dtype: 'f32', shape: [B0, B1, m, n] },
      a: { buf: 0, offset: 0, batchStrides: [B1 * m * k, m * k], rowStride: k, colStride: 1 },
      b: { buf: 1, offset: 0, batchStrides: [0, 0], rowStride: n, colStride: 1 },
    };
    const rand = rng(7);
    const ins = kernel.inputs.map((p) => Float32Array.from({ length: p.size }, () => rand() * 2 - 1));
    const out = new Float32Array(B0 * B1 * m * n);
    compileMatmulJs(kernel, relu(2), TILINGS[1])(ins, out);
    expectMatches(kernel, ins, out, 2);
  });

  it('declares every input, so an epilogue may read any of them', () => {
    const k: MatmulKernel = {
      kind: 'matmul', name: 'mm', batch: [], m: 0, n: 0, k: 0, epilogue: null,
      inputs: [{ dtype: 'f32', size: 1 }, { dtype: 'f32', size: 1 }, { dtype: 'i32', size: 1 }],
      out: { dtype: 'f32', shape: [0, 0] },
      a: { buf: 0, offset: 0, batchStrides: [], rowStride: 0, colStride: 1 },
      b: { buf: 1, offset: 0, batchStrides: [], rowStride: 1, colStride: 0 },
    };
    expect(renderMatmulJs(k, null)).toMatch(/^const in0 = ins\[0\], in1 = ins\[1\], in2 = ins\[2\];/);
  });

  it('gives zeros, then the epilogue, when k = 0', () => {
    const k: MatmulKernel = {
      kind: 'matmul', name: 'mm', batch: [], m: 2, n: 3, k: 0, epilogue: null,
      inputs: [{ dtype: 'f32', size: 1 }, { dtype: 'f32', size: 1 }, { dtype: 'f32', size: 3 }],
      out: { dtype: 'f32', shape: [2, 3] },
      a: { buf: 0, offset: 0, batchStrides: [], rowStride: 0, colStride: 1 },
      b: { buf: 1, offset: 0, batchStrides: [], rowStride: 1, colStride: 0 },
    };
    const out = new Float32Array(6).fill(7);
    compileMatmulJs(k, (acc, v) => `${acc} + in2[${v[1]}]`)([new Float32Array(1), new Float32Array(1), Float32Array.of(1, 2, 3)], out);
    expect([...out]).toEqual([1, 2, 3, 1, 2, 3]);
  });
});
