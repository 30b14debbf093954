/**
 * Pipeline simulator predictions: step time, bubble and per-device throughput of GPT-style
 * training steps on 8, 64 and 1024 devices, and of published Megatron-LM configurations beside
 * the throughput the paper measured (Narayanan et al., "Efficient Large-Scale Language Model
 * Training on GPU Clusters Using Megatron-LM", SC 2021, Table 1). Nothing runs on a GPU here: the
 * per-stage costs are analytic (scheduler/parallel/pipeline-gpt.ts) and the schedule is
 * simulated (scheduler/parallel/simulator.ts).
 *
 * Hardware model (stated, not fitted): NVIDIA A100, 312 TFLOP/s bf16 peak at 65% achieved in the
 * layers' kernels; tensor-parallel all-reduce over NVLink at 230 GB/s bus bandwidth and 5 µs per
 * ring step; pipeline and data-parallel traffic over InfiniBand HDR at 25 GB/s per GPU (8×200 Gb/s
 * per DGX node) and 10 µs per message. Mixed-precision Adam: 16 bytes per parameter.
 *
 *   npx tsx bench/pipeline-sim.ts [--quick]
 */
import { emit, progress } from './harness.js';
import { predictGpt, type GptLayout, type GptModel, type MeshHardware } from '../scheduler/parallel/pipeline-gpt.js';
import type { ScheduleKind } from '../scheduler/parallel/pipeline-schedule.js';

const A100: MeshHardware = { flops: 312e12, utilization: 0.65, intraBandwidth: 230e9, interBandwidth: 25e9, intraLatency: 5e-6, interLatency: 10e-6 };
const BENCH = 'pipeline-sim';

function report(name: string, model: GptModel, layout: GptLayout, paper?: { tflops: number; source: string }): void {
  const t0 = performance.now();
  const r = predictGpt(model, layout, A100);
  const devices = layout.t * layout.p * layout.d;
  const sched = layout.schedule + (layout.v ? ` v=${layout.v}` : '');
  const c = `${name} on ${devices} (t,p,d)=(${layout.t},${layout.p},${layout.d}) batch ${layout.globalBatch} m=${r.micros} ${sched}`;
  const base = { bench: BENCH, case: c, peer: null, peer_value: null, ratio: null };
  emit({ ...base, metric: 'step_time', value: r.stepTime, unit: 's' });
  emit({ ...base, metric: 'bubble', value: r.simulation.bubble, unit: 'fraction' });
  emit({ ...base, metric: 'memory_per_device', value: r.memoryPerDevice / 2 ** 30, unit: 'GiB' });
  const tflops = r.flopsPerDevice / 1e12;
  if (paper) emit({ ...base, metric: 'tflops_per_gpu', value: tflops, unit: 'TFLOP/s', peer: paper.source, peer_value: paper.tflops, ratio: paper.tflops / tflops, note: `${((100 * tflops * 1e12) / A100.flops).toFixed(1)}% of peak predicted` });
  else emit({ ...base, metric: 'tflops_per_gpu', value: tflops, unit: 'TFLOP/s' });
  progress(`${c}: ${r.stepTime.toFixed(3)} s, bubble ${(100 * r.simulation.bubble).toFixed(1)}%, ${tflops.toFixed(0)} TFLOP/s/GPU, ${(r.memoryPerDevice / 2 ** 30).toFixed(1)} GiB (simulated in ${(performance.now() - t0).toFixed(0)} ms)`);
}

// A stated GPT-style model: 13B parameters (40 layers, hidden 5120, 40 heads), sequence 2048,
// vocabulary 51200, global batch 512 sequences, micro-batch 1, activation recomputation.
const gpt13b: GptModel = { layers: 40, hidden: 5120, seq: 2048, vocab: 51200 };
const schedules: [ScheduleKind, number?][] = [['1f1b'], ['zb-h1'], ['interleaved-1f1b', 5]];
for (const [t, p, d] of [[2, 4, 1], [8, 8, 1], [8, 8, 16]] as const) {
  for (const [schedule, v] of schedules) {
    if (schedule === 'interleaved-1f1b' && 40 % (p * v!) !== 0) continue;
    report('GPT 13B', gpt13b, { t, p, d, globalBatch: 512, microBatch: 1, schedule, ...(v ? { v } : {}), recompute: true });
  }
}

// Published configurations (Table 1 of the paper; micro-batch 1 and recomputation assumed).
const source = 'Megatron-LM (Narayanan et al. 2021, Table 1)';
report('GPT 1T (128 layers, h 25600)', { layers: 128, hidden: 25600, seq: 2048, vocab: 51200 }, { t: 8, p: 64, d: 6, globalBatch: 3072, microBatch: 1, schedule: 'interleaved-1f1b', v: 2, recompute: true }, { tflops: 163, source });
report('GPT 1T (128 layers, h 25600)', { layers: 128, hidden: 25600, seq: 2048, vocab: 51200 }, { t: 8, p: 64, d: 6, globalBatch: 3072, microBatch: 1, schedule: '1f1b', recompute: true }, { tflops: 163, source });
report('GPT 76B (60 layers, h 10240)', { layers: 60, hidden: 10240, seq: 2048, vocab: 51200 }, { t: 8, p: 4, d: 32, globalBatch: 1792, microBatch: 1, schedule: '1f1b', recompute: true }, { tflops: 140, source });
report('GPT 76B (60 layers, h 10240)', { layers: 60, hidden: 10240, seq: 2048, vocab: 51200 }, { t: 8, p: 4, d: 32, globalBatch: 1792, microBatch: 1, schedule: 'interleaved-1f1b', v: 3, recompute: true }, { tflops: 140, source });
