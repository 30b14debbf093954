// GFLOP/s of the CPU backend's generated matmul kernels on a square GEMM and on the shapes of
// an MLP training step (784-256-256-10, batch 128), forward and backward, the backward ones with
// transposed operands. Median of several timed samples after warm-up; one core. One case adds a
// bias + relu epilogue to show what its pass over the output costs.
// Usage: npx tsx bench/matmul-js-kernel.ts [mr nr kc mc nc f32|f64] (defaults: the shipped tiling)

import type { MatmulKernel, MatmulOperand } from '../ops/kernel-ir.js';
import { compileMatmulJs, DEFAULT_MATMUL_TILING, type MatmulTiling } from '../runtime/cpu/matmul-js.js';

interface Case {
  name: string;
  m: number;
  n: number;
  k: number;
  /** operands as stored: A^T means A is stored [k, m], B^T means B is stored [n, k] */
  aT: boolean;
  bT: boolean;
  /** bias + relu epilogue (reads a third input) */
  epi?: boolean;
}

const cases: Case[] = [
  { name: '1024x1024x1024', m: 1024, n: 1024, k: 1024, aT: false, bT: false },
  { name: 'fwd x·W1   128x784·784x256', m: 128, n: 256, k: 784, aT: false, bT: false },
  { name: 'fwd relu(x·W1+b) (epilogue)', m: 128, n: 256, k: 784, aT: false, bT: false, epi: true },
  { name: 'fwd h·W2   128x256·256x256', m: 128, n: 256, k: 256, aT: false, bT: false },
  { name: 'fwd h·W3   128x256·256x10', m: 128, n: 10, k: 256, aT: false, bT: false },
  { name: 'bwd xT·dh  784x128·128x256', m: 784, n: 256, k: 128, aT: true, bT: false },
  { name: 'bwd dh·W1T 128x256·256x784', m: 128, n: 784, k: 256, aT: false, bT: true },
  { name: 'bwd hT·dh  256x128·128x256', m: 256, n: 256, k: 128, aT: true, bT: false },
  { name: 'bwd dh·W2T 128x256·256x256', m: 128, n: 256, k: 256, aT: false, bT: true },
  { name: 'bwd hT·dz  256x128·128x10', m: 256, n: 10, k: 128, aT: true, bT: false },
  { name: 'bwd dz·W3T 128x10·10x256', m: 128, n: 256, k: 10, aT: false, bT: true },
];

function kernelOf(c: Case): MatmulKernel {
  const a: MatmulOperand = { buf: 0, offset: 0, batchStrides: [], rowStride: c.aT ? 1 : c.k, colStride: c.aT ? c.m : 1 };
  const b: MatmulOperand = { buf: 1, offset: 0, batchStrides: [], rowStride: c.bT ? 1 : c.n, colStride: c.bT ? c.k : 1 };
  return {
    kind: 'matmul', name: 'bench', batch: [], m: c.m, n: c.n, k: c.k, a, b, epilogue: null,
    inputs: [{ dtype: 'f32', size: c.m * c.k }, { dtype: 'f32', size: c.k * c.n }, { dtype: 'f32', size: c.n }],
    out: { dtype: 'f32', shape: [c.m, c.n] },
  };
}

function tilingFromArgs(): MatmulTiling {
  const v = process.argv.slice(2);
  if (v.length === 0) return DEFAULT_MATMUL_TILING;
  const [mr, nr, kc, mc, nc] = v.slice(0, 5).map(Number) as [number, number, number, number, number];
  return { mr, nr, kc, mc, nc, packed: v[5] === 'f32' ? 'f32' : 'f64' };
}

const tiling = tilingFromArgs();
console.log(`tiling ${JSON.stringify(tiling)}`);
for (const c of cases) {
  const epi = c.epi ? (acc: string, v: readonly string[]) => `Math.max(0, ${acc} + in2[${v[1]}])` : null;
  const f = compileMatmulJs(kernelOf(c), epi, tiling);
  const ins = [
    Float32Array.from({ length: c.m * c.k }, () => Math.random() - 0.5),
    Float32Array.from({ length: c.k * c.n }, () => Math.random() - 0.5),
    Float32Array.from({ length: c.n }, () => Math.random() - 0.5),
  ];
  const out = new Float32Array(c.m * c.n);
  const flop = 2 * c.m * c.n * c.k;
  // enough calls per sample for ~60 ms, so timer noise stays small
  const reps = Math.max(1, Math.round(1.2e8 / flop));
  for (let i = 0; i < Math.max(3, reps * 3); i++) f(ins, out);
  // Wall time is what counts, but on a shared machine other processes take the core away; GFLOP/s
  // per second of this process's CPU time says what the kernel does while it has the core.
  const wall: number[] = [], cpu: number[] = [];
  for (let s = 0; s < 9; s++) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    for (let i = 0; i < reps; i++) f(ins, out);
    const c1 = process.cpuUsage(c0);
    wall.push((flop * reps) / ((performance.now() - t0) * 1e6));
    cpu.push((flop * reps) / ((c1.user + c1.system) * 1e3));
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
  const fmt = (x: number) => x.toFixed(2).padStart(6);
  console.log(`${c.name.padEnd(30)} ${fmt(median(wall))} GFLOP/s  (best ${fmt(Math.max(...wall))}; per CPU second ${fmt(median(cpu))})`);
}
