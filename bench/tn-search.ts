/**
 * Tensor-network structure search on planted networks: 7×7×7×7×7 tensors made from random
 * Tucker (ranks 2,3,4,3,2), tensor-train (2,3,6,5) and tensor-ring (2,3,4,5,5) networks, each
 * searched by greedy rank increments, TnALE and the one-shot spectral read. The search is told
 * the family (the topology); it chooses the rank of every edge. An instance succeeds when the
 * network found reaches RSE ≤ 1e-4 (checked on a fresh rheo reconstruction) with at most 1.1×
 * the planted parameters. Per family and strategy it prints the success rate, the mean number of
 * candidate fits and the median wall time; one-shot's time is compared with TnALE's.
 *
 *   npx tsx bench/tn-search.ts [--quick] [--instances N] [--families tt,tr,tucker]
 *                              [--strategies greedy,tnale,one-shot] [--debug]
 */
import { performance } from 'node:perf_hooks';
import { DEBUG, QUICK, emit, median, progress } from './harness.js';
import { coreShape, paramCount, ranksOf, tensorRing, tensorTrain, tucker, withRanks, type TensorNetwork } from '../graphs/tn/network.js';
import { searchStructure, type SearchStrategy } from '../graphs/tn/search.js';
import { alsFitter, reconstruct, relativeError } from '../runtime/tn-fit.js';
import { mulberry32 } from '../runtime/rng.js';

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const INSTANCES = Number(flag('--instances') ?? (QUICK ? 1 : 10));
const TARGET = 1e-4;
const SLACK = 1.1;
const dims = [7, 7, 7, 7, 7];
const FAMILIES: Record<string, TensorNetwork> = {
  tucker: tucker(dims, [2, 3, 4, 3, 2]),
  tt: tensorTrain(dims, [2, 3, 6, 5]),
  tr: tensorRing(dims, [2, 3, 4, 5, 5]),
};
const only = flag('--families')?.split(',');
const STRATEGIES: SearchStrategy[] = (flag('--strategies')?.split(',') as SearchStrategy[] | undefined) ?? ['greedy', 'tnale', 'one-shot'];

function planted(net: TensorNetwork, seed: number): Float64Array {
  const rand = mulberry32(seed);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const cores = net.cores.map((_, k) => Float64Array.from({ length: coreShape(net, k).reduce((p, d) => p * d, 1) }, gauss));
  return reconstruct(net, cores);
}

interface Outcome { ok: boolean; evaluations: number; ms: number }

function runOne(strategy: SearchStrategy, net: TensorNetwork, x: Float64Array, seed: number): Outcome & { found: string } {
  const fitter = alsFitter(x, net.dims, { seed });
  const t0 = performance.now();
  const r = searchStructure(strategy, fitter, withRanks(net, net.edges.map(() => 1)), {
    target: TARGET,
    ...(DEBUG ? { log: (l: string) => progress(`    ${l}`) } : {}),
  });
  const ms = performance.now() - t0;
  const best = r.best;
  const rse = best ? relativeError(reconstruct(best.net, best.cores), x) : Infinity;
  const ok = best !== null && rse <= TARGET && paramCount(best.net) <= SLACK * paramCount(net);
  const found = best ? `[${ranksOf(best.net).join(',')}] ${paramCount(best.net)} params, RSE ${rse.toExponential(2)}` : `none (closest RSE ${r.last.rse.toExponential(2)})`;
  return { ok, evaluations: r.evaluations, ms, found };
}

// Warm up the JIT and the kernel caches on a small problem so that no strategy pays for them.
{
  const small = tensorTrain([4, 4, 4, 4], [2, 3, 2]);
  const x = planted(small, 1);
  for (const s of STRATEGIES) runOne(s, small, x, 1);
}

for (const [family, net] of Object.entries(FAMILIES)) {
  if (only && !only.includes(family)) continue;
  const results = new Map<SearchStrategy, Outcome[]>(STRATEGIES.map((s) => [s, []]));
  for (let i = 0; i < INSTANCES; i++) {
    const seed = 1000 * (Object.keys(FAMILIES).indexOf(family) + 1) + i;
    const x = planted(net, seed);
    for (const s of STRATEGIES) {
      const o = runOne(s, net, x, seed);
      results.get(s)!.push(o);
      progress(`${family} #${i} ${s}: ${o.ok ? 'ok' : 'FAILED'} ${o.found}, ${o.evaluations} fits, ${(o.ms / 1000).toFixed(1)} s`);
    }
  }
  const tnaleMs = results.has('tnale') ? median(results.get('tnale')!.map((o) => o.ms)) : NaN;
  const note = `planted [${ranksOf(net).join(',')}] ${paramCount(net)} params; family given, ranks searched; ${INSTANCES} instances`;
  for (const s of STRATEGIES) {
    const os = results.get(s)!;
    const base = { bench: 'tn-search', case: `${family}/${s}`, peer: null, peer_value: null, ratio: null, note };
    emit({ ...base, metric: 'success_rate', value: (100 * os.filter((o) => o.ok).length) / os.length, unit: '%' });
    emit({ ...base, metric: 'evaluations', value: os.reduce((a, o) => a + o.evaluations, 0) / os.length, unit: 'fits' });
    const ms = median(os.map((o) => o.ms));
    emit(s === 'one-shot'
      ? { ...base, metric: 'wall_time', value: ms, unit: 'ms', peer: 'tnale', peer_value: tnaleMs, ratio: ms / tnaleMs }
      : { ...base, metric: 'wall_time', value: ms, unit: 'ms' });
  }
}
