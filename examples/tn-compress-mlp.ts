// Compresses the hidden layer of a Fashion-MNIST MLP (784-256-10, examples/mlp-model.ts) with a
// searched tensor network: the trained 784×256 weight, reshaped to (4·7·7·4)×(4·4·4·4), becomes a
// chain of four cores, core k carrying the k-th input and output factor (a tensor-train matrix).
// The greedy rank search fits the cores to the trained weight (ALS through rheo), recording the
// network at each compression budget; each is put into the graph by `replaceParamByNetwork` and
// the whole model is fine-tuned with Adam. Prints the accuracy / compression curve.
//
//   npx tsx examples/tn-compress-mlp.ts [--epochs 3] [--finetune 2] [--compressions 10,20,40]
//                                       [--data DIR] [--smoke]
//
// Data: Debian's dataset-fashion-mnist when installed (or --data DIR), else the embedded subset.

import { performance } from 'node:perf_hooks';
import { adam, compile, grad, tensor, type Executable, type Graph } from '../index.js';
import { cli } from './cli.js';
import { mlpGraph } from './mlp-model.js';
import { batches, loadFashionMnist, NUM_CLASSES, PIXELS, type Split } from '../tools/data/fashion-mnist.js';
import { generalNetwork, paramCount, ranksOf, type TensorNetwork } from '../graphs/tn/network.js';
import { greedySearch } from '../graphs/tn/search.js';
import type { TnFit } from '../graphs/tn/fit-types.js';
import { coreParamName, replaceParamByNetwork } from '../graphs/tn/replace.js';
import { alsFitter } from '../runtime/tn-fit.js';

const args = cli({
  command: 'npx tsx examples/tn-compress-mlp.ts',
  summary: "Compresses the hidden layer of a Fashion-MNIST MLP with a searched tensor network, fine-tunes each compressed model and prints the accuracy / compression curve.",
}, {
  smoke: { type: 'flag', help: 'a narrow layer and one compression (for the tests)' },
  epochs: { type: 'int', min: 1, default: 3, help: 'epochs of dense training' },
  finetune: { type: 'int', min: 0, default: 2, help: 'epochs of fine-tuning per compression' },
  compressions: { type: 'ints', min: 1, default: [10, 20, 40], help: 'compression factors to reach' },
  data: { type: 'string', placeholder: 'DIR', help: "directory of the IDX files (default: Debian's dataset-fashion-mnist, else the shipped subset)" },
  lr: { type: 'number', min: 0, default: 0.001, help: 'Adam learning rate' },
  seed: { type: 'int', min: 0, default: 1, help: 'seed of the initialization and shuffling' },
});
const smoke = args.smoke;
// In smoke mode a narrower layer (784×64 as (16·7·7)×(4·4·4)) keeps the search to seconds.
const HIDDEN = smoke ? 64 : 256;
const IN_FACTORS = smoke ? [16, 7, 7] : [4, 7, 7, 4];
const OUT_FACTORS = smoke ? [4, 4, 4] : [4, 4, 4, 4];
const epochs = smoke ? 1 : args.epochs;
const finetune = smoke ? 1 : args.finetune;
const compressions = (smoke ? [40] : args.compressions).sort((a, b) => b - a);
const batchSize = 128;
const seed = args.seed;

const data = loadFashionMnist(args.data ? { dir: args.data } : {});
const cut = (s: Split, n: number): Split => ({ images: s.images.subarray(0, n * PIXELS), labels: s.labels.subarray(0, n), count: Math.min(n, s.count) });
const train = smoke ? cut(data.train, 1024) : data.train;
const test = smoke ? cut(data.test, 500) : data.test;
console.log(`data: ${data.source} (${data.dir}); ${train.count} train, ${test.count} test images`);

function trainEpochs(step: Executable, n: number, salt: number): void {
  for (let epoch = 1; epoch <= n; epoch++) {
    for (const b of batches(train.images, train.labels, batchSize, { shuffle: true, seed: seed * 1000 + salt + epoch, dropLast: true })) {
      step.runSync({ x: tensor(b.x, [batchSize, PIXELS]), y: tensor(b.y, [batchSize, NUM_CLASSES]) });
    }
  }
}

function accuracy(step: Executable): number {
  let correct = 0;
  for (const b of batches(test.images, test.labels, 500)) {
    const logits = step.runSync({ x: tensor(b.x, [b.size, PIXELS]) }, ['logits'], { update: false })['logits']!.data;
    for (let i = 0; i < b.size; i++) {
      let best = 0;
      for (let c = 1; c < NUM_CLASSES; c++) if (logits[i * NUM_CLASSES + c]! > logits[i * NUM_CLASSES + best]!) best = c;
      if (best === b.labels[i]) correct++;
    }
  }
  return (100 * correct) / test.count;
}

// 1. The dense model.
const t0 = performance.now();
const dense: Graph = mlpGraph([PIXELS, HIDDEN, NUM_CLASSES], 'mlp');
const denseStep = compile(grad(dense, 'loss'), { optimizer: adam(args.lr), seed });
trainEpochs(denseStep, epochs, 0);
const denseAcc = accuracy(denseStep);
const trained = denseStep.variables();
const layerParams = PIXELS * HIDDEN;
console.log(`dense MLP ${PIXELS}-${HIDDEN}-${NUM_CLASSES}: ${epochs} epochs, test accuracy ${denseAcc.toFixed(2)}% (hidden layer ${layerParams} weights), ${((performance.now() - t0) / 1000).toFixed(1)} s`);

// 2. The search: cores fitted to the trained weight, one greedy run up to the largest budget.
const d = IN_FACTORS.length;
const dims = [...IN_FACTORS, ...OUT_FACTORS];
const topology: TensorNetwork = generalNetwork(dims, IN_FACTORS.map((_, k) => [k, d + k]), IN_FACTORS.slice(1).map((_, k) => [k, k + 1, 1] as const));
const w = trained['param:w0']!.data;
const t1 = performance.now();
const fitter = alsFitter(w, dims, { seed });
const steps: TnFit[] = [];
greedySearch(fitter, topology, { target: 0, maxParams: Math.floor(layerParams / compressions[compressions.length - 1]!), fullSweeps: 4, onStep: (f) => steps.push(f) });
console.log(`greedy rank search on the trained weight: ${fitter.evaluations} candidate fits in ${((performance.now() - t1) / 1000).toFixed(1)} s`);

// 3. Each budget's network in the graph, fine-tuned.
console.log('compression  layer params  ranks            weight RSE  accuracy before → after fine-tuning  (dense ' + denseAcc.toFixed(2) + '%)');
const curve: { ratio: number; acc: number }[] = [];
for (const c of compressions) {
  const fit = [...steps].reverse().find((f) => paramCount(f.net) <= layerParams / c);
  if (!fit) continue;
  const model = replaceParamByNetwork(dense, 'w0', fit.net);
  const step = compile(grad(model, 'loss'), { optimizer: adam(args.lr), seed });
  step.setVariables({
    'param:w1': trained['param:w1']!, 'param:b0': trained['param:b0']!, 'param:b1': trained['param:b1']!,
    ...Object.fromEntries(fit.cores.map((core, k) => [`param:${coreParamName('w0', k)}`, Float32Array.from(core)])),
  });
  const before = accuracy(step);
  trainEpochs(step, finetune, 100 * c);
  const after = accuracy(step);
  const ratio = layerParams / paramCount(fit.net);
  curve.push({ ratio, acc: after });
  console.log(`${ratio.toFixed(1).padStart(9)}×  ${String(paramCount(fit.net)).padStart(12)}  ${`[${ranksOf(fit.net).join(', ')}]`.padEnd(15)}  ${fit.rse.toFixed(3).padStart(10)}  ${before.toFixed(2).padStart(7)}% → ${after.toFixed(2)}% (${(after - denseAcc >= 0 ? '+' : '') + (after - denseAcc).toFixed(2)} points)`);
}
const ten = curve.filter((p) => p.ratio >= 10).sort((a, b) => a.ratio - b.ratio)[0];
if (ten) console.log(`at ${ten.ratio.toFixed(1)}× fewer hidden-layer parameters: ${ten.acc.toFixed(2)}% vs dense ${denseAcc.toFixed(2)}% (${(denseAcc - ten.acc).toFixed(2)} points lost after ${finetune} fine-tuning epochs)`);
console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
