/**
 * The libraries rheo's benchmarks compare against, made to run in Node (see shared PEERS.md):
 *
 *   tfjs-cpu       @tensorflow/tfjs 4.22.0, backend 'cpu' (plain JavaScript kernels)
 *   tfjs-wasm      @tensorflow/tfjs 4.22.0 + @tensorflow/tfjs-backend-wasm, backend 'wasm'
 *                  (XNNPACK, SIMD; single-threaded in Node by design)
 *   tfjs-webgpu    @tensorflow/tfjs 4.22.0 + @tensorflow/tfjs-backend-webgpu, backend 'webgpu'
 *   jax-js-wasm    @jax-js/jax 0.1.25, device 'wasm' (single-threaded in Node: no global Worker)
 *   jax-js-webgpu  @jax-js/jax 0.1.25, device 'webgpu'
 *   onnxruntime-tN onnxruntime-node 1.30.0 (optional dependency), native CPU kernels on N intra-op
 *                  threads (1 and every core): matmul and chain only, the distance to native code
 *
 * The WebGPU peers get the `navigator.gpu` that `installNavigatorGpu()` sets up: the Dawn instance
 * and adapter kind rheo itself would use (on a machine without a GPU, llvmpipe through OpenGL ES,
 * with every requestAdapter made in compatibility mode). Benches call it before anything acquires
 * a device, so that rheo's WebGPU cases and the peers share that instance.
 *
 * Each peer implements these cases, built once and then timed by the harness:
 *
 *   mlpStep()  one full training step of an MLP 784-256-256-10 (ReLU, He-normal weights, zero
 *              biases), batch 128, softmax cross-entropy on one-hot labels, Adam (lr 1e-3, betas
 *              0.9/0.999, eps 1e-8): forward, backward, Adam update, and the loss read back to
 *              JavaScript. Input data and initial weights come from `mlpData()` (seeded), so every
 *              peer — and rheo — starts from identical numbers and reports the same first loss.
 *   matmul(n)  C = A·B for square f32 n×n matrices (fixed random A, B), C read back.
 *   chain(x)   y = relu(x·a + b)·c + d over CHAIN.n f32 elements (a, b, c, d scalars), y read
 *              back; x is taken from host memory on every call ('host') or made once ('resident').
 *
 * A case is returned as a function (see `CaseFn` in harness.ts) or, when a peer cannot run it, as
 * a string that says why. Functions carry a `dispose()` that frees what the case allocated.
 *
 * Libraries are imported lazily, in `setup()`, so a bench that runs only some peers does not pay
 * for loading the others. The problems and their data are in problems.ts (re-exported here), the
 * peers in peers-tfjs.ts, peers-jax.ts and peers-onnx.ts.
 */
import { peerFilter } from './harness.js';
import type { Peer } from './problems.js';
import { tfjsCpu, tfjsWasm, tfjsWebgpu } from './peers-tfjs.js';
import { jaxWasm, jaxWebgpu } from './peers-jax.js';
import { onnxT1, onnxTN } from './peers-onnx.js';

export * from './problems.js';
export { tfjsCpu, tfjsWasm, tfjsWebgpu } from './peers-tfjs.js';
export { jaxWasm, jaxWebgpu, jaxMlpStep, type JaxMlpMode } from './peers-jax.js';
export { onnxT1, onnxTN } from './peers-onnx.js';

// =============================================================================================
// Selection
// =============================================================================================

/** Every peer, in the order benches report them. */
export const ALL_PEERS: readonly Peer[] = [tfjsCpu, tfjsWasm, tfjsWebgpu, jaxWasm, jaxWebgpu, onnxT1, ...(onnxTN ? [onnxTN] : [])];

/**
 * The peers chosen on the command line with `--peers=a,b` (all of them without the flag). An
 * unknown name is an error that lists the known ones.
 */
export function selectedPeers(): Peer[] {
  const wanted = peerFilter();
  if (wanted === undefined) return [...ALL_PEERS];
  const known = new Set(ALL_PEERS.map((p) => p.name as string));
  const unknown = wanted.filter((w) => !known.has(w));
  if (unknown.length > 0) {
    throw new Error(`unknown peer(s) ${unknown.join(', ')}; known: ${[...known].join(', ')}`);
  }
  return ALL_PEERS.filter((p) => wanted.includes(p.name));
}
