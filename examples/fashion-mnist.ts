// The main job: train an MLP on Fashion-MNIST and report accuracy on the 10,000 test images.
//
//   npx tsx examples/fashion-mnist.ts [--data DIR] [--epochs 10] [--batch 128] [--lr 1e-3]
//                                     [--hidden 256,256] [--seed 0] [--plot out/fashion-mnist.svg]
//                                     [--backend auto|webgpu|cpu] [--smoke]
//
// Data: the IDX files in --data, else Debian's dataset-fashion-mnist, else the subset shipped
// in data/fashion-mnist-subset (the run says which). --smoke trains briefly on a small slice.
// --backend auto (the default) trains on WebGPU when an adapter is found, else on the CPU; the
// run says which and why.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { adam, grad, tensor } from '../index.js';
import { compileAsync } from '../runtime/executor.js';
import { backendOption, cli } from './cli.js';
import { mlpGraph } from './mlp-model.js';
import { batches, loadFashionMnist, NUM_CLASSES, PIXELS } from '../tools/data/fashion-mnist.js';
import { createProgress } from '../tools/progress.js';
import { lineChartSvg } from '../tools/plot.js';

const args = cli({ command: 'npx tsx examples/fashion-mnist.ts', summary: 'Trains an MLP on Fashion-MNIST with Adam and reports the accuracy on the test images.' }, {
  data: { type: 'string', placeholder: 'DIR', help: 'directory of the IDX files (default: Debian\'s dataset-fashion-mnist, else the shipped subset)' },
  epochs: { type: 'int', min: 1, default: 10, help: 'passes over the training images' },
  batch: { type: 'int', min: 1, default: 128, help: 'images per step' },
  lr: { type: 'number', min: 0, default: 1e-3, help: 'Adam learning rate' },
  hidden: { type: 'ints', min: 1, default: [256, 256], help: 'hidden layer sizes' },
  seed: { type: 'int', min: 0, default: 0, help: 'seed of the initialization and shuffling' },
  plot: { type: 'string', placeholder: 'FILE', default: 'out/fashion-mnist.svg', help: 'where to write the loss/accuracy plot' },
  backend: backendOption,
  smoke: { type: 'flag', help: 'train briefly on a small slice (for the tests)' },
  quiet: { type: 'flag', help: 'no progress bar' },
});

const smoke = args.smoke;
const epochs = smoke ? 1 : args.epochs;
const batchSize = args.batch;
const seed = args.seed;
const sizes = [PIXELS, ...args.hidden, NUM_CLASSES];

const data = loadFashionMnist(args.data ? { dir: args.data } : {});
const source = { dir: `${data.dir}`, debian: `Debian's dataset-fashion-mnist (${data.dir})`, embedded: `the embedded subset (${data.dir}); install dataset-fashion-mnist or pass --data for the full set` }[data.source];
const train = smoke ? slice(data.train, 1024) : data.train;
const test = smoke ? slice(data.test, 500) : data.test;
console.log(`data: ${source}`);

const model = mlpGraph(sizes, 'fashion-mnist-mlp');
const step = await compileAsync(grad(model, 'loss'), { optimizer: adam(args.lr), seed, backend: args.backend }).catch((e: Error) => {
  console.error(`--backend ${args.backend}: ${e.message}`);
  process.exit(1);
});
const info = step.backendInfo;
const backendText = info.backend === 'webgpu' ? `webgpu on ${info.adapter}` : `cpu${info.reason ? ` (${info.reason})` : ''}`;
console.log(`train ${train.count} images, test ${test.count} images; MLP ${sizes.join('-')}, Adam lr ${args.lr}, batch ${batchSize}, ${epochs} epochs`);
console.log(`backend: ${backendText}`);
const plan = step.plan({ x: [batchSize, PIXELS], y: [batchSize, NUM_CLASSES] });
console.log(`plan: ${plan.kernelCount} kernels (${plan.unfusedKernelCount} ops before fusion), at most ${(plan.peakBytes / 1e6).toFixed(2)} MB of computed values held at once`);

function slice(s: typeof data.train, n: number): typeof data.train {
  const c = Math.min(n, s.count);
  return { images: s.images.subarray(0, c * PIXELS), labels: s.labels.subarray(0, c), count: c };
}

async function accuracy(split: typeof data.test): Promise<number> {
  let correct = 0;
  for (const b of batches(split.images, split.labels, 1000)) {
    const out = await step.run({ x: tensor(b.x, [b.size, PIXELS]) }, ['logits'], { update: false });
    const logits = out.logits!.data;
    for (let i = 0; i < b.size; i++) {
      let best = 0;
      for (let c = 1; c < NUM_CLASSES; c++) if (logits[i * NUM_CLASSES + c]! > logits[i * NUM_CLASSES + best]!) best = c;
      if (best === b.labels[i]) correct++;
    }
  }
  return correct / split.count;
}

const lossCurve: [number, number][] = [];
const accCurve: [number, number][] = [];
const started = performance.now();
let stepNo = 0;
let ema = NaN; // smoothed per-step loss for the plot
for (let epoch = 1; epoch <= epochs; epoch++) {
  const steps = Math.floor(train.count / batchSize);
  const bar = createProgress({ total: steps, label: `epoch ${epoch}/${epochs}`, quiet: args.quiet });
  const t0 = performance.now();
  let sum = 0;
  let n = 0;
  // Steps are started before the previous step's loss is back, so that a device never idles
  // while the host waits for a read-back; updates still apply in step order.
  const inFlight: Promise<number>[] = [];
  const record = (loss: number) => {
    sum += loss;
    n++;
    stepNo++;
    ema = Number.isNaN(ema) ? loss : 0.98 * ema + 0.02 * loss;
    if (stepNo % 10 === 0) lossCurve.push([stepNo / steps, ema]);
    bar.update(n, { loss: sum / n, 'img/s': Math.round((n * batchSize) / ((performance.now() - t0) / 1000)) });
  };
  for (const b of batches(train.images, train.labels, batchSize, { shuffle: true, seed: seed * 1000 + epoch, dropLast: true })) {
    inFlight.push(step.run({ x: tensor(b.x, [batchSize, PIXELS]), y: tensor(b.y, [batchSize, NUM_CLASSES]) }).then((o) => o.loss!.data[0]!));
    if (inFlight.length > 1) record(await inFlight.shift()!);
  }
  for (const p of inFlight.splice(0)) record(await p);
  bar.stop();
  const acc = await accuracy(test);
  accCurve.push([epoch, acc]);
  console.log(`epoch ${epoch}: train loss ${(sum / n).toFixed(4)}, test accuracy ${(acc * 100).toFixed(2)}%, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const final = accCurve[accCurve.length - 1]![1];
console.log(`test accuracy: ${(final * 100).toFixed(2)}% on ${test.count} test images after ${epochs} epochs in ${((performance.now() - started) / 1000).toFixed(1)} s`);

if (args.plot && !smoke) {
  mkdirSync(dirname(args.plot), { recursive: true });
  const svg = lineChartSvg({
    title: `Fashion-MNIST MLP ${sizes.join('-')}`,
    xLabel: 'epoch',
    yLabel: 'train loss / test accuracy',
    series: [
      { name: 'train loss (moving average)', points: lossCurve },
      { name: 'test accuracy', points: accCurve },
    ],
  });
  writeFileSync(args.plot, svg);
  console.log(`plot: ${args.plot}`);
}
