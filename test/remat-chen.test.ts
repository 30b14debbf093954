import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chenSchedule } from '../scheduler/remat/chen.js';
import { baselinePeak, plainSchedule, simulate, totalCompute, type CostGraph } from '../scheduler/remat/index.js';

const seed = process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {};

/**
 * A training chain: forward f0..f(m-1), a loss, then the backward g(m-1)..g0 where g_i reads the
 * activation f_i and the gradient after it (the loss for the last). Returns the graph and the
 * forward ids (the layers and the loss).
 */
function trainingChain(m: number, bytes = 10): { graph: CostGraph; forward: number[] } {
  const nodes = Array.from({ length: 2 * m + 1 }, (_, id) => ({ id, compute: 1, bytes }));
  const edges: [number, number][] = [];
  for (let i = 1; i <= m; i++) edges.push([i - 1, i]); // f chain, then the loss
  for (let k = 0; k < m; k++) {
    const g = m + 1 + k; // gradient of layer i = m-1-k
    edges.push([m - 1 - k, g], [g - 1, g]);
  }
  return { graph: { nodes, edges }, forward: Array.from({ length: m + 1 }, (_, i) => i) };
}

/** Random DAGs with a forward prefix: ids in topological order, 1-3 inputs, some long edges. */
const arbCase = fc.integer({ min: 2, max: 60 }).chain((n) =>
  fc
    .tuple(
      fc.array(fc.record({ compute: fc.integer({ min: 0, max: 50 }), bytes: fc.integer({ min: 1, max: 100 }) }), { minLength: n, maxLength: n }),
      fc.array(fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 3 }), { minLength: n, maxLength: n }),
      fc.integer({ min: 0, max: n }),
      fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
    )
    .map(([costs, picks, split, segments]) => {
      const edges: [number, number][] = [];
      picks.forEach((ps, j) => {
        if (j === 0) return;
        for (const p of new Set(ps.map((x) => (x < 0.6 ? Math.max(0, j - 1 - Math.floor(x * 5)) : Math.floor(x * j))))) edges.push([p, j]);
      });
      const graph: CostGraph = { nodes: costs.map((c, id) => ({ id, ...c })), edges };
      return { graph, forward: Array.from({ length: split }, (_, i) => i), segments };
    }),
);

describe("Chen's √n checkpointing", () => {
  it('is a valid schedule on any DAG and any forward set, recomputing each forward node at most once', () => {
    fc.assert(
      fc.property(arbCase, ({ graph, forward, segments }) => {
        const chen = chenSchedule(graph, { forward, ...(segments ? { segments } : {}) });
        const sim = simulate(graph, chen.schedule);
        expect(sim.error).toBeUndefined();
        expect(sim.valid).toBe(true);
        expect(new Set(chen.recomputed).size).toBe(chen.recomputed.length);
        expect(sim.cost).toBeLessThanOrEqual(totalCompute(graph) + chen.recomputed.reduce((s, v) => s + graph.nodes[v]!.compute, 0));
      }),
      { numRuns: 300, ...seed },
    );
  });

  it('on a long training chain holds about 2√n values instead of n, for at most one extra forward pass', () => {
    const m = 100;
    const { graph, forward } = trainingChain(m);
    const chen = chenSchedule(graph, { forward });
    const sim = simulate(graph, chen.schedule);
    expect(sim.valid).toBe(true);
    expect(baselinePeak(graph)).toBeGreaterThanOrEqual(m * 10);
    expect(chen.segments).toBe(10);
    expect(sim.peak).toBeLessThanOrEqual((3 * Math.sqrt(m) + 3) * 10);
    // the last segment is not recomputed: its backward follows its forward
    expect(chen.recomputed.length).toBeLessThan(m);
    expect(sim.overhead).toBeLessThanOrEqual(m / (2 * m + 1));
    expect(sim.peak).toBeLessThan(simulate(graph, plainSchedule(graph)).peak / 3);
  });

  it('keeps the segment boundaries of a chain as checkpoints', () => {
    const { graph, forward } = trainingChain(16);
    const chen = chenSchedule(graph, { forward, segments: 4 });
    // 17 values the backward reads (f0..f15 and the loss), 5 per segment: boundaries after f4,
    // f9 and f14; the last segment (f15, the loss) is kept whole
    expect(chen.segments).toBe(4);
    expect(chen.checkpoints).toEqual([4, 9, 14, 15, 16]);
  });

  it('without a backward pass it is the plain schedule', () => {
    const { graph } = trainingChain(20);
    const chen = chenSchedule(graph);
    expect(chen.recomputed).toEqual([]);
    expect(simulate(graph, chen.schedule).peak).toBe(baselinePeak(graph));
  });
});
