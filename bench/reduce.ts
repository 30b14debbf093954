// A full f32 sum over 1M, 4M, 16M and 64M elements on WebGPU: rheo (the vector a param, resident
// on the device; one scalar read back per run) against TensorFlow.js WebGPU and jax-js WebGPU
// (the vector made once on the device), same process, same Dawn adapter. Prints JSON lines
// (bench/harness.ts) in GB/s read (4 bytes per element); ratio = peer GB/s / ours (lower is better).
// Sizes past the adapter's largest storage binding are skipped, and so is everything past 16M
// on a software adapter (llvmpipe takes minutes) unless `--big` is given; each skip says why.
// Then reductions of matmul products, in ms per run: a squared-error loss sum((x·w + b - y)²)
// and each row's max of x·w, for a square product (512 on a software adapter, 2048 on a GPU, 4096
// with `--big`) and for a shallow one four times as wide with k = 16 (where the product's memory
// traffic outweighs its arithmetic), rheo with the reduction fused into the matmul (the product never written) and
// without (`/unfused`: the WebGPU backend's `matmulReductions: false`), against the peers computing
// the same expression.

import type * as TF from '@tensorflow/tfjs';
import type * as JAX from '@jax-js/jax';
import { f32, graph } from '../index.js';
import { compileAsync } from '../runtime/executor.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import type { Graph } from '../graphs/graph.js';
import { mulberry32 } from '../runtime/rng.js';
import { caseFactory, peerFilter, progress, runCasesAgainstPeers, timeMetric, type CaseOrSkip, type MetricSpec, type PeerLike } from './harness.js';
import { installNavigatorGpu } from './peers.js';
import { tfjsOnWebgpu } from './peers-tfjs.js';

const BIG = process.argv.includes('--big');
const SIZES = [1 << 20, 1 << 22, 1 << 24, 1 << 26];

/** GB/s read for a sum of n f32 (value per ms of one run). */
const gbps = (n: number): MetricSpec => ({ name: 'bandwidth', unit: 'GB/s', kind: 'rate', workPerCall: (n * 4) / 1e9 });

function data(n: number): Float32Array {
  const r = mulberry32(n);
  return Float32Array.from({ length: n }, () => r() - 0.5);
}

function exactSum(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v;
  return s;
}

/** Operands of a matmul reduction: x [m, k], w [k, n], b [n], y [m, n]. */
interface ProductData {
  readonly m: number;
  readonly k: number;
  readonly n: number;
  readonly x: Float32Array;
  readonly w: Float32Array;
  readonly b: Float32Array;
  readonly y: Float32Array;
}

type ProductReduction = 'sqerr' | 'rowmax';

interface ReducePeer extends PeerLike {
  sum(x: Float32Array): Promise<CaseOrSkip<number>>;
  /** the reduction of a product, one number of it read back */
  product(kind: ProductReduction, d: ProductData): Promise<CaseOrSkip<number>>;
}

function tfjsWebgpuPeer(): ReducePeer {
  let tf!: typeof TF;
  return {
    name: 'tfjs-webgpu',
    async setup() {
      tf = await tfjsOnWebgpu();
    },
    async sum(x) {
      const t = tf.tensor1d(x);
      const run = async () => {
        const s = tf.sum(t);
        const v = (await s.data())[0]!;
        s.dispose();
        return v;
      };
      return Object.assign(run, { dispose: () => t.dispose() });
    },
    async product(kind, d) {
      const x = tf.tensor2d(d.x, [d.m, d.k]), w = tf.tensor2d(d.w, [d.k, d.n]), b = tf.tensor1d(d.b), y = tf.tensor2d(d.y, [d.m, d.n]);
      const run = async () => {
        const r = tf.tidy(() => {
          const p = tf.matMul(x, w);
          return kind === 'sqerr' ? tf.sum(tf.square(tf.sub(tf.add(p, b), y))) : tf.max(p, -1);
        });
        const v = (await r.data())[0]!;
        r.dispose();
        return v;
      };
      return Object.assign(run, { dispose: () => tf.dispose([x, w, b, y]) });
    },
  };
}

function jaxWebgpuPeer(): ReducePeer {
  let jax!: typeof JAX;
  return {
    name: 'jax-js-webgpu',
    async setup() {
      if (!(await installNavigatorGpu())) throw new Error('no WebGPU adapter');
      jax = (await import('@jax-js/jax')) as typeof JAX;
      await jax.init('cpu', 'wasm');
      const devices = await jax.init('webgpu');
      if (!devices.includes('webgpu')) throw new Error(`jax-js webgpu device unavailable (got ${devices.join(', ')})`);
      jax.defaultDevice('webgpu');
    },
    async sum(x) {
      const np = jax.numpy;
      jax.defaultDevice('webgpu');
      const a = np.array(x);
      await jax.blockUntilReady(a);
      const f = jax.jit((v: JAX.Array) => np.sum(v));
      const run = async () => (await f(a.ref).data())[0]!;
      return Object.assign(run, { dispose: () => { a.dispose(); f.dispose(); } });
    },
    async product(kind, d) {
      const np = jax.numpy;
      jax.defaultDevice('webgpu');
      const x = np.array(d.x).reshape([d.m, d.k]), w = np.array(d.w).reshape([d.k, d.n]), b = np.array(d.b), y = np.array(d.y).reshape([d.m, d.n]);
      await jax.blockUntilReady([x, w, b, y]);
      const f = jax.jit((x: JAX.Array, w: JAX.Array, b: JAX.Array, y: JAX.Array) =>
        kind === 'sqerr' ? np.sum(np.square(np.matmul(x, w).add(b).sub(y))) : np.max(np.matmul(x, w), -1));
      const run = async () => {
        return (await f(x.ref, w.ref, b.ref, y.ref).data())[0]!;
      };
      return Object.assign(run, { dispose: () => { for (const a of [x, w, b, y]) a.dispose(); f.dispose(); } });
    },
  };
}

const gpuOk = await installNavigatorGpu();
const be = gpuOk ? await sharedWebGpuBackend() : null;
const wanted = peerFilter();
const peers = [tfjsWebgpuPeer(), jaxWebgpuPeer()].filter((p) => wanted === undefined || wanted.includes(p.name));
const maxElems = be ? Math.min(be.gpu.limits.maxStorageBufferBindingSize, be.gpu.limits.maxBufferSize) / 4 : 0;
const software = be?.gpu.info.isCpu ?? false;

for (const n of SIZES) {
  const label = `sum_f32_${n >= 1 << 20 ? `${n >> 20}M` : n}`;
  let skip: string | null = !be ? 'no WebGPU adapter' : null;
  if (!skip && n > maxElems) skip = `${n} f32 exceed this adapter's largest storage binding (${maxElems} elements)`;
  if (!skip && software && n > 1 << 24 && !BIG) skip = 'software adapter: sizes past 16M take minutes here (run with --big)';
  if (skip) {
    progress(`reduce/${label}: skipped (${skip})`);
    await runCasesAgainstPeers('reduce', [{ case: `${label}/webgpu`, ours: skip }], gbps(n), [], () => skip!);
    continue;
  }
  const x = data(n);
  const want = exactSum(x);
  const ours = caseFactory(async () => {
    const exe = await compileAsync(graph(`sum${n}`, (g) => ({ s: g.sum(g.param('x', f32(n))) })), { backend: 'webgpu' });
    exe.setVariables({ 'param:x': x });
    const run = async () => (await exe.run({})).s!.data[0]!;
    const got = await run();
    if (!(Math.abs(got - want) <= 1e-3 * Math.sqrt(n))) throw new Error(`sum = ${got}, expected ${want}`);
    return run;
  });
  const variant = be!.reduceVariant;
  await runCasesAgainstPeers(
    'reduce',
    [{ case: `${label}/webgpu`, ours, note: `webgpu backend on ${be!.gpu.info.description || be!.gpu.info.device}; reduce split ${variant.split}${variant.subgroups ? ', subgroups' : ''}` }],
    gbps(n),
    peers,
    (p) => p.sum(x),
  );
}

// ---------------------------------------------------------------- reductions of matmul products

const S = !be ? 0 : software ? 512 : BIG ? 4096 : 2048;

function productData(m: number, k: number, n: number): ProductData {
  const r = mulberry32(m * 31 + k);
  const v = (len: number, scale: number) => Float32Array.from({ length: len }, () => (r() - 0.5) * scale);
  return { m, k, n, x: v(m * k, 1), w: v(k * n, 2 / Math.sqrt(k)), b: v(n, 1), y: v(m * n, 1) };
}

function productGraph(kind: ProductReduction, d: ProductData): Graph {
  return graph(`${kind}${d.m}x${d.k}x${d.n}`, (g) => {
    const x = g.param('x', f32(d.m, d.k)), w = g.param('w', f32(d.k, d.n)), b = g.param('b', f32(d.n)), y = g.param('y', f32(d.m, d.n));
    const p = g.matmul(x, w);
    return { r: kind === 'sqerr' ? g.sum(g.square(g.sub(g.add(p, b), y))) : g.max(p, -1) };
  });
}

/** Float64 reference of the first value read back (the loss, or row 0's max). */
function productReference(kind: ProductReduction, d: ProductData): number {
  const rows = kind === 'sqerr' ? d.m : 1;
  let acc = kind === 'sqerr' ? 0 : -Infinity;
  const row = new Float64Array(d.n);
  for (let i = 0; i < rows; i++) {
    row.fill(0);
    for (let kk = 0; kk < d.k; kk++) {
      const a = d.x[i * d.k + kk]!;
      for (let j = 0; j < d.n; j++) row[j] += a * d.w[kk * d.n + j]!;
    }
    for (let j = 0; j < d.n; j++) acc = kind === 'sqerr' ? acc + (row[j]! + d.b[j]! - d.y[i * d.n + j]!) ** 2 : Math.max(acc, row[j]!);
  }
  return acc;
}

if (S === 0) progress('reduce/matmul reductions: skipped (no WebGPU adapter)');
else {
  const unfusedBackend = new WebGpuBackend(be!.gpu, { matmulReductions: false });
  for (const d of [productData(S, S, S), productData(4 * S, 16, 4 * S)]) {
    for (const kind of ['sqerr', 'rowmax'] as const) {
      const want = productReference(kind, d);
      const ours = (fused: boolean) => caseFactory(async () => {
        const exe = await compileAsync(productGraph(kind, d), fused ? { backend: 'webgpu' } : { backend: 'webgpu', webgpu: unfusedBackend });
        exe.setVariables({ 'param:x': d.x, 'param:w': d.w, 'param:b': d.b, 'param:y': d.y });
        const run = async () => (await exe.run({})).r!.data[0]!;
        const got = await run();
        if (!(Math.abs(got - want) <= 1e-3 * Math.abs(want) + 1e-3)) throw new Error(`${kind}: ${got}, expected ${want}`);
        return run;
      });
      const plan = (await compileAsync(productGraph(kind, d), { backend: 'webgpu' })).plan({});
      const plainPlan = (await compileAsync(productGraph(kind, d), { backend: 'webgpu', webgpu: unfusedBackend })).plan({});
      const fusedKernel = plan.steps.some((st) => st.kind === 'launch' && st.kernel.kind === 'matmul' && st.kernel.reduce);
      const label = `${kind}_${d.m}x${d.k}x${d.n}`;
      await runCasesAgainstPeers(
        'reduce',
        [
          { case: `${label}/webgpu`, ours: ours(true), note: `${fusedKernel ? 'reduction fused into the matmul' : 'not fused'}, ${plan.kernelCount} kernel(s), planned peak ${plan.peakBytes} bytes` },
          { case: `${label}/webgpu/unfused`, ours: ours(false), note: `matmulReductions: false (the product written, then reduced), ${plainPlan.kernelCount} kernel(s), planned peak ${plainPlan.peakBytes} bytes` },
        ],
        timeMetric('ms_per_run'),
        peers,
        (p) => p.product(kind, d),
      );
    }
  }
  unfusedBackend.dispose();
}
