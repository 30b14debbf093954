// conv2d on WebGPU: rheo (implicit GEMM: the matmul gathers the windows, no im2col buffer)
// against TensorFlow.js's WebGPU conv2d on the same Dawn adapter, same process. Forward (y read
// back) and forward + gradients (dx and dW of sum(y²) read back), at a small layer, a strided one,
// (without --quick) a ResNet-like 56x56x64 layer at batch 4 and (with --big) at batch 32. Each library gets its native
// layout (rheo NCHW/OIHW, TF.js NHWC/HWIO) with the same values. Prints JSON lines
// (bench/harness.ts); GFLOP/s counts the forward's 2·N·O·OH·OW·C·KH·KW (x3 with gradients);
// ratio = TF.js GFLOP/s / ours (lower is better).

import type * as TF from '@tensorflow/tfjs';
import { f32, grad, graph } from '../index.js';
import { compileAsync } from '../runtime/executor.js';
import { mulberry32 } from '../runtime/rng.js';
import { QUICK, caseFactory, gflopsMetric, peerFilter, progress, runCasesAgainstPeers, type CaseOrSkip, type PeerLike } from './harness.js';
import { installNavigatorGpu } from './problems.js';
import { tfjsOnWebgpu } from './peers-tfjs.js';

interface Layer { name: string; n: number; c: number; h: number; w: number; o: number; k: number; stride: number; padding: number }

const LAYERS: readonly Layer[] = [
  { name: 'n8_c32_28x28_o32_k3', n: 8, c: 32, h: 28, w: 28, o: 32, k: 3, stride: 1, padding: 1 },
  { name: 'n8_c32_28x28_o64_k3_s2', n: 8, c: 32, h: 28, w: 28, o: 64, k: 3, stride: 2, padding: 1 },
  ...(QUICK ? [] : [{ name: 'n4_c64_56x56_o64_k3', n: 4, c: 64, h: 56, w: 56, o: 64, k: 3, stride: 1, padding: 1 }]),
  // the ResNet-like layer whose im2col alone would take 231 MB: for real GPUs
  ...(process.argv.includes('--big') ? [{ name: 'n32_c64_56x56_o64_k3', n: 32, c: 64, h: 56, w: 56, o: 64, k: 3, stride: 1, padding: 1 }] : []),
];

const outSize = (l: Layer, d: number) => Math.floor((d + 2 * l.padding - l.k) / l.stride) + 1;
const flops = (l: Layer) => 2 * l.n * l.o * outSize(l, l.h) * outSize(l, l.w) * l.c * l.k * l.k;

function data(l: Layer): { x: Float32Array; w: Float32Array } {
  const r = mulberry32(l.n * 7 + l.c * 13 + l.o);
  return {
    x: Float32Array.from({ length: l.n * l.c * l.h * l.w }, () => r() * 2 - 1),
    w: Float32Array.from({ length: l.o * l.c * l.k * l.k }, () => (r() * 2 - 1) / Math.sqrt(l.c * l.k * l.k)),
  };
}

/** `a` of shape `shape` with its axes permuted by `perm` (row-major). */
function permute(a: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const out = new Float32Array(a.length);
  const to = perm.map((p) => shape[p]!);
  const stride = shape.map((_, i) => shape.slice(i + 1).reduce((x, y) => x * y, 1));
  const idx = new Array<number>(to.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let i = 0; i < to.length; i++) src += idx[i]! * stride[perm[i]!]!;
    out[o] = a[src]!;
    for (let i = to.length - 1; i >= 0 && ++idx[i]! === to[i]!; i--) idx[i] = 0;
  }
  return out;
}

let tf!: typeof TF;
const tfjsWebgpu: PeerLike = {
  name: 'tfjs-webgpu',
  async setup() {
    tf = await tfjsOnWebgpu();
  },
};

async function tfCase(l: Layer, withGrads: boolean): Promise<CaseOrSkip> {
  const d = data(l);
  const x = tf.tensor4d(permute(d.x, [l.n, l.c, l.h, l.w], [0, 2, 3, 1]), [l.n, l.h, l.w, l.c]);
  const w = tf.tensor4d(permute(d.w, [l.o, l.c, l.k, l.k], [2, 3, 1, 0]), [l.k, l.k, l.c, l.o]);
  const conv = (xx: TF.Tensor4D, ww: TF.Tensor4D) => tf.conv2d(xx, ww, l.stride, l.padding);
  const gradsOf = tf.grads((xx, ww) => tf.sum(tf.square(conv(xx as TF.Tensor4D, ww as TF.Tensor4D))));
  const run = async () => {
    if (!withGrads) {
      const y = conv(x, w);
      const out = await y.data();
      y.dispose();
      return out;
    }
    const gs = gradsOf([x, w]);
    const out = await Promise.all(gs.map((g) => g.data()));
    tf.dispose(gs);
    return out;
  };
  return Object.assign(run, { dispose: () => tf.dispose([x, w]) });
}

async function ourCase(l: Layer, withGrads: boolean): Promise<CaseOrSkip> {
  const fwd = graph(`conv_${l.name}`, (g) => {
    const y = g.conv2d(g.param('x', f32(l.n, l.c, l.h, l.w)), g.param('w', f32(l.o, l.c, l.k, l.k)), { stride: l.stride, padding: l.padding });
    return { y, loss: g.sum(g.mul(y, y)) };
  });
  const exe = await compileAsync(withGrads ? grad(fwd, 'loss') : fwd, { backend: 'webgpu', outputs: withGrads ? ['grad/x', 'grad/w'] : ['y'] });
  const d = data(l);
  exe.setVariables({ 'param:x': d.x, 'param:w': d.w });
  const plan = exe.plan({});
  progress(`conv2d/${l.name}${withGrads ? '/grads' : ''}: ${plan.kernelCount} kernels, planned peak ${(plan.peakBytes / 1e6).toFixed(1)} MB`);
  return async () => Object.values(await exe.run({})).map((t) => t.data);
}

const gpuOk = await installNavigatorGpu();
for (const l of LAYERS) {
  for (const withGrads of [false, true]) {
    const label = `${l.name}${withGrads ? '/fwd_bwd' : '/fwd'}/webgpu`;
    await runCasesAgainstPeers(
      'conv2d',
      [{ case: label, note: 'NCHW; TF.js NHWC', ours: gpuOk ? caseFactory(() => ourCase(l, withGrads)) : 'no WebGPU adapter' }],
      gflopsMetric(flops(l) * (withGrads ? 3 : 1)),
      gpuOk && (peerFilter()?.includes('tfjs-webgpu') ?? true) ? [tfjsWebgpu] : [],
      () => tfCase(l, withGrads),
    );
  }
}
