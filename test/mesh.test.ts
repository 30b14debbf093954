// The mesh of worker devices: naming devices, a data-parallel training step written as plan steps
// (gradients all-reduced after their launches) against the single-device step, and faults (a
// worker killed or throwing mid-step, a NATS peer process killed mid-step) ending the step with a
// MeshError naming the device, within the deadline.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { compile, grad, type Graph } from '../index.js';
import { mlpGraph } from '../examples/mlp-model.js';
import type { Plan } from '../scheduler/plan.js';
import type { PlanStep } from '../scheduler/steps.js';
import type { Kernel } from '../ops/kernel-ir.js';
import type { DType } from '../graphs/types.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';
import { Mesh, MeshError, NatsCommunicator, SharedMemoryCommunicator, sharedChannels, type HostValues } from '../runtime/mesh/index.js';
import { HostDevice, DeviceUseError } from '../runtime/device.js';
import { Variables } from '../runtime/variables.js';
import { runPlan } from '../runtime/plan-interpreter.js';
import { haveNatsServer, startNatsServer } from './fixtures/nats-server.js';

const meshes: Mesh[] = [];
const mesh = (shape: number[], opts = {}) => {
  const m = new Mesh(shape, opts);
  meshes.push(m);
  return m;
};
afterAll(() => Promise.all(meshes.map((m) => m.close())));

/** Params, state and constants of `plan` by node id, from the executable's values. */
function variablesOf(g: Graph, plan: Plan, values: Record<string, { data: CpuArray }>): HostValues {
  const out = new Map<number, { dtype: DType; data: CpuArray }>();
  for (const b of plan.buffers.values()) {
    const n = g.nodes[b.node]!;
    if (b.role === 'param' || b.role === 'state') out.set(n.id, { dtype: n.dtype, data: values[`${n.op}:${n.name!}`]!.data });
    else if (b.role === 'const') out.set(n.id, { dtype: n.dtype, data: Float32Array.from(n.attrs['data'] as number[]) });
  }
  return out;
}

function inputs(g: Graph, feeds: Record<string, Float32Array>): HostValues {
  return new Map(g.nodes.filter((n) => n.op === 'input').map((n) => [n.id, { dtype: n.dtype, data: feeds[n.name!]! }]));
}

describe('a mesh of worker devices', () => {
  it('names devices by coordinates and axis groups', () => {
    const m = new Mesh([2, 3], { axes: ['data', 'model'] });
    meshes.push(m);
    expect(m.size).toBe(6);
    expect(m.coords(4)).toEqual([1, 1]);
    expect(m.device([1, 2])).toBe(5);
    expect(m.group('model', 4)).toEqual([3, 4, 5]);
    expect(m.group('data', 4)).toEqual([1, 4]);
    expect(() => m.group('pipe', 0)).toThrow(MeshError);
  });

  it('a 2-worker data-parallel step (batch split, gradients all-reduced) equals the single-device step', async () => {
    const g = grad(mlpGraph([6, 16, 3]), 'loss');
    const exe = compile(g, { seed: 7 });
    const outs = ['loss', ...Object.keys(g.outputs).filter((k) => k.startsWith('grad/'))];
    const B = 8;
    const x = Float32Array.from({ length: B * 6 }, (_, i) => Math.sin(i * 0.37));
    const y = Float32Array.from({ length: B * 3 }, (_, i) => (i % 3 === Math.floor(i / 3) % 3 ? 1 : 0));
    const single = exe.runSync({ x, y }, outs);
    const half = exe.plan({ x: [B / 2, 6], y: [B / 2, 3] }, outs);
    // the data-parallel plan: each output (a mean over the local half batch) is all-reduced right after its launch
    const ids = new Set(Object.values(half.outputs));
    const steps: PlanStep[] = half.steps.flatMap((s) => (s.kind === 'launch' && ids.has(s.node) ? [s, { kind: 'collective' as const, op: 'all-reduce' as const, buffer: s.node, group: [0, 1] }] : [s]));
    expect(steps.filter((s) => s.kind === 'collective')).toHaveLength(outs.length);
    const m = mesh([2], { axes: ['data'] });
    const program = await m.load({ ...half, steps }, variablesOf(g, half, exe.variables()));
    const feeds = [0, 1].map((d) => inputs(g, { x: x.subarray((d * B * 6) / 2, ((d + 1) * B * 6) / 2), y: y.subarray((d * B * 3) / 2, ((d + 1) * B * 3) / 2) }));
    const run = await m.run(program, feeds);
    outs.forEach((name, k) => {
      const want = single[name]!.data;
      for (const dev of [0, 1]) {
        const got = run.values[dev]![k]!;
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! / 2 - want[i]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(want[i]!)));
      }
      expect(Array.from(run.values[1]![k]!)).toEqual(Array.from(run.values[0]![k]!));
    });
    // the program stays loaded: a second step with the same feeds gives the same bits
    const again = await m.run(program, feeds);
    expect(again.values[0]!.map((v) => Array.from(v))).toEqual(run.values[0]!.map((v) => Array.from(v)));
  });
});

describe('send, recv and collective steps in the one interpreter', () => {
  it('run through a communicator; without one they are a clear error', async () => {
    const g = grad(mlpGraph([4, 8, 2]), 'loss');
    // the hosts below run JavaScript kernels, compared bit for bit with this executable's
    const exe = compile(g, { seed: 2, backend: 'js' });
    const plan = exe.plan({ x: [2, 4], y: [2, 2] }, ['loss']);
    const loss = plan.outputs['loss']!;
    const vars = variablesOf(g, plan, exe.variables());
    const feeds = inputs(g, { x: Float32Array.from({ length: 8 }, (_, i) => i / 8), y: Float32Array.from([1, 0, 0, 1]) });
    const want = exe.runSync({ x: feeds.get(g.nodes.find((n) => n.name === 'x')!.id)!.data as Float32Array, y: Float32Array.from([1, 0, 0, 1]) }, ['loss'])['loss']!.data;
    const sender: Plan = { ...plan, steps: [...plan.steps, { kind: 'send', buffer: loss, peer: 1 }] };
    const receiver: Plan = { ...plan, steps: [{ kind: 'recv', buffer: loss, peer: 0 }] };
    const host = () => new Variables(new HostDevice('cpu'), vars);
    expect(() => runPlan(sender, host(), feeds, { update: false, sync: true })).toThrow(DeviceUseError);
    expect(() => runPlan(sender, host(), feeds, { update: false, sync: true })).toThrow(/plan step \d+: 'send' needs a mesh of devices/);
    const ch = sharedChannels(2, 64);
    const [a, b] = await Promise.all([
      runPlan(sender, host(), feeds, { update: false, sync: true, comm: new SharedMemoryCommunicator(0, ch, 5_000) }),
      runPlan(receiver, host(), new Map(), { update: false, sync: true, comm: new SharedMemoryCommunicator(1, ch, 5_000) }),
    ]);
    expect(Array.from((a.values as Float32Array[])[0]!)).toEqual(Array.from(want));
    expect(Array.from((b.values as Float32Array[])[0]!)).toEqual(Array.from(want));
    expect(b.measuredPeakBytes).toBe(4);
  });
});

describe('faults end the step with a MeshError naming the device, within the deadline', () => {
  const g = grad(mlpGraph([4, 8, 2]), 'loss');
  const exe = compile(g, { seed: 1 });
  const plan = exe.plan({ x: [2, 4], y: [2, 2] }, ['loss']);
  const loss = plan.outputs['loss']!;
  const vars = variablesOf(g, plan, exe.variables());
  /** device d waits for the loss from the other device, which never sends it */
  const waiting = (d: number): Plan => ({ ...plan, steps: [{ kind: 'recv', buffer: loss, peer: 1 - d }] });

  it('a worker terminated mid-step', async () => {
    const m = mesh([2], { deadlineMs: 20_000 });
    const program = await m.load([waiting(0), waiting(1)], vars);
    const step = m.run(program).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await m.terminate(1);
    const err = await step;
    expect(err).toBeInstanceOf(MeshError);
    expect((err as MeshError).device).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5_000); // far under the 20 s wait deadline: the others are woken
    await expect(m.run(program)).rejects.toBeInstanceOf(MeshError);
  });

  it('a worker whose kernel throws', async () => {
    const m = mesh([2], { deadlineMs: 20_000 });
    const broken: Plan = { ...plan, steps: plan.steps.map((s) => (s.kind === 'launch' ? { ...s, kernel: { broken: true } as unknown as Kernel } : s)) };
    const program = await m.load([waiting(0), broken], vars);
    const t0 = Date.now();
    const err = await m.run(program).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeshError);
    expect((err as MeshError).device).toBe(1);
    expect((err as MeshError).message).toMatch(/^device 1: threw/);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('a peer that stays silent past the wait deadline', async () => {
    const m = mesh([2], { deadlineMs: 500 });
    const program = await m.load([waiting(0), { ...plan, steps: [...plan.steps] }], vars);
    const err = await m.run(program).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeshError);
    expect((err as MeshError).device).toBe(1);
  });

  describe.skipIf(!haveNatsServer && !process.env['CI'])('over NATS', () => {
    it('a peer process killed mid-step', async () => {
      const server = await startNatsServer();
      const script = fileURLToPath(new URL('./fixtures/nats-peer.ts', import.meta.url));
      const child = spawn(process.execPath, ['--import', 'tsx', script, server.url, 'test.fault'], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        const comm = await NatsCommunicator.join({ servers: server.url, rank: 0, size: 2, prefix: 'test.fault', deadlineMs: 3_000 });
        const said = new Promise<string>((resolve) => child.stdout!.on('data', (d: Buffer) => resolve(d.toString())));
        const x = Float32Array.from({ length: 1000 }, (_, i) => i);
        await comm.allReduce(x, [0, 1]);
        expect(x[999]).toBe(1998);
        expect(await said).toContain('reduced 1998');
        const step = comm.allReduce(x, [0, 1]).catch((e: unknown) => e);
        await new Promise((r) => setTimeout(r, 200));
        const t0 = Date.now();
        child.kill('SIGKILL');
        const err = await step;
        expect(err).toBeInstanceOf(MeshError);
        expect((err as MeshError).device).toBe(1);
        expect(Date.now() - t0).toBeLessThan(3_000 + 1_000);
        await comm.close();
      } finally {
        child.kill('SIGKILL');
        await server.stop();
      }
    });
  });
});
