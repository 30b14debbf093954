import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Subject } from 'rxjs';
import { compile, f32, graph, reactive, tensor, type HostTensor } from '../index.js';
import { arbGraph } from './arbitraries.js';

const seed = process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {};

function close(a: HostTensor, b: HostTensor): void {
  expect(a.shape).toEqual(b.shape);
  const x = Array.from(a.data), y = Array.from(b.data);
  x.forEach((v, i) => {
    if (Number.isNaN(y[i]!)) expect(v).toBeNaN();
    else expect(Math.abs(v - y[i]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(y[i]!)));
  });
}

/** new values for a feed: f32 values are rescaled and shifted, i32 indices are rotated */
function vary(t: HostTensor, k: number): HostTensor {
  if (t.dtype === 'i32') {
    const d = Array.from(t.data);
    return tensor(Int32Array.from(d.map((_, i) => d[(i + k) % d.length]!)), t.shape, 'i32');
  }
  return tensor(Float32Array.from(t.data, (v, i) => v * (0.5 + (k % 3) * 0.25) + ((i + k) % 5) * 0.1 - 0.2), t.shape);
}

describe('reactive runs', () => {
  it('after any input emits, the outputs equal a full recompute, and only affected outputs emit', () => {
    fc.assert(
      fc.property(
        arbGraph({ maxOps: 8 }).filter((r) => Object.keys(r.feeds).length >= 2),
        fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
        ({ graph: g, feeds }, emissions) => {
          const exe = compile(g);
          const names = Object.keys(feeds);
          const subjects = Object.fromEntries(names.map((n) => [n, new Subject<HostTensor>()]));
          const run = reactive(exe, subjects);
          const seen: { changed: readonly string[]; outputs: Record<string, HostTensor> }[] = [];
          const sub = run.results$.subscribe((r) => seen.push(r));
          const latest: Record<string, HostTensor> = { ...feeds };
          for (const n of names) subjects[n]!.next(latest[n]!);
          expect(seen).toHaveLength(1);
          const reference = compile(g);
          for (const k of emissions) {
            const name = names[k % names.length]!;
            latest[name] = vary(feeds[name]!, k);
            subjects[name]!.next(latest[name]!);
            const last = seen[seen.length - 1]!;
            expect(last.changed).toEqual([name]);
            const full = reference.runSync(latest);
            // dependence in the compiled graph: rewrites may remove one (where(c, x, x) is x)
            const cg = exe.graph;
            const inputId = cg.nodes.find((n) => n.op === 'input' && n.name === name)!.id;
            for (const [o, id] of Object.entries(cg.outputs)) {
              const depends = dependsOn(cg, id, inputId);
              expect(o in last.outputs).toBe(depends);
              if (depends) close(last.outputs[o]!, full[o]!);
            }
          }
          sub.unsubscribe();
        },
      ),
      { numRuns: 100, ...seed },
    );
  });

  it('an emission reruns only the kernels downstream of the input that changed', () => {
    const g = graph('two-towers', (b) => {
      const a = b.input('a', f32(4, 8));
      const c = b.input('c', f32(8, 3));
      const ha = b.tanh(b.matmul(b.exp(a), b.param('w', f32(8, 8))));
      const hc = b.sigmoid(c);
      return { y: b.matmul(ha, hc), s: b.sum(ha) };
    });
    const exe = compile(g);
    const a = new Subject<HostTensor>(), c = new Subject<HostTensor>();
    const run = reactive(exe, { a, c });
    const ys: HostTensor[] = [];
    const kernels: number[] = [];
    run.outputs['y']!.subscribe((y) => ys.push(y));
    run.results$.subscribe((r) => kernels.push(r.kernels));
    a.next(tensor(new Float32Array(32).fill(0.1), [4, 8]));
    c.next(tensor(new Float32Array(24).fill(0.2), [8, 3]));
    c.next(tensor(new Float32Array(24).fill(-0.3), [8, 3]));
    expect(ys).toHaveLength(2);
    // the second run only recomputes sigmoid(c) and the final matmul
    expect(kernels[1]).toBeLessThan(kernels[0]!);
    expect(kernels[1]).toBe(2);
    close(ys[1]!, compile(g).runSync({ a: tensor(new Float32Array(32).fill(0.1), [4, 8]), c: tensor(new Float32Array(24).fill(-0.3), [8, 3]) })['y']!);
  });
});

function dependsOn(g: { nodes: readonly { inputs: readonly number[] }[] }, id: number, on: number): boolean {
  const stack = [id];
  const seen = new Set<number>();
  while (stack.length) {
    const x = stack.pop()!;
    if (x === on) return true;
    if (seen.has(x)) continue;
    seen.add(x);
    stack.push(...g.nodes[x]!.inputs);
  }
  return false;
}
