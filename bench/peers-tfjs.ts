// TensorFlow.js peers (tfjs-cpu, tfjs-wasm, tfjs-webgpu) for the benchmarks: see bench/peers.ts.

import type * as TF from '@tensorflow/tfjs';
import { debug } from './harness.js';
import { CHAIN, MLP, chainData, installNavigatorGpu, matmulData, mlpData, type ChainInput, type MlpSpec, type Peer } from './problems.js';

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

/** TF.js with its 'webgpu' backend active, for benches whose peers have shapes of their own. */
export async function tfjsOnWebgpu(): Promise<typeof TF> {
  await loadTfWebgpu();
  const tf = await loadTf();
  if (!(await tf.setBackend('webgpu'))) throw new Error("tf.setBackend('webgpu') failed");
  await tf.ready();
  return tf;
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

    async mlpStep(spec: MlpSpec = MLP) {
      await useBackend();
      const data = mlpData(spec);
      const { batch, sizes } = spec;
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
      const optimizer = tf.train.adam(spec.lr, spec.beta1, spec.beta2, spec.eps);

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

    async matmulOnDevice(n: number) {
      await useBackend();
      const { a: ad, b: bd } = matmulData(n);
      const a = tf.tensor2d(ad, [n, n]);
      const b = tf.tensor2d(bd, [n, n]);
      const run = async (): Promise<number> => {
        await useBackend();
        const c = tf.matMul(a, b);
        const c00 = tf.slice(c, [0, 0], [1, 1]);
        const out = (await c00.data())[0]!;
        tf.dispose([c, c00]);
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
