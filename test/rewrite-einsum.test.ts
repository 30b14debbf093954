// Contraction ordering on random tensor networks: the chosen order never costs more FLOPs than
// left to right, equals the exhaustive optimum over every pairwise order where that is computable
// (up to 6 tensors), and the lowered graph computes what the direct n-ary einsum computes (and
// what the builder's left-to-right einsum computes), gradients included.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { graph } from '../graphs/builder.js';
import { f32, numel, type Tensor } from '../graphs/types.js';
import { grad } from '../graphs/autodiff.js';
import { tensor, type HostTensor } from '../runtime/tensor.js';
import { einsumNode, leftToRightPath } from '../ops/einsum.js';
import { contractionOrder, pathFlops } from '../graphs/rewrite/contraction.js';
import { optimizeGraph } from '../graphs/rewrite/passes.js';
import { arbTensorValues, fcParams } from './arbitraries.js';
import { expectSameOutputs } from './rewrite-util.js';

interface Network {
  readonly inputs: string[][];
  readonly output: string[];
  readonly sizes: Map<string, number>;
}

function arbNetwork(minN: number, maxN: number, letters: string, maxSize: number): fc.Arbitrary<Network> {
  const pool = [...letters];
  return fc
    .record({
      sizes: fc.array(fc.integer({ min: 1, max: maxSize }), { minLength: pool.length, maxLength: pool.length }),
      inputs: fc.array(fc.subarray(pool, { minLength: 1, maxLength: 3 }), { minLength: minN, maxLength: maxN }),
      keep: fc.array(fc.nat({ max: 3 }), { minLength: pool.length, maxLength: pool.length }),
    })
    .map(({ sizes, inputs, keep }) => {
      const used = pool.filter((c) => inputs.some((ix) => ix.includes(c)));
      return { inputs, output: used.filter((c) => keep[pool.indexOf(c)] === 0), sizes: new Map(pool.map((c, i) => [c, sizes[i]!])) };
    });
}

const specOf = (n: Network) => `${n.inputs.map((ix) => ix.join('')).join(',')}->${n.output.join('')}`;
const shapeOf = (n: Network, ix: readonly string[]) => ix.map((c) => n.sizes.get(c)!);

/** The cheapest of every pairwise contraction order (no subset tricks: plain enumeration). */
function exhaustive(n: Network): number {
  let best = Infinity;
  const go = (count: number, path: [number, number][]): void => {
    if (count === 1) {
      best = Math.min(best, pathFlops(n.inputs, n.output, n.sizes, path));
      return;
    }
    for (let i = 0; i < count; i++) for (let j = i + 1; j < count; j++) go(count - 1, [...path, [i, j]]);
  };
  go(n.inputs.length, []);
  return best;
}

describe('einsum contraction ordering', () => {
  it('never costs more than left to right, and is optimal where the optimum is computable', () => {
    fc.assert(
      fc.property(arbNetwork(4, 10, 'abcdefghij', 6), (net) => {
        const order = contractionOrder(net.inputs, net.output, net.sizes);
        const ltr = pathFlops(net.inputs, net.output, net.sizes, leftToRightPath(net.inputs.length));
        expect(order.leftToRightFlops).toBe(ltr);
        expect(order.flops).toBeLessThanOrEqual(ltr);
        expect(pathFlops(net.inputs, net.output, net.sizes, order.path)).toBe(order.flops);
        if (net.inputs.length <= 6) expect(order.flops).toBe(exhaustive(net));
      }),
      fcParams(60),
    );
  });

  it('greedy order (beyond the exact limit) never costs more than left to right', () => {
    fc.assert(
      fc.property(arbNetwork(4, 12, 'abcdefghijkl', 6), (net) => {
        const order = contractionOrder(net.inputs, net.output, net.sizes, { optimalLimit: 0 });
        expect(order.method).not.toBe('optimal');
        expect(order.flops).toBeLessThanOrEqual(order.leftToRightFlops);
      }),
      fcParams(60),
    );
  });

  it('the lowered contraction equals the direct einsum and the left-to-right one', () => {
    const cases = arbNetwork(4, 6, 'abcdef', 3).chain((net) =>
      fc.tuple(...net.inputs.map((ix) => arbTensorValues(shapeOf(net, ix), { min: -1, max: 1 }))).map((vals) => ({ net, vals })));
    fc.assert(
      fc.property(cases, ({ net, vals }) => {
        const spec = specOf(net);
        const g = graph('network', (b) => {
          const ts = net.inputs.map((ix, j) => b.input(`t${j}`, f32(...shapeOf(net, ix))));
          return { direct: einsumNode(b, spec, ...ts), ltr: b.einsum(spec, ...ts) };
        });
        const r = optimizeGraph(g);
        expect(r.graph.nodes.some((n) => n.op === 'einsum')).toBe(false);
        const note = r.passes[0]!.result.log.find((x) => x.rule === 'einsum-order')!.note!;
        expect(note).toMatch(/FLOPs left to right/);
        const feeds: Record<string, HostTensor> = {};
        net.inputs.forEach((ix, j) => (feeds[`t${j}`] = tensor(vals[j]!, shapeOf(net, ix))));
        expectSameOutputs(g, r.graph, feeds, {}, 1e-4, 1e-5);
      }),
      fcParams(30),
    );
  });

  it("an einsum node's gradient, lowered, equals the builder einsum's", () => {
    const cases = arbNetwork(3, 4, 'abcde', 3).chain((net) =>
      fc.tuple(...net.inputs.map((ix) => arbTensorValues(shapeOf(net, ix), { min: -1, max: 1 }))).map((vals) => ({ net, vals })));
    fc.assert(
      fc.property(cases, ({ net, vals }) => {
        const spec = specOf(net);
        const make = (node: boolean) => graph('network', (b) => {
          const ts: Tensor[] = net.inputs.map((ix, j) => b.param(`t${j}`, f32(...shapeOf(net, ix)), b.init.zeros()));
          const y = node ? einsumNode(b, spec, ...ts) : b.einsum(spec, ...ts);
          const w = b.constant(Array.from({ length: numel(y.shape as number[]) }, (_, i) => ((i * 7) % 5) - 2), f32(...y.shape));
          return { loss: b.sum(b.mul(y, w)) };
        });
        const variables: Record<string, HostTensor> = {};
        net.inputs.forEach((ix, j) => (variables[`param:t${j}`] = tensor(vals[j]!, shapeOf(net, ix))));
        const viaNode = optimizeGraph(grad(make(true), 'loss')).graph;
        expect(viaNode.nodes.some((n) => n.op === 'einsum')).toBe(false);
        expectSameOutputs(grad(make(false), 'loss'), viaNode, {}, variables, 1e-4, 1e-5);
      }),
      fcParams(20),
    );
  });
});
