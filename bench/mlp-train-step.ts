// One training step of an MLP 784-256-256-10, batch 128, softmax cross-entropy, Adam: rheo
// against TensorFlow.js (cpu, wasm) and jax-js (wasm), same data and initial weights, same
// process. Prints JSON lines (bench/harness.ts); `--quick` keeps it under a minute.

import { adam, compile, grad, tensor } from '../index.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { caseFactory, runAgainstPeers, timeMetric } from './harness.js';
import { MLP, mlpData, selectedPeers } from './peers.js';

const data = mlpData();
const exe = compile(grad(mlpGraph(MLP.sizes), 'loss'), { optimizer: adam(MLP.lr, { beta1: MLP.beta1, beta2: MLP.beta2, eps: MLP.eps }) });
const vars: Record<string, Float32Array> = {};
data.layers.forEach((l, i) => {
  vars[`param:w${i}`] = l.w;
  vars[`param:b${i}`] = l.b;
});
exe.setVariables(vars);
const x = tensor(data.x, [MLP.batch, MLP.sizes[0]]);
const y = tensor(data.y, [MLP.batch, MLP.sizes[3]]);
const plan = exe.plan({ x: x.shape, y: y.shape });
const note = `cpu backend, ${plan.kernelCount} kernels (${plan.unfusedKernelCount} ops before fusion), arena ${(plan.memory.arenaBytes / 1e6).toFixed(2)} MB`;

await runAgainstPeers(
  'mlp-train-step',
  'mlp784-256-256-10_b128_adam',
  timeMetric('ms_per_step'),
  caseFactory(async () => () => exe.runSync({ x, y }).loss!.data[0]!),
  selectedPeers(),
  (p) => p.mlpStep(),
  { note },
);
