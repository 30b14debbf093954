// Against a real redis-server, started here on a free loopback port with a temp dir. Without
// redis-server the suite is skipped, except under CI, where it must fail rather than pass unseen.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { spawn, type ChildProcess } from 'node:child_process';
import { haveRedis, spawnRedis, stopRedis } from './fixtures/redis-server.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { lastValueFrom, toArray } from 'rxjs';
import type { HostTensor } from '../index.js';
import { decodeEntry, encodeEntry, listCheckpoints, loadLatest, readCheckpoint, redisSource, simulated, train, type StepEvent } from '../runtime/train/index.js';
import { redisTrainer, sample, makeStep } from './fixtures/online-trainer.js';
import { freePort } from './fixtures/ports.js';

const fcSeed = process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {};

const bitsOf = (vars: Record<string, HostTensor>) =>
  Object.fromEntries(Object.entries(vars).map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex')]));


/** A private redis-server: random loopback port, temp dir, no persistence. */
async function startRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (!haveRedis) throw new Error('redis-server is not installed (Debian: apt-get install redis-server); CI must have it');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'rheo-redis-'));
    const { proc, ready, log } = await spawnRedis(port, dir, ['--appendonly', 'no']);
    const stop = async () => {
      await stopRedis(proc);
      rmSync(dir, { recursive: true, force: true });
    };
    if (ready) return { url: `redis://127.0.0.1:${port}`, stop };
    await stop();
    if (attempt === 4) throw new Error(`redis-server did not start:\n${log}`);
  }
}

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'rheo-redis-ckpt-'));
  dirs.push(d);
  return d;
};

describe.skipIf(!haveRedis && !process.env['CI'])('Redis Streams source', () => {
  let server: { url: string; stop: () => Promise<void> };
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
    dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  });

  /** Appends `count` samples to `stream`; returns their entry IDs in order. */
  async function produce(stream: string, seed: number, count: number): Promise<string[]> {
    const pipe = redis.pipeline();
    for (const s of simulated(sample, { seed, count })) pipe.xadd(stream, '*', ...Object.entries(encodeEntry(s)).flat());
    return ((await pipe.exec()) ?? []).map(([err, id]) => {
      if (err) throw err;
      return id as string;
    });
  }

  const pendingCount = async (stream: string, group: string) => ((await redis.xpending(stream, group)) as [number])[0];

  it('encodes tensors in entries exactly', () => {
    const s = sample(0, () => 0.25);
    const back = decodeEntry(encodeEntry(s));
    expect(bitsOf(back as Record<string, HostTensor>)).toEqual(bitsOf(s as Record<string, HostTensor>));
    expect(back['x']!.shape).toEqual(s['x']!.shape);
  });

  it('acknowledges entries only once a checkpoint covering them is written', async () => {
    const ids = await produce('ack', 1, 40);
    const dir = tempDir();
    const source = redisSource({ redis: server.url, stream: 'ack', group: 'g', entriesPerBatch: 4, idleMs: 200, blockMs: 50 });
    const events: StepEvent[] = await lastValueFrom(train(makeStep(1), source, { maxSteps: 7, checkpoint: { dir, every: 3, final: false } }).pipe(toArray()));
    expect(events.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // checkpoints at steps 3 and 6 cover 24 entries: those are acknowledged, later deliveries are not
    expect(source.acked).toBe(24);
    const pending = (await redis.xpending('ack', 'g', '-', '+', 100)) as [string][];
    expect(pending.length).toBeGreaterThanOrEqual(4);
    expect(pending.every(([id]) => ids.indexOf(id) >= 24)).toBe(true);
    expect(readCheckpoint(listCheckpoints(dir)[0]!.path).position).toEqual({ index: 6, token: ids[23] });
    // the next run picks up at entry 24, trains the rest once and acknowledges everything
    const rest = await lastValueFrom(train(makeStep(1), redisSource({ redis: server.url, stream: 'ack', group: 'g', entriesPerBatch: 4, idleMs: 200, blockMs: 50 }), { checkpoint: { dir, every: 3 } }).pipe(toArray()));
    expect(rest.map((e) => e.position.token)).toEqual([7, 8, 9, 10].map((b) => ids[b * 4 - 1]));
    expect(await pendingCount('ack', 'g')).toBe(0);
  });

  it('a trainer process killed at a random point and restarted ends as an uninterrupted run, every entry trained once in effect', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({ seed: fc.nat(10_000), entries: fc.integer({ min: 12, max: 48 }), perBatch: fc.integer({ min: 1, max: 5 }), every: fc.integer({ min: 1, max: 4 }), kill: fc.noBias(fc.integer({ min: 0, max: 999 })) }),
        async (c) => {
          const stream = `kill-${n++}`;
          const ids = await produce(stream, c.seed, c.entries);
          const batches = Math.ceil(c.entries / c.perBatch);
          const batchEnds = Array.from({ length: batches }, (_, b) => ids[Math.min(c.entries, (b + 1) * c.perBatch) - 1]!);

          const ref = redisTrainer({ url: server.url, stream, group: 'reference', perBatch: c.perBatch, seed: c.seed, every: 1000, dir: tempDir() });
          await lastValueFrom(ref.run);

          const dir = tempDir();
          const trainedBeforeKill = await killTrainer(server.url, stream, c, dir, 1 + Math.floor((c.kill / 1000) * batches));
          const restarted = redisTrainer({ url: server.url, stream, group: 'g', perBatch: c.perBatch, seed: c.seed, every: c.every, dir });
          const checkpoint = loadLatest(dir);
          const resumedFrom = checkpoint?.step ?? 0;
          const after = await lastValueFrom(restarted.run.pipe(toArray()));

          // in effect: what the killed process trained up to the checkpoint resumed from, then the rest
          // (a kill between writing a checkpoint and printing its step leaves the checkpoint to say it)
          if (checkpoint) trainedBeforeKill[resumedFrom - 1] ??= checkpoint.position.token!;
          const effective = [...trainedBeforeKill.slice(0, resumedFrom), ...after.map((e) => e.position.token)];
          expect(effective).toEqual(batchEnds);
          expect(bitsOf(restarted.exe.variables())).toEqual(bitsOf(ref.exe.variables()));
          expect(await pendingCount(stream, 'g')).toBe(0);
        },
      ),
      { numRuns: 10, ...fcSeed },
    );
  });
});

/** Runs the fixture trainer on `stream`, SIGKILLs it once it has printed step `killAt`; returns the batch tokens it printed, by step. */
function killTrainer(url: string, stream: string, c: { seed: number; perBatch: number; every: number }, dir: string, killAt: number): Promise<string[]> {
  const args = ['--import', 'tsx', 'test/fixtures/online-trainer.ts', '--redis', url, '--stream', stream, '--group', 'g', '--dir', dir, '--seed', String(c.seed), '--batch', String(c.perBatch), '--every', String(c.every), '--delay-ms', '3'];
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const tokens: string[] = [];
  let err = '';
  let buffered = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const m = /^step (\d+) (\S+)$/.exec(line);
        if (m) tokens[Number(m[1]) - 1] = m[2]!;
      }
      if (tokens.length >= killAt && child.exitCode === null) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => (signal === 'SIGKILL' || code === 0 ? resolve(tokens) : reject(new Error(`trainer exited ${code}: ${err}`))));
  });
}
