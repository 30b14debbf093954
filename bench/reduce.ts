// A full f32 sum over 1M, 4M, 16M and 64M elements on WebGPU: rheo (the vector a param, resident
// on the device; one scalar read back per run) against TensorFlow.js WebGPU and jax-js WebGPU
// (the vector made once on the device), same process, same Dawn adapter. Prints JSON lines
// (bench/harness.ts) in GB/s read (4 bytes per element); ratio = peer GB/s / ours (lower is better).
// Sizes past the adapter's largest storage binding are skipped, and so is everything past 16M
// on a software adapter (llvmpipe takes minutes) unless `--big` is given; each skip says why.

import type * as TF from '@tensorflow/tfjs';
import type * as JAX from '@jax-js/jax';
import { f32, graph } from '../index.js';
import { compileAsync } from '../runtime/executor.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';
import { mulberry32 } from '../runtime/rng.js';
import { caseFactory, peerFilter, progress, runCasesAgainstPeers, type CaseOrSkip, type MetricSpec, type PeerLike } from './harness.js';
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

interface ReducePeer extends PeerLike {
  sum(x: Float32Array): Promise<CaseOrSkip<number>>;
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
