// Generated CPU kernels, with fusion, compute what the reference interpreter computes one op at
// a time: on random graphs, on the gradient graphs of random losses, and with no more kernels
// than ops. The fused path skips intermediate f32 roundings, so values agree to f32 tolerance.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { graph } from '../graphs/builder.js';
import { grad } from '../graphs/autodiff.js';
import type { Graph } from '../graphs/graph.js';
import { f32 } from '../graphs/types.js';
import { compile, type Outputs } from '../runtime/executor.js';
import type { HostTensor } from '../runtime/tensor.js';
import { arbGraph, fcParams, withRandomLoss } from './arbitraries.js';

/** |a - b| <= rtol * max(|a|, |b|) + atol, element by element, both finite. */
function expectClose(got: Outputs, want: Outputs, rtol: number, atol: number): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const [name, w] of Object.entries(want)) {
    const g = got[name]!;
    expect(g.shape, name).toEqual(w.shape);
    for (let i = 0; i < w.data.length; i++) {
      const a = g.data[i]!, b = w.data[i]!;
      const ok = Number.isFinite(a) && Number.isFinite(b) && Math.abs(a - b) <= rtol * Math.max(Math.abs(a), Math.abs(b)) + atol;
      if (!ok) throw new Error(`output '${name}' [${w.shape.join(', ')}] element ${i}: cpu ${a}, reference ${b}`);
    }
  }
}

function run(g: Graph, backend: 'cpu' | 'reference', feeds: Record<string, HostTensor>, variables: Record<string, HostTensor>): Outputs {
  // 'js': the JavaScript renderer (the WebAssembly one, the CPU default in Node, has test/wasm.test.ts)
  const exe = compile(g, backend === 'cpu' ? { backend: 'js' } : { backend, fuse: false });
  exe.setVariables(variables);
  return exe.runSync(feeds);
}

describe('generated CPU kernels', () => {
  it('fused CPU kernels equal the unfused reference interpreter on random graphs', () => {
    fc.assert(
      fc.property(arbGraph({ maxOps: 10 }), ({ graph: g, feeds, variables }) => {
        expectClose(run(g, 'cpu', feeds, variables), run(g, 'reference', feeds, variables), 1e-4, 1e-4);
      }),
      fcParams(100),
    );
  });

  it('gradient graphs of random losses agree between the CPU kernels and the reference', () => {
    fc.assert(
      fc.property(arbGraph({ maxOps: 8, params: true }), ({ graph: g, feeds, variables }) => {
        const gg = grad(withRandomLoss(g), 'loss');
        expectClose(run(gg, 'cpu', feeds, variables), run(gg, 'reference', feeds, variables), 1e-4, 1e-4);
      }),
      fcParams(100),
    );
  });

  it('relu of NaN, -0 and the infinities is what the reference says (x > 0 ? x : 0), fused in a chain', () => {
    const values = [NaN, -0, 0, -Infinity, Infinity, -1.5, 2.25, 1e-30];
    const g = graph('relu', (b) => {
      const x = b.input('x', f32(values.length));
      return { y: b.relu(x), z: b.add(b.relu(b.mul(x, -2)), 1) };
    });
    const feeds = { x: { dtype: 'f32' as const, shape: [values.length], data: Float32Array.from(values) } };
    const got = run(g, 'cpu', feeds, {});
    const want = run(g, 'reference', feeds, {});
    for (const name of ['y', 'z']) {
      for (let i = 0; i < values.length; i++) {
        expect(Object.is(got[name]!.data[i], want[name]!.data[i]), `${name}[${i}] of relu(${values[i]}): js ${got[name]!.data[i]}, reference ${want[name]!.data[i]}`).toBe(true);
      }
    }
    expect(Array.from(want['y']!.data)).toEqual([0, 0, 0, 0, Infinity, 0, 2.25, 1e-30].map(Math.fround));
  });

  // Not a law yet: the fused plan can have more kernels than the unfused plan, because a view
  // that carries a reduction is given a buffer before the reduction itself is, and is kept after
  // (slice(concat([sum(x, null, true), x], 0)) is 3 kernels fused, 2 unfused).
  it('fusion never makes more kernels than ops', () => {
    fc.assert(
      fc.property(arbGraph({ maxOps: 10, params: true }), ({ graph: g, feeds }) => {
        const shapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.shape]));
        for (const gr of [g, grad(withRandomLoss(g), 'loss')]) {
          const plan = compile(gr).plan(shapes);
          expect(plan.kernelCount).toBeLessThanOrEqual(plan.unfusedKernelCount);
        }
      }),
      fcParams(100),
    );
  });

  it('a chain of five elementwise ops on one input is one kernel', () => {
    const g = graph('chain', (b) => {
      const x = b.input('x', f32(3, 4));
      return { y: b.tanh(b.mul(b.exp(b.neg(b.add(x, 1))), 2)) };
    });
    const exe = compile(g);
    const plan = exe.plan({ x: [3, 4] });
    expect(plan.unfusedKernelCount).toBe(5);
    expect(plan.kernelCount).toBe(1);
    const x = Float32Array.from({ length: 12 }, (_, i) => i / 4 - 1.5);
    const y = exe.runSync({ x }).y!.data;
    x.forEach((v, i) => expect(y[i]).toBeCloseTo(Math.tanh(2 * Math.exp(-(v + 1))), 6));
  });
});
