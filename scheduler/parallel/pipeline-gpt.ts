// Predicted training steps of GPT-style models on large meshes: per-stage costs of a transformer
// written down analytically (matmul FLOPs 2mnk, as kernelCost counts them; Megatron's tensor
// parallelism with 2 all-reduces per layer forward and 2 backward), a pipeline schedule, and the
// simulator. For layouts this machine cannot run (up to thousands of devices). It builds no
// graph and checks no memory limit (it reports the memory each device would need).

import { gpipe, interleaved1F1B, oneFOneB, zbH1, type PipelineSchedule, type ScheduleKind } from './pipeline-schedule.js';
import { simulatePipeline, type Simulation, type StageCost } from './simulator.js';

export interface GptModel {
  readonly layers: number;
  readonly hidden: number;
  readonly seq: number;
  readonly vocab: number;
}

export interface MeshHardware {
  /** peak FLOP/s per device (A100: 312e12 in f16/bf16) */
  readonly flops: number;
  /** achieved share of the peak in matmuls */
  readonly utilization: number;
  /** bus bandwidth of an all-reduce inside a node (tensor parallelism), bytes/s */
  readonly intraBandwidth: number;
  /** per-device bandwidth between nodes (pipeline and data parallelism), bytes/s */
  readonly interBandwidth: number;
  readonly intraLatency: number;
  readonly interLatency: number;
}

export interface GptLayout {
  /** tensor, pipeline, data parallel degrees */
  readonly t: number;
  readonly p: number;
  readonly d: number;
  readonly globalBatch: number;
  readonly microBatch: number;
  readonly schedule: ScheduleKind;
  /** virtual stages per device (interleaved 1F1B) */
  readonly v?: number;
  /** recompute each layer's forward in the backward (Megatron's activation recomputation) */
  readonly recompute?: boolean;
}

export interface GptPrediction {
  readonly simulation: Simulation;
  readonly stepTime: number;
  readonly micros: number;
  /** model FLOPs per step as Megatron-LM counts them (with recomputation when on) over time and devices */
  readonly flopsPerDevice: number;
  /** bytes per device: weights, gradients and Adam moments in mixed precision (16 B/param), plus peak activations */
  readonly memoryPerDevice: number;
  readonly params: number;
}

/** Parameters of a GPT: 12·l·h² (attention and MLP) plus the embeddings. */
export function gptParams(m: GptModel): number {
  return 12 * m.layers * m.hidden * m.hidden + (m.vocab + m.seq) * m.hidden;
}

/** Predict one training step of `model` laid out as `layout` on `hw`. */
export function predictGpt(model: GptModel, layout: GptLayout, hw: MeshHardware): GptPrediction {
  const { t, p, d, microBatch: b } = layout;
  const v = layout.schedule === 'interleaved-1f1b' ? layout.v ?? 2 : 1;
  const micros = layout.globalBatch / (d * b);
  if (!Number.isInteger(micros)) throw new RangeError(`global batch ${layout.globalBatch} is not a multiple of d·b = ${d * b}`);
  const S = p * v;
  if (model.layers % S !== 0) throw new RangeError(`${model.layers} layers do not split into ${S} stages`);
  const { hidden: h, seq: s, vocab: V } = model;
  const perStage = model.layers / S;
  // forward FLOPs of one layer for one micro-batch, split over t devices: 24bsh² + 4bs²h
  const layerF = (24 * b * s * h * h + 4 * b * s * s * h) / t;
  const logitsF = (2 * b * s * h * V) / t;
  const actBytes = 2 * b * s * h; // one f16 activation tensor [b, s, h]
  const allReduce = (bytes: number) => (2 * (t - 1) / t) * bytes / hw.intraBandwidth + 2 * (t - 1) * hw.intraLatency;
  const arTime = t > 1 ? allReduce(actBytes) : 0;
  const recompute = layout.recompute ?? false;
  const costs: StageCost[] = Array.from({ length: S }, (_, i) => {
    const f = perStage * layerF + (i === S - 1 ? logitsF : 0);
    return {
      forward: f,
      // input and weight gradients are one forward's FLOPs each; recomputation runs the forward again before B
      backward: f + (recompute ? f : 0),
      weight: f,
      // Megatron's scatter/gather: each of the t devices sends 1/t of the activation between nodes
      sendBytes: actBytes / t,
      // with recomputation a stage keeps only each layer's input; else ~34·b·s·h bytes per layer (Korthikanti et al.) over t
      activationBytes: recompute ? perStage * actBytes : (perStage * 34 * b * s * h) / t,
      forwardCommSeconds: 2 * perStage * arTime,
      backwardCommSeconds: (2 + (recompute ? 2 : 0)) * perStage * arTime,
    };
  });
  const schedule: PipelineSchedule =
    layout.schedule === 'gpipe' ? gpipe(p, micros) : layout.schedule === '1f1b' ? oneFOneB(p, micros) : layout.schedule === 'zb-h1' ? zbH1(p, micros) : interleaved1F1B(p, micros, v);
  const params = gptParams(model);
  const localParams = params / (t * p);
  // gradient all-reduce over d devices between nodes, f16 gradients, after the pipeline drains
  const dpTime = d > 1 ? (2 * (d - 1) / d) * (2 * localParams) / hw.interBandwidth + 2 * (d - 1) * hw.interLatency : 0;
  const simulation = simulatePipeline(schedule, costs, { flops: hw.flops, utilization: hw.utilization, bandwidth: hw.interBandwidth, latency: hw.interLatency }, { extraSeconds: dpTime });
  const B = layout.globalBatch;
  const modelFlops = (recompute ? 96 : 72) * B * s * model.layers * h * h * (1 + s / (6 * h) + V / (16 * model.layers * h));
  const peakAct = Math.max(...simulation.devices.map((x) => x.peakActivationBytes));
  return {
    simulation,
    stepTime: simulation.stepTime,
    micros,
    flopsPerDevice: modelFlops / simulation.stepTime / (t * p * d),
    memoryPerDevice: 16 * localParams + peakAct,
    params,
  };
}
