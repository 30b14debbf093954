// Device limits shape the plan: on random graphs with many inputs (long elementwise chains over
// distinct inputs, wide concatenations, matmul epilogues, einsum chains) planned for a device
// that binds few buffers per kernel, every kernel binds at most that many, and the plan's
// kernels, run by the reference interpreter, give what the unfused plan gives. An n-ary einsum
// node wider than the device, and a value larger than a device buffer, are typed errors naming
// the node and the limit. On WebGPU (16 storage
// buffers per stage on llvmpipe) a graph with 24 inputs compiles and runs; without an adapter
// that half skips with the reason, except under CI, where it fails.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { graph, type Builder } from '../graphs/builder.js';
import type { Graph } from '../graphs/graph.js';
import { f32, numel, type Tensor } from '../graphs/types.js';
import { HOST_CAPS, type DeviceCaps } from '../scheduler/caps.js';
import { planGraph, planLaunches, type Plan } from '../scheduler/plan.js';
import { DeviceLimitError } from '../scheduler/limits.js';
import { interpretKernel } from '../runtime/interpreter.js';
import { compile, compileAsync } from '../runtime/executor.js';
import { tensor, type HostTensor } from '../runtime/tensor.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import { einsumNode } from '../ops/einsum.js';
import { optimizeGraph } from '../graphs/rewrite/passes.js';
import { fcParams } from './arbitraries.js';

const N = 3; // every value is [N, N]

/** Seeded values in [-1, 1], multiples of 1/16. */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.round(((s >>> 8) / 2 ** 24) * 32 - 16) / 16;
  });
}

/** One step of a random program over a pool of [N, N] values. */
type Step =
  | { kind: 'chain'; op: 'add' | 'mul' | 'sub' | 'maximum'; picks: number[] }
  | { kind: 'concat'; picks: number[] }
  | { kind: 'matmul'; a: number; b: number; epilogue: number[] }
  | { kind: 'einsum'; picks: number[] }
  | { kind: 'unary'; op: 'tanh' | 'abs' | 'neg'; a: number };

const arbStep: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('chain' as const), op: fc.constantFrom('add' as const, 'mul' as const, 'sub' as const, 'maximum' as const), picks: fc.array(fc.nat(), { minLength: 2, maxLength: 24 }) }),
  fc.record({ kind: fc.constant('concat' as const), picks: fc.array(fc.nat(), { minLength: 2, maxLength: 24 }) }),
  fc.record({ kind: fc.constant('matmul' as const), a: fc.nat(), b: fc.nat(), epilogue: fc.array(fc.nat(), { maxLength: 18 }) }),
  fc.record({ kind: fc.constant('einsum' as const), picks: fc.array(fc.nat(), { minLength: 2, maxLength: 6 }) }),
  fc.record({ kind: fc.constant('unary' as const), op: fc.constantFrom('tanh' as const, 'abs' as const, 'neg' as const), a: fc.nat() }),
);

const BINARY = {
  add: (g: Builder, a: Tensor, b: Tensor) => g.add(a, b),
  mul: (g: Builder, a: Tensor, b: Tensor) => g.mul(a, b),
  sub: (g: Builder, a: Tensor, b: Tensor) => g.sub(a, b),
  maximum: (g: Builder, a: Tensor, b: Tensor) => g.maximum(a, b),
};
const UNARY = {
  tanh: (g: Builder, a: Tensor) => g.tanh(a),
  abs: (g: Builder, a: Tensor) => g.abs(a),
  neg: (g: Builder, a: Tensor) => g.neg(a),
};

/** A graph over `inputs` distinct inputs: each step reads the pool (inputs first, then results). */
function buildProgram(inputs: number, steps: readonly Step[]): Graph {
  return graph('wide', (g: Builder) => {
    const pool: Tensor[] = Array.from({ length: inputs }, (_, i) => g.input(`x${i}`, f32(N, N)));
    const pick = (i: number) => pool[i % pool.length]!;
    for (const s of steps) {
      let t: Tensor;
      switch (s.kind) {
        case 'chain':
          t = s.picks.slice(1).reduce<Tensor>((acc, i) => BINARY[s.op](g, acc, pick(i)), pick(s.picks[0]!));
          break;
        case 'concat': {
          const c = g.concat(s.picks.map(pick), 0);
          t = g.sum(g.reshape(c, [s.picks.length, N, N]), [0]);
          break;
        }
        case 'matmul':
          t = s.epilogue.reduce<Tensor>((acc, i) => g.add(acc, pick(i)), g.matmul(pick(s.a), g.transpose(pick(s.b), [1, 0])));
          break;
        case 'einsum': {
          const letters = 'abcdefg';
          const ins = s.picks.map((_, j) => `${letters[j]}${letters[j + 1]}`);
          t = g.einsum(`${ins.join(',')}->a${letters[s.picks.length]}`, ...s.picks.map(pick));
          break;
        }
        case 'unary':
          t = UNARY[s.op](g, pick(s.a));
          break;
      }
      pool.push(t);
    }
    // the output reads every result, so no step is dead
    return { out: pool.slice(inputs).reduce((acc, t) => g.add(acc, t)) };
  });
}

const shapesOf = (g: Graph) => g.nodes.map((n) => n.shape as number[]);

const capsWith = (maxKernelBuffers: number): DeviceCaps => ({ ...HOST_CAPS, kind: 'small', maxKernelBuffers });

/** Runs a plan's kernels one by one with the reference interpreter. */
function interpretPlan(plan: Plan, feeds: ReadonlyMap<number, Float32Array>): Float32Array {
  const bufs = new Map<number, Float32Array>(feeds);
  for (const s of plan.steps) {
    if (!('kernel' in s)) continue;
    const out = new Float32Array(numel(s.kernel.out.shape));
    interpretKernel(s.kernel, s.inputs.map((id) => bufs.get(id)!), out);
    bufs.set(s.node, out);
  }
  return bufs.get(plan.outputs['out']!)!;
}

/** Input values by node id, seeded by input name (`x3`, `m3`: 3), so rewritten graphs get the same. */
function feedsOf(g: Graph, seed: number): Map<number, Float32Array> {
  return new Map(g.nodes.filter((n) => n.op === 'input').map((n) => [n.id, values(N * N, seed + Number(n.name!.slice(1)))]));
}

describe('device limits shape the plan', () => {
  it('every kernel binds at most maxKernelBuffers buffers, and the split plan gives the unfused results', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 24 }), fc.array(arbStep, { minLength: 1, maxLength: 4 }), fc.integer({ min: 4, max: 16 }), fc.nat(),
        (inputs, steps, maxBuffers, seed) => {
          const g = buildProgram(inputs, steps);
          const caps = capsWith(maxBuffers);
          const plan = planGraph(g, shapesOf(g), { caps });
          for (const s of plan.steps) {
            if (!('kernel' in s)) continue;
            const bound = s.kernel.inputs.length + 1;
            if (bound > maxBuffers) throw new Error(`${s.kernel.name} binds ${bound} buffers, the device allows ${maxBuffers}`);
          }
          const feeds = feedsOf(g, seed);
          const got = interpretPlan(plan, feeds);
          const want = interpretPlan(planGraph(g, shapesOf(g), { fuse: false }), feeds);
          for (let i = 0; i < want.length; i++) {
            const a = got[i]!, b = want[i]!;
            if (!(Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b)))) throw new Error(`element ${i}: split plan ${a}, unfused ${b}`);
          }
        },
      ),
      fcParams(150),
    );
  });

  it('a wide chain under a generous limit stays one kernel', () => {
    const g = buildProgram(20, [{ kind: 'chain', op: 'add', picks: Array.from({ length: 20 }, (_, i) => i) }]);
    expect(planGraph(g, shapesOf(g), { caps: capsWith(32) }).kernelCount).toBe(1);
    expect(planGraph(g, shapesOf(g), { caps: capsWith(8) }).kernelCount).toBeGreaterThan(1);
  });

  it('an n-ary einsum node wider than the device is a DeviceLimitError; contraction ordering makes it fit', () => {
    const g = graph('chain', (b) => {
      const ms = Array.from({ length: 6 }, (_, i) => b.input(`m${i}`, f32(N, N)));
      return { out: einsumNode(b, 'ab,bc,cd,de,ef,fg->ag', ...ms) };
    });
    expect(() => planGraph(g, shapesOf(g), { caps: capsWith(4) })).toThrow(/einsum \(node \d+\): its kernel binds 7 buffers.*allows 4 \(maxKernelBuffers\)/);
    const ordered = optimizeGraph(g).graph;
    const plan = planGraph(ordered, shapesOf(ordered), { caps: capsWith(4) });
    for (const s of plan.steps) if ('kernel' in s) expect(s.kernel.inputs.length + 1).toBeLessThanOrEqual(4);
    const got = interpretPlan(plan, feedsOf(ordered, 7));
    const want = interpretPlan(planGraph(g, shapesOf(g), { fuse: false }), feedsOf(g, 7));
    want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, 4));
  });

  it('a value larger than a device buffer is a DeviceLimitError naming the node and the limit', () => {
    const g = graph('big', (b) => ({ y: b.exp(b.input('x', f32(64, 64))) }));
    const caps: DeviceCaps = { ...HOST_CAPS, kind: 'tiny', maxBufferBytes: 1024 };
    expect(() => planGraph(g, shapesOf(g), { caps })).toThrow(DeviceLimitError);
    expect(() => planGraph(g, shapesOf(g), { caps })).toThrow(/node \d+\).*16384 bytes.*tiny device allows 1024 \(maxBufferBytes\)/);
  });
});

const gpu = await WebGpuBackend.create();
if (!gpu) console.warn(`WebGPU device-limit test skipped: no adapter (${WebGpuBackend.unavailableReason})`);

describe('device limits on WebGPU', () => {
  it('has an adapter when CI is set (skips elsewhere)', () => {
    if (!gpu && process.env.CI) expect.fail(`CI is set but no WebGPU adapter was found: ${WebGpuBackend.unavailableReason}`);
  });

  describe.skipIf(!gpu && !process.env.CI)('against the CPU', () => {
    it('a graph with 24 inputs in one chain and one concatenation compiles and runs', async () => {
      const picks = Array.from({ length: 24 }, (_, i) => i);
      const g = buildProgram(24, [{ kind: 'chain', op: 'add', picks }, { kind: 'concat', picks: [...picks].reverse() }]);
      const feeds: Record<string, HostTensor> = {};
      for (const n of g.nodes) if (n.op === 'input') feeds[n.name!] = tensor(values(N * N, n.id), [N, N]);
      const want = compile(g, { backend: 'cpu' }).runSync(feeds)['out']!;
      const got = (await (await compileAsync(g, { backend: 'webgpu' })).run(feeds))['out']!;
      expect(got.shape).toEqual(want.shape);
      for (let i = 0; i < want.data.length; i++) expect(got.data[i]).toBeCloseTo(want.data[i]!, 4);
    });

    it('random programs wider than the adapter allows run on WebGPU without a KernelLaunchError and match the CPU', async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 2, max: 24 }), fc.array(arbStep, { minLength: 1, maxLength: 2 }), fc.nat(), async (inputs, steps, seed) => {
          const g = buildProgram(inputs, steps);
          const feeds: Record<string, HostTensor> = {};
          for (const n of g.nodes) if (n.op === 'input') feeds[n.name!] = tensor(values(N * N, seed + n.id), [N, N]);
          const want = compile(g, { backend: 'cpu' }).runSync(feeds)['out']!;
          const exe = await compileAsync(g, { backend: 'webgpu' });
          const got = (await exe.run(feeds))['out']!;
          const plan = exe.plan(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.shape])));
          for (const s of planLaunches(plan)) expect(s.kernel.inputs.length + 1).toBeLessThanOrEqual(exe.device.caps.maxKernelBuffers);
          for (let i = 0; i < want.data.length; i++) {
            const x = got.data[i]!, y = want.data[i]!;
            if (!(Math.abs(x - y) <= 1e-3 * Math.max(1, Math.abs(y)))) throw new Error(`element ${i}: webgpu ${x}, cpu ${y}`);
          }
        }),
        fcParams(10),
      );
    }, 600_000); // each case compiles its own wide kernels, which llvmpipe compiles slowly
  });
});
