// The Redis source through outages, against a real redis-server started here (persisting to an
// append-only file, so a restart on the same port and directory keeps the stream and the
// consumer group): a short outage mid-run is ridden out and every entry is trained exactly once;
// an outage past `reconnectMs`, or no server at all, is a RedisSourceError naming the URL and
// the stream. No "Unhandled error event" is ever printed. Skipped without redis-server, except
// under CI.

import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { haveRedis, spawnRedis, stopRedis } from './fixtures/redis-server.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { lastValueFrom, toArray } from 'rxjs';
import { adam, compile, f32, grad, graph, tensor } from '../index.js';
import { batchSizeOf, encodeEntry, train, type StepEvent } from '../runtime/train/index.js';
import { RedisSourceError, redisSource } from '../runtime/train/redis.js';
import { freePort } from './fixtures/ports.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));


/** redis-server on `port` with data in `dir` (append-only file, fsync always), so a restart keeps the stream. */
async function startServer(port: number, dir: string): Promise<ChildProcess> {
  const { proc, ready, log } = await spawnRedis(port, dir, ['--appendonly', 'yes', '--appendfsync', 'always']);
  if (!ready) throw new Error(`redis-server did not start on ${port}:\n${log}`);
  return proc;
}

const stopServer = stopRedis;

const model = graph('redis-outage', (g) => {
  const x = g.input('x', f32('batch', 2));
  const w = g.param('w', f32(2, 1));
  return { loss: g.mean(g.square(g.matmul(x, w))) };
});
const makeStep = () => compile(grad(model, 'loss'), { optimizer: adam(0.01), seed: 1 });

async function fill(url: string, stream: string, count: number): Promise<void> {
  const r = new Redis(url);
  const pipe = r.pipeline();
  for (let i = 0; i < count; i++) pipe.xadd(stream, '*', ...Object.entries(encodeEntry({ x: tensor([i, -i], [2]) })).flat());
  await pipe.exec();
  await r.quit();
}

describe.skipIf(!haveRedis && !process.env['CI'])('Redis source through outages', () => {
  let unhandled: string[] = [];
  let spy: ReturnType<typeof vi.spyOn>;
  beforeEach(() => {
    unhandled = [];
    const original = console.error.bind(console);
    spy = vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
      if (String(args[0]).includes('Unhandled error event')) unhandled.push(String(args[1] ?? ''));
      else original(...args);
    });
  });
  afterEach(() => spy.mockRestore());

  it('a server stopped mid-run and restarted: the run continues and trains every entry once', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'rheo-redis-outage-'));
    dirs.push(dir);
    let server = await startServer(port, dir);
    const url = `redis://127.0.0.1:${port}`;
    const N = 120;
    await fill(url, 's', N);
    const source = redisSource({ redis: url, stream: 's', entriesPerBatch: 4, idleMs: 1500, blockMs: 100, reconnectMs: 15_000 });
    let outage: Promise<void> | undefined;
    let seen = 0;
    const run = train(makeStep(), source, {
      prepare: (b, { step }) => {
        seen += batchSizeOf(b);
        if (step === 5) {
          outage = (async () => {
            await stopServer(server);
            await new Promise((r) => setTimeout(r, 700));
            server = await startServer(port, dir);
          })();
        }
        return b;
      },
    });
    try {
      const events = await lastValueFrom(run.pipe(toArray()));
      await outage;
      expect(events.at(-1)!.step).toBe(N / 4);
      expect(seen).toBe(N);
      expect(unhandled).toEqual([]);
    } finally {
      await stopServer(server);
    }
  }, 60_000);

  it('a server down for longer than reconnectMs: a RedisSourceError naming the URL and the stream', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'rheo-redis-outage-'));
    dirs.push(dir);
    const server = await startServer(port, dir);
    const url = `redis://127.0.0.1:${port}`;
    await fill(url, 'gone', 12);
    const source = redisSource({ redis: url, stream: 'gone', entriesPerBatch: 4, blockMs: 100, reconnectMs: 1500 });
    const events: StepEvent[] = [];
    let stoppedAt = 0;
    const run = train(makeStep(), source, {
      prepare: (b, { step }) => {
        if (step === 2) void stopServer(server).then(() => (stoppedAt = Date.now()));
        return b;
      },
    });
    const err = await new Promise<unknown>((resolve) => run.subscribe({ next: (e) => events.push(e), error: resolve, complete: () => resolve(undefined) }));
    await stopServer(server);
    expect(err).toBeInstanceOf(RedisSourceError);
    const e = err as RedisSourceError;
    expect(e.url).toBe(url);
    expect(e.stream).toBe('gone');
    expect(e.message).toContain(url);
    expect(e.message).toContain("stream 'gone'");
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(1400);
    expect(events.length).toBe(3);
    expect(unhandled).toEqual([]);
  }, 30_000);

  it('no server at the start: a RedisSourceError after reconnectMs, no unhandled error events', async () => {
    const port = await freePort();
    const url = `redis://user:secret@127.0.0.1:${port}`;
    const t0 = Date.now();
    const run = train(makeStep(), redisSource({ redis: url, stream: 'nothing', entriesPerBatch: 2, reconnectMs: 1000 }), {});
    const err = await lastValueFrom(run.pipe(toArray())).then(() => undefined, (x: unknown) => x);
    const waited = Date.now() - t0;
    expect(err).toBeInstanceOf(RedisSourceError);
    expect((err as RedisSourceError).message).toMatch(new RegExp(`no connection to redis://127\\.0\\.0\\.1:${port} \\(stream 'nothing'\\) for 1000 ms; last error: .*ECONNREFUSED`));
    expect((err as Error).message).not.toContain('secret');
    expect(waited).toBeGreaterThanOrEqual(950);
    expect(waited).toBeLessThan(10_000);
    await new Promise((r) => setTimeout(r, 300)); // any late reconnect attempt would print now
    expect(unhandled).toEqual([]);
  }, 30_000);
});
