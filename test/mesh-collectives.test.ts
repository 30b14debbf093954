// The collectives against their definitions, on random tensors, groups and slot/part sizes: in one
// thread over shared-memory slots, and over a private nats-server between communicators of one
// process. Without nats-server the NATS half is skipped, except under CI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { chunkBounds, MeshError, NatsCommunicator, SharedMemoryCommunicator, sharedChannels, type Communicator } from '../runtime/mesh/index.js';
import type { CollectiveOp } from '../scheduler/steps.js';
import { runCollective } from '../runtime/mesh/communicator.js';
import { haveNatsServer, startNatsServer } from './fixtures/nats-server.js';

const seed = process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {};
const OPS: CollectiveOp[] = ['all-reduce', 'reduce-scatter', 'all-gather', 'all-to-all'];

/** What each member's buffer must hold afterwards (NaN: unspecified), by the definitions. */
function expected(op: CollectiveOp, ins: readonly Float32Array[]): Float64Array[] {
  const n = ins.length, L = ins[0]!.length;
  const sum = Float64Array.from({ length: L }, (_, k) => ins.reduce((a, x) => a + x[k]!, 0));
  return ins.map((x, r) => {
    const out = new Float64Array(L).fill(NaN);
    for (let i = 0; i < n; i++) {
      const [a, b] = chunkBounds(L, n, i);
      for (let k = a; k < b; k++) {
        if (op === 'all-reduce') out[k] = sum[k]!;
        else if (op === 'reduce-scatter' && i === r) out[k] = sum[k]!;
        else if (op === 'all-gather') out[k] = ins[i]![k]!;
        else if (op === 'all-to-all') out[k] = ins[i]![chunkBounds(L, n, r)[0] + (k - a)]!;
      }
    }
    return out;
  });
}

const arbCase = (devices: number) =>
  fc
    .record({
      op: fc.constantFrom(...OPS),
      group: fc.shuffledSubarray(Array.from({ length: devices }, (_, i) => i), { minLength: 2 }),
      perChunk: fc.integer({ min: 0, max: 40 }),
      extra: fc.integer({ min: 0, max: 5 }),
      seed: fc.integer(),
    })
    .map((c) => {
      const length = c.perChunk * c.group.length + (c.op === 'all-to-all' ? 0 : c.extra);
      let s = c.seed >>> 0;
      const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 4 - 2;
      return { ...c, inputs: c.group.map(() => Float32Array.from({ length }, rand)) };
    });

async function check(comms: readonly Communicator[], c: { op: CollectiveOp; group: number[]; inputs: Float32Array[] }): Promise<void> {
  const bufs = c.inputs.map((x) => x.slice());
  await Promise.all(c.group.map((d, r) => runCollective(comms[d]!, c.op, bufs[r]!, c.group)));
  const want = expected(c.op, c.inputs);
  bufs.forEach((b, r) =>
    want[r]!.forEach((w, k) => {
      if (!Number.isNaN(w)) expect(Math.abs(b[k]! - w)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(w)));
    }),
  );
  // all-reduce gives the same bits everywhere
  if (c.op === 'all-reduce') for (const b of bufs) expect(Array.from(b)).toEqual(Array.from(bufs[0]!));
}

describe('collectives over shared memory', () => {
  it('all-reduce, reduce-scatter, all-gather and all-to-all equal their definitions', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(4, 12, 64, 1 << 16), fc.integer({ min: 2, max: 5 }).chain((n) => arbCase(n).map((c) => ({ n, c }))), async (slot, { n, c }) => {
        const ch = sharedChannels(n, slot);
        const comms = Array.from({ length: n }, (_, d) => new SharedMemoryCommunicator(d, ch, 5_000));
        await check(comms, c);
      }),
      { numRuns: 150, ...seed },
    );
  });

  it('send and recv move a tensor larger than the slot in parts, and a missing peer is a MeshError within the deadline', async () => {
    const ch = sharedChannels(2, 100);
    const [a, b] = [new SharedMemoryCommunicator(0, ch, 300), new SharedMemoryCommunicator(1, ch, 300)];
    const x = Float64Array.from({ length: 1000 }, (_, i) => i * 0.5);
    const y = new Float64Array(1000);
    await Promise.all([a.send(x, 1), b.recv(y, 0)]);
    expect(y).toEqual(x);
    const t0 = Date.now();
    const err = await b.recv(y, 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MeshError);
    expect((err as MeshError).device).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3_000);
  });
});

describe.skipIf(!haveNatsServer && !process.env['CI'])('collectives over NATS', () => {
  let server: { url: string; stop: () => Promise<void> };
  let comms: NatsCommunicator[] = [];
  beforeAll(async () => {
    server = await startNatsServer();
    comms = await Promise.all([0, 1, 2].map((rank) => NatsCommunicator.join({ servers: server.url, rank, size: 3, prefix: 'test.collectives', chunkBytes: 64, deadlineMs: 10_000 })));
  });
  afterAll(async () => {
    await Promise.all(comms.map((c) => c.close()));
    await server?.stop();
  });

  it('all-reduce, reduce-scatter, all-gather and all-to-all equal their definitions across 3 connections', async () => {
    await fc.assert(
      fc.asyncProperty(arbCase(3), (c) => check(comms, c)),
      { numRuns: 40, ...seed },
    );
  });

  it('a tensor larger than the server max payload goes in parts', async () => {
    const [a, b] = await Promise.all([0, 1].map((rank) => NatsCommunicator.join({ servers: server.url, rank, size: 2, prefix: 'test.large' })));
    try {
      const x = Float32Array.from({ length: 400_000 }, (_, i) => Math.sin(i));
      const y = new Float32Array(x.length);
      await Promise.all([a!.send(x, 1), b!.recv(y, 0)]);
      expect(y).toEqual(x);
    } finally {
      await Promise.all([a!.close(), b!.close()]);
    }
  });
});
