// ONNX Runtime peers (onnxruntime-node, its native CPU execution provider) for the benchmarks: see
// bench/peers.ts. They are the distance to native code, not a training peer: the matmul and the
// elementwise chain run as small ONNX models built in memory (onnx-model.ts), on one thread and
// on every core. onnxruntime-node is an optional dependency; without it every case says so.

import { availableParallelism } from 'node:os';
import { debug } from './harness.js';
import { CHAIN, chainData, matmulData, type ChainInput, type Peer } from './problems.js';
import { chainModel, matmulModel } from './onnx-model.js';

/** The part of onnxruntime-node's API these peers use (typed here: the package may be absent). */
interface OrtTensor {
  readonly data: ArrayLike<number>;
  dispose?(): void;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface Ort {
  readonly InferenceSession: {
    create(model: Uint8Array, options: object): Promise<OrtSession>;
  };
  readonly Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
}

const PACKAGE = 'onnxruntime-node';
const VERSION = '1.30.0';

let ortModule: Promise<Ort | string> | undefined;

/** The package, or a line saying why it is not there. */
function loadOrt(): Promise<Ort | string> {
  ortModule ??= (async () => {
    try {
      // a variable specifier: the type checker must not need the (optional) package
      const name: string = PACKAGE;
      const m = (await import(name)) as Ort & { default?: Ort };
      return m.InferenceSession ? m : m.default!;
    } catch (e) {
      debug(`${PACKAGE}: ${e instanceof Error ? e.message : String(e)}`);
      return `${PACKAGE} not installed (an optional dependency: ONNXRUNTIME_NODE_INSTALL=skip npm install)`;
    }
  })();
  return ortModule;
}

function onnxPeer(threads: number): Peer {
  let ort: Ort | string = 'setup() not called';

  async function session(model: Uint8Array): Promise<OrtSession> {
    if (typeof ort === 'string') throw new Error(ort);
    return ort.InferenceSession.create(model, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
    });
  }

  return {
    name: `onnxruntime-t${threads}`,
    description: `${PACKAGE} ${VERSION}, CPU execution provider, ${threads} intra-op thread${threads > 1 ? 's' : ''}`,

    async setup() {
      ort = await loadOrt();
      debug(`onnxruntime-t${threads}: ${typeof ort === 'string' ? ort : 'loaded'}`);
    },

    async mlpStep() {
      return 'ONNX Runtime is a matmul and elementwise peer here (its training API is not in onnxruntime-node)';
    },

    async matmul(n: number) {
      if (typeof ort === 'string') return ort;
      const { a, b } = matmulData(n);
      const s = await session(matmulModel(n));
      const feeds = { a: new ort.Tensor('float32', a, [n, n]), b: new ort.Tensor('float32', b, [n, n]) };
      const run = async (): Promise<ArrayLike<number>> => {
        const out = await s.run(feeds);
        const c = out['c']!;
        const data = Float32Array.from(c.data);
        c.dispose?.();
        return data;
      };
      return Object.assign(run, { dispose: () => void s.release() });
    },

    async chain(input: ChainInput) {
      if (typeof ort === 'string') return ort;
      const Tensor = ort.Tensor;
      const xs = chainData();
      const s = await session(chainModel(CHAIN.n, CHAIN));
      const resident = new Tensor('float32', xs, [CHAIN.n]);
      const run = async (): Promise<ArrayLike<number>> => {
        // 'host': a fresh tensor over a copy of the host data, as the other peers upload it
        const x = input === 'resident' ? resident : new Tensor('float32', Float32Array.from(xs), [CHAIN.n]);
        const out = await s.run({ x });
        const y = out['y']!;
        const data = Float32Array.from(y.data);
        y.dispose?.();
        return data;
      };
      return Object.assign(run, { dispose: () => void s.release() });
    },
  };
}

/** ONNX Runtime's CPU kernels on one thread. */
export const onnxT1: Peer = onnxPeer(1);

/** ONNX Runtime's CPU kernels on every core (null on a one-core machine). */
export const onnxTN: Peer | null = availableParallelism() > 1 ? onnxPeer(availableParallelism()) : null;
