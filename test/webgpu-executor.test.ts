// The executor on WebGPU against the executor on the CPU: on random graphs (odd sizes,
// broadcasting, every op family) and on their gradient graphs, fused and unfused alike, the two
// backends give the same outputs within f32 tolerance; a fused elementwise chain is one dispatch.
// Without an adapter the suite skips with the reason, except under CI, where that is a failure.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { graph } from '../graphs/builder.js';
import { grad } from '../graphs/autodiff.js';
import type { Graph } from '../graphs/graph.js';
import { f32 } from '../graphs/types.js';
import { compile, compileAsync, type Outputs } from '../runtime/executor.js';
import type { HostTensor } from '../runtime/tensor.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';
import { arbGraph, fcParams, withRandomLoss } from './arbitraries.js';

const gpu = await sharedWebGpuBackend();
if (!gpu) console.warn(`WebGPU executor tests skipped: no adapter (${WebGpuBackend.unavailableReason})`);

/** |a - b| <= rtol * max(|a|, |b|) + atol element by element (NaN matches NaN); ints and bools exactly. */
function expectClose(got: Outputs, want: Outputs, rtol: number, atol: number): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const [name, w] of Object.entries(want)) {
    const g = got[name]!;
    expect(g.shape, name).toEqual(w.shape);
    const exact = w.dtype === 'i32' || w.dtype === 'bool';
    for (let i = 0; i < w.data.length; i++) {
      const a = g.data[i]!, b = w.data[i]!;
      if (a === b || (Number.isNaN(a) && Number.isNaN(b))) continue;
      if (exact || !(Math.abs(a - b) <= rtol * Math.max(Math.abs(a), Math.abs(b)) + atol)) {
        throw new Error(`output '${name}' [${w.shape.join(', ')}] element ${i}: webgpu ${a}, cpu ${b}`);
      }
    }
  }
}

/** Runs a graph on WebGPU and on the CPU, fused and unfused, and compares each pair. */
async function sameOnBothBackends(g: Graph, feeds: Record<string, HostTensor>, variables: Record<string, HostTensor>): Promise<void> {
  for (const fuse of [true, false]) {
    const cpu = compile(g, { backend: 'cpu', fuse });
    cpu.setVariables(variables);
    const webgpu = await compileAsync(g, { backend: 'webgpu', fuse });
    webgpu.setVariables(variables);
    try {
      expectClose(await webgpu.run(feeds), cpu.runSync(feeds), 2e-4, 2e-4);
    } catch (e) {
      throw new Error(`${fuse ? 'fused' : 'unfused'}: ${(e as Error).message}`);
    }
  }
}

describe('executor on WebGPU', () => {
  it('has an adapter when CI is set (skips elsewhere)', () => {
    if (!gpu && process.env.CI) expect.fail(`CI is set but no WebGPU adapter was found: ${WebGpuBackend.unavailableReason}`);
  });

  describe.skipIf(!gpu && !process.env.CI)('against the CPU', () => {
    it('random graphs give the CPU outputs, fused and unfused', async () => {
      await fc.assert(
        fc.asyncProperty(arbGraph({ maxOps: 8, maxDim: 7, maxElements: 96 }), async ({ graph: g, feeds, variables }) => {
          await sameOnBothBackends(g, feeds, variables);
        }),
        fcParams(200),
      );
    });

    it('gradient graphs of random losses give the CPU gradients, fused and unfused', async () => {
      await fc.assert(
        fc.asyncProperty(arbGraph({ maxOps: 6, maxDim: 5, maxElements: 60, params: true }), async ({ graph: g, feeds, variables }) => {
          await sameOnBothBackends(grad(withRandomLoss(g), 'loss'), feeds, variables);
        }),
        fcParams(100),
      );
    });

    it('a chain of five elementwise ops over 1M elements is one kernel and one dispatch per run', async () => {
      const n = 1 << 20;
      const g = graph('chain', (b) => {
        const x = b.input('x', f32(n));
        return { y: b.tanh(b.mul(b.exp(b.neg(b.add(x, 1))), 2)) };
      });
      const exe = await compileAsync(g, { backend: 'webgpu' });
      const plan = exe.plan({ x: [n] });
      expect(plan.unfusedKernelCount).toBe(5);
      expect(plan.kernelCount).toBe(1);
      const x = Float32Array.from({ length: n }, (_, i) => ((i % 1000) - 500) / 250);
      for (let run = 0; run < 3; run++) {
        const before = gpu!.stats.dispatches;
        const y = (await exe.run({ x })).y!.data;
        expect(gpu!.stats.dispatches - before).toBe(1);
        for (let i = 0; i < n; i += 4099) expect(y[i]).toBeCloseTo(Math.tanh(2 * Math.exp(-(x[i]! + 1))), 5);
      }
    });
  });
});
