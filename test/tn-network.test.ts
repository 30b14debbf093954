// Tensor networks as einsum graphs: a TT/TR/Tucker/general network with given ranks has the
// stated parameter count, and its contraction by rheo equals a direct dense summation on the host.
// Also the host linear algebra ALS relies on. FC_SEED replays a failing run.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { fcParams } from './arbitraries.js';
import {
  coreShape, denseReconstruct, fullyConnected, generalNetwork, paramCount, tensorRing, tensorTrain, tucker, type TensorNetwork,
} from '../graphs/tn/network.js';
import { lowRankSplit, solveSpd, symmetricEigen } from '../graphs/tn/linalg.js';
import { oneSiteUpdate, pairResidual, twoSiteUpdate } from '../graphs/tn/pair-solve.js';
import { reconstruct } from '../runtime/tn-fit.js';
import { mulberry32 } from '../runtime/rng.js';

const prod = (xs: readonly number[]): number => xs.reduce((p, x) => p * x, 1);

/** A network and the parameter count its family's formula gives, independently of coreShape. */
const arbNetwork: fc.Arbitrary<{ net: TensorNetwork; expected: number }> = fc
  .record({ d: fc.integer({ min: 3, max: 4 }), family: fc.constantFrom('tt', 'tr', 'tucker', 'full', 'star'), seed: fc.integer({ min: 0, max: 1e9 }) })
  .map(({ d, family, seed }) => {
    const rand = mulberry32(seed);
    const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
    const dims = Array.from({ length: d }, () => int(2, 3));
    if (family === 'tt') {
      const r = Array.from({ length: d - 1 }, () => int(1, 3));
      return { net: tensorTrain(dims, r), expected: dims.reduce((s, n, k) => s + (r[k - 1] ?? 1) * n * (r[k] ?? 1), 0) };
    }
    if (family === 'tr') {
      const r = Array.from({ length: d }, () => int(1, 3));
      return { net: tensorRing(dims, r), expected: dims.reduce((s, n, k) => s + r[(k + d - 1) % d]! * n * r[k]!, 0) };
    }
    if (family === 'tucker') {
      const r = dims.map((n) => int(1, n));
      return { net: tucker(dims, r), expected: prod(r) + dims.reduce((s, n, k) => s + n * r[k]!, 0) };
    }
    if (family === 'full') {
      const r = Array.from({ length: (d * (d - 1)) / 2 }, () => int(1, 2));
      const net = fullyConnected(dims, r);
      return { net, expected: dims.reduce((s, n, k) => s + n * prod(net.edges.filter((e) => e.a === k || e.b === k).map((e) => e.rank)), 0) };
    }
    // a star whose centre carries two modes and whose leaves carry one each
    const r = Array.from({ length: d - 2 }, () => int(1, 3));
    const net = generalNetwork(dims, [[0, 1], ...dims.slice(2).map((_, i) => [i + 2])], r.map((rank, i) => [0, i + 1, rank] as const));
    return { net, expected: dims[0]! * dims[1]! * prod(r) + dims.slice(2).reduce((s, n, i) => s + n * r[i]!, 0) };
  });

function randomCores(net: TensorNetwork, seed: number): Float64Array[] {
  const rand = mulberry32(seed);
  return net.cores.map((_, k) => Float64Array.from({ length: prod(coreShape(net, k)) }, () => rand() * 2 - 1));
}

describe('tensor networks', () => {
  it('a network with given ranks has the parameter count of its family', () => {
    fc.assert(fc.property(arbNetwork, ({ net, expected }) => {
      expect(paramCount(net)).toBe(expected);
    }), fcParams(200));
  });

  it('the einsum contraction equals a direct dense reconstruction', () => {
    fc.assert(fc.property(arbNetwork, fc.integer({ min: 0, max: 1e9 }), ({ net }, seed) => {
      const cores = randomCores(net, seed);
      const viaRheo = reconstruct(net, cores);
      const direct = denseReconstruct(net, cores);
      expect(viaRheo.length).toBe(prod(net.dims));
      const scale = Math.max(1, ...direct.map(Math.abs));
      direct.forEach((v, i) => expect(Math.abs(viaRheo[i]! - v)).toBeLessThanOrEqual(1e-9 * scale));
    }), fcParams(40));
  });

  it('networks refuse ranks below 1, modes carried twice and parallel edges', () => {
    expect(() => tensorTrain([2, 2, 2], [0, 1])).toThrow(RangeError);
    expect(() => generalNetwork([2, 2], [[0, 1], [1]], [])).toThrow(RangeError);
    expect(() => generalNetwork([2, 2], [[0], [1]], [[0, 1, 2], [1, 0, 2]])).toThrow(RangeError);
  });
});

describe('host linear algebra for ALS', () => {
  const arbMatrix = (m: number, n: number) => fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: m * n, maxLength: m * n }).map((a) => Float64Array.from(a));

  it('solveSpd solves X·A = B for a positive definite A', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 1e9 }), (n, m, seed) => {
      const rand = mulberry32(seed);
      const F = Float64Array.from({ length: n * n }, () => rand() - 0.5);
      const A = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
        let s = i === j ? 1 : 0;
        for (let k = 0; k < n; k++) s += F[i * n + k]! * F[j * n + k]!;
        A[i * n + j] = s;
      }
      const B = Float64Array.from({ length: m * n }, () => rand() - 0.5);
      const X = solveSpd(A, B, n, 0);
      for (let r = 0; r < m; r++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += X[r * n + k]! * A[k * n + j]!;
        expect(Math.abs(s - B[r * n + j]!)).toBeLessThan(1e-9);
      }
    }), fcParams(100));
  });

  it('symmetricEigen: A·v = λ·v for each eigenpair', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 7 }).chain((n) => fc.tuple(fc.constant(n), arbMatrix(n, n))), ([n, F]) => {
      const S = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) S[i * n + j] = F[i * n + j]! + F[j * n + i]!;
      const { values, vectors } = symmetricEigen(S, n);
      for (let c = 0; c < n; c++) for (let i = 0; i < n; i++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += S[i * n + k]! * vectors[k * n + c]!;
        expect(Math.abs(s - values[c]! * vectors[i * n + c]!)).toBeLessThan(1e-8);
      }
      for (let c = 1; c < n; c++) expect(values[c]!).toBeLessThanOrEqual(values[c - 1]! + 1e-12);
    }), fcParams(100));
  });

  it('lowRankSplit reproduces a matrix of rank at most r exactly', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 1e9 }), (m, n, r, seed) => {
      const rand = mulberry32(seed);
      const U = Float64Array.from({ length: m * r }, () => rand() - 0.5);
      const V = Float64Array.from({ length: r * n }, () => rand() - 0.5);
      const M = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let k = 0; k < r; k++) M[i * n + j] = M[i * n + j]! + U[i * r + k]! * V[k * n + j]!;
      const { A, B } = lowRankSplit(M, m, n, r);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += A[i * r + k]! * B[k * n + j]!;
        expect(Math.abs(s - M[i * n + j]!)).toBeLessThan(1e-9);
      }
    }), fcParams(100));
  });

  it('a one-site pair update never increases the error, and both updates report it exactly', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 1e9 }), (seed) => {
      const rand = mulberry32(seed);
      const d = { PA: 1 + Math.floor(rand() * 3), PB: 1 + Math.floor(rand() * 3), RA: 1 + Math.floor(rand() * 3), RB: 1 + Math.floor(rand() * 3), r: 1 + Math.floor(rand() * 3) };
      const R = d.RA * d.RB;
      // a consistent environment: gram = EᵀE and rhs = X·E for a target X [PA·PB, N]
      const N = 1 + Math.floor(rand() * 6);
      const E = Float64Array.from({ length: N * R }, () => rand() - 0.5);
      const X = Float64Array.from({ length: d.PA * d.PB * N }, () => rand() - 0.5);
      const gram = new Float64Array(R * R);
      for (let i = 0; i < R; i++) for (let j = 0; j < R; j++) for (let k = 0; k < N; k++) gram[i * R + j] = gram[i * R + j]! + E[k * R + i]! * E[k * R + j]!;
      const rhs = new Float64Array(d.PA * d.PB * R);
      for (let p = 0; p < d.PA * d.PB; p++) for (let j = 0; j < R; j++) for (let k = 0; k < N; k++) rhs[p * R + j] = rhs[p * R + j]! + X[p * N + k]! * E[k * R + j]!;
      const normSq = X.reduce((s, v) => s + v * v, 0);
      const A0 = Float64Array.from({ length: d.PA * d.RA * d.r }, () => rand() - 0.5);
      const B0 = Float64Array.from({ length: d.r * d.PB * d.RB }, () => rand() - 0.5);
      const before = pairResidual(gram, rhs, A0, B0, d, normSq);
      const one = oneSiteUpdate(gram, rhs, B0, d, normSq);
      expect(one.resid).toBeLessThanOrEqual(before + 1e-9);
      expect(one.resid).toBeCloseTo(pairResidual(gram, rhs, one.A, one.B, d, normSq), 6);
      const two = twoSiteUpdate(gram, rhs, d, normSq);
      expect(two.resid).toBeCloseTo(pairResidual(gram, rhs, two.A, two.B, d, normSq), 6);
    }), fcParams(100));
  });
});

describe('replacing a parameter by a network', () => {
  it('the rewritten graph computes what the dense graph computes with the reconstructed weight', async () => {
    const { graph, f32, compile } = await import('../index.js');
    const { replaceParamByNetwork, coreParamName } = await import('../graphs/tn/replace.js');
    fc.assert(fc.property(fc.integer({ min: 0, max: 1e9 }), (seed) => {
      const rand = mulberry32(seed);
      const net = generalNetwork([2, 3, 3, 2], [[0, 2], [1, 3]], [[0, 1, 1 + Math.floor(rand() * 3)]]);
      const dense = graph('layer', (g) => {
        const x = g.input('x', f32(4, 6));
        return { y: g.relu(g.matmul(x, g.param('w', f32(6, 6)))) };
      });
      const cores = randomCores(net, seed);
      // modes (i1, i2, o1, o2) of sizes (2, 3, 3, 2) are w's row-major layout [i1·3 + i2, o1·2 + o2]
      const w = reconstruct(net, cores);
      const x = Float32Array.from({ length: 24 }, () => rand() - 0.5);
      const a = compile(dense);
      a.setVariables({ 'param:w': Float32Array.from(w) });
      const b = compile(replaceParamByNetwork(dense, 'w', net));
      b.setVariables(Object.fromEntries(cores.map((c, k) => [`param:${coreParamName('w', k)}`, Float32Array.from(c)])));
      const ya = a.runSync({ x: { dtype: 'f32', shape: [4, 6], data: x } })['y']!.data;
      const yb = b.runSync({ x: { dtype: 'f32', shape: [4, 6], data: x } })['y']!.data;
      ya.forEach((v, i) => expect(yb[i]!).toBeCloseTo(v, 4));
    }), fcParams(20));
  });
});
