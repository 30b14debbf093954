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
 *   pipeline  an MLP cut into 4 stages on 4 workers (and 2 on 2) by each schedule (GPipe, 1F1B,
 *         interleaved 1F1B, ZB-H1): measured step time and bubble beside the simulator's, and
 *         ZB-H1's throughput over 1F1B (bench/parallel-pipeline.ts)
 *
 * Every worker device is the single-threaded WebAssembly device. Cases are timed in interleaved
 * rounds, one step of each per round; times are medians of the same run, speedups the 1-worker
 * median over the 2-worker one. Beside each mesh case, the simulator's prediction
 * (scheduler/parallel/simulator.ts, simulateStep on the case's per-device plans) from a Hardware
 * calibrated in the same round (runtime/mesh/calibrate.ts: one matmul kernel, one elementwise
 * kernel and all-reduces, never the step itself).
 *
 * Models: MLP 1024-2048-2048-1024 (8.39 M params), batch 1024; one transformer block (seq 128,
 * dModel 512, 8 heads, dFF 2048; 3.16 M params), batch 32; both softmax cross-entropy and Adam.
 *
 *   npx tsx bench/parallel.ts [--quick] [--part dp,tp,nats,pipeline]
 */
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { adam, applyOptimizer, grad } from '../index.js';
import type { Graph } from '../graphs/graph.js';
import { planSharded, type ShardedPlan } from '../scheduler/parallel/sbp-lower.js';
import { dataParallel } from '../scheduler/parallel/sbp-data.js';
import { split, type NdSbp } from '../scheduler/parallel/sbp.js';
import { concreteShapes } from '../scheduler/specialize.js';
import { planGraph, type Plan } from '../scheduler/plan.js';
import { simulateStep, type Hardware } from '../scheduler/parallel/simulator.js';
import type { DType } from '../graphs/types.js';
import { Mesh, NatsCommunicator, ShardedProgram, shardFeeds, shardVariables } from '../runtime/mesh/index.js';
import { calibrateMesh, timeKernels } from '../runtime/mesh/calibrate.js';
import { runPlan } from '../runtime/plan-interpreter.js';
import { Variables } from '../runtime/variables.js';
import { WasmDevice, sharedWasmDevice, wasmAvailable } from '../runtime/wasm/device.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { transformerGraph, type TransformerConfig } from '../examples/transformer-model.js';
import { haveNatsServer, startNatsServer } from '../test/fixtures/nats-server.js';
import { QUICK, emit, median, progress } from './harness.js';
import { pipelinePart } from './parallel-pipeline.js';

const BENCH = 'parallel';
const argv = process.argv.slice(2);
const partArg = argv.find((a) => a.startsWith('--part'));
const PARTS = new Set((partArg?.includes('=') ? partArg.split('=')[1]! : partArg ? argv[argv.indexOf(partArg) + 1] ?? '' : 'dp,tp,nats,pipeline').split(',').filter(Boolean));

// ---------------------------------------------------------------------------------------------
// The models: training steps (gradients and Adam updates), loss the only output
// ---------------------------------------------------------------------------------------------

export const MLP = { sizes: [1024, 2048, 2048, 1024], batch: 1024 };
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
// Cases, timed in interleaved rounds (one step of each case per round), so that a change of
// load on the shared cores hits every case alike; medians per case
// ---------------------------------------------------------------------------------------------

interface Case {
  readonly layout: string;
  readonly note: string;
  /** one training step, resolved once its loss is back */
  readonly step: () => Promise<number>;
  /** the mesh it runs on and its device plans, for the simulator's prediction (none in process) */
  readonly mesh?: Mesh;
  readonly plans?: readonly Plan[];
  readonly drop?: () => Promise<void>;
  readonly samples: number[];
  /** the simulator's step time per round, ms, from that round's calibration with its kernels timed one by one */
  readonly predictions: number[];
  /** the same from the roofline alone (one matmul and one elementwise kernel timed) */
  readonly roofline: number[];
  kernelTimes?: Map<string, number>;
}

const ROUNDS = QUICK ? 3 : 7;
const WARMUP = QUICK ? 1 : 2;

/**
 * Each round calibrates every mesh again (kernels timed alone and all-reduces, never a step) and
 * predicts each case from that, so that predictions and steps see the same load.
 */
async function timeCases(name: string, cases: Case[]): Promise<void> {
  for (const c of cases) for (let i = 0; i < WARMUP; i++) await c.step();
  const meshes = [...new Set(cases.flatMap((c) => (c.mesh ? [c.mesh] : [])))];
  for (let r = 0; r < ROUNDS; r++) {
    const hw = new Map<Mesh, Hardware>();
    for (const mesh of meshes) hw.set(mesh, (await calibrateMesh(mesh, { runs: 5 })).hardware);
    for (const c of cases) if (c.mesh) c.kernelTimes = await timeKernels(c.mesh, c.plans!, { repeat: 1, runs: 3 });
    if (r === 0) for (const mesh of meshes) progress(`  ${mesh.size} worker${mesh.size > 1 ? 's' : ''}: ${describeHardware(hw.get(mesh)!)}`);
    for (const c of cases) {
      if (!c.mesh) continue;
      c.roofline.push(simulateStep(c.plans!, hw.get(c.mesh)!).stepTime * 1e3);
      c.predictions.push(simulateStep(c.plans!, { ...hw.get(c.mesh)!, kernelTimes: c.kernelTimes! }).stepTime * 1e3);
    }
    const line: string[] = [];
    for (const c of cases) {
      const t0 = performance.now();
      const loss = await c.step();
      c.samples.push(performance.now() - t0);
      line.push(`${c.layout} ${c.samples.at(-1)!.toFixed(0)} ms (loss ${loss.toFixed(4)})`);
    }
    progress(`  ${name} round ${r + 1}/${ROUNDS} (load average ${loadavg()[0]!.toFixed(1)}): ${line.join(', ')}`);
  }
}

function plan(m: Model, mesh: Mesh, annotations: Map<string, NdSbp>): ShardedPlan {
  return planSharded(m.graph, m.shapes, { shape: mesh.shape }, annotations, { caps: mesh.caps });
}

async function meshCase(m: Model, mesh: Mesh, layout: string, annotations: Map<string, NdSbp>, note: string): Promise<Case> {
  const sp = plan(m, mesh, annotations);
  const program = await ShardedProgram.load(mesh, sp, m.vars);
  const feeds = program.feeds(m.feeds);
  return { layout, note, step: async () => (await program.step(feeds))['loss']![0]!, drop: () => program.drop(), mesh, plans: sp.devices.map((d) => d.plan), samples: [], predictions: [], roofline: [] };
}

/** The same step on the in-process wasm device with `threads` threads (no mesh). */
function inProcessCase(m: Model, threads: number): Case {
  const device = sharedWasmDevice({ threads });
  const p = planGraph(m.graph, m.shapes, { caps: device.caps, withUpdates: true });
  const host = new Map<number, { dtype: DType; data: CpuArray }>(), feeds = new Map<number, { dtype: DType; data: CpuArray }>();
  for (const n of m.graph.nodes) {
    if (n.op === 'param' || n.op === 'state') host.set(n.id, { dtype: n.dtype, data: m.vars.get(n.name!) ?? new Float32Array(m.shapes[n.id]!.reduce((a, b) => a * b, 1)) });
    else if (n.op === 'const' && Array.isArray(n.attrs['data'])) host.set(n.id, { dtype: n.dtype, data: Float32Array.from(n.attrs['data'] as number[]) });
    else if (n.op === 'input') feeds.set(n.id, { dtype: n.dtype, data: m.feeds.get(n.name!)! });
  }
  const vars = new Variables(device, host);
  return {
    layout: `in_process_wasm_t${threads}`,
    note: `${device.description}, the whole step in this thread (no mesh)`,
    step: async () => (runPlan(p, vars, feeds, { update: true, sync: true }).values as CpuArray[])[0]![0]!,
    samples: [],
    predictions: [],
    roofline: [],
  };
}

function report(m: Model, c: Case, base: number): void {
  const ms = median(c.samples);
  const predicted = c.predictions.length ? median(c.predictions) : undefined;
  const off = (x: number) => `${((100 * (x - ms)) / ms).toFixed(1)}% off`;
  const pred = predicted === undefined ? '' : `; predicted ${predicted.toFixed(0)} ms (${off(predicted)}; roofline alone ${median(c.roofline).toFixed(0)} ms, ${off(median(c.roofline))})`;
  const isBase = c.layout === '1_worker';
  emit({ bench: BENCH, case: `${m.name}/${c.layout}`, metric: 'ms_per_step', value: ms, unit: 'ms', peer: isBase ? null : '1 worker', peer_value: isBase ? null : base, ratio: isBase ? null : ms / base, note: `${c.note}${pred}` });
  if (predicted !== undefined) emit({ bench: BENCH, case: `${m.name}/${c.layout}`, metric: 'predicted_ms_per_step', value: predicted, unit: 'ms', peer: 'measured', peer_value: ms, ratio: predicted / ms, note: `median over rounds of simulateStep on each round's calibration (every kernel of the plans timed alone, a link from all-reduces, the step overhead); with the roofline alone (a matmul and an elementwise kernel timed) ${median(c.roofline).toFixed(1)} ms` });
  progress(`${m.name} ${c.layout}: ${ms.toFixed(1)} ms${isBase ? '' : ` (speedup ${(base / ms).toFixed(2)}x over 1 worker)`}${pred}`);
}

// ---------------------------------------------------------------------------------------------
// Part dp / tp: 1 worker against 2, data and tensor parallel
// ---------------------------------------------------------------------------------------------

function describeHardware(hw: Hardware): string {
  return `${(hw.flops / 1e9).toFixed(1)} GFLOP/s, memory ${((hw.memoryBandwidth ?? Infinity) / 1e9).toFixed(2)} GB/s, link ${(hw.bandwidth / 1e9).toFixed(2)} GB/s + ${(hw.latency * 1e6).toFixed(0)} µs a message, step overhead ${((hw.stepOverhead ?? 0) * 1e3).toFixed(2)} ms`;
}

async function meshParts(m: Model, meshes: { one: Mesh; two: Mesh }): Promise<void> {
  progress(`${m.name}: ${(m.params / 1e6).toFixed(2)} M params, batch ${m.shapes[m.graph.nodes.find((n) => n.name === 'x')!.id]![0]}`);
  const { one, two } = meshes;
  const cases: Case[] = [await meshCase(m, one, '1_worker', new Map(), `${m.params} params; the single-threaded wasm device in a worker`)];
  if (PARTS.has('dp')) {
    cases.push(await meshCase(m, two, '2_workers_dp', dataParallel(m.graph, m.shapes, { shape: [2] }, { axis: 0 }), 'batch split, gradients all-reduced'));
    cases.push(await meshCase(m, two, '2_workers_dp_zero', dataParallel(m.graph, m.shapes, { shape: [2] }, { axis: 0, zero: true }), 'batch split, gradients reduce-scattered into sharded Adam state, params all-gathered (ZeRO)'));
  }
  if (PARTS.has('tp')) cases.push(await meshCase(m, two, '2_workers_tp', m.megatron, 'Megatron: column-split then row-split matmuls, activations all-reduced'));
  if (PARTS.has('dp') && wasmAvailable()) for (const t of [1, 2]) cases.push(inProcessCase(m, t));
  await timeCases(m.name, cases);
  const base = median(cases[0]!.samples);
  for (const c of cases) report(m, c, base);
  for (const c of cases) await c.drop?.();
}

// ---------------------------------------------------------------------------------------------
// Part nats: the data-parallel MLP step across 2 processes joined through a local nats-server
// ---------------------------------------------------------------------------------------------

const NATS_PREFIX = 'bench.parallel';

/** This process as rank `rank` of 2: its device's plan and shards, `steps` steps; seconds per step. */
async function natsRank(url: string, rank: number, steps: number): Promise<number[]> {
  const m = mlpModel();
  const device = new WasmDevice({ threads: 1 });
  const sp = planSharded(m.graph, m.shapes, { shape: [2] }, dataParallel(m.graph, m.shapes, { shape: [2] }, { axis: 0 }), { caps: device.caps });
  const plan = sp.devices[rank]!.plan;
  const vars = new Variables(device, shardVariables(sp, m.vars)[rank]!);
  const feeds = shardFeeds(sp, m.feeds)[rank]!;
  const comm = await NatsCommunicator.join({ servers: url, rank, size: 2, prefix: NATS_PREFIX, deadlineMs: 120_000, chunkBytes: 1 << 20 });
  const times: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      const r = await runPlan(plan, vars, feeds, { update: true, sync: true, comm });
      times.push(performance.now() - t0);
      if (rank === 0) progress(`  nats step ${i + 1}/${steps}: ${times.at(-1)!.toFixed(0)} ms (loss ${(r.values as CpuArray[])[0]![0]!.toFixed(4)})`);
    }
  } finally {
    await comm.close();
  }
  return times;
}

async function natsPart(): Promise<void> {
  const m = mlpModel();
  const base = { bench: BENCH, case: `${m.name}/2_processes_nats_dp`, metric: 'ms_per_step', unit: 'ms' };
  if (!haveNatsServer) {
    progress('nats: skipped, nats-server is not installed (Debian: apt-get install nats-server)');
    emit({ ...base, value: null, peer: null, peer_value: null, ratio: null, note: 'skipped: nats-server is not installed' });
    return;
  }
  const steps = WARMUP + ROUNDS;
  // the single-device step in this process first, alone on the machine's cores
  const single = inProcessCase(m, 1);
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await single.step();
    if (i >= WARMUP) single.samples.push(performance.now() - t0);
  }
  const server = await startNatsServer();
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--nats-rank', '1', '--nats-url', server.url, '--nats-steps', String(steps)], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    progress(`nats: ${m.name}, batch split over 2 processes (ranks of the NATS communicator, server ${server.url})`);
    const times = (await natsRank(server.url, 0, steps)).slice(WARMUP);
    const code = await exited;
    if (code !== 0) throw new Error(`the rank 1 process exited with code ${code}`);
    const ms = median(times), one = median(single.samples);
    emit({ ...base, value: ms, peer: '1 process, 1 thread', peer_value: one, ratio: ms / one, note: 'gradients all-reduced through nats-server (ring over NATS subjects); each process a single-threaded wasm device' });
    progress(`${m.name} 2 processes over NATS: ${ms.toFixed(1)} ms (speedup ${(one / ms).toFixed(2)}x over ${one.toFixed(1)} ms on 1 process)`);
  } finally {
    child.kill('SIGKILL');
    await server.stop();
  }
}

const rankArg = argv.indexOf('--nats-rank');
if (rankArg >= 0) {
  // a rank process of the nats part
  await natsRank(argv[argv.indexOf('--nats-url') + 1]!, Number(argv[rankArg + 1]), Number(argv[argv.indexOf('--nats-steps') + 1]));
  process.exit(0);
}

progress(`bench/parallel: parts ${[...PARTS].join(', ')}; ${availableParallelism()} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} (other processes on these cores slow the 2-worker cases most)`);
if (PARTS.has('dp') || PARTS.has('tp')) {
  const one = new Mesh([1]);
  const two = new Mesh([2]);
  try {
    for (const m of [mlpModel(), blockModel()]) await meshParts(m, { one, two });
  } finally {
    await Promise.all([one.close(), two.close()]);
  }
}
if (PARTS.has('pipeline')) await pipelinePart();
if (PARTS.has('nats')) await natsPart();
