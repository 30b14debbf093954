// A surrogate of a PDE solver, trained online: each sample is a 1-D heat equation
// u_t = κ u_xx on [0, 1] with u = 0 at both ends, a random diffusivity κ and a random initial
// condition, solved on the fly by finite differences and never stored. An MLP learns the map
// (κ, u(·, 0)) -> u(·, T); its error on held-out problems is printed as more data streams in.
//
//   npx tsx examples/online-surrogate.ts [--grid 32] [--samples 256000] [--batch 64] [--hidden 256,256]
//       [--lr 1e-3] [--eval-every 250] [--seed 0] [--checkpoint-dir DIR] [--backend auto|cpu|webgpu] [--smoke]

import { lastValueFrom, tap } from 'rxjs';
import { adam, dim, f32, grad, graph, tensor, type Tensor } from '../index.js';
import { compileOn, describeBackend } from './backend.js';
import { backendOption, cli } from './cli.js';
import { normal, type Rng } from '../runtime/rng.js';
import { batchOf, pullPipe, simulated, stack, train, type Batch, type StreamPosition } from '../runtime/train/index.js';

const args = cli({
  command: 'npx tsx examples/online-surrogate.ts',
  summary: 'Trains an MLP online as a surrogate of a 1-D heat-equation solver, on problems solved on the fly, and prints its error on held-out problems.',
}, {
  backend: backendOption,
  grid: { type: 'int', min: 2, max: 4096, default: 32, help: 'interior grid points' },
  samples: { type: 'int', min: 1, default: 256000, help: 'problems streamed' },
  batch: { type: 'int', min: 1, default: 64, help: 'problems per step' },
  hidden: { type: 'ints', min: 1, default: [256, 256], help: 'hidden layer sizes' },
  lr: { type: 'number', min: 0, default: 1e-3, help: 'Adam learning rate' },
  'eval-every': { type: 'int', min: 1, default: 250, help: 'steps between held-out evaluations' },
  seed: { type: 'int', min: 0, default: 0, help: 'seed of the problems and the initialization' },
  'checkpoint-dir': { type: 'string', placeholder: 'DIR', help: 'write checkpoints there (and resume from them)' },
  smoke: { type: 'flag', help: 'a short run (for the tests)' },
});

const smoke = args.smoke;
const G = smoke ? 16 : Number(args.grid); // interior grid points
const batchSize = Number(args.batch);
const samples = smoke ? 150 * batchSize : Number(args.samples);
const hidden = smoke ? [64, 64] : args.hidden;
const evalEvery = smoke ? 30 : Number(args['eval-every']);
const seed = Number(args.seed);
const T = 0.1;
const KAPPA = [0.01, 0.1] as const;
const MODES = 5;

interface Problem {
  readonly kappa: number;
  readonly u0: Float64Array;
}

/** A random problem: κ uniform in KAPPA, u0 a few sine modes plus a Gaussian bump, zero at the ends. */
function randomProblem(rng: Rng): Problem {
  const kappa = KAPPA[0] + (KAPPA[1] - KAPPA[0]) * rng();
  const amp = Array.from({ length: MODES }, (_, k) => normal(rng) / (k + 1));
  const [c, w, b] = [0.2 + 0.6 * rng(), 0.03 + 0.07 * rng(), 2 * rng() - 1];
  const u0 = new Float64Array(G);
  for (let i = 0; i < G; i++) {
    const x = (i + 1) / (G + 1);
    let v = b * Math.exp(-(((x - c) / w) ** 2)) * Math.sin(Math.PI * x);
    for (let k = 0; k < MODES; k++) v += amp[k]! * Math.sin((k + 1) * Math.PI * x);
    u0[i] = v;
  }
  return { kappa, u0 };
}

/** Explicit finite differences (FTCS) to time T with κ·dt/dx² ≤ 0.25. */
function solveHeat(p: Problem): Float64Array {
  const dx = 1 / (G + 1);
  const n = Math.ceil(T / ((0.25 * dx * dx) / p.kappa));
  const r = (p.kappa * (T / n)) / (dx * dx);
  let u = Float64Array.from(p.u0);
  let next = new Float64Array(G);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < G; i++) next[i] = u[i]! + r * ((i > 0 ? u[i - 1]! : 0) - 2 * u[i]! + (i < G - 1 ? u[i + 1]! : 0));
    [u, next] = [next, u];
  }
  return u;
}

function toSample(p: Problem, uT: Float64Array): Batch {
  const kappa = Float32Array.of((p.kappa - KAPPA[0]) / (KAPPA[1] - KAPPA[0]));
  return { kappa: tensor(kappa, [1]), u0: tensor(Float32Array.from(p.u0), [G]), y: tensor(Float32Array.from(uT), [G]) };
}

const solved = (_i: number, rng: Rng) => {
  const p = randomProblem(rng);
  return toSample(p, solveHeat(p));
};

// The solver against the exact solution of a pure-mode problem, u = Σ a_k e^{-κ(kπ)²T} sin(kπx).
{
  const kappa = 0.02;
  const u0 = new Float64Array(G), exact = new Float64Array(G);
  for (let i = 0; i < G; i++) {
    const x = (i + 1) / (G + 1);
    for (const [k, a] of [[1, 1], [3, 0.5]] as const) {
      u0[i] += a * Math.sin(k * Math.PI * x);
      exact[i] += a * Math.exp(-kappa * (k * Math.PI) ** 2 * T) * Math.sin(k * Math.PI * x);
    }
  }
  const fd = solveHeat({ kappa, u0 });
  const err = Math.max(...fd.map((v, i) => Math.abs(v - exact[i]!)));
  console.log(`heat equation on ${G} interior points to T=${T}: finite differences vs exact solution, max error ${err.toExponential(2)}`);
}

const B = dim('batch');
// pred = u(0) + MLP(κ, u(0)): the network learns what diffusion changes.
const surrogate = graph('heat-surrogate', (g) => {
  const kappa = g.input('kappa', f32(B, 1));
  const u0 = g.input('u0', f32(B, G));
  const y = g.input('y', f32(B, G));
  const sizes = [G + 1, ...hidden, G];
  let h: Tensor = g.concat([kappa, u0], 1);
  for (let l = 0; l + 1 < sizes.length; l++) {
    const last = l + 2 === sizes.length;
    const w = g.param(`w${l}`, f32(sizes[l]!, sizes[l + 1]!), last ? g.init.zeros() : g.init.he()); // starts at the baseline
    h = g.add(g.matmul(h, w), g.param(`b${l}`, f32(sizes[l + 1]!), g.init.zeros()));
    if (!last) h = g.relu(h);
  }
  const pred = g.add(u0, h);
  return { pred, loss: g.mse(pred, y) };
});
const step = await compileOn(grad(surrogate, 'loss'), args.backend, { optimizer: adam(Number(args.lr)), seed });
console.log(`backend: ${describeBackend(step)}`);

// Held-out problems from their own seed; the relative L2 error is ‖pred − u(T)‖ / ‖u(T)‖ per problem.
const held = [...simulated(solved, { seed: seed + 1_000_003, count: smoke ? 256 : 1024 })];
const heldOut = Array.from({ length: held.length / 256 }, (_, k) => stack(held.slice(k * 256, (k + 1) * 256)));
const relL2 = (pred: ArrayLike<number>, y: ArrayLike<number>, rows: number): number => {
  let sum = 0;
  for (let r = 0; r < rows; r++) {
    let num = 0, den = 0;
    for (let i = 0; i < G; i++) {
      num += (pred[r * G + i]! - y[r * G + i]!) ** 2;
      den += y[r * G + i]! ** 2;
    }
    sum += Math.sqrt(num / Math.max(den, 1e-12));
  }
  return sum / rows;
};
const baseline = heldOut.reduce((s, b) => s + relL2(b['u0']!.data, b['y']!.data, b['y']!.shape[0]!), 0) / heldOut.length;
console.log(`surrogate MLP ${[G + 1, ...hidden, G].join('-')}, Adam lr ${args.lr}, batch ${batchSize}; streaming ${samples} solved problems; held-out ${held.length} problems`);
console.log(`baseline u(T) = u(0): relative L2 error ${(baseline * 100).toFixed(1)}%`);

const source = (pos: StreamPosition) => pullPipe(simulated(solved, { seed, from: pos.index * batchSize, count: samples }), batchOf(batchSize, stack, { dropPartial: true }));
const started = performance.now();
const errors: number[] = [];
const last = await lastValueFrom(
  train(step, source, {
    eval: { every: evalEvery, data: heldOut, outputs: ['loss', 'pred'], metrics: (out, b) => ({ relL2: relL2(out['pred']!.data, b['y']!.data, b['y']!.shape[0]!) }) },
    ...(args['checkpoint-dir'] && { checkpoint: { dir: args['checkpoint-dir'], every: evalEvery } }),
  }).pipe(
    tap((e) => {
      if (!e.eval) return;
      errors.push(e.eval.metrics['relL2']!);
      console.log(`samples ${String(e.step * batchSize).padStart(7)}: held-out MSE ${e.eval.loss!.toExponential(3)}, relative L2 error ${(e.eval.metrics['relL2']! * 100).toFixed(2)}%  (${Math.round(e.samplesPerSec)} samples/s)`);
    }),
  ),
);
console.log(`trained on ${last.trained * batchSize} problems in ${((performance.now() - started) / 1000).toFixed(1)} s; relative L2 error ${(errors[0]! * 100).toFixed(2)}% -> ${(errors[errors.length - 1]! * 100).toFixed(2)}%`);
