/**
 * Parallel training steps on this machine, measured. One section per part, chosen with
 * `--part a,b` (default: every part):
 *
 *   dp    data parallelism: an MLP and a transformer-block training step on a mesh of 1 worker
 *         device against 2 (the batch split, gradients all-reduced; and with ZeRO's sharded
 *         optimizer state), beside the in-process wasm device with 1 and 2 threads on the same step
 *   tp    tensor parallelism: the same steps with Megatron's annotations (first matmul of a pair
 *         split by columns, the second by rows)
 *   nats  the data-parallel MLP step across 2 processes joined through a local nats-server, each
 *         process a rank with the NATS communicator
 *
 * Every worker device is the single-threaded WebAssembly device. Times are medians of the same
 * run; speedups are the 1-worker median over the 2-worker median.
 *
 *   npx tsx bench/parallel.ts [--quick] [--part dp,tp,nats]
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { adam, applyOptimizer, grad } from '../index.js';
import type { Graph } from '../graphs/graph.js';
import { planSharded, type ShardedPlan } from '../scheduler/parallel/sbp-lower.js';
import { dataParallel } from '../scheduler/parallel/sbp-data.js';
import { split, type NdSbp } from '../scheduler/parallel/sbp.js';
import { concreteShapes } from '../scheduler/specialize.js';
import { Mesh, ShardedProgram } from '../runtime/mesh/index.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { transformerGraph, type TransformerConfig } from '../examples/transformer-model.js';
import { QUICK, emit, measure, progress, type Measurement } from './harness.js';

const BENCH = 'parallel';
const argv = process.argv.slice(2);
const partArg = argv.find((a) => a.startsWith('--part'));
const PARTS = new Set((partArg?.includes('=') ? partArg.split('=')[1]! : partArg ? argv[argv.indexOf(partArg) + 1] ?? '' : 'dp,tp,nats').split(',').filter(Boolean));

// ---------------------------------------------------------------------------------------------
// The models: training steps (gradients and Adam updates), loss the only output
// ---------------------------------------------------------------------------------------------

export const MLP = { sizes: [1024, 4096, 4096, 1024], batch: 256 };
export const BLOCK: TransformerConfig & { batch: number } = { blocks: 1, seq: 128, dModel: 512, heads: 8, dFF: 2048, classes: 16, batch: 32 };

interface Model {
  readonly name: string;
  readonly graph: Graph;
  readonly shapes: number[][];
  readonly params: number;
  /** Megatron's annotations for a 1-D mesh of 2 */
  readonly megatron: Map<string, NdSbp>;
  readonly vars: Map<string, CpuArray>;
  readonly feeds: Map<string, CpuArray>;
}

/** Deterministic values in [-scale, scale). */
function values(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => (((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1) * scale);
}

function model(name: string, g0: Graph, batch: number, megatron: Map<string, NdSbp>): Model {
  const g1 = applyOptimizer(grad(g0, 'loss'), adam(1e-3));
  const graph: Graph = { ...g1, outputs: { loss: g1.outputs['loss']! } };
  const shapes = concreteShapes(graph, new Map([['batch', batch]]));
  const numel = (id: number) => shapes[id]!.reduce((a, b) => a * b, 1);
  const vars = new Map<string, CpuArray>(), feeds = new Map<string, CpuArray>();
  let params = 0;
  for (const n of graph.nodes) {
    if (n.op === 'param') {
      params += numel(n.id);
      const fanIn = shapes[n.id]!.length > 1 ? shapes[n.id]![0]! : 1;
      vars.set(n.name!, values(numel(n.id), n.id + 1, shapes[n.id]!.length > 1 ? Math.sqrt(3 / fanIn) : 0));
    }
    if (n.op === 'input') {
      if (n.name === 'y') {
        const [B, C] = shapes[n.id]!;
        const y = new Float32Array(B! * C!);
        for (let i = 0; i < B!; i++) y[i * C! + ((i * 7) % C!)] = 1;
        feeds.set('y', y);
      } else feeds.set(n.name!, values(numel(n.id), 99, 1));
    }
  }
  return { name, graph, shapes, params, megatron, vars, feeds };
}

function mlpModel(): Model {
  const { sizes, batch } = MLP;
  const ann = new Map<string, NdSbp>();
  // layers in Megatron pairs: column-split then row-split (one all-reduce per pair forward)
  for (let l = 0; l + 1 < sizes.length; l++) ann.set(`w${l}`, [split(l % 2 === 0 ? 1 : 0)]);
  for (let l = 0; l + 1 < sizes.length; l += 2) if (l + 2 < sizes.length) ann.set(`b${l}`, [split(0)]);
  return model(`mlp${sizes.join('-')}_b${batch}_adam`, mlpGraph(sizes), batch, ann);
}

function blockModel(): Model {
  const { batch, ...cfg } = BLOCK;
  const ann = new Map<string, NdSbp>();
  for (let i = 0; i < cfg.blocks; i++) {
    for (const w of ['wq', 'wk', 'wv', 'w1']) ann.set(`blk${i}/${w}`, [split(1)]);
    ann.set(`blk${i}/b1`, [split(0)]);
    for (const w of ['wo', 'w2']) ann.set(`blk${i}/${w}`, [split(0)]);
  }
  return model(`transformer_block_s${cfg.seq}_d${cfg.dModel}_h${cfg.heads}_f${cfg.dFF}_b${batch}_adam`, transformerGraph(cfg), batch, ann);
}

// ---------------------------------------------------------------------------------------------
// Running a sharded step on a mesh
// ---------------------------------------------------------------------------------------------

const opts = (): { warmup: number; runs: number; minTimeMs: number; maxTimeMs: number; minRuns: number } =>
  QUICK ? { warmup: 1, runs: 3, minTimeMs: 0, maxTimeMs: 10_000, minRuns: 3 } : { warmup: 2, runs: 7, minTimeMs: 0, maxTimeMs: 60_000, minRuns: 5 };

/** Median step time of `sp` on a fresh mesh of its shape (params trained in place). */
async function timeOnMesh(m: Model, sp: ShardedPlan, mesh: Mesh): Promise<Measurement> {
  const program = await ShardedProgram.load(mesh, sp, m.vars);
  const feeds = program.feeds(m.feeds);
  let k = 0;
  return measure(async () => {
    const t0 = performance.now();
    const out = await program.step(feeds);
    progress(`  step ${++k}: loss ${out['loss']![0]!.toFixed(4)}, ${(performance.now() - t0).toFixed(0)} ms`);
  }, opts());
}

function plan(m: Model, mesh: Mesh, annotations: Map<string, NdSbp>): ShardedPlan {
  return planSharded(m.graph, m.shapes, { shape: mesh.shape }, annotations, { caps: mesh.caps });
}

function report(m: Model, layout: string, ms: number, base: number | null, note: string): void {
  emit({ bench: BENCH, case: `${m.name}/${layout}`, metric: 'ms_per_step', value: ms, unit: 'ms', peer: base === null ? null : '1 worker', peer_value: base, ratio: base === null ? null : ms / base, note });
  progress(`${m.name} ${layout}: ${ms.toFixed(1)} ms${base === null ? '' : ` (speedup ${(base / ms).toFixed(2)}x over 1 worker)`}`);
}

// ---------------------------------------------------------------------------------------------
// Part dp / tp: 1 worker against 2, data and tensor parallel
// ---------------------------------------------------------------------------------------------

async function meshParts(m: Model): Promise<void> {
  progress(`${m.name}: ${(m.params / 1e6).toFixed(2)} M params`);
  const one = new Mesh([1]);
  const two = new Mesh([2]);
  try {
    const t1 = (await timeOnMesh(m, plan(m, one, new Map()), one)).medianMs;
    report(m, '1_worker', t1, null, `${m.params} params; single-threaded wasm device in a worker`);
    if (PARTS.has('dp')) {
      for (const zero of [false, true]) {
        const sp = plan(m, two, dataParallel(m.graph, m.shapes, { shape: [2] }, { axis: 0, zero }));
        const t = (await timeOnMesh(m, sp, two)).medianMs;
        report(m, zero ? '2_workers_dp_zero' : '2_workers_dp', t, t1, zero ? 'batch split, gradients reduce-scattered into sharded Adam state, params all-gathered' : 'batch split, gradients all-reduced');
      }
    }
    if (PARTS.has('tp')) {
      const t = (await timeOnMesh(m, plan(m, two, m.megatron), two)).medianMs;
      report(m, '2_workers_tp', t, t1, 'Megatron: column-split then row-split matmuls, activations all-reduced');
    }
  } finally {
    await Promise.all([one.close(), two.close()]);
  }
}

progress(`bench/parallel: parts ${[...PARTS].join(', ')}; ${availableParallelism()} cores`);
if (PARTS.has('dp') || PARTS.has('tp')) {
  for (const m of [mlpModel(), blockModel()]) await meshParts(m);
}
