// Where one Adam step of the MLP 784-256-256-10 (batch 128) spends its time on the wasm device,
// on one thread and on every core: launches timed one by one through the device's optional
// profiler, grouped by phase (forward up to the loss, backward up to the last gradient matmul,
// then the Adam update: the MLP's plan order) and kind (matmul, elementwise map, reduction,
// scatter), beside what no launch accounts for (plan interpretation, allocation, the loss read).
// Each figure is a median over the steps, so that other work on the machine stretches it less.
// Prints a table on stderr and one JSON line per row on stdout (bench/harness.ts). It compares
// with no peer: bench/mlp-train-step.ts does.
//
//   npx tsx bench/profile-mlp.ts [--quick]

import { adam, grad, tensor } from '../index.js';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { hasReduce, type Kernel } from '../ops/kernel-ir.js';
import { compileAsync } from '../runtime/executor.js';
import { WasmDevice, wasmAvailable, type WasmLaunchRecord } from '../runtime/wasm/device.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { QUICK, emit, median, progress } from './harness.js';
import { MLP, mlpData } from './peers.js';

type Phase = 'forward' | 'backward' | 'update';

function kindOf(k: Kernel): string {
  if (k.kind === 'matmul') return 'matmul';
  if (k.kind === 'scatterAdd') return 'scatter';
  return hasReduce(k.expr) ? 'reduction' : 'elementwise';
}

interface Row {
  launches: number;
  ms: number;
  waitMs: number;
  threaded: number;
}

async function profile(threads: number): Promise<void> {
  const data = mlpData();
  const x = tensor(data.x, [MLP.batch, MLP.sizes[0]]);
  const y = tensor(data.y, [MLP.batch, MLP.sizes[3]]);
  const exe = await compileAsync(grad(mlpGraph(MLP.sizes), 'loss'), {
    backend: 'wasm', threads, optimizer: adam(MLP.lr, { beta1: MLP.beta1, beta2: MLP.beta2, eps: MLP.eps }),
  });
  const vars: Record<string, Float32Array> = {};
  data.layers.forEach((l, i) => {
    vars[`param:w${i}`] = l.w;
    vars[`param:b${i}`] = l.b;
  });
  exe.setVariables(vars);
  const device = exe.device;
  if (!(device instanceof WasmDevice)) throw new Error(`profile-mlp: the wasm backend gave device ${device.description}`);

  // phases from the plan's launch order
  const plan = exe.plan({ x: x.shape, y: y.shape });
  const launches = plan.steps.flatMap((s) => (s.kind === 'launch' ? [s] : []));
  const lossAt = launches.findIndex((s) => s.output === plan.outputs['loss']);
  const lastMatmul = launches.map((s) => s.kernel.kind).lastIndexOf('matmul');
  const phase = new Map<Kernel, Phase>(launches.map((s, i) => [s.kernel, i <= lossAt ? 'forward' : i <= lastMatmul ? 'backward' : 'update']));

  const steps = QUICK ? 20 : 100;
  for (let i = 0; i < (QUICK ? 5 : 20); i++) exe.runSync({ x, y });
  const records: WasmLaunchRecord[] = [];
  const stepMs: number[] = [];
  const launchMs: number[] = [];
  device.profiler = (r) => {
    records.push(r);
    launchMs[stepMs.length] = (launchMs[stepMs.length] ?? 0) + r.ms;
  };
  try {
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      exe.runSync({ x, y });
      stepMs.push(performance.now() - t0);
    }
  } finally {
    device.profiler = null;
  }
  // the same steps unobserved, for the profiler's own cost
  const plainMs: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    exe.runSync({ x, y });
    plainMs.push(performance.now() - t0);
  }

  // per launch, the median over the steps (a machine shared with other work stretches a few)
  const byKernel = new Map<Kernel, WasmLaunchRecord[]>();
  for (const r of records) {
    const list = byKernel.get(r.kernel);
    if (list) list.push(r);
    else byKernel.set(r.kernel, [r]);
  }
  const rows = new Map<string, Row>();
  for (const [kernel, rs] of byKernel) {
    const key = `${phase.get(kernel) ?? 'other'}/${kindOf(kernel)}`;
    const row = rows.get(key) ?? { launches: 0, ms: 0, waitMs: 0, threaded: 0 };
    const perStep = rs.length / steps;
    row.launches += perStep;
    row.ms += perStep * median(rs.map((r) => r.ms));
    row.waitMs += perStep * median(rs.map((r) => r.waitMs));
    row.threaded += perStep * (rs.filter((r) => r.threads > 1).length / rs.length);
    rows.set(key, row);
  }
  const total = median(stepMs);
  const outside = median(stepMs.map((ms, i) => ms - (launchMs[i] ?? 0)));
  const order = ['forward', 'backward', 'update', 'other'];
  const sorted = [...rows.entries()].sort(([a], [b]) => order.indexOf(a.split('/')[0]!) - order.indexOf(b.split('/')[0]!) || a.localeCompare(b));

  const line = (name: string, launchesPerStep: string, ms: number, wait: string, threaded: string) =>
    `  ${name.padEnd(22)} ${launchesPerStep.padStart(9)} ${ms.toFixed(3).padStart(9)} ${((100 * ms) / total).toFixed(1).padStart(6)}% ${wait.padStart(10)} ${threaded.padStart(9)}`;
  progress(`\nwasm, ${device.description}: ${steps} steps, median ${total.toFixed(3)} ms a step (unobserved: ${median(plainMs).toFixed(3)}); each row sums its launches' medians`);
  progress(`  ${'phase/kind'.padEnd(22)} ${'launches'.padStart(9)} ${'ms/step'.padStart(9)} ${'share'.padStart(7)} ${'wait ms'.padStart(10)} ${'w/ worker'.padStart(9)}`);
  const caseBase = `mlp784-256-256-10_b128_adam/wasm_t${threads}`;
  for (const [key, row] of sorted) {
    const ms = row.ms;
    progress(line(key, row.launches.toFixed(0), ms, row.waitMs.toFixed(3), row.threaded.toFixed(1)));
    emit({ bench: 'profile-mlp', case: `${caseBase}/${key}`, metric: 'ms_per_step', value: ms, unit: 'ms', peer: null, peer_value: null, ratio: null, note: `${row.launches.toFixed(0)} launches a step, ${row.threaded.toFixed(1)} of them shared with a worker thread; ${row.waitMs.toFixed(3)} ms waiting for workers` });
  }
  progress(line('outside launches', '', outside, '', ''));
  progress(line('step (median)', (records.length / steps).toFixed(0), total, '', ''));
  emit({ bench: 'profile-mlp', case: `${caseBase}/outside_launches`, metric: 'ms_per_step', value: outside, unit: 'ms', peer: null, peer_value: null, ratio: null, note: 'plan interpretation, allocation, feeds, the loss read: the median over steps of the step time minus its launches' });
  emit({ bench: 'profile-mlp', case: `${caseBase}/step`, metric: 'ms_per_step', value: total, unit: 'ms', peer: null, peer_value: null, ratio: null, note: `median of ${steps} observed steps; unobserved median ${median(plainMs).toFixed(3)} ms` });
}

if (!wasmAvailable()) {
  progress('profile-mlp: this engine has no WebAssembly SIMD128');
} else {
  for (const threads of [...new Set([1, availableParallelism()])]) await profile(threads);
}
