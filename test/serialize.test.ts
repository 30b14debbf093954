import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { adam, compile, dim, f32, fromJSON, grad, graph, GraphError, planLaunches, tensor, toDot, toJSON, UnknownOpError } from '../index.js';
import { arbGraph, describeGraph, fcParams } from './arbitraries.js';

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

/** A graph JSON's parsed form, to edit by hand as a user would. */
type Doc = { nodes: { id: number; op: string; name?: string; dtype: string; shape: (number | string)[]; attrs: Record<string, unknown>; inputs: number[] }[] } & Record<string, unknown>;
const edit = (g: ReturnType<typeof graph>, f: (d: Doc) => void): string => {
  const d = JSON.parse(toJSON(g)) as Doc;
  f(d);
  return JSON.stringify(d);
};
const refusal = (text: string): GraphError => {
  try {
    fromJSON(text);
  } catch (e) {
    if (e instanceof GraphError) return e;
    throw new Error(`expected a GraphError, got ${String(e)}`);
  }
  throw new Error('fromJSON accepted the graph');
};

describe('graph JSON is type-checked node by node', () => {
  const B = dim('batch');
  const mlp = graph('mlp', (g) => {
    const x = g.input('x', f32(B, 4));
    const y = g.input('y', f32(B, 3));
    const w = g.param('w', f32(4, 3), g.init.normal(0.1));
    const logits = g.matmul(x, w);
    return { logits, loss: g.softmaxCrossEntropy(logits, y) };
  });
  const matmulId = mlp.nodes.find((n) => n.op === 'matmul')!.id;

  it('a node declaring another shape or dtype than its op infers is refused, naming the node; the JSON unchanged round-trips', () => {
    const DTYPES = ['f32', 'f16', 'i32', 'bool', 'f64'];
    fc.assert(
      fc.property(arbGraph({ maxOps: 8, params: true }), fc.nat(), fc.nat(), fc.nat(), ({ graph: g }, pickNode, pickKind, pickAt) => {
        const text = toJSON(g);
        expect(toJSON(fromJSON(text))).toBe(text);
        const doc = JSON.parse(text) as Doc;
        const i = pickNode % doc.nodes.length;
        const n = doc.nodes[i]!;
        const kind = pickKind % 5;
        if (kind === 0) {
          const others = DTYPES.filter((d) => d !== n.dtype);
          n.dtype = others[pickAt % others.length]!;
        } else if (kind === 1 && n.shape.length > 0) {
          const k = pickAt % n.shape.length;
          n.shape[k] = typeof n.shape[k] === 'number' ? (n.shape[k] as number) + 1 + (pickAt % 3) : 7;
        } else if (kind === 2 && n.shape.length > 0) {
          n.shape.splice(pickAt % n.shape.length, 1);
        } else if (kind === 3) {
          n.shape.splice(pickAt % (n.shape.length + 1), 0, 2 + (pickAt % 3));
        } else {
          const k = pickAt % (n.shape.length + 1);
          if (k < n.shape.length) n.shape[k] = 'batch';
          else n.shape.push('batch');
        }
        const e = refusal(JSON.stringify(doc));
        const label = `node ${i} (${n.op}${n.name !== undefined ? ` '${n.name}'` : ''})`;
        if (!e.message.includes(label) || e.node !== i) throw new Error(`the refusal does not name ${label}: ${e.message}\n${describeGraph(g)}`);
      }),
      fcParams(150),
    );
  });

  it('a matmul declared [batch, 99] is refused with the declared and the inferred type', () => {
    const e = refusal(edit(mlp, (d) => (d.nodes[matmulId]!.shape = ['batch', 99])));
    expect(e.node).toBe(matmulId);
    expect(e.message).toContain(`node ${matmulId} (matmul) declares f32[batch, 99], but matmul of f32[batch, 4], f32[4, 3] gives f32[batch, 3]`);
  });

  it('a param declared [5, 3] where the matmul needs [4, 3] is refused at the matmul', () => {
    const e = refusal(edit(mlp, (d) => {
      const w = d.nodes.find((n) => n.name === 'w')!;
      w.shape = [5, 3];
      w.attrs['shape'] = [5, 3];
    }));
    expect(e.node).toBe(matmulId);
    expect(e.message).toMatch(/node \d+ \(matmul\) does not type-check on inputs f32\[batch, 4\], f32\[5, 3\]: matmul: inner dimensions differ \(4 vs 5\)/);
    // only the node's shape edited: the param's own attributes disagree with it
    const e2 = refusal(edit(mlp, (d) => (d.nodes.find((n) => n.name === 'w')!.shape = [5, 3])));
    expect(e2.message).toContain("(param 'w') declares f32[5, 3], but its attributes give f32[4, 3]");
  });

  it('sources must declare known dtypes, positive integer or named dims and initializers that fit', () => {
    const input = mlp.nodes.find((n) => n.name === 'x')!.id;
    const w = mlp.nodes.find((n) => n.name === 'w')!.id;
    for (const dim of [0, -1, 1.5, '', null]) {
      const e = refusal(edit(mlp, (d) => {
        d.nodes[input]!.shape = [dim as number, 4];
        d.nodes[input]!.attrs['shape'] = [dim, 4];
      }));
      expect(e.message).toMatch(/node 0 \(input 'x'\)/);
    }
    expect(refusal(edit(mlp, (d) => (d.nodes[input]!.attrs['dtype'] = 'f64'))).message).toContain("node 0 (input 'x') declares unknown dtype \"f64\"");
    expect(refusal(edit(mlp, (d) => (d.nodes[w]!.attrs['init'] = { kind: 'lecun' }))).message).toContain(`node ${w} (param 'w') has initializer {"kind":"lecun"}`);
    expect(refusal(edit(mlp, (d) => (d.nodes[w]!.attrs['init'] = { kind: 'normal', std: -1 }))).message).toContain('normal initializer with std -1');
    expect(refusal(edit(mlp, (d) => (d.nodes[w]!.attrs['init'] = { kind: 'uniform', low: 1 }))).message).toContain("'uniform' initializer without a numeric 'high'");
    expect(refusal(edit(mlp, (d) => {
      d.nodes[w]!.shape = ['batch', 3];
      d.nodes[w]!.attrs['shape'] = ['batch', 3];
    })).message).toContain('must have a literal shape');
    expect(refusal(edit(mlp, (d) => delete d.nodes[input]!.name)).message).toContain('node 0 (input) has no name');
    expect(refusal(edit(mlp, (d) => (d.nodes[1]!.name = 'x'))).message).toContain("node 1 (input 'x') has the same name as node 0");
  });

  it('a training graph (optimizer state and updates) round-trips; an update of the wrong type is refused', () => {
    const step = compile(grad(mlp, 'loss'), { optimizer: adam(0.01), rewrite: false });
    const text = toJSON(step.graph);
    expect(toJSON(fromJSON(text))).toBe(text);
    const u = step.graph.updates[step.graph.updates.length - 1]!;
    const bad = JSON.parse(text) as Doc & { updates: { target: number; value: number }[] };
    bad.updates.push({ target: u.target, value: 0 });
    expect(refusal(JSON.stringify(bad)).message).toMatch(/update of node \d+ \((param|state) '[^']+'\) by node 0 \(input 'x'\): f32\[batch, 4\] does not fit/);
  });

  it('malformed documents are GraphErrors, never raw TypeErrors', () => {
    const good = JSON.parse(toJSON(mlp)) as Doc;
    const cases: unknown[] = [
      null, 3, 'text', [], {}, { format: 'rheo.graph/1' }, { ...good, nodes: null }, { ...good, nodes: [null] }, { ...good, nodes: [7] },
      { ...good, outputs: undefined }, { ...good, outputs: { y: 'one' } }, { ...good, updates: {} }, { ...good, updates: [null] }, { ...good, name: 5 },
    ];
    const node = (f: (n: Record<string, unknown>) => void) => {
      const d = structuredClone(good) as Doc;
      f(d.nodes[matmulId] as unknown as Record<string, unknown>);
      return d;
    };
    for (const field of ['id', 'op', 'inputs', 'dtype', 'shape']) cases.push(node((n) => delete n[field]));
    cases.push(node((n) => (n['inputs'] = null)), node((n) => (n['attrs'] = 5)), node((n) => (n['inputs'] = ['0'])), node((n) => (n['name'] = 3)));
    cases.push(node((n) => (n['op'] = 'transpose')), node((n) => (n['op'] = 'reshape')), node((n) => (n['op'] = 'einsum')));
    for (const c of cases) {
      const text = JSON.stringify(c) ?? 'undefined';
      expect(() => fromJSON(text), text.slice(0, 80)).toThrowError(GraphError);
    }
    expect(() => fromJSON('null')).toThrowError(/graph JSON is null, expected an object/);
    expect(() => fromJSON(undefined as unknown as string)).toThrowError(GraphError);
    expect(() => fromJSON(JSON.stringify(node((n) => (n['op'] = 'frob'))))).toThrowError(UnknownOpError);
  });
});
