/**
 * Checks that every peer in bench/peers.ts runs, and prints plain-text medians (not JSON).
 *
 *   npx tsx bench/peers-smoke.ts [--quick] [--peers=tfjs-wasm,jax-js-wasm] [--debug]
 *
 * For each peer: the MLP step's loss over a few steps (it must be finite and, from identical
 * initial weights, the same first loss for every peer; it must decrease), the number of live
 * tensors before and after (TF.js: must not grow), then the median time of the MLP step and the
 * GFLOP/s of matmul at n = 256 and 1024. Exits non-zero when a check fails.
 */
import * as tf from '@tensorflow/tfjs';
import { QUICK, measure, type CaseFn } from './harness.js';
import { jaxMlpStep, matmulData, matmulFlops, selectedPeers, type Peer } from './peers.js';

const failures: string[] = [];
const fail = (msg: string): void => {
  failures.push(msg);
  console.log(`  FAIL ${msg}`);
};

const opts = QUICK
  ? { warmup: 2, runs: 5, minTimeMs: 0, maxTimeMs: 2_000, minRuns: 3 }
  : { warmup: 3, runs: 10, minTimeMs: 500, maxTimeMs: 8_000, minRuns: 3 };

const fmtMs = (ms: number): string => `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;

async function checkLoss(peer: string, step: CaseFn<number>, steps: number): Promise<number[]> {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push(await step());
  console.log(`  loss over ${steps} steps: ${losses.map((l) => l.toFixed(4)).join(' ')}`);
  if (!losses.every(Number.isFinite)) fail(`${peer}: non-finite loss`);
  if (!(losses[losses.length - 1]! < losses[0]!)) fail(`${peer}: loss did not decrease`);
  return losses;
}

async function checkMatmul(peer: Peer): Promise<void> {
  // Correctness at a small size against a plain triple loop in float64.
  const n = 64;
  const { a, b } = matmulData(n);
  const ref = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) ref[i * n + j]! += a[i * n + k]! * b[k * n + j]!;
  const run = await peer.matmul(n);
  if (typeof run === 'string') return;
  const c = await run();
  run.dispose?.();
  let maxErr = 0;
  for (let i = 0; i < n * n; i++) maxErr = Math.max(maxErr, Math.abs(c[i]! - ref[i]!));
  console.log(`  matmul ${n} max abs error vs float64 loop: ${maxErr.toExponential(2)}`);
  if (c.length !== n * n || !(maxErr < 1e-3)) fail(`${peer.name}: matmul ${n} wrong (max error ${maxErr})`);
}

async function main(): Promise<void> {
  const peers = selectedPeers();
  const firstLosses: Record<string, number> = {};
  const summary: string[] = [];
  for (const peer of peers) {
    console.log(`\n== ${peer.name}: ${peer.description}`);
    const t0 = performance.now();
    await peer.setup();
    console.log(`  setup ${fmtMs(performance.now() - t0)}`);

    // MLP step: loss check, memory check, then timing.
    const tfBefore = peer.name.startsWith('tfjs') ? tf.memory().numTensors : 0;
    const step = await peer.mlpStep();
    if (typeof step === 'string') {
      console.log(`  mlpStep: cannot run (${step})`);
    } else {
      const losses = await checkLoss(peer.name, step, QUICK ? 5 : 10);
      firstLosses[peer.name] = losses[0]!;
      const tfMid = peer.name.startsWith('tfjs') ? tf.memory().numTensors : 0;
      const m = await measure(step, opts);
      const tfAfter = peer.name.startsWith('tfjs') ? tf.memory().numTensors : 0;
      if (peer.name.startsWith('tfjs') && tfAfter !== tfMid) {
        fail(`${peer.name}: live tensors grew from ${tfMid} to ${tfAfter} while stepping`);
      }
      step.dispose?.();
      if (peer.name.startsWith('tfjs')) {
        const tfEnd = tf.memory().numTensors;
        console.log(`  live tensors: before ${tfBefore}, stepping ${tfMid} -> ${tfAfter}, after dispose ${tfEnd}`);
        if (tfEnd !== tfBefore) fail(`${peer.name}: ${tfEnd - tfBefore} tensors left after dispose`);
      }
      const line = `mlp step: median ${fmtMs(m.medianMs)} (min ${fmtMs(m.minMs)}, ${m.samplesMs.length} runs)`;
      console.log(`  ${line}`);
      summary.push(`${peer.name.padEnd(12)} ${line}`);
    }

    if (peer.name === 'jax-js-wasm') {
      // The other compilation mode, for comparison.
      const jax = await import('@jax-js/jax');
      const split = await jaxMlpStep(jax, 'split');
      if (typeof split !== 'string') {
        const losses = await checkLoss('jax-js-wasm (split)', split, 3);
        if (Math.abs(losses[0]! - (firstLosses[peer.name] ?? losses[0]!)) > 1e-3 * Math.abs(losses[0]!)) {
          fail(`jax-js-wasm: split and fused modes disagree on the first loss`);
        }
        const m = await measure(split, opts);
        split.dispose?.();
        const line = `mlp step (split jit): median ${fmtMs(m.medianMs)} (min ${fmtMs(m.minMs)})`;
        console.log(`  ${line}`);
        summary.push(`${peer.name.padEnd(12)} ${line}`);
      }
    }

    await checkMatmul(peer);
    for (const n of [256, 1024]) {
      const run = await peer.matmul(n);
      if (typeof run === 'string') {
        console.log(`  matmul ${n}: cannot run (${run})`);
        continue;
      }
      const m = await measure(run, n >= 1024 && peer.name === 'tfjs-cpu' ? { ...opts, warmup: 1, maxTimeMs: 5_000 } : opts);
      run.dispose?.();
      const gflops = matmulFlops(n) / 1e9 / (m.medianMs / 1e3);
      const line = `matmul ${n}: median ${fmtMs(m.medianMs)} = ${gflops.toFixed(2)} GFLOP/s (${m.samplesMs.length} runs)`;
      console.log(`  ${line}`);
      summary.push(`${peer.name.padEnd(12)} ${line}`);
    }
  }

  // Same initial weights and data: every peer's first loss must agree.
  const firsts = Object.entries(firstLosses);
  if (firsts.length > 1) {
    const [, ref] = firsts[0]!;
    for (const [name, l] of firsts) {
      if (Math.abs(l - ref) > 1e-3 * Math.abs(ref)) fail(`first loss of ${name} (${l}) differs from ${firsts[0]![0]} (${ref})`);
    }
  }

  console.log('\n== summary');
  for (const s of summary) console.log(s);
  if (failures.length > 0) {
    console.log(`\n${failures.length} check(s) failed`);
    process.exitCode = 1;
  } else {
    console.log('\nall checks passed');
  }
}

await main();
