import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compile, f32, fromJSON, graph, GraphError, planLaunches, toDot, toJSON } from '../index.js';
import { arbGraph } from './arbitraries.js';

const seed = process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {};

describe('graph serialization', () => {
  it('JSON round-trip of random graphs is exact', () => {
    fc.assert(
      fc.property(arbGraph({ maxOps: 10, params: true }), ({ graph: g }) => {
        const text = toJSON(g);
        const back = fromJSON(text);
        expect(back).toEqual(g);
        expect(toJSON(back)).toBe(text);
      }),
      { numRuns: 200, ...seed },
    );
  });

  it('a round-tripped graph computes the same outputs', () => {
    fc.assert(
      fc.property(arbGraph({ maxOps: 6, params: true }), ({ graph: g, feeds, variables }) => {
        const a = compile(g);
        const b = compile(fromJSON(toJSON(g)));
        a.setVariables(variables);
        b.setVariables(variables);
        const ra = a.runSync(feeds), rb = b.runSync(feeds);
        for (const k of Object.keys(ra)) expect(Array.from(rb[k]!.data)).toEqual(Array.from(ra[k]!.data));
      }),
      { numRuns: 100, ...seed },
    );
  });

  it('numbers JSON cannot carry (NaN, ±Infinity, -0) survive', () => {
    const g = graph('special', (b) => {
      const x = b.input('x', f32(3));
      const c = b.constant([NaN, Infinity, -0], f32(3));
      return { y: b.add(b.pad(x, [1], [1], -Infinity), b.pad(c, [1], [1], -0)) };
    });
    const back = fromJSON(toJSON(g));
    expect(back).toEqual(g);
    expect(Object.is((back.nodes.find((n) => n.op === 'const')!.attrs['data'] as number[])[2], -0)).toBe(true);
  });

  it('malformed JSON is refused with a GraphError that says why', () => {
    expect(() => fromJSON('{')).toThrowError(GraphError);
    expect(() => fromJSON('{"format":"other"}')).toThrowError(/format 'other'/);
    const g = graph('g', (b) => ({ y: b.relu(b.input('x', f32(2))) }));
    const dangling = toJSON(g).replace('"inputs":[0]', '"inputs":[7]');
    expect(() => fromJSON(dangling)).toThrowError(/reads 7, which is not an earlier node/);
  });

  it('DOT export names every node and edge, and can cluster by kernel', () => {
    const g = graph('mlp', (b) => {
      const x = b.input('x', f32('batch', 4));
      const w = b.param('w', f32(4, 2));
      return { y: b.relu(b.matmul(x, w)) };
    });
    const dot = toDot(g);
    expect(dot.startsWith('digraph "mlp" {')).toBe(true);
    for (const n of g.nodes) expect(dot).toContain(`n${n.id} [label=`);
    expect(dot).toContain('n0 -> n2;');
    expect(dot).toContain('input x\\nf32[batch, 4]');
    const plan = compile(g).plan({ x: [3, 4] });
    const groups = new Map<number, string>();
    for (const s of planLaunches(plan)) for (const id of s.fused) groups.set(id, s.kernel.name);
    expect(toDot(g, { groups })).toContain('subgraph cluster_0');
  });
});
