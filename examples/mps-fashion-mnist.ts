// A matrix-product-state classifier on Fashion-MNIST (Stoudenmire & Schwab 2016), trained by
// gradient descent: autodiff through the MPS contraction and Adam, on mini-batches. Images are
// average-pooled 2×2 to 14×14 (196 sites, as in the paper) and read in snake order; the label
// core sits on the middle site. Reports the test accuracy after each epoch.
//
//   npx tsx examples/mps-fashion-mnist.ts [--data DIR] [--epochs 8] [--bond 20] [--batch 128]
//                                         [--lr 2e-3] [--pool 2] [--seed 0]
//                                         [--plot out/mps-fashion-mnist.svg]
//                                         [--backend auto|webgpu|cpu] [--smoke]
//
// Data: the IDX files in --data, else Debian's dataset-fashion-mnist, else the subset shipped
// in data/fashion-mnist-subset (the run says which). --smoke trains briefly on a small slice
// (7×7 images, bond 6). --backend auto takes WebGPU on a hardware adapter and the CPU otherwise:
// a software adapter (Mesa's llvmpipe) runs this chain of ~3,000 small kernels per step several
// times slower than the generated JavaScript; --backend webgpu uses it anyway.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { adam, cosine, grad, tensor } from '../index.js';
import { compileAsync } from '../runtime/executor.js';
import { backendOption, cli } from './cli.js';
import { mulberry32 } from '../runtime/rng.js';
import { initialCores, labelSiteOf, mpsGraph, mpsPixels, type MpsShape } from './mps-model.js';
import { batches, IMAGE_SIZE, loadFashionMnist, NUM_CLASSES, type Split } from '../tools/data/fashion-mnist.js';
import { createProgress } from '../tools/progress.js';
import { lineChartSvg } from '../tools/plot.js';

const args = cli({
  command: 'npx tsx examples/mps-fashion-mnist.ts',
  summary: 'Trains a matrix-product-state classifier on Fashion-MNIST (Stoudenmire & Schwab) with Adam and a cosine learning-rate decay, and reports the test accuracy after each epoch.',
}, {
  data: { type: 'string', placeholder: 'DIR', help: "directory of the IDX files (default: Debian's dataset-fashion-mnist, else the shipped subset)" },
  epochs: { type: 'int', min: 1, default: 8, help: 'passes over the training images' },
  bond: { type: 'int', min: 1, default: 20, help: 'bond dimension of the MPS' },
  batch: { type: 'int', min: 1, default: 128, help: 'images per step' },
  lr: { type: 'number', min: 0, help: 'Adam learning rate, > 0 (default 2e-3, 5e-3 with --smoke)' },
  pool: { type: 'int', min: 1, default: 2, help: `average pooling of the ${IMAGE_SIZE}×${IMAGE_SIZE} images; must divide ${IMAGE_SIZE}` },
  seed: { type: 'int', min: 0, default: 0, help: 'seed of the initialization and shuffling' },
  plot: { type: 'string', placeholder: 'FILE', default: 'out/mps-fashion-mnist.svg', help: 'where to write the loss/accuracy plot' },
  backend: backendOption,
  smoke: { type: 'flag', help: 'train briefly on 7×7 images with bond 6 (for the tests)' },
  quiet: { type: 'flag', help: 'no progress bar' },
});

const smoke = args.smoke;
const epochs = smoke ? 3 : args.epochs;
const bond = smoke ? 6 : args.bond;
const batchSize = args.batch;
const pool = smoke ? 4 : args.pool;
const seed = args.seed;
const lr = args.lr ?? (smoke ? 5e-3 : 2e-3);
if (!(lr > 0)) {
  console.error(`--lr must be a positive number (got '${args.lr}')`);
  process.exit(2);
}
if (IMAGE_SIZE % pool !== 0) {
  console.error(`--pool must divide ${IMAGE_SIZE} (got ${pool})`);
  process.exit(2);
}

const data = loadFashionMnist(args.data ? { dir: args.data } : {});
const source = { dir: `${data.dir}`, debian: `Debian's dataset-fashion-mnist (${data.dir})`, embedded: `the embedded subset (${data.dir}); install dataset-fashion-mnist or pass --data for the full set` }[data.source];
console.log(`data: ${source}`);
/** Adapters that are CPU renderers of WebGPU, which --backend auto passes over for the CPU. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader/i;
const side = IMAGE_SIZE / pool;
const sites = side * side;
const toSites = (s: Split, n: number): Split => {
  const count = Math.min(n, s.count);
  return { images: mpsPixels(s.images, count, IMAGE_SIZE, pool), labels: s.labels.subarray(0, count), count };
};
const train = toSites(data.train, smoke ? 2000 : Infinity);
const test = toSites(data.test, smoke ? 500 : Infinity);

const shape: MpsShape = { sites, bond, classes: NUM_CLASSES };
const totalSteps = epochs * Math.floor(train.count / batchSize);
const trainStep = grad(mpsGraph(shape, 'fashion-mnist-mps'), 'loss');
const compileOn = (backend: 'auto' | 'webgpu' | 'cpu') =>
  compileAsync(trainStep, { optimizer: adam(lr, { schedule: cosine(totalSteps) }), seed, backend }).catch((e: Error) => {
    console.error(`--backend ${args.backend}: ${e.message}`);
    process.exit(1);
  });
let step = await compileOn(args.backend);
let reason = step.backendInfo.reason;
const adapter = step.backendInfo.adapter ?? '';
if (args.backend === 'auto' && SOFTWARE_ADAPTER.test(adapter)) {
  reason = `software WebGPU adapter ${adapter}; --backend webgpu uses it`;
  step = await compileOn('cpu');
}
step.setVariables(initialCores(shape, mulberry32(seed)));
const info = step.backendInfo;
const backendText = info.backend === 'webgpu' ? `webgpu on ${info.adapter}` : `cpu${reason ? ` (${reason})` : ''}`;
console.log(`train ${train.count} images, test ${test.count} images; MPS over ${side}×${side} = ${sites} sites (${pool}×${pool} pooling, snake order), bond ${bond}, label core on site ${labelSiteOf(shape)}`);
console.log(`Adam lr ${lr} with cosine decay over ${totalSteps} steps, batch ${batchSize}, ${epochs} epochs; backend: ${backendText}`);
const plan = step.plan({ x: [batchSize, sites], y: [batchSize, NUM_CLASSES] }, ['loss']);
console.log(`plan: ${plan.kernelCount} kernels (${plan.unfusedKernelCount} ops before fusion) per training step`);

async function accuracy(split: Split): Promise<number> {
  let correct = 0;
  for (const b of batches(split.images, split.labels, 1000)) {
    const out = await step.run({ x: tensor(b.x, [b.size, sites]) }, ['logits'], { update: false });
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
  // The next step is started before the previous step's loss is back, so that a device never
  // idles while the host waits for a read-back; updates still apply in step order.
  const inFlight: Promise<number>[] = [];
  const record = (loss: number) => {
    if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${stepNo + 1} (loss ${loss}); try a smaller --lr`);
    sum += loss;
    n++;
    stepNo++;
    ema = Number.isNaN(ema) ? loss : 0.98 * ema + 0.02 * loss;
    if (stepNo % 10 === 0) lossCurve.push([stepNo / steps, ema]);
    bar.update(n, { loss: sum / n, 'img/s': Math.round((n * batchSize) / ((performance.now() - t0) / 1000)) });
  };
  for (const b of batches(train.images, train.labels, batchSize, { shuffle: true, seed: seed * 1000 + epoch, dropLast: true })) {
    inFlight.push(step.run({ x: tensor(b.x, [batchSize, sites]), y: tensor(b.y, [batchSize, NUM_CLASSES]) }, ['loss']).then((o) => o.loss!.data[0]!));
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
    title: `Fashion-MNIST MPS, ${sites} sites, bond ${bond}`,
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
