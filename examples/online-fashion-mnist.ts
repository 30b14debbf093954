// Online training on Fashion-MNIST: training images arrive as a stream (in-process, or through a
// Redis stream with --redis), are shuffled in a window and batched, and train an MLP through
// `train` with backpressure, held-out evaluation, live snapshots queried by a "live model", and
// checkpoints. Shows a live progress line and writes a loss/accuracy plot at the end.
//
//   npx tsx examples/online-fashion-mnist.ts [--samples 180000] [--batch 128] [--hidden 256,256] [--lr 1e-3]
//       [--seed 0] [--window 2048] [--queue 4] [--policy block|drop-oldest|drop-newest] [--rate 0]
//       [--eval-every 100] [--checkpoint-dir out/online-fashion-mnist-ckpt] [--checkpoint-every 200]
//       [--resume] [--redis redis://127.0.0.1:6379 [--stream rheo:fashion-mnist]] [--data DIR]
//       [--plot out/online-fashion-mnist.svg] [--backend auto|cpu|webgpu] [--smoke] [--quiet]
//
// --backend auto (the default) trains on WebGPU when an adapter is found, else on the CPU.
//
// --rate N makes the in-process producer push N images per second on its own clock (an
// Observable), so a drop policy has something to drop; by default the trainer pulls.

import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Observable, Subject, lastValueFrom, tap } from 'rxjs';
import { adam, grad, tensor } from '../index.js';
import { compileOn, describeBackend } from './backend.js';
import { backendOption, cli } from './cli.js';
import { mulberry32, permutation } from '../runtime/rng.js';
import { mlpGraph } from './mlp-model.js';
import { loadFashionMnist, NUM_CLASSES, PIXELS, type Split } from '../tools/data/fashion-mnist.js';
import { createProgress } from '../tools/progress.js';
import { lineChartSvg } from '../tools/plot.js';
import {
  accuracy, batchOf, evaluateRecorded, predictWith, pullPipe, redisSource, shuffleWindow, stack, train,
  type BackpressurePolicy, type Batch, type RedisEntry, type Source,
} from '../runtime/train/index.js';

const args = cli({
  command: 'npx tsx examples/online-fashion-mnist.ts',
  summary: 'Trains an MLP online on streamed Fashion-MNIST images (in-process, or through a Redis stream with --redis), with backpressure, held-out evaluation, live snapshots and checkpoints.',
}, {
  data: { type: 'string', placeholder: 'DIR', help: "directory of the IDX files (default: Debian's dataset-fashion-mnist, else the shipped subset)" },
  samples: { type: 'int', min: 1, help: 'training images streamed (default: 3 passes, or 1 through Redis)' },
  batch: { type: 'int', min: 1, default: 128, help: 'images per step' },
  hidden: { type: 'ints', min: 1, default: [256, 256], help: 'hidden layer sizes' },
  lr: { type: 'number', min: 0, default: 1e-3, help: 'Adam learning rate' },
  seed: { type: 'int', min: 0, default: 0, help: 'seed of the initialization and shuffling' },
  window: { type: 'int', min: 1, default: 2048, help: 'shuffle window, images' },
  queue: { type: 'int', min: 1, default: 4, help: 'batches held between the source and the trainer' },
  policy: { type: 'enum', choices: ['block', 'drop-oldest', 'drop-newest'], default: 'block', help: 'backpressure policy' },
  rate: { type: 'number', min: 0, default: 0, help: 'images per second pushed by the producer (0: the trainer pulls)' },
  'eval-every': { type: 'int', min: 1, default: 100, help: 'steps between held-out evaluations' },
  'checkpoint-dir': { type: 'string', placeholder: 'DIR', default: 'out/online-fashion-mnist-ckpt', help: 'where checkpoints go' },
  'checkpoint-every': { type: 'int', min: 1, default: 200, help: 'steps between checkpoints' },
  resume: { type: 'flag', help: 'resume from the newest checkpoint (and the Redis stream as it is)' },
  redis: { type: 'string', placeholder: 'URL', help: 'stream the images through Redis at this URL, e.g. redis://127.0.0.1:6379' },
  stream: { type: 'string', placeholder: 'KEY', default: 'rheo:fashion-mnist', help: 'the Redis stream' },
  plot: { type: 'string', placeholder: 'FILE', help: 'where to write the loss/accuracy plot (default out/online-fashion-mnist.svg)' },
  smoke: { type: 'flag', help: 'a short run on a small slice (for the tests)' },
  quiet: { type: 'flag', help: 'no progress bar' },
  backend: backendOption,
});
const backend = args.backend;

const smoke = args.smoke;
const batchSize = smoke ? 64 : Number(args.batch);
const hidden = smoke ? [64] : args.hidden;
const sizes = [PIXELS, ...hidden, NUM_CLASSES];
const seed = Number(args.seed);
const evalEvery = smoke ? 20 : Number(args['eval-every']);
const ckptEvery = smoke ? 20 : Number(args['checkpoint-every']);
const ckptDir = smoke ? mkdtempSync(join(tmpdir(), 'rheo-online-smoke-')) : args['checkpoint-dir']!;
const plotPath = args.plot ?? (smoke ? undefined : 'out/online-fashion-mnist.svg');
const policy = args.policy as BackpressurePolicy;

const data = loadFashionMnist(args.data ? { dir: args.data } : {});
const trainSet = smoke ? slice(data.train, 2000) : data.train;
const testSet = smoke ? slice(data.test, 500) : data.test;
const samples = args.samples ? Number(args.samples) : smoke ? 2560 : args.redis ? trainSet.count : 3 * trainSet.count;
const steps = Math.floor(samples / batchSize);
const heldOut = slice(testSet, smoke ? 500 : 2000);
const probeCount = 16;

console.log(`data: Fashion-MNIST from ${data.source} (${data.dir}); streaming ${samples} training images (${(samples / trainSet.count).toFixed(2)} passes over ${trainSet.count})`);
console.log(`MLP ${sizes.join('-')}, Adam lr ${args.lr}, batch ${batchSize}, ${steps} steps; source ${args.redis ? `Redis stream '${args.stream}' at ${args.redis}` : Number(args.rate) > 0 ? `pushed at ${args.rate} images/s` : `pulled, shuffled in a window of ${args.window}`}; policy ${policy}, queue ${args.queue}`);

function slice(s: Split, n: number): Split {
  const c = Math.min(n, s.count);
  return { images: s.images.subarray(0, c * PIXELS), labels: s.labels.subarray(0, c), count: c };
}

/** Image i of a split as a sample: x [784] (a view, not a copy) and one-hot y [10]. */
function sampleAt(s: Split, i: number): Batch {
  const y = new Float32Array(NUM_CLASSES);
  y[s.labels[i]!] = 1;
  return { x: tensor(s.images.subarray(i * PIXELS, (i + 1) * PIXELS), [PIXELS]), y: tensor(y, [NUM_CLASSES]) };
}

function batchesOf(s: Split, size: number): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < s.count; i += size) out.push(stack(Array.from({ length: Math.min(size, s.count - i) }, (_, k) => sampleAt(s, i + k))));
  return out;
}

/** The training stream in arrival order: passes over the training set in dataset order. */
function* arrivals(): Generator<Batch> {
  for (let n = 0; n < samples; n++) yield sampleAt(trainSet, n % trainSet.count);
}

/** Images pushed on the producer's own clock: `rate` per second, in 10 ms bursts. */
function pushed(rate: number): Observable<Batch> {
  return new Observable<Batch>((sub) => {
    const it = arrivals();
    const perTick = Math.max(1, Math.round(rate / 100));
    const timer = setInterval(() => {
      for (let k = 0; k < perTick; k++) {
        const r = it.next();
        if (r.done) return sub.complete();
        sub.next(r.value);
      }
    }, 10);
    return () => clearInterval(timer);
  }).pipe(shuffleWindow(Number(args.window), seed), batchOf(batchSize, stack, { dropPartial: true }));
}

async function redisProducer(url: string): Promise<{ source: Source<Batch>; produced: Promise<void> }> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url);
  if (!args.resume) await redis.del(args.stream!);
  // Entries carry the raw 784 bytes and the label; the producer writes in a seeded random order.
  const produced = (async () => {
    if (args.resume) return;
    const order = Array.from(permutation(samples, mulberry32(seed)), (n) => n % trainSet.count);
    for (let start = 0; start < order.length; start += 500) {
      const pipe = redis.pipeline();
      for (const i of order.slice(start, start + 500)) {
        const bytes = Buffer.from(Uint8Array.from(trainSet.images.subarray(i * PIXELS, (i + 1) * PIXELS), (v) => Math.round(v * 255)));
        pipe.xadd(args.stream!, '*', 'image', bytes, 'label', String(trainSet.labels[i]));
      }
      await pipe.exec();
    }
  })().finally(() => redis.quit());
  const decode = (entries: readonly RedisEntry[]): Batch => {
    const x = new Float32Array(entries.length * PIXELS);
    const y = new Float32Array(entries.length * NUM_CLASSES);
    entries.forEach((e, b) => {
      e.fields['image']!.forEach((v, p) => (x[b * PIXELS + p] = v / 255));
      y[b * NUM_CLASSES + Number(e.fields['label']!.toString())] = 1;
    });
    return { x: tensor(x, [entries.length, PIXELS]), y: tensor(y, [entries.length, NUM_CLASSES]) };
  };
  return { source: redisSource({ redis: url, stream: args.stream!, entriesPerBatch: batchSize, decode, idleMs: 10_000, blockMs: 200 }), produced };
}

const model = mlpGraph(sizes, 'fashion-mnist-mlp');
const step = await compileOn(grad(model, 'loss'), backend, { optimizer: adam(Number(args.lr)), seed });
console.log(`backend: ${describeBackend(step)}`);
if (!args.resume) {
  mkdirSync(ckptDir, { recursive: true });
  for (const f of readdirSync(ckptDir)) if (f.endsWith('.safetensors')) rmSync(join(ckptDir, f));
}

let source: Source<Batch>;
let produced: Promise<void> = Promise.resolve();
if (args.redis) ({ source, produced } = await redisProducer(args.redis));
else if (Number(args.rate) > 0) source = pushed(Number(args.rate));
else source = pullPipe(arrivals(), shuffleWindow(Number(args.window), seed), batchOf(batchSize, stack, { dropPartial: true }));

const run = train(step, source, {
  policy,
  queueLimit: Number(args.queue),
  maxSteps: steps,
  seed,
  snapshots: { every: evalEvery },
  eval: { every: evalEvery, data: batchesOf(heldOut, 500), outputs: ['loss', 'logits'], metrics: accuracy() },
  checkpoint: { dir: ckptDir, every: ckptEvery, keep: 3, resume: args.resume },
  onStart: (s) => s.checkpoint && console.log(`resumed from ${s.checkpoint} (step ${s.step}, stream position ${s.position.index}${s.skipped.length ? `; skipped ${s.skipped.length} bad checkpoint(s)` : ''})`),
});

// The live model: an inference executable of its own that re-predicts a fixed probe with every new snapshot.
const bar = createProgress({ total: steps, label: 'online', quiet: args.quiet });
const log = (line: string) => (args.quiet ? console.log(line) : bar.log(line)); // --quiet hides the bar only
const probe = batchesOf(slice(testSet, probeCount), probeCount)[0]!;
const probe$ = new Subject<Batch>();
predictWith(await compileOn(model, backend, { outputs: ['logits'] }), probe$, run.snapshots$, { on: 'both', outputs: ['logits'] }).subscribe((p) => {
  const right = accuracy()(p.outputs, probe)['accuracy']! * probeCount;
  if (p.version > 0) log(`live model v${p.version} (step ${p.step}): ${right}/${probeCount} probe images right`);
});
probe$.next(probe);

const lossCurve: [number, number][] = [];
const accCurve: [number, number][] = [];
let ema = NaN;
let testAcc = NaN;
const started = performance.now();
const last = await lastValueFrom(
  run.pipe(
    tap((e) => {
      ema = Number.isNaN(ema) ? e.loss : 0.95 * ema + 0.05 * e.loss;
      const seen = e.step * batchSize;
      if (e.step % 10 === 0) lossCurve.push([seen, ema]);
      if (e.eval) {
        testAcc = e.eval.metrics['accuracy']!;
        accCurve.push([seen, testAcc]);
      }
      bar.update(e.step, { loss: ema, 'img/s': Math.round(e.samplesPerSec), queue: e.queueDepth, dropped: e.dropped, 'held-out acc': Number.isNaN(testAcc) ? '-' : `${(testAcc * 100).toFixed(1)}%` });
    }),
  ),
  { defaultValue: undefined },
);
bar.stop();
await produced;
if (!last) {
  console.log('no training steps were left to take');
} else {
  const final = await evaluateRecorded(step, batchesOf(testSet, 1000), { outputs: ['logits'], metrics: accuracy() });
  console.log(`trained ${last.trained} batches (${last.dropped} dropped) in ${((performance.now() - started) / 1000).toFixed(1)} s, ${Math.round(last.samplesPerSec)} images/s; last checkpoint in ${ckptDir}`);
  console.log(`test accuracy: ${(final.metrics['accuracy']! * 100).toFixed(2)}% on ${final.samples} test images after ${last.step} steps`);
}
if (smoke) rmSync(ckptDir, { recursive: true, force: true });

if (plotPath && lossCurve.length) {
  mkdirSync(dirname(plotPath), { recursive: true });
  writeFileSync(plotPath, lineChartSvg({
    title: `Online Fashion-MNIST MLP ${sizes.join('-')}`,
    xLabel: 'training images seen',
    yLabel: 'train loss (EMA) / held-out accuracy',
    series: [{ name: 'train loss', points: lossCurve }, { name: 'held-out accuracy', points: accCurve }],
  }));
  console.log(`plot: ${plotPath}`);
}
