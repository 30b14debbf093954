// A mesh whose workers own WebGPU devices (each acquires its own) trains as one device does:
// data-parallel and tensor-parallel MLP steps (ShardedProgram) on 2 WebGPU workers equal the
// single-device step within float32 tolerance over 2 steps, params updated on the workers; a
// 2-stage pipeline step (MeshPipeline) equals the single-device step on the same global batch.
// The mesh's caps are the workers' adapters', known once the mesh is ready; with backend 'auto' a
// worker owns a WebGPU device where it finds an adapter. Without an adapter the
// suite skips (and a WebGPU mesh fails to start with a MeshError naming the device), except under CI.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { graph } from '../graphs/builder.js';
import { f32, type Tensor } from '../graphs/types.js';
import { grad } from '../graphs/autodiff.js';
import { sgd } from '../graphs/optim.js';
import type { Graph } from '../graphs/graph.js';
import { dataParallel } from '../scheduler/parallel/sbp-data.js';
import { broadcast, split, type NdSbp, type Sbp } from '../scheduler/parallel/sbp.js';
import { partitionPipeline } from '../scheduler/parallel/pipeline-partition.js';
import { planMeshPipeline } from '../scheduler/parallel/pipeline-mesh.js';
import { oneFOneB } from '../scheduler/parallel/pipeline-schedule.js';
import { compile } from '../runtime/executor.js';
import { Mesh, MeshError } from '../runtime/mesh/index.js';
import { MeshPipeline } from '../runtime/mesh/pipeline.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';
import { WebGpuBackend } from '../runtime/webgpu/backend.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';
import { wasmAvailable } from '../runtime/wasm/device.js';
import { concrete, expectSameSteps as sameSteps, maxRelErr, trainMlp } from './sbp-util.js';

const gpu = await sharedWebGpuBackend();
if (!gpu) console.warn(`WebGPU mesh tests skipped: no adapter (${WebGpuBackend.unavailableReason})`);
const seed = process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {};

const TOL = 1e-3;
const STEPS = 2;

const train = trainMlp;

/** `STEPS` steps on the mesh and on one CPU device, new inputs each step: same outputs, same variables after. */
const expectSameSteps = (mesh: Mesh, g: Graph, annotations: Map<string, NdSbp>, s0: number): Promise<void> => sameSteps(mesh, g, annotations, s0, STEPS, TOL);

describe('a mesh of WebGPU workers', () => {
  it('has an adapter when CI is set (skips elsewhere; without one a WebGPU mesh fails to start, naming the device)', async () => {
    if (!gpu && process.env['CI']) expect.fail(`CI is set but no WebGPU adapter was found: ${WebGpuBackend.unavailableReason}`);
    if (gpu) return;
    const mesh = new Mesh([2], { backend: 'webgpu' });
    try {
      const err = await mesh.ready().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MeshError);
      expect((err as MeshError).message).toMatch(/^device \d+: found no WebGPU adapter/);
      expect(() => mesh.caps).toThrow(MeshError);
    } finally {
      await mesh.close();
    }
  }, 60_000);

  it('with backend \'auto\', workers own WebGPU devices where they find an adapter, else the CPU default', async () => {
    const mesh = new Mesh([2], { backend: 'auto' });
    try {
      const described = await mesh.ready();
      const kind = gpu ? 'webgpu' : wasmAvailable() ? 'wasm' : 'js';
      expect(mesh.caps.kind).toBe(kind);
      for (const d of described) expect(d.startsWith(kind)).toBe(true);
    } finally {
      await mesh.close();
    }
  }, 60_000);

  describe.skipIf(!gpu && !process.env['CI'])('trains as one device does', () => {
    let mesh: Mesh;
    beforeAll(() => {
      mesh = new Mesh([2], { axes: ['x'], backend: 'webgpu', stepDeadlineMs: 120_000, deadlineMs: 60_000 });
    });
    afterAll(() => mesh?.close());

    it('each worker owns a WebGPU device, and the caps are its adapter\'s once the mesh is ready', async () => {
      expect(() => mesh.caps).toThrow(/known once `await mesh.ready\(\)` resolved/);
      const described = await mesh.ready();
      for (const d of described) expect(d).toMatch(/^webgpu: /);
      expect(mesh.caps.kind).toBe('webgpu');
      expect(mesh.caps.sync).toBe(false);
    }, 60_000);

    it('data parallel: the batch split and gradients all-reduced, with and without ZeRO, over 2 steps', async () => {
      await mesh.ready();
      for (const zero of [false, true]) {
        const g = train({ batch: 8, widths: [8, 16, 8], opt: 'adam' });
        await expectSameSteps(mesh, g, dataParallel(g, concrete(g), { shape: [2] }, { axis: 0, zero }), 7);
      }
    }, 120_000);

    it('tensor parallel: a Megatron MLP (W1 by columns, W2 by rows) over 2 steps', async () => {
      await mesh.ready();
      const g = train({ batch: 8, widths: [8, 16, 8], opt: 'adam' });
      await expectSameSteps(mesh, g, new Map<string, NdSbp>([['w0', [split(1)]], ['w1', [split(0)]]]), 11);
    }, 120_000);

    it('random MLPs, data parallel or with random weight shardings, over 2 steps', async () => {
      await mesh.ready();
      const arb = fc.record({
        batch: fc.constantFrom(4, 8),
        widths: fc.array(fc.constantFrom(4, 8), { minLength: 2, maxLength: 3 }),
        opt: fc.constantFrom('sgd', 'adam'),
        seed: fc.integer({ min: 1, max: 1e6 }),
        data: fc.boolean(),
        picks: fc.array(fc.integer({ min: -1, max: 1 }), { minLength: 4, maxLength: 4 }),
      });
      await fc.assert(fc.asyncProperty(arb, async (c) => {
        const g = train(c);
        const params = g.nodes.filter((n) => n.op === 'param');
        const ann = c.data
          ? dataParallel(g, concrete(g), { shape: [2] }, { axis: 0, zero: false })
          : new Map<string, NdSbp>(params.map((n, i): [string, NdSbp] => {
            const k = c.picks[i % c.picks.length]!;
            const s: Sbp = k < 0 || k >= n.shape.length ? broadcast : split(k);
            return [n.name!, [s]];
          }));
        await expectSameSteps(mesh, g, ann, c.seed);
      }), { numRuns: 3, ...seed });
    }, 180_000);

    it('a 2-stage pipeline step (1F1B, 2 micro-batches) equals the single-device step on the same global batch', async () => {
      await mesh.ready();
      const widths = [3, 5, 4, 2], m = 2, micro = 2, batch = m * micro;
      const pmlp = (b: number) => graph('mlp', (gb) => {
        const x = gb.input('x', f32(b, widths[0]!));
        const y = gb.input('y', f32(b, widths.at(-1)!));
        let h: Tensor = x;
        for (let i = 1; i < widths.length; i++) {
          h = gb.add(gb.matmul(h, gb.param(`w${i}`, f32(widths[i - 1]!, widths[i]!), gb.init.glorot())), gb.param(`b${i}`, f32(widths[i]!), gb.init.uniform(-0.1, 0.1)));
          if (i < widths.length - 1) h = gb.tanh(h);
        }
        const d = gb.sub(h, y);
        return { loss: gb.mean(gb.mul(d, d)) };
      });
      const whole = compile(grad(pmlp(batch), 'loss'), { optimizer: sgd(0.1), seed: 5 });
      const paramsOf = () => Object.fromEntries(Object.entries(whole.variables()).filter(([k]) => k.startsWith('param:')).map(([k, v]) => [k.slice(6), v.data as CpuArray]));
      const params = paramsOf();
      const rand = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(s * 7919 + i * 12.9898) * 0.9);
      const x = rand(batch * widths[0]!, 5), y = rand(batch * widths.at(-1)!, 6);
      const loss = whole.runSync({ x: { dtype: 'f32', shape: [batch, widths[0]!], data: x }, y: { dtype: 'f32', shape: [batch, widths.at(-1)!], data: y } })['loss']!.data[0]!;
      const after = paramsOf();
      const micros = Array.from({ length: m }, (_, i) => ({
        x: x.slice(i * micro * widths[0]!, (i + 1) * micro * widths[0]!) as CpuArray,
        y: y.slice(i * micro * widths.at(-1)!, (i + 1) * micro * widths.at(-1)!) as CpuArray,
      }));
      const program = partitionPipeline(pmlp(micro), { stages: 2, bandwidth: Infinity });
      const pipe = await MeshPipeline.load(mesh, planMeshPipeline(program, oneFOneB(2, m), { optimizer: sgd(0.1), caps: mesh.caps }), params);
      try {
        const step = await pipe.step(micros);
        expect(Math.abs(step.loss - loss)).toBeLessThan(1e-5 * (1 + Math.abs(loss)));
        const got = await pipe.params();
        expect(Object.keys(got).sort()).toEqual(Object.keys(after).sort());
        for (const [k, v] of Object.entries(after)) expect(maxRelErr(got[k]!, v), k).toBeLessThan(TOL);
      } finally {
        await pipe.drop();
      }
    }, 120_000);
  });
});
