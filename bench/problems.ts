// The problems rheo's benchmarks and their peers solve, defined once: the MLP training step, the
// square matmul and the elementwise chain, with their seeded data; the `Peer` interface the peer
// modules implement; and `installNavigatorGpu`, which gives WebGPU peers the adapter rheo uses.
// See bench/peers.ts for the peers themselves.

import type { CaseOrSkip, PeerLike } from './harness.js';
import { navigatorGpu } from '../runtime/webgpu/device.js';
import { mulberry32 } from '../runtime/rng.js';

export type PeerName = 'tfjs-cpu' | 'tfjs-wasm' | 'tfjs-webgpu' | 'jax-js-wasm' | 'jax-js-webgpu' | `onnxruntime-t${number}`;

/** Where the chain case's input lives: copied from host memory on every call, or made once. */
export type ChainInput = 'host' | 'resident';

export interface Peer extends PeerLike {
  name: PeerName;
  /** One line saying what library, version and backend this is. */
  description: string;
  /** Loads the library and selects its backend. Idempotent; call before any case. */
  setup(): Promise<void>;
  /** The MLP training step (of `MLP` unless another spec is given); the returned function resolves to the step's loss. */
  mlpStep(spec?: MlpSpec): Promise<CaseOrSkip<number>>;
  /** An n×n f32 matmul; the returned function resolves to C read back (row-major). */
  matmul(n: number): Promise<CaseOrSkip<ArrayLike<number>>>;
  /** An n×n f32 matmul whose product stays on the device; the returned function resolves to C[0, 0] read back. */
  matmulOnDevice?(n: number): Promise<CaseOrSkip<number>>;
  /** The elementwise chain; the returned function resolves to y read back. */
  chain(input: ChainInput): Promise<CaseOrSkip<ArrayLike<number>>>;
}

/** An MLP training-step case: layer sizes, batch, Adam's settings, the data's seed. */
export interface MlpSpec {
  readonly sizes: readonly number[];
  readonly batch: number;
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly seed: number;
}

/** `MLP` with other layer sizes and batch, for the larger training-step cases. */
export const mlpSpec = (sizes: readonly number[], batch: number): MlpSpec => ({ ...MLP, sizes, batch });

/** The name of an MLP case, e.g. `mlp784-256-256-10_b128_adam`. */
export const mlpCaseName = (s: MlpSpec): string => `mlp${s.sizes.join('-')}_b${s.batch}_adam`;

/** The MLP training-step case. */
export const MLP = {
  sizes: [784, 256, 256, 10] as const,
  batch: 128,
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  seed: 1234,
} as const;

/** The elementwise-chain case: y = relu(x·a + b)·c + d. */
export const CHAIN = { n: 1 << 20, a: 1.5, b: -0.25, c: 0.75, d: 0.125 } as const;

/** The chain's input, uniform in [-1, 1), the same on every call. */
export function chainData(): Float32Array {
  const u = seededUniform(77);
  return Float32Array.from({ length: CHAIN.n }, () => 2 * u() - 1);
}

/** y of the chain for x, in float64 then rounded: for checking results. */
export function chainReference(x: Float32Array): Float32Array {
  const { a, b, c, d } = CHAIN;
  return x.map((v) => Math.max(v * a + b, 0) * c + d);
}

let navigatorGpuInstalled: Promise<boolean> | undefined;

/**
 * Makes `navigator.gpu` the WebGPU implementation rheo would use (see the header), once per
 * process; resolves to false when there is none. rheo's own WebGPU cases then share it.
 */
export function installNavigatorGpu(): Promise<boolean> {
  navigatorGpuInstalled ??= (async () => {
    const g = globalThis as { navigator?: { gpu?: GPU } };
    if (g.navigator?.gpu) return true;
    const gpu = await navigatorGpu();
    if (!gpu) return false;
    // jax-js's WebGPU device reads navigator.userAgent (Node 20 has no navigator at all)
    const nav = { userAgent: `Node.js/${process.versions.node}`, ...(g.navigator ?? {}), gpu };
    Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
    return true;
  })();
  return navigatorGpuInstalled;
}

/** Floating-point operations of one n×n×n matmul (multiply and add counted separately). */
export const matmulFlops = (n: number): number => 2 * n * n * n;

/** A seeded generator of uniform numbers in [0, 1): the project's mulberry32. */
export function seededUniform(seed: number): () => number {
  return mulberry32(seed);
}

/** Fills a Float32Array with N(0, std²) samples (Box–Muller) from a seeded generator. */
export function seededNormal(size: number, std: number, seed: number): Float32Array {
  const u = seededUniform(seed);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u())) * std;
    const th = 2 * Math.PI * u();
    out[i] = r * Math.cos(th);
    if (i + 1 < size) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

export interface MlpLayerInit {
  /** Row-major [fanIn, fanOut], He-normal: N(0, 2 / fanIn). */
  w: Float32Array;
  /** [fanOut], zeros. */
  b: Float32Array;
  fanIn: number;
  fanOut: number;
}

export interface MlpData {
  /** Row-major [batch, 784], N(0, 1). */
  x: Float32Array;
  /** Row-major [batch, 10], one-hot. */
  y: Float32Array;
  /** The class index of each row of `y`. */
  labels: Int32Array;
  layers: MlpLayerInit[];
}

const mlpDataCache = new Map<string, MlpData>();

/** The fixed input batch, labels and initial weights of an MLP case (the same on every call). */
export function mlpData(spec: MlpSpec = MLP): MlpData {
  const key = mlpCaseName(spec);
  const hit = mlpDataCache.get(key);
  if (hit) return hit;
  const { sizes, batch, seed } = spec;
  const x = seededNormal(batch * sizes[0], 1, seed);
  const classes = sizes[sizes.length - 1]!;
  const labels = new Int32Array(batch);
  const y = new Float32Array(batch * classes);
  const u = seededUniform(seed + 1);
  for (let i = 0; i < batch; i++) {
    labels[i] = Math.floor(u() * classes);
    y[i * classes + labels[i]!] = 1;
  }
  const layers: MlpLayerInit[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const fanIn = sizes[l]!;
    const fanOut = sizes[l + 1]!;
    layers.push({
      w: seededNormal(fanIn * fanOut, Math.sqrt(2 / fanIn), seed + 10 + l),
      b: new Float32Array(fanOut),
      fanIn,
      fanOut,
    });
  }
  const data = { x, y, labels, layers };
  mlpDataCache.set(key, data);
  return data;
}

/** Fixed random operands of the n×n matmul case, uniform in [-1, 1). */
export function matmulData(n: number): { a: Float32Array; b: Float32Array } {
  const ua = seededUniform(100 + n);
  const ub = seededUniform(200 + n);
  const a = new Float32Array(n * n);
  const b = new Float32Array(n * n);
  for (let i = 0; i < n * n; i++) {
    a[i] = 2 * ua() - 1;
    b[i] = 2 * ub() - 1;
  }
  return { a, b };
}
