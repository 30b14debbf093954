// Fits tensor networks to a dense target with rheo: alternating least squares where every
// contraction (each core's environment Gram matrix and right-hand side, the unfolding Grams a
// one-shot search reads ranks from) is a compiled rheo graph of `g.einsum`s, run in double
// precision on the CPU; only the small normal-equation solves happen on the host. It knows
// nothing of searching: graphs/tn/search.ts drives it through the TnFitter interface.

import { graph } from '../graphs/builder.js';
import { f32 } from '../graphs/types.js';
import type { Tensor } from '../graphs/types.js';
import {
  contractNetwork, coreShape, coreSubscripts, edgesOf, letters, orderedEinsum, ranksOf, sizeOf, type TensorNetwork,
} from '../graphs/tn/network.js';
import type { FitOptions, TnFit, TnFitter } from '../graphs/tn/fit-types.js';
import { permuteAxes } from '../graphs/tn/linalg.js';
import { svdCores } from '../graphs/tn/svd-init.js';
import { oneSiteUpdate, twoSiteUpdate, type PairDims } from '../graphs/tn/pair-solve.js';
import { mulberry32 } from './rng.js';
import { compile, type Executable } from './executor.js';

const prod = (xs: readonly number[]): number => xs.reduce((p, x) => p * x, 1);

/** Bond edges of core k other than edge i. */
const outer = (net: TensorNetwork, k: number, i: number): number[] => edgesOf(net, k).filter((j) => j !== i);

/**
 * The environment graph of a network: per edge i joining cores a and b, the Gram matrix
 * `gram<i>` [R, R] of everything but a and b, and `rhs<i>` [Pa·Pb, R], the target contracted
 * with it (R: the product of the ranks of the other edges of a and b).
 */
function alsGraph(net: TensorNetwork) {
  const L = letters(net);
  const size = sizeOf(net, L);
  const sub1 = net.cores.map((_, j) => coreSubscripts(net, j));
  const sub2 = net.cores.map((_, j) => coreSubscripts(net, j, L.edge2));
  return graph(`tn-als-${net.family}-${ranksOf(net).join('x')}`, (g) => {
    const x = g.input('x', f32(...net.dims));
    const cores: Tensor[] = net.cores.map((_, k) => g.input(`c${k}`, f32(...coreShape(net, k))));
    const out: Record<string, Tensor> = {};
    net.edges.forEach((e, i) => {
      const others = net.cores.map((_, j) => j).filter((j) => j !== e.a && j !== e.b);
      const bonds = [...outer(net, e.a, i), ...outer(net, e.b, i)];
      const R = prod(bonds.map((j) => net.edges[j]!.rank));
      const modes = [...net.cores[e.a]!, ...net.cores[e.b]!];
      const P = prod(modes.map((m) => net.dims[m]!));
      const b1 = bonds.map((j) => L.edge[j]).join('');
      const b2 = bonds.map((j) => L.edge2[j]).join('');
      const rhs = orderedEinsum(g, [L.mode.join(''), ...others.map((j) => sub1[j]!)], [x, ...others.map((j) => cores[j]!)], modes.map((m) => L.mode[m]).join('') + b1, size);
      out[`rhs${i}`] = g.reshape(rhs, [P, R]);
      const gram = orderedEinsum(g, [...others.map((j) => sub1[j]!), ...others.map((j) => sub2[j]!)], [...others.map((j) => cores[j]!), ...others.map((j) => cores[j]!)], b1 + b2, size);
      out[`gram${i}`] = g.reshape(gram, [R, R]);
    });
    return out;
  });
}

const inverse = (perm: readonly number[]): number[] => {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
};

/** Permutation taking axes [modes of k, the other edges of k, edge i] to core k's layout. */
function layoutPerm(net: TensorNetwork, k: number, i: number, edgeFirst: boolean): number[] {
  const others = outer(net, k, i);
  // source axes, by what they are
  const src: string[] = edgeFirst
    ? [`e${i}`, ...net.cores[k]!.map((m) => `m${m}`), ...others.map((j) => `e${j}`)]
    : [...net.cores[k]!.map((m) => `m${m}`), ...others.map((j) => `e${j}`), `e${i}`];
  const dst = [...net.cores[k]!.map((m) => `m${m}`), ...edgesOf(net, k).map((j) => `e${j}`)];
  return dst.map((t) => src.indexOf(t));
}

/** The dense tensor of a network, contracted by rheo (in double precision unless `precision` says). */
export function reconstruct(net: TensorNetwork, cores: readonly ArrayLike<number>[], precision: 'f32' | 'f64' = 'f64'): Float64Array {
  const gr = graph(`tn-reconstruct-${net.family}`, (g) => ({
    x: contractNetwork(g, net, net.cores.map((_, k) => g.input(`c${k}`, f32(...coreShape(net, k))))),
  }));
  const feeds = Object.fromEntries(cores.map((c, k) => [`c${k}`, { dtype: 'f32' as const, shape: coreShape(net, k), data: precision === 'f64' ? Float64Array.from(c) : Float32Array.from(c) }]));
  return Float64Array.from(compile(gr, { precision }).runSync(feeds, ['x'], { update: false })['x']!.data);
}

/** ‖a − b‖ / ‖b‖. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

export interface AlsFitterOptions {
  readonly seed?: number;
  /** candidate structures whose compiled graphs are kept (default 64) */
  readonly cacheSize?: number;
}

/** An ALS fitter bound to `target` (row-major, shape `dims`). */
export function alsFitter(target: ArrayLike<number>, dims: readonly number[], opts: AlsFitterOptions = {}): TnFitter {
  const x = Float64Array.from(target);
  if (x.length !== prod(dims)) throw new RangeError(`alsFitter: ${x.length} values for dims [${dims.join(', ')}]`);
  let normSq = 0;
  for (const v of x) normSq += v * v;
  const rand = mulberry32(opts.seed ?? 1);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const cache = new Map<string, Executable>();
  const cacheSize = opts.cacheSize ?? 64;
  let evaluations = 0;

  const executable = (net: TensorNetwork): Executable => {
    const key = JSON.stringify([net.cores, net.edges]);
    let exe = cache.get(key);
    if (!exe) {
      exe = compile(alsGraph(net), { precision: 'f64' });
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
      cache.set(key, exe);
    }
    return exe;
  };

  const randomCores = (net: TensorNetwork): Float64Array[] => {
    // Scale so the reconstruction's norm is about the target's: each bond sum adds a factor.
    const K = net.cores.length;
    const total = prod(dims) * prod(ranksOf(net));
    const scale = Math.pow(Math.sqrt(normSq / total), 1 / K);
    return net.cores.map((_, k) => Float64Array.from({ length: prod(coreShape(net, k)) }, () => gauss() * scale));
  };

  /**
   * One update of edge i's two cores: the two-site solve, or the one-site pair where that would
   * not lower the error below `prev` (two-site truncation can, on rings and redundant ranks).
   */
  const updateEdge = (net: TensorNetwork, exe: Executable, cores: Float64Array[], i: number, prev: number): number => {
    const e = net.edges[i]!;
    const feeds: Record<string, { dtype: 'f32'; shape: readonly number[]; data: Float64Array }> = { x: { dtype: 'f32', shape: dims, data: x } };
    cores.forEach((c, j) => (feeds[`c${j}`] = { dtype: 'f32', shape: coreShape(net, j), data: c }));
    const r = exe.runSync(feeds, [`gram${i}`, `rhs${i}`], { update: false });
    const gram = Float64Array.from(r[`gram${i}`]!.data);
    const rhs = Float64Array.from(r[`rhs${i}`]!.data);
    const oa = outer(net, e.a, i);
    const ob = outer(net, e.b, i);
    const d: PairDims = {
      PA: prod(net.cores[e.a]!.map((m) => dims[m]!)),
      PB: prod(net.cores[e.b]!.map((m) => dims[m]!)),
      RA: prod(oa.map((j) => net.edges[j]!.rank)),
      RB: prod(ob.map((j) => net.edges[j]!.rank)),
      r: e.rank,
    };
    const shapeA = [...net.cores[e.a]!.map((m) => dims[m]!), ...oa.map((j) => net.edges[j]!.rank), e.rank];
    const shapeB = [e.rank, ...net.cores[e.b]!.map((m) => dims[m]!), ...ob.map((j) => net.edges[j]!.rank)];
    const permA = layoutPerm(net, e.a, i, false);
    const permB = layoutPerm(net, e.b, i, true);
    let u = twoSiteUpdate(gram, rhs, d, normSq);
    if (!(u.resid < prev * (1 + 1e-9))) {
      const Bcur = permuteAxes(cores[e.b]!, coreShape(net, e.b), inverse(permB));
      const v = oneSiteUpdate(gram, rhs, Bcur, d, normSq);
      if (v.resid < u.resid) u = v;
    }
    cores[e.a] = permuteAxes(u.A, shapeA, permA);
    cores[e.b] = permuteAxes(u.B, shapeB, permB);
    return u.resid;
  };

  const fit = (net: TensorNetwork, init: readonly Float64Array[] | null, o: FitOptions): TnFit => {
    evaluations++;
    if (net.cores.length < 3) throw new RangeError('alsFitter: networks of at least 3 cores');
    const exe = executable(net);
    const cores = (init ?? randomCores(net)).map((c) => Float64Array.from(c));
    const E = net.edges.length;
    let rse = Infinity;
    let sweeps = 0;
    if (o.first?.length) {
      let resid = normSq;
      for (const i of o.first) resid = updateEdge(net, exe, cores, i, Infinity);
      rse = Math.sqrt(Math.max(resid, 0) / normSq);
      if (o.target !== undefined && rse <= o.target) return { net, cores, rse, sweeps };
    }
    while (sweeps < o.sweeps) {
      const prev = rse;
      sweeps++;
      // Back and forth, so that neighbouring cores see each other's updates both ways.
      const forward = [...Array(E).keys()];
      const order = sweeps % 2 === 1 ? forward : forward.reverse();
      let resid = rse === Infinity ? Infinity : rse * rse * normSq;
      for (const i of order) resid = updateEdge(net, exe, cores, i, resid);
      rse = Math.sqrt(Math.max(resid, 0) / normSq);
      if (o.target !== undefined && rse <= o.target) break;
      if (o.stall !== undefined && prev < Infinity && prev - rse < o.stall * prev) break;
    }
    return { net, cores, rse, sweeps };
  };

  const unfoldingGrams = (rowSets: readonly (readonly number[])[]): Float64Array[] => {
    const L = 'abcdefghijklmnopqrstuvwxyz';
    if (dims.length > 26) throw new RangeError('unfoldingGrams: at most 26 modes');
    const a = dims.map((_, i) => L[i]!).join('');
    const gr = graph('tn-unfolding-grams', (g) => {
      const t = g.input('x', f32(...dims));
      const out: Record<string, Tensor> = {};
      rowSets.forEach((rows, k) => {
        const b = dims.map((_, i) => (rows.includes(i) ? L[i]!.toUpperCase() : L[i]!)).join('');
        const n = prod(rows.map((m) => dims[m]!));
        out[`gram${k}`] = g.reshape(g.einsum(`${a},${b}->${rows.map((m) => L[m]!).join('')}${rows.map((m) => L[m]!.toUpperCase()).join('')}`, t, t), [n, n]);
      });
      return out;
    });
    const r = compile(gr, { precision: 'f64' }).runSync({ x: { dtype: 'f32', shape: dims, data: x } }, rowSets.map((_, k) => `gram${k}`), { update: false });
    return rowSets.map((_, k) => Float64Array.from(r[`gram${k}`]!.data));
  };

  return {
    dims,
    normSq,
    fit,
    unfoldingGrams,
    svdCores: (net) => svdCores(net, x),
    get evaluations() { return evaluations; },
  };
}
