// Structure search on small planted networks: the greedy search recovers a planted tensor
// train's ranks exactly, TnALE and the one-shot read find the planted ranks of small TT, Tucker
// and ring networks, and ALS through rheo fits a network of the right ranks to within 1e-6.
import { describe, expect, it } from 'vitest';
import { coreShape, paramCount, ranksOf, tensorRing, tensorTrain, tucker, withRanks, type TensorNetwork } from '../graphs/tn/network.js';
import { edgeBound, greedySearch, oneShotSearch, resizeCores, tnaleSearch } from '../graphs/tn/search.js';
import { svdCores } from '../graphs/tn/svd-init.js';
import { alsFitter, reconstruct, relativeError } from '../runtime/tn-fit.js';
import { mulberry32 } from '../runtime/rng.js';

function planted(net: TensorNetwork, seed: number): Float64Array {
  const rand = mulberry32(seed);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return reconstruct(net, net.cores.map((_, k) => Float64Array.from({ length: coreShape(net, k).reduce((p, d) => p * d, 1) }, gauss)));
}

const ones = (net: TensorNetwork): TensorNetwork => withRanks(net, net.edges.map(() => 1));

describe('tensor-network structure search', () => {
  it('the greedy search recovers a planted 4×4×4×4 tensor train exactly', () => {
    const net = tensorTrain([4, 4, 4, 4], [2, 3, 2]);
    const x = planted(net, 5);
    const r = greedySearch(alsFitter(x, net.dims, { seed: 1 }), ones(net), { target: 1e-6 });
    expect(r.best).not.toBeNull();
    expect(ranksOf(r.best!.net)).toEqual([2, 3, 2]);
    expect(relativeError(reconstruct(r.best!.net, r.best!.cores), x)).toBeLessThanOrEqual(1e-6);
  });

  it('TnALE finds the planted ranks of a small Tucker network', () => {
    const net = tucker([4, 4, 4, 4], [2, 3, 3, 2]);
    const x = planted(net, 6);
    const r = tnaleSearch(alsFitter(x, net.dims, { seed: 2 }), ones(net), { target: 1e-6 });
    expect(r.best && paramCount(r.best.net)).toBe(paramCount(net));
  });

  it('the one-shot read finds the planted ranks of a tensor ring and a tensor train in one fit', () => {
    for (const net of [tensorRing([3, 3, 3, 3, 3], [2, 1, 2, 3, 2]), tensorTrain([3, 4, 4, 3], [3, 4, 2])]) {
      const x = planted(net, 7);
      const r = oneShotSearch(alsFitter(x, net.dims, { seed: 3 }), ones(net), { target: 1e-6 });
      expect(r.best && ranksOf(r.best.net)).toEqual(ranksOf(net));
      expect(r.evaluations).toBe(1);
    }
  });

  it('cores computed from the data (TT-SVD, HOSVD, TR-SVD) start a fit that recovers planted networks in one fit', () => {
    // trees of the target's ranks: the SVD cores reproduce it, and one two-site update confirms
    for (const net of [tensorTrain([4, 5, 5, 4], [3, 4, 3]), tucker([4, 4, 4, 4], [2, 3, 3, 2])]) {
      const x = planted(net, 8);
      expect(relativeError(reconstruct(net, svdCores(net, x)!), x)).toBeLessThanOrEqual(1e-10);
      const r = oneShotSearch(alsFitter(x, net.dims, { seed: 4 }), ones(net), { target: 1e-6 });
      expect(r.evaluations).toBe(1);
      expect(r.best!.sweeps).toBe(0);
      expect(ranksOf(r.best!.net)).toEqual(ranksOf(net));
      expect(relativeError(reconstruct(r.best!.net, r.best!.cores), x)).toBeLessThanOrEqual(1e-6);
    }
    // a ring: TR-SVD cores have the planted shapes and the single fit from them reaches ε
    const ring = tensorRing([4, 4, 4, 4, 4], [2, 2, 3, 2, 2]);
    const x = planted(ring, 9);
    const init = svdCores(ring, x)!;
    init.forEach((c, k) => expect(c.length).toBe(coreShape(ring, k).reduce((p, d) => p * d, 1)));
    const r = oneShotSearch(alsFitter(x, ring.dims, { seed: 5 }), ones(ring), { target: 1e-5 });
    expect(r.evaluations).toBe(1);
    expect(ranksOf(r.best!.net)).toEqual(ranksOf(ring));
    expect(relativeError(reconstruct(r.best!.net, r.best!.cores), x)).toBeLessThanOrEqual(1e-5);
  });

  it('resizing cores keeps the overlapping entries and zero-pads the rest', () => {
    const a = tensorTrain([2, 2, 2], [1, 2]);
    const b = withRanks(a, [2, 1]);
    const cores = a.cores.map((_, k) => Float64Array.from({ length: coreShape(a, k).reduce((p, d) => p * d, 1) }, (_, i) => i + 1));
    const out = resizeCores(a, cores, b);
    expect([...out[0]!]).toEqual([1, 0, 2, 0]); // [2, 1] → [2, 2]
    expect([...out[1]!]).toEqual([1, 0, 3, 0]); // (i, r0, r1) [2, 1, 2] → [2, 2, 1]: r0 padded, r1 cut
    expect(edgeBound(tensorTrain([2, 3, 4], [1, 1]), 0)).toBe(2);
    expect(edgeBound(tensorRing([2, 3, 4], [1, 1, 1]), 0, 9)).toBe(9);
  });
});
