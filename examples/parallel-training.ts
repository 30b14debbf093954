// Pipeline × tensor parallel training on four worker threads: a small transformer classifies
// Fashion-MNIST images (the subset shipped in data/, each image pooled to 14 rows of 14 pixels, a
// row a token) with its blocks cut into 2 pipeline stages and each stage's weights split over 2
// devices Megatron-style (attention heads and MLP columns, then rows). Every step runs the
// schedule's passes on the 2 × 2 mesh over micro-batches with gradient accumulation; beside it
// the same step runs on one device over the whole batch, and the two loss curves are printed side
// by side, then a table per device: allocator peak, busy time, idle (bubble) share.
//
//   npx tsx examples/parallel-training.ts [--steps 40] [--micro-batches 4] [--micro 8] [--blocks 2]
//       [--schedule 1f1b|gpipe|zb-h1] [--lr 0.05] [--seed 1] [--quiet] [--smoke]

import { fileURLToPath } from 'node:url';
import { grad, sgd } from '../index.js';
import { compile } from '../runtime/executor.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';
import { Mesh } from '../runtime/mesh/mesh.js';
import { MeshPipeline } from '../runtime/mesh/pipeline.js';
import { partitionPipeline } from '../scheduler/parallel/pipeline-partition.js';
import { planMeshPipeline } from '../scheduler/parallel/pipeline-mesh.js';
import { gpipe, oneFOneB, zbH1 } from '../scheduler/parallel/pipeline-schedule.js';
import { split, type NdSbp } from '../scheduler/parallel/sbp.js';
import { loadFashionMnist, type Split } from '../tools/data/fashion-mnist.js';
import { cli } from './cli.js';
import { transformerGraph, type TransformerConfig } from './transformer-model.js';

const args = cli({
  command: 'npx tsx examples/parallel-training.ts',
  summary: 'Trains a small transformer with 2-way tensor × 2-stage pipeline parallelism on 4 worker threads and prints its loss beside a single-device run of the same steps, then per-device memory and time.',
}, {
  steps: { type: 'int', min: 1, default: 40, help: 'training steps' },
  'micro-batches': { type: 'int', min: 1, default: 4, help: 'micro-batches per step (gradients accumulate over them)' },
  micro: { type: 'int', min: 1, default: 8, help: 'images per micro-batch' },
  blocks: { type: 'int', min: 2, default: 2, help: 'transformer blocks (cut into 2 stages)' },
  schedule: { type: 'enum', choices: ['1f1b', 'gpipe', 'zb-h1'], default: '1f1b', help: 'pipeline schedule' },
  lr: { type: 'number', min: 0, default: 0.05, help: 'SGD learning rate' },
  seed: { type: 'int', min: 0, default: 1, help: 'seed of the initial weights' },
  quiet: { type: 'flag', help: 'print only the summary lines' },
  smoke: { type: 'flag', help: 'a short run (for the tests)' },
});

const STAGES = 2, TENSOR = 2;
const steps = args.smoke ? 4 : args.steps;
const m = args.smoke ? 2 : args['micro-batches'];
const micro = args.smoke ? 2 : args.micro;
const batch = m * micro;
const cfg: TransformerConfig = { blocks: args.blocks, seq: 14, dModel: 16, heads: 4, dFF: 32, classes: 10 };

// Data: the subset shipped with the repository, each image 2×2-pooled to 14×14, a row a token
// of 16 features (14 pixels, its row position, a constant 1).
const data = loadFashionMnist({ dir: fileURLToPath(new URL('../data/fashion-mnist-subset', import.meta.url)) });
function tokens(s: Split, from: number, count: number): { x: Float32Array; y: Float32Array } {
  const x = new Float32Array(count * cfg.seq * cfg.dModel), y = new Float32Array(count * cfg.classes);
  for (let b = 0; b < count; b++) {
    const i = (from + b) % s.count;
    for (let r = 0; r < 14; r++) {
      const row = (b * cfg.seq + r) * cfg.dModel;
      for (let c = 0; c < 14; c++) {
        let v = 0;
        for (const [dr, dc] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) v += s.images[i * 784 + (2 * r + dr) * 28 + 2 * c + dc]!;
        x[row + c] = v / 4;
      }
      x[row + 14] = r / 14;
      x[row + 15] = 1;
    }
    y[b * cfg.classes + s.labels[i]!] = 1;
  }
  return { x, y };
}

// Megatron's layout: q, k, v and the first MLP layer split by columns (heads), the attention
// output and second MLP layer by rows; one all-reduce after each.
const annotations = new Map<string, NdSbp>();
for (let i = 0; i < cfg.blocks; i++) {
  for (const w of ['wq', 'wk', 'wv', 'w1']) annotations.set(`blk${i}/${w}`, [split(1)]);
  for (const w of ['wo', 'w2']) annotations.set(`blk${i}/${w}`, [split(0)]);
  annotations.set(`blk${i}/b1`, [split(0)]);
}

const single = compile(grad(transformerGraph({ ...cfg, batch }), 'loss'), { optimizer: sgd(args.lr), seed: args.seed });
const params = Object.fromEntries(Object.entries(single.variables()).filter(([k]) => k.startsWith('param:')).map(([k, v]) => [k.slice(6), v.data]));

const schedule = args.schedule === 'gpipe' ? gpipe(STAGES, m) : args.schedule === 'zb-h1' ? zbH1(STAGES, m) : oneFOneB(STAGES, m);
const mesh = new Mesh([STAGES, TENSOR], { axes: ['pipe', 'tensor'], stepDeadlineMs: 600_000, deadlineMs: 120_000 });
const program = partitionPipeline(transformerGraph({ ...cfg, batch: micro }), { stages: STAGES });
const plan = planMeshPipeline(program, schedule, { optimizer: sgd(args.lr), caps: mesh.caps, tensor: { degree: TENSOR, annotations } });
const log = (s: string) => { if (!args.quiet) console.log(s); };

console.log(`transformer: ${cfg.blocks} blocks, seq ${cfg.seq}, d_model ${cfg.dModel}, ${cfg.heads} heads; stages: ${program.stages.map((s) => `[${s.params.filter((p) => p.endsWith('/wq') || p === 'head/w').join(' ')}]`).join(' ')}`);
console.log(`mesh: ${STAGES} pipeline × ${TENSOR} tensor = ${mesh.size} workers (${mesh.backend}); ${schedule.kind}, ${m} micro-batches of ${micro} (batch ${batch}); data: ${data.dir}`);
try {
  const pipe = await MeshPipeline.load(mesh, plan, params);
  const busy = new Array<number>(mesh.size).fill(0), wall = new Array<number>(mesh.size).fill(0), comm = new Array<number>(mesh.size).fill(0);
  const peaks = new Array<number>(mesh.size).fill(0);
  let maxDiff = 0;
  const curve: [number, number][] = [];
  for (let s = 0; s < steps; s++) {
    const { x, y } = tokens(data.train, s * batch, batch);
    const t0 = performance.now();
    const ref = single.runSync({ x: { dtype: 'f32', shape: [batch, cfg.seq, cfg.dModel], data: x }, y: { dtype: 'f32', shape: [batch, cfg.classes], data: y } })['loss']!.data[0]!;
    const singleMs = performance.now() - t0;
    const xs = micro * cfg.seq * cfg.dModel, ys = micro * cfg.classes;
    const micros = Array.from({ length: m }, (_, i) => ({ x: x.slice(i * xs, (i + 1) * xs) as CpuArray, y: y.slice(i * ys, (i + 1) * ys) as CpuArray }));
    const r = await pipe.step(micros);
    r.devices.forEach((d, i) => {
      busy[i] += d.busyMs;
      wall[i] += d.wallMs;
      comm[i] += d.commMs;
      peaks[i] = Math.max(peaks[i]!, d.allocatorPeakBytes);
    });
    const diff = Math.abs(r.loss - ref);
    maxDiff = Math.max(maxDiff, diff);
    curve.push([r.loss, ref]);
    log(`step ${String(s + 1).padStart(3)}/${steps}  pipeline×tensor loss ${r.loss.toFixed(6)}  single-device loss ${ref.toFixed(6)}  |diff| ${diff.toExponential(2)}  (${r.wallMs.toFixed(0)} ms on the mesh, ${singleMs.toFixed(0)} ms on one device)`);
  }
  console.log(`loss: first ${curve[0]![0].toFixed(6)}, last ${curve.at(-1)![0].toFixed(6)} (single device: ${curve[0]![1].toFixed(6)} -> ${curve.at(-1)![1].toFixed(6)})`);
  console.log(`max loss difference: ${maxDiff.toExponential(3)}`);
  console.log('\ndevice  stage  tensor rank  allocator peak   busy ms   idle ms   idle share   of which waiting in the communicator');
  for (let d = 0; d < mesh.size; d++) {
    const [stage, rank] = mesh.coords(d);
    const idle = wall[d]! - busy[d]!;
    console.log(`${String(d).padStart(6)}  ${String(stage).padStart(5)}  ${String(rank).padStart(11)}  ${(peaks[d]! / 1024).toFixed(1).padStart(11)} KiB  ${busy[d]!.toFixed(0).padStart(8)}  ${idle.toFixed(0).padStart(8)}  ${((100 * idle) / wall[d]!).toFixed(1).padStart(10)}%  ${comm[d]!.toFixed(0).padStart(6)} ms`);
  }
  console.log('(idle: the time between a device\'s first pass and its last that it spent not computing: waiting for a neighbour, the bubble, and collectives)');
  await pipe.drop();
} finally {
  await mesh.close();
}
