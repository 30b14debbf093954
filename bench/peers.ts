/**
 * The libraries rheo's benchmarks compare against, made to run in Node (see shared PEERS.md):
 *
 *   tfjs-cpu       @tensorflow/tfjs 4.22.0, backend 'cpu' (plain JavaScript kernels)
 *   tfjs-wasm      @tensorflow/tfjs 4.22.0 + @tensorflow/tfjs-backend-wasm, backend 'wasm'
 *                  (XNNPACK, SIMD; single-threaded in Node by design)
 *   tfjs-webgpu    @tensorflow/tfjs 4.22.0 + @tensorflow/tfjs-backend-webgpu, backend 'webgpu'
 *   jax-js-wasm    @jax-js/jax 0.1.25, device 'wasm' (single-threaded in Node: no global Worker)
 *   jax-js-webgpu  @jax-js/jax 0.1.25, device 'webgpu'
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
 * for loading the others.
 */
import type * as TF from '@tensorflow/tfjs';
import type * as JAX from '@jax-js/jax';
import { type CaseOrSkip, type PeerLike, debug, peerFilter } from './harness.js';
import { navigatorGpu } from '../runtime/webgpu/device.js';

export type PeerName = 'tfjs-cpu' | 'tfjs-wasm' | 'tfjs-webgpu' | 'jax-js-wasm' | 'jax-js-webgpu';

/** Where the chain case's input lives: copied from host memory on every call, or made once. */
export type ChainInput = 'host' | 'resident';

export interface Peer extends PeerLike {
  name: PeerName;
  /** One line saying what library, version and backend this is. */
  description: string;
  /** Loads the library and selects its backend. Idempotent; call before any case. */
  setup(): Promise<void>;
  /** The MLP training step; the returned function resolves to the step's loss. */
  mlpStep(): Promise<CaseOrSkip<number>>;
  /** An n×n f32 matmul; the returned function resolves to C read back (row-major). */
  matmul(n: number): Promise<CaseOrSkip<ArrayLike<number>>>;
  /** The elementwise chain; the returned function resolves to y read back. */
  chain(input: ChainInput): Promise<CaseOrSkip<ArrayLike<number>>>;
}

// =============================================================================================
// Shared problem definitions (also meant for rheo's own side of the benchmarks)
// =============================================================================================

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

/** mulberry32: a small, fast, seeded generator of uniform numbers in [0, 1). */
export function seededUniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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

let mlpDataCache: MlpData | undefined;

/** The fixed input batch, labels and initial weights of the MLP case (the same on every call). */
export function mlpData(): MlpData {
  if (mlpDataCache) return mlpDataCache;
  const { sizes, batch, seed } = MLP;
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
  mlpDataCache = { x, y, labels, layers };
  return mlpDataCache;
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

// =============================================================================================
// TensorFlow.js (tfjs-cpu, tfjs-wasm, tfjs-webgpu)
// =============================================================================================
//
// `@tensorflow/tfjs` (the full bundle) is needed: `tfjs-core` plus a backend registers no
// gradients. The peers share one `tf` module and its global backend, so every timed call first
// makes sure its own backend is the active one (a string comparison when it already is).

let tfModule: Promise<typeof TF> | undefined;

function loadTf(): Promise<typeof TF> {
  tfModule ??= (async () => {
    const tf = (await import('@tensorflow/tfjs')) as typeof TF;
    // Only silences tf's console warnings (e.g. "install the node backend"); no effect on speed.
    tf.enableProdMode();
    // Registers the 'wasm' backend with the same tfjs-core instance the bundle uses.
    await import('@tensorflow/tfjs-backend-wasm');
    return tf;
  })();
  return tfModule;
}

let tfWebgpu: Promise<void> | undefined;

/** Registers TF.js's 'webgpu' backend, on the `navigator.gpu` of `installNavigatorGpu`. */
function loadTfWebgpu(): Promise<void> {
  tfWebgpu ??= (async () => {
    if (!(await installNavigatorGpu())) throw new Error('no WebGPU adapter');
    await loadTf();
    await import('@tensorflow/tfjs-backend-webgpu');
  })();
  return tfWebgpu;
}

function tfjsPeer(name: 'tfjs-cpu' | 'tfjs-wasm' | 'tfjs-webgpu', backend: 'cpu' | 'wasm' | 'webgpu'): Peer {
  let tf!: typeof TF;

  async function useBackend(): Promise<void> {
    if (tf.getBackend() !== backend) {
      if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
      await tf.ready();
    }
  }

  return {
    name,
    description: `@tensorflow/tfjs 4.22.0, backend '${backend}'${backend === 'wasm' ? ' (SIMD, 1 thread)' : ''}`,

    async setup() {
      if (backend === 'webgpu') await loadTfWebgpu();
      tf = await loadTf();
      await useBackend();
      debug(`${name}: backend ${tf.getBackend()}`);
    },

    async mlpStep() {
      await useBackend();
      const data = mlpData();
      const { batch, sizes } = MLP;
      const x = tf.tensor2d(data.x, [batch, sizes[0]]);
      const y = tf.tensor2d(data.y, [batch, sizes[sizes.length - 1]!]);
      // tf.variable shares the initial tensor's data; dispose the initial tensor itself.
      const variable = (init: TF.Tensor, varName: string): TF.Variable => {
        const v = tf.variable(init, true, varName);
        init.dispose();
        return v;
      };
      const vars = data.layers.map((l, i) => ({
        w: variable(tf.tensor2d(l.w, [l.fanIn, l.fanOut]), `w${i}`),
        b: variable(tf.tensor1d(l.b), `b${i}`),
      }));
      const varList = vars.flatMap((v) => [v.w, v.b]);
      const optimizer = tf.train.adam(MLP.lr, MLP.beta1, MLP.beta2, MLP.eps);

      // Runs inside minimize's tidy: every intermediate is disposed by tf.
      const lossFn = (): TF.Scalar => {
        let h: TF.Tensor2D = x;
        vars.forEach((v, i) => {
          const z = tf.add(tf.matMul(h, v.w), v.b) as TF.Tensor2D;
          h = i + 1 < vars.length ? tf.relu(z) : z;
        });
        return tf.losses.softmaxCrossEntropy(y, h) as TF.Scalar;
      };

      const step = async (): Promise<number> => {
        await useBackend();
        const loss = optimizer.minimize(lossFn, true, varList);
        if (!loss) throw new Error('minimize returned no loss');
        const v = (await loss.data())[0]!;
        loss.dispose();
        return v;
      };
      return Object.assign(step, {
        dispose() {
          optimizer.dispose();
          tf.dispose([x, y, ...varList]);
        },
      });
    },

    async matmul(n: number) {
      await useBackend();
      const { a: ad, b: bd } = matmulData(n);
      const a = tf.tensor2d(ad, [n, n]);
      const b = tf.tensor2d(bd, [n, n]);
      const run = async (): Promise<ArrayLike<number>> => {
        await useBackend();
        const c = tf.matMul(a, b);
        const out = await c.data();
        c.dispose();
        return out;
      };
      return Object.assign(run, { dispose: () => tf.dispose([a, b]) });
    },

    async chain(input: ChainInput) {
      await useBackend();
      const xs = chainData();
      const [a, b, c, d] = [CHAIN.a, CHAIN.b, CHAIN.c, CHAIN.d].map((v) => tf.scalar(v));
      const resident = input === 'resident' ? tf.tensor1d(xs) : null;
      const run = async (): Promise<ArrayLike<number>> => {
        await useBackend();
        const y = tf.tidy(() => tf.add(tf.mul(tf.relu(tf.add(tf.mul(resident ?? tf.tensor1d(xs), a!), b!)), c!), d!));
        const out = await y.data();
        y.dispose();
        return out;
      };
      return Object.assign(run, { dispose: () => tf.dispose([a!, b!, c!, d!, ...(resident ? [resident] : [])]) });
    },
  };
}

/** TensorFlow.js on its plain-JavaScript CPU backend. */
export const tfjsCpu: Peer = tfjsPeer('tfjs-cpu', 'cpu');

/** TensorFlow.js on its WebAssembly backend (XNNPACK with SIMD, one thread in Node). */
export const tfjsWasm: Peer = tfjsPeer('tfjs-wasm', 'wasm');

/** TensorFlow.js on its WebGPU backend. */
export const tfjsWebgpu: Peer = tfjsPeer('tfjs-webgpu', 'webgpu');

// =============================================================================================
// jax-js (jax-js-wasm, jax-js-webgpu)
// =============================================================================================
//
// Memory model: jax-js arrays are reference-counted with move semantics. Passing an array to any
// function (including np ops, jit-compiled functions and `data()`) consumes one reference; `.ref`
// adds one. Inside the traced functions below every array is used exactly once, or `.ref`'d for
// each use but the last. `await arr.data()` consumes `arr`.
//
// `init()` with no arguments probes navigator.gpu and fails in Node: `init('cpu', 'wasm')`, and
// `init('webgpu')` once `installNavigatorGpu()` has set navigator.gpu. Arrays are made on the
// default device, so each case sets its device as default whenever it makes arrays.

type JaxArray = JAX.Array;
type MlpParams = { w: JaxArray[]; b: JaxArray[] };

/**
 * How the jax-js step is compiled:
 *   'fused': the whole step (valueAndGrad + Adam update) is one `jit`, the way a JAX user would
 *            write a train step; one compiled program per step.
 *   'split': `jit(valueAndGrad(loss))` for the gradient, then a second `jit` for the Adam update.
 * Both are idiomatic; the bench uses 'fused' (slightly the faster of the two here: 8.6 vs 8.8 ms), the other is
 * kept for comparison (`JAX_MLP_MODE=split`).
 */
export type JaxMlpMode = 'fused' | 'split';

let jaxModule: Promise<typeof JAX> | undefined;

function loadJax(): Promise<typeof JAX> {
  jaxModule ??= (async () => {
    const jax = (await import('@jax-js/jax')) as typeof JAX;
    const devices = await jax.init('cpu', 'wasm');
    if (!devices.includes('wasm')) throw new Error(`jax-js wasm device unavailable (got ${devices.join(', ')})`);
    jax.defaultDevice('wasm');
    return jax;
  })();
  return jaxModule;
}

let jaxWebgpuModule: Promise<typeof JAX> | undefined;

function loadJaxWebgpu(): Promise<typeof JAX> {
  jaxWebgpuModule ??= (async () => {
    if (!(await installNavigatorGpu())) throw new Error('no WebGPU adapter');
    const jax = await loadJax();
    const devices = await jax.init('webgpu');
    if (!devices.includes('webgpu')) throw new Error(`jax-js webgpu device unavailable (got ${devices.join(', ')})`);
    return jax;
  })();
  return jaxWebgpuModule;
}

function jaxPeer(name: 'jax-js-wasm' | 'jax-js-webgpu', device: 'wasm' | 'webgpu'): Peer {
  let jax!: typeof JAX;

  return {
    name,
    description: `@jax-js/jax 0.1.25, device '${device}'${device === 'wasm' ? ' (1 thread)' : ''}`,

    async setup() {
      jax = device === 'webgpu' ? await loadJaxWebgpu() : await loadJax();
      jax.defaultDevice(device);
      debug(`${name}: default device ${jax.defaultDevice()}`);
    },

    async mlpStep() {
      const mode: JaxMlpMode = process.env.JAX_MLP_MODE === 'split' ? 'split' : 'fused';
      return jaxMlpStep(jax, mode, device);
    },

    async chain(input: ChainInput) {
      const { numpy: np, nn } = jax;
      jax.defaultDevice(device);
      const xs = chainData();
      const { a, b, c, d } = CHAIN;
      const f = jax.jit((x: JaxArray) => nn.relu(x.mul(a).add(b)).mul(c).add(d));
      const resident = input === 'resident' ? np.array(xs) : null;
      if (resident) await jax.blockUntilReady(resident);
      const run = async (): Promise<ArrayLike<number>> => {
        jax.defaultDevice(device);
        const y = f(resident ? resident.ref : np.array(xs));
        return y.data(); // consumes y
      };
      return Object.assign(run, {
        dispose() {
          resident?.dispose();
          f.dispose();
        },
      });
    },

    async matmul(n: number) {
      const np = jax.numpy;
      jax.defaultDevice(device);
      const { a: ad, b: bd } = matmulData(n);
      const a = np.array(ad).reshape([n, n]);
      const b = np.array(bd).reshape([n, n]);
      await jax.blockUntilReady([a, b]);
      // jit: the compiled kernel is cached per shape; measurably faster than eager np.matmul at
      // n = 256 here (less dispatch work per call), the same at n = 1024.
      const mm = jax.jit((x: JaxArray, y: JaxArray) => np.matmul(x, y));
      const run = async (): Promise<ArrayLike<number>> => {
        const c = mm(a.ref, b.ref);
        return c.data(); // consumes c
      };
      return Object.assign(run, {
        dispose() {
          a.dispose();
          b.dispose();
          mm.dispose();
        },
      });
    },
  };
}

/** Builds the jax-js MLP step (exported for the smoke check, which tries both modes). */
export async function jaxMlpStep(jax: typeof JAX, mode: JaxMlpMode, device: 'wasm' | 'webgpu' = 'wasm'): Promise<CaseOrSkip<number>> {
  const { numpy: np, nn, jit, valueAndGrad, tree } = jax;
  jax.defaultDevice(device);
  const data = mlpData();
  const { batch, sizes, lr, beta1, beta2, eps } = MLP;
  const classes = sizes[sizes.length - 1]!;

  const x = np.array(data.x).reshape([batch, sizes[0]]);
  const y = np.array(data.y).reshape([batch, classes]);
  let params: MlpParams = {
    w: data.layers.map((l) => np.array(l.w).reshape([l.fanIn, l.fanOut])),
    b: data.layers.map((l) => np.array(l.b)),
  };
  const zerosLike = (p: MlpParams): MlpParams => ({
    w: p.w.map((a) => np.zeros(a.shape)),
    b: p.b.map((a) => np.zeros(a.shape)),
  });
  let m = zerosLike(params);
  let v = zerosLike(params);

  // Mean softmax cross-entropy. Consumes p, xs, ys.
  const loss = (p: MlpParams, xs: JaxArray, ys: JaxArray): JaxArray => {
    let h = xs;
    for (let i = 0; i < p.w.length; i++) {
      const z = np.matmul(h, p.w[i]!).add(p.b[i]!);
      h = i + 1 < p.w.length ? nn.relu(z) : z;
    }
    const logp = nn.logSoftmax(h, -1);
    return np.sum(logp.mul(ys)).mul(-1 / batch);
  };

  // Adam with the bias correction folded into the step size (as TF.js does):
  //   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  p ← p − lr_t·m / (√v + ε),
  //   lr_t = lr·√(1−β2^t) / (1−β1^t), passed in as a scalar array so that it is not a
  //   compile-time constant. Consumes everything it is given.
  const adam = (p: MlpParams, g: MlpParams, m0: MlpParams, v0: MlpParams, lrT: JaxArray) => {
    const upd = (pi: JaxArray, gi: JaxArray, mi: JaxArray, vi: JaxArray) => {
      const mn = mi.mul(beta1).add(gi.ref.mul(1 - beta1));
      const vn = vi.mul(beta2).add(np.square(gi).mul(1 - beta2));
      const pn = pi.sub(lrT.ref.mul(mn.ref).div(np.sqrt(vn.ref).add(eps)));
      return [pn, mn, vn] as const;
    };
    const empty = (): MlpParams => ({ w: [], b: [] });
    const out = { p: empty(), m: empty(), v: empty() };
    for (const k of ['w', 'b'] as const) {
      for (let i = 0; i < p[k].length; i++) {
        const [pn, mn, vn] = upd(p[k][i]!, g[k][i]!, m0[k][i]!, v0[k][i]!);
        out.p[k].push(pn);
        out.m[k].push(mn);
        out.v[k].push(vn);
      }
    }
    lrT.dispose();
    return out;
  };

  let t = 0;
  const stepSize = (): JaxArray => {
    t += 1;
    return np.array(lr * Math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t));
  };

  let run: () => JaxArray;
  const compiled: { dispose: () => void }[] = [];
  if (mode === 'fused') {
    const trainStep = jit(
      (p: MlpParams, m0: MlpParams, v0: MlpParams, lrT: JaxArray, xs: JaxArray, ys: JaxArray) => {
        const [l, g] = valueAndGrad(loss)(tree.ref(p), xs, ys);
        const o = adam(p, g, m0, v0, lrT);
        return { l, p: o.p, m: o.m, v: o.v };
      },
    );
    compiled.push(trainStep);
    run = () => {
      const o = trainStep(params, m, v, stepSize(), x.ref, y.ref);
      params = o.p;
      m = o.m;
      v = o.v;
      return o.l;
    };
  } else {
    const lossAndGrad = jit(valueAndGrad(loss));
    const update = jit(adam);
    compiled.push(lossAndGrad, update);
    run = () => {
      const [l, g] = lossAndGrad(tree.ref(params), x.ref, y.ref);
      const o = update(params, g, m, v, stepSize());
      params = o.p;
      m = o.m;
      v = o.v;
      return l;
    };
  }

  const step = async (): Promise<number> => {
    jax.defaultDevice(device);
    const l = run();
    return (await l.data())[0]!; // consumes l
  };
  return Object.assign(step, {
    dispose() {
      tree.dispose([params, m, v, x, y]);
      for (const c of compiled) c.dispose();
    },
  });
}

/** jax-js on its WebAssembly device. */
export const jaxWasm: Peer = jaxPeer('jax-js-wasm', 'wasm');

/** jax-js on its WebGPU device. */
export const jaxWebgpu: Peer = jaxPeer('jax-js-webgpu', 'webgpu');

// =============================================================================================
// Selection
// =============================================================================================

/** Every peer, in the order benches report them. */
export const ALL_PEERS: readonly Peer[] = [tfjsCpu, tfjsWasm, tfjsWebgpu, jaxWasm, jaxWebgpu];

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
