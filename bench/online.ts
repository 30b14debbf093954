// Online training throughput: `train` over a stream (pre-batched pull source, a sample stream
// shuffled and batched on the fly, a pushed Observable, and with periodic checkpoints) against a
// plain loop running the same batches held in memory, same executable, same process, on the CPU
// and on WebGPU (when an adapter is found; the in-memory loop records every step, then awaits
// the losses, as the trainer does).
// The two are timed alternately so that load from elsewhere hits both alike. JSON lines on
// stdout (bench/harness.ts), samples/s with ratio = in-memory / online (lower is better).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { from, lastValueFrom } from 'rxjs';
import { adam, compileAsync, grad, tensor, type Executable } from '../index.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { batchOf, pullPipe, shuffleWindow, simulated, stack, train, type Batch, type Source, type TrainOptions } from '../runtime/train/index.js';
import { QUICK, emit, median, progress } from './harness.js';

const SIZES = [784, 256, 256, 10];
const BATCH = 128;
const STEPS = QUICK ? 12 : 60;
const ROUNDS = QUICK ? 5 : 9;
const CKPT_EVERY = QUICK ? 6 : 20;

const sample = (_i: number, rng: () => number): Batch => {
  const x = Float32Array.from({ length: SIZES[0]! }, () => rng());
  const y = new Float32Array(SIZES[3]!);
  y[Math.floor(rng() * SIZES[3]!)] = 1;
  return { x: tensor(x, [SIZES[0]!]), y: tensor(y, [SIZES[3]!]) };
};
const samples = [...simulated(sample, { seed: 1, count: STEPS * BATCH })];
const batches: Batch[] = Array.from({ length: STEPS }, (_, s) => stack(samples.slice(s * BATCH, (s + 1) * BATCH)));

async function inMemory(exe: Executable): Promise<void> {
  if (exe.device.caps.sync) for (const b of batches) exe.runSync(b, ['loss']);
  else await Promise.all(batches.map((b) => exe.record(b, ['loss'])));
}

async function online(exe: Executable, source: () => Source<Batch>, opts: TrainOptions = {}): Promise<void> {
  const last = await lastValueFrom(train(exe, source(), opts));
  if (last.trained !== STEPS) throw new Error(`online run trained ${last.trained} of ${STEPS} batches`);
}

const ckptDir = mkdtempSync(join(tmpdir(), 'rheo-bench-online-'));
const casesFor = (exe: Executable): [string, () => Promise<void>, string][] => [
  ['pull_batches', () => online(exe, () => batches), 'an array of batches pulled through the queue (block, limit 4)'],
  ['pull_samples_shuffled', () => online(exe, () => pullPipe(samples, shuffleWindow(1024, 7), batchOf(BATCH, stack))), 'samples shuffled in a 1024 window and stacked into batches on the fly'],
  ['push_observable', () => online(exe, () => from(batches)), 'a pushed Observable of batches (block: the trainer steps inside the producer call)'],
  [`pull_batches_checkpoint_every_${CKPT_EVERY}`, () => online(exe, () => batches, { checkpoint: { dir: ckptDir, every: CKPT_EVERY, resume: false, final: false } }), `with an fsync-ed safetensors checkpoint (${(exe.persistentBytes() / 1e6).toFixed(1)} MB) every ${CKPT_EVERY} steps`],
];

try {
  for (const backend of ['cpu', 'webgpu'] as const) {
  const exe = await compileAsync(grad(mlpGraph(SIZES), 'loss'), { optimizer: adam(1e-3), seed: 0, backend: backend === 'cpu' ? 'cpu' : 'auto' });
  if (exe.backendInfo.backend !== backend) {
    progress(`online: no WebGPU cases (${exe.backendInfo.reason})`);
    continue;
  }
  for (const [name, run, note] of casesFor(exe)) {
    await run(); // warm-up: plans, kernels, JIT
    await inMemory(exe);
    const ours: number[] = [];
    const peer: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      let t0 = performance.now();
      await inMemory(exe);
      peer.push(performance.now() - t0);
      t0 = performance.now();
      await run();
      ours.push(performance.now() - t0);
    }
    const rate = (ms: number) => (STEPS * BATCH) / (ms / 1000);
    const value = rate(median(ours));
    const peerValue = rate(median(peer));
    progress(`online/${backend}/${name}: ${value.toFixed(0)} samples/s vs in-memory ${peerValue.toFixed(0)} samples/s (${(value / peerValue).toFixed(3)}x)`);
    emit({
      bench: 'online',
      case: `mlp784-256-256-10_b${BATCH}_${backend}_${name}`,
      metric: 'throughput',
      value,
      unit: 'samples/s',
      peer: 'in-memory loop',
      peer_value: peerValue,
      ratio: peerValue / value,
      note: `${note}; ${STEPS} steps per run, median of ${ROUNDS} alternating runs; online/in-memory = ${(value / peerValue).toFixed(3)}`,
    });
  }
  }
} finally {
  rmSync(ckptDir, { recursive: true, force: true });
}
