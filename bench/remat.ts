/**
 * Rematerialization benchmark: for each graph at budgets ceil(0.9 x plain peak) and
 * ceil(0.8 x plain peak), the heuristic, the exact solver (MILP in the heuristic's
 * first-evaluation order, warm-started) and, in the full run, the MILP in the graph's own order
 * as in the Checkmate paper. One JSON line per (graph, budget, solver) on stdout; the value is
 * the compute overhead in percent.
 *
 * The graphs: with --dir DIR, the networkx node-link JSON files in DIR, e.g. the published
 * Checkmate/Moccasin graphs (random_layered_n100..n1000, resnet50_b256_train,
 * fcn8_vgg_b32_train), which are in the Moccasin repository's graph data
 * (https://github.com/Ascend-Research/moccasin, GPL-3; not vendored here). Without it, graphs
 * the project generates: random layered graphs of the same sizes (Gagrani et al., Appendix A;
 * scheduler/remat/random-layered.ts) and rheo's own training steps as cost graphs (an MLP and
 * a transformer trained with Adam, through planCostGraph).
 *
 *   npx tsx bench/remat.ts [--quick] [--dir DIR]
 *
 * --quick: exact only on graphs of at most 100 nodes, 10 s per exact solve, at most 1 s of
 * heuristic refinement, generated layered graphs up to 500 nodes. Full: exact up to 400 nodes,
 * 60 s per exact solve.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { adam, compile, grad } from '../index.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { transformerGraph } from '../examples/transformer-model.js';
import { planCostGraph } from '../scheduler/remat-plan.js';
import type { Plan } from '../scheduler/plan.js';
import { baselinePeak, loadNetworkxGraph, randomLayeredGraph, scheduleFromSequence, simulate, solveExact, solveHeuristic, type CostGraph, type RematPlan } from '../scheduler/remat/index.js';
import { solveMilp } from '../scheduler/remat/exact.js';
import { defaultTimeLimit } from '../scheduler/remat/heuristic.js';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const dirAt = argv.indexOf('--dir');
const DIR = argv.find((a) => a.startsWith('--dir='))?.slice('--dir='.length) ?? (dirAt >= 0 ? argv[dirAt + 1] : undefined);
const EXACT_MAX_NODES = QUICK ? 100 : 400;
const EXACT_MS = QUICK ? 10_000 : 60_000;

interface Row {
  graph: string;
  fraction: number;
  solver: string;
  budget: number;
  plan: RematPlan | null;
  ms: number;
  note?: string;
}

function emit(row: Row): void {
  const s = row.plan?.stats;
  const out: Record<string, unknown> = {
    bench: 'remat',
    case: `${row.graph}@${row.fraction}`,
    metric: 'overhead_pct',
    value: s ? round(s.overhead * 100) : null,
    unit: '%',
    solver: row.solver,
    peak: s?.peak ?? null,
    budget: row.budget,
    solve_ms: Math.round(row.ms),
    optimal: s?.optimal ?? null,
    gap: s?.gap !== undefined ? round(s.gap) : null,
    peer: null,
    peer_value: null,
    ratio: null,
  };
  const notes = [row.note, s?.status];
  if (s && row.solver !== s.solver && !(row.solver === 'exact-graph-order' && s.solver === 'exact')) notes.push(`plan from ${s.solver}`);
  if (notes.some(Boolean)) out.note = notes.filter(Boolean).join('; ');
  process.stdout.write(JSON.stringify(out) + '\n');
}

function round(x: number): number {
  return Number(x.toPrecision(6));
}

function run(graph: string, fraction: number, solver: string, budget: number, solve: () => RematPlan): Row {
  const t0 = performance.now();
  try {
    const plan = solve();
    return { graph, fraction, solver, budget, plan, ms: performance.now() - t0 };
  } catch (e) {
    return { graph, fraction, solver, budget, plan: null, ms: performance.now() - t0, note: (e as Error).message };
  }
}

/** The MILP alone in the graph's own order, no start: the Checkmate paper's setting. */
function checkmate(g: CostGraph, budget: number): RematPlan {
  const t0 = performance.now();
  const r = solveMilp(g, budget, { timeLimitMs: EXACT_MS });
  if (!r.seq) throw new Error(`no incumbent (${r.status})`);
  const schedule = scheduleFromSequence(g, r.seq);
  const sim = simulate(g, schedule);
  const gap = r.costLowerBound !== undefined ? Math.max(0, (sim.cost - r.costLowerBound) / sim.cost) : undefined;
  return {
    schedule,
    stats: {
      peak: sim.peak,
      cost: sim.cost,
      overhead: sim.overhead,
      solveMs: performance.now() - t0,
      optimal: r.optimal,
      ...(gap !== undefined ? { gap: r.optimal ? Math.min(gap, 1e-6) : gap } : {}),
      solver: 'exact',
      status: r.status,
    },
  };
}

/** The node-link JSON files of a directory, as cost graphs. */
function published(dir: string): { name: string; g: CostGraph }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ name: f.replace(/\.json$/, ''), g: loadNetworkxGraph(JSON.parse(readFileSync(join(dir, f), 'utf8'))) }));
}

/** Random layered graphs of the published sizes, and rheo's own training steps. */
function generated(): { name: string; g: CostGraph }[] {
  const layered = (QUICK ? [100, 250, 500] : [100, 250, 500, 1000]).map((n) => ({ name: `random_layered_n${n}_seed${n}`, g: randomLayeredGraph({ nodes: n, seed: n }) }));
  const mlp = compile(grad(mlpGraph([784, 256, 256, 256, 256, 10]), 'loss'), { optimizer: adam(1e-3) }).plan({ x: [128, 784], y: [128, 10] });
  const cfg = { blocks: 4, seq: 16, dModel: 32, heads: 4, classes: 10 };
  const transformer = compile(grad(transformerGraph(cfg), 'loss'), { optimizer: adam(1e-3) }).plan({ x: [16, cfg.seq, cfg.dModel], y: [16, cfg.classes] });
  // the optimizer's updates computed in place, as rematerializePlan does where it can
  const costGraph = (plan: Plan) => planCostGraph(plan, new Map(plan.graph.updates.map((u) => [u.value, u.target])));
  return [
    ...layered,
    { name: 'rheo_mlp_784-256x4-10_b128_adam', g: costGraph(mlp) },
    { name: 'rheo_transformer_4blk_s16_d32_b16_adam', g: costGraph(transformer) },
  ];
}

if (!DIR) {
  console.error(
    'bench/remat: no --dir given, so running on generated graphs. For the published Checkmate/Moccasin graphs, get the\n' +
      "node-link JSON files from the Moccasin repository's graph data (https://github.com/Ascend-Research/moccasin, GPL-3)\n" +
      'and pass their directory: npx tsx bench/remat.ts --dir DIR',
  );
}
const graphs = (DIR ? published(DIR) : generated()).sort((a, b) => a.g.nodes.length - b.g.nodes.length);

for (const { name, g } of graphs) {
  const n = g.nodes.length;
  const baseline = baselinePeak(g);
  for (const fraction of [0.9, 0.8]) {
    const budget = Math.ceil(fraction * baseline);
    console.error(`${name} (${n} nodes) at ${fraction} of ${baseline}: budget ${budget}`);
    const heuristicMs = QUICK ? Math.min(1000, defaultTimeLimit(n)) : defaultTimeLimit(n);
    const h = run(name, fraction, 'heuristic', budget, () => solveHeuristic(g, budget, { timeLimitMs: heuristicMs }));
    emit(h);
    if (n > EXACT_MAX_NODES) continue;
    emit(run(name, fraction, 'exact', budget, () => solveExact(g, budget, { timeLimitMs: EXACT_MS })));
    if (!QUICK) emit(run(name, fraction, 'exact-graph-order', budget, () => checkmate(g, budget)));
  }
}
