// jax-js peers (jax-js-wasm, jax-js-webgpu) for the benchmarks: see bench/peers.ts.

import type * as JAX from '@jax-js/jax';
import { type CaseOrSkip, debug } from './harness.js';
import { CHAIN, MLP, chainData, installNavigatorGpu, matmulData, mlpData, type ChainInput, type MlpSpec, type Peer } from './problems.js';

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

    async mlpStep(spec: MlpSpec = MLP) {
      const mode: JaxMlpMode = process.env.JAX_MLP_MODE === 'split' ? 'split' : 'fused';
      return jaxMlpStep(jax, mode, device, spec);
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

    async matmulOnDevice(n: number) {
      const np = jax.numpy;
      jax.defaultDevice(device);
      const { a: ad, b: bd } = matmulData(n);
      const a = np.array(ad).reshape([n, n]);
      const b = np.array(bd).reshape([n, n]);
      await jax.blockUntilReady([a, b]);
      // the product is made by its own jitted kernel; only C[0, 0] is sliced off and read
      const mm = jax.jit((x: JaxArray, y: JaxArray) => np.matmul(x, y));
      const run = async (): Promise<number> => {
        const c = mm(a.ref, b.ref);
        await jax.blockUntilReady(c);
        return (await c.slice(0, 0).data())[0]!; // consumes c
      };
      return Object.assign(run, {
        dispose() {
          a.dispose();
          b.dispose();
          mm.dispose();
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
export async function jaxMlpStep(jax: typeof JAX, mode: JaxMlpMode, device: 'wasm' | 'webgpu' = 'wasm', spec: MlpSpec = MLP): Promise<CaseOrSkip<number>> {
  const { numpy: np, nn, jit, valueAndGrad, tree } = jax;
  jax.defaultDevice(device);
  const data = mlpData(spec);
  const { batch, sizes, lr, beta1, beta2, eps } = spec;
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
