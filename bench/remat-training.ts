/**
 * Rematerialization on rheo's own training graphs, against Chen et al.'s √n checkpointing. For
 * the Fashion-MNIST MLP made 8 layers deep (784-256×7-10, batch 128, real images) and a chain of
 * 4 transformer blocks (synthetic data), both trained with Adam:
 *
 *   - the plain peak: baselineBytes of a plan under an unlimited budget;
 *   - at budgets fixedBytes + f × baselineBytes for f = 70%, 50%, 30% the planner's plan (the
 *     heuristic, with a short time limit); a budget below the smallest feasible one is reported
 *     with that smallest budget (from the BudgetError), and the run goes on at it;
 *   - Chen's √n schedule of the same plan (budget-independent: one plan per graph), and the
 *     planner at Chen's peak, so that the two are also compared at equal memory.
 *
 * The plain executable, Chen's and one per budget train for the same steps on the same batches,
 * round-robin, so that drift of the machine hits them alike; a step's time is its runSync. Each
 * remat run must give bit-identical losses at every step and identical parameters at the end,
 * and its measured peak (fixed bytes plus the instrumented pool's peak) must stay within its
 * budget. One JSON line per (graph, budget, method) on stdout, the value being the time overhead
 * in percent: median ms per step with remat / median ms per step without − 1; `ratio` is our
 * median step time over Chen's. Part of that overhead is not recomputation: under a budget every
 * value comes from the instrumented pool instead of the plan's arena; `pool_overhead_pct` is the
 * overhead of a run under an unlimited budget (no recomputation), and `compute_overhead_pct` the
 * plan's estimated extra compute. On a loaded machine wall-clock medians are noisy: also given
 * are `min_overhead_pct` (fastest step with remat / fastest without − 1) and `cpu_overhead_pct`
 * (median CPU time of the process per step, which other processes' load barely changes; it
 * includes V8's helper threads). A table goes to stderr.
 *
 *   npx tsx bench/remat-training.ts [--quick]
 *
 * --quick: 8 steps (the first 2 untimed), 300 ms of heuristic refinement; under a minute.
 * Full: 20 steps (the first 2 untimed), 2 s of refinement.
 */
import { adam, compile, grad, tensor, type Executable, type Graph, type HostTensor } from '../index.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { transformerGraph, type TransformerConfig } from '../examples/transformer-model.js';
import { batches, loadFashionMnist, NUM_CLASSES } from '../tools/data/fashion-mnist.js';
import type { RematInfo, RematOptions } from '../scheduler/remat-plan.js';
import { BudgetError } from '../scheduler/remat/plan-types.js';
import { QUICK, median, progress } from './harness.js';

const BENCH = 'remat-training';
const STEPS = QUICK ? 8 : 20;
const UNTIMED = 2;
const FRACTIONS = [0.7, 0.5, 0.3];
const PLANNER: RematOptions = { solver: 'heuristic', timeLimitMs: QUICK ? 300 : 2000 };
const CHEN: RematOptions = { schedule: 'chen' };
const UNLIMITED = 1e12;
const LR = 1e-3;
const SEED = 7;

type Feeds = { x: HostTensor; y: HostTensor };
interface Case {
  name: string;
  graph: Graph;
  /** the batches of steps 0..STEPS-1 */
  feeds: Feeds[];
}

type Planned = ReturnType<Executable['plan']> & { remat: RematInfo };

function mlpCase(): Case {
  const ds = loadFashionMnist();
  const feeds: Feeds[] = [];
  for (const b of batches(ds.train.images, ds.train.labels, 128, { shuffle: true, seed: SEED, dropLast: true })) {
    if (feeds.length === STEPS) break;
    feeds.push({ x: tensor(b.x, [128, 784]), y: tensor(b.y, [128, NUM_CLASSES]) });
  }
  if (feeds.length < STEPS) throw new Error(`Fashion-MNIST (${ds.source}) has fewer than ${STEPS} batches of 128`);
  return { name: `mlp-784-256x7-10-b128 (${ds.source} data)`, graph: grad(mlpGraph([784, 256, 256, 256, 256, 256, 256, 256, 10]), 'loss'), feeds };
}

function transformerCase(): Case {
  const cfg: TransformerConfig = { blocks: 4, seq: 16, dModel: 32, heads: 4, classes: 10 };
  const batch = 16;
  let s = SEED >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const feeds = Array.from({ length: STEPS }, () => {
    const x = Float32Array.from({ length: batch * cfg.seq * cfg.dModel }, () => 2 * rand() - 1);
    const y = new Float32Array(batch * cfg.classes);
    for (let b = 0; b < batch; b++) y[b * cfg.classes + Math.floor(rand() * cfg.classes)] = 1;
    return { x: tensor(x, [batch, cfg.seq, cfg.dModel]), y: tensor(y, [batch, cfg.classes]) };
  });
  return { name: `transformer-4blk-s16-d32-h4-b16`, graph: grad(transformerGraph(cfg), 'loss'), feeds };
}

/** One executable under test: how it was planned, and what its steps measured. */
interface Run {
  label: string;
  exe: Executable;
  plan?: Planned;
  budget: number;
  requested: number;
  minFeasible: number | null;
  solveMs: number;
  /** wall-clock ms of each timed step */
  times: number[];
  /** CPU ms of the process during each timed step */
  cpuTimes: number[];
  losses: number[];
  measuredPeak: number;
}

/**
 * Plans under `budget`; on a BudgetError plans again at the smallest feasible budget it names,
 * which the planner meets (the same number whatever budget was asked).
 */
function planAt(c: Case, label: string, budget: number, remat: RematOptions): Run {
  const shapes = { x: c.feeds[0]!.x.shape, y: c.feeds[0]!.y.shape };
  let at = budget;
  let minFeasible: number | null = null;
  const t0 = performance.now();
  for (let attempt = 0; ; attempt++) {
    const exe = compile(c.graph, { optimizer: adam(LR), seed: SEED, memoryBudget: at, remat });
    try {
      const plan = exe.plan(shapes) as Planned;
      return { label, exe, plan, budget: at, requested: budget, minFeasible, solveMs: performance.now() - t0, times: [], cpuTimes: [], losses: [], measuredPeak: 0 };
    } catch (e) {
      if (!(e instanceof BudgetError) || attempt === 1) throw e;
      minFeasible = e.minimumFeasible;
      at = Math.max(e.minimumFeasible, at + 1);
    }
  }
}

/** Trains every run for STEPS steps on the same batches, round-robin from a rotating start. */
function train(c: Case, runs: Run[]): void {
  for (let step = 0; step < STEPS; step++) {
    for (let k = 0; k < runs.length; k++) {
      const r = runs[(k + step) % runs.length]!;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const loss = r.exe.runSync(c.feeds[step]!).loss!.data[0]!;
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(c0);
      if (step >= UNTIMED) {
        r.times.push(ms);
        r.cpuTimes.push((cpu.user + cpu.system) / 1000);
      }
      r.losses.push(loss);
      if (r.plan) r.measuredPeak = Math.max(r.measuredPeak, r.exe.stats.measuredPeakBytes + r.plan.remat.fixedBytes);
    }
  }
}

function sameTraining(a: Run, b: Run): boolean {
  if (a.losses.length !== b.losses.length || a.losses.some((l, i) => !Object.is(l, b.losses[i]))) return false;
  const va = a.exe.variables(), vb = b.exe.variables();
  return Object.keys(va).every((k) => {
    const x = va[k]!.data, y = vb[k]!.data;
    return x.length === y.length && x.every((v, i) => Object.is(v, y[i]));
  });
}

const pct = (x: number) => Number((100 * x).toPrecision(4));
const round = (x: number) => Number(x.toPrecision(6));

function line(record: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(record) + '\n');
}

interface TableRow {
  graph: string;
  budget: string;
  planned: number;
  measured: number;
  overhead: number;
  minOverhead: number;
  cpu: number;
  /** estimated extra compute of the plan, % */
  compute: number;
  pool: number;
  chenCpu: number;
  chenOverhead: number;
  chenPeak: number;
  solveMs: number;
  ok: boolean;
}

function benchCase(c: Case, table: TableRow[]): void {
  const shapes = { x: c.feeds[0]!.x.shape, y: c.feeds[0]!.y.shape };
  const probe = compile(c.graph, { optimizer: adam(LR), seed: SEED, memoryBudget: UNLIMITED, remat: PLANNER }).plan(shapes) as Planned;
  const { fixedBytes, baselineBytes } = probe.remat;
  progress(`${c.name}: ${probe.steps.length} kernels, fixed ${fixedBytes} B, plain peak of computed values ${baselineBytes} B`);

  const plain: Run = { label: 'plain', exe: compile(c.graph, { optimizer: adam(LR), seed: SEED }), budget: Infinity, requested: Infinity, minFeasible: null, solveMs: 0, times: [], cpuTimes: [], losses: [], measuredPeak: 0 };
  const chen = planAt(c, 'chen-sqrt-n', UNLIMITED, CHEN);
  // the fractions of the plain peak, and Chen's own peak: the two methods at equal memory
  const chenPlanned = chen.plan!.remat.peakBytes + fixedBytes;
  const budgets = FRACTIONS.map((f) => ({ label: `${Math.round(f * 100)}%`, budget: Math.floor(fixedBytes + f * baselineBytes) }));
  if (chenPlanned < fixedBytes + baselineBytes) budgets.push({ label: 'chen-peak', budget: chenPlanned });
  const runs = budgets.map(({ label, budget }) => {
    const r = planAt(c, label, budget, PLANNER);
    progress(`  ${r.label}: budget ${budget} B${r.minFeasible !== null ? ` infeasible, ran at ${r.budget} B` : ''}, planned peak ${r.plan!.remat.peakBytes + fixedBytes} B, solved in ${Math.round(r.solveMs)} ms`);
    return r;
  });
  // a budget that needs no recomputation: what the instrumented pool costs by itself
  const pool = planAt(c, 'unlimited', UNLIMITED, PLANNER);
  train(c, [plain, pool, chen, ...runs]);

  const plainMs = median(plain.times);
  const poolOverhead = pct(median(pool.times) / plainMs - 1);
  const minOverhead = (r: Run) => pct(Math.min(...r.times) / Math.min(...plain.times) - 1);
  const cpuOverhead = (r: Run) => pct(median(r.cpuTimes) / median(plain.cpuTimes) - 1);
  const chenMs = median(chen.times);
  const chenOverhead = chenMs / plainMs - 1;
  const chenEqual = sameTraining(chen, plain);
  const common = { bench: BENCH, metric: 'time_overhead_pct', unit: '%' };
  const extras = (r: Run) => ({
    baseline_peak: fixedBytes + baselineBytes,
    fixed_bytes: fixedBytes,
    requested_budget: r.requested,
    computed_peak_pct: pct(r.plan!.remat.peakBytes / baselineBytes),
    compute_overhead_pct: pct(r.plan!.remat.overhead),
    kernels: r.plan!.steps.length,
    ms_per_step: round(median(r.times)),
    min_overhead_pct: minOverhead(r),
    cpu_overhead_pct: cpuOverhead(r),
    pool_cpu_overhead_pct: cpuOverhead(pool),
    plain_ms_per_step: round(plainMs),
    pool_overhead_pct: poolOverhead,
    steps: STEPS,
  });
  for (const r of runs) {
    const planned = r.plan!.remat.peakBytes + fixedBytes;
    const ms = median(r.times);
    const equal = sameTraining(r, plain);
    const notes = [
      r.minFeasible !== null ? `requested budget ${r.requested} B is below the smallest feasible ${r.minFeasible} B; ran at ${r.budget} B` : '',
      chenPlanned > r.budget ? `Chen's schedule does not fit this budget` : '',
      r.measuredPeak > r.budget ? 'MEASURED PEAK OVER BUDGET' : '',
      equal ? '' : 'TRAINING DIFFERS FROM THE PLAIN RUN',
    ].filter(Boolean);
    line({
      ...common,
      case: `${c.name}@${r.label}`,
      value: pct(ms / plainMs - 1),
      planned_peak: planned,
      measured_peak: r.measuredPeak,
      budget: r.budget,
      min_feasible: r.minFeasible,
      loss_equal: equal,
      solve_ms: Math.round(r.solveMs),
      solver: r.plan!.remat.solver,
      method: 'planner',
      peer: 'chen-sqrt-n',
      peer_value: pct(chenOverhead),
      ratio: round(ms / chenMs),
      peer_planned_peak: chenPlanned,
      peer_measured_peak: chen.measuredPeak,
      peer_loss_equal: chenEqual,
      peer_compute_overhead_pct: pct(chen.plan!.remat.overhead),
      ...extras(r),
      ...(notes.length ? { note: notes.join('; ') } : {}),
    });
    table.push({ graph: c.name, budget: r.label, planned, measured: r.measuredPeak, overhead: pct(ms / plainMs - 1), minOverhead: minOverhead(r), cpu: cpuOverhead(r), compute: pct(r.plan!.remat.overhead), pool: poolOverhead, chenCpu: cpuOverhead(chen), chenOverhead: pct(chenOverhead), chenPeak: chenPlanned, solveMs: Math.round(r.solveMs), ok: equal && r.measuredPeak <= r.budget });
  }
  // Chen's own line: its budget is its own peak (the smallest budget it runs under)
  line({
    ...common,
    case: `${c.name}@chen-sqrt-n`,
    value: pct(chenOverhead),
    planned_peak: chenPlanned,
    measured_peak: chen.measuredPeak,
    budget: chenPlanned,
    min_feasible: null,
    loss_equal: chenEqual,
    solve_ms: Math.round(chen.solveMs),
    solver: chen.plan!.remat.solver,
    method: 'chen-sqrt-n',
    peer: null,
    peer_value: null,
    ratio: null,
    ...extras(chen),
  });
  table.push({ graph: c.name, budget: 'chen', planned: chenPlanned, measured: chen.measuredPeak, overhead: pct(chenOverhead), minOverhead: minOverhead(chen), cpu: cpuOverhead(chen), compute: pct(chen.plan!.remat.overhead), pool: poolOverhead, chenCpu: cpuOverhead(chen), chenOverhead: pct(chenOverhead), chenPeak: chenPlanned, solveMs: Math.round(chen.solveMs), ok: chenEqual && chen.measuredPeak <= chenPlanned });
}

const table: TableRow[] = [];
for (const make of [mlpCase, transformerCase]) benchCase(make(), table);
progress('\ngraph | budget | planned peak | measured peak | time overhead % (min-based, CPU-time) | est. compute % | pool alone % | Chen time overhead % (CPU-time) | Chen peak | solve ms | equal & within budget');
for (const r of table) progress(`${r.graph} | ${r.budget} | ${r.planned} | ${r.measured} | ${r.overhead} (${r.minOverhead}, ${r.cpu}) | ${r.compute} | ${r.pool} | ${r.chenOverhead} (${r.chenCpu}) | ${r.chenPeak} | ${r.solveMs} | ${r.ok}`);
if (table.some((r) => !r.ok)) process.exitCode = 1;
