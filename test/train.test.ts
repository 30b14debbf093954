import { describe, expect, it, afterAll } from 'vitest';
import fc from 'fast-check';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Observable, Subject, concat, from, lastValueFrom, take, throwError, toArray } from 'rxjs';
import { FeedError, compile, tensor, type HostTensor } from '../index.js';
import { mlpGraph } from '../examples/mlp-model.js';
import {
  BoundedQueue, accuracy, batchOf, evaluate, listCheckpoints, predictWith, pullPipe, shuffleWindow, simulated, stack, train,
  type Batch, type BackpressurePolicy, type Prediction, type Snapshot, type StepEvent,
} from '../runtime/train/index.js';
import { SIZES, batchSource, makeStep, prepare, sample, trainToEnd, type SourceKind } from './fixtures/online-trainer.js';

const fcSeed = process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {};
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'rheo-train-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const bitsOf = (vars: Record<string, HostTensor>) =>
  Object.fromEntries(Object.entries(vars).map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex')]));

const arbCase = fc.record({
  seed: fc.nat(10_000),
  batch: fc.integer({ min: 1, max: 5 }),
  batches: fc.integer({ min: 6, max: 20 }),
  every: fc.integer({ min: 2, max: 6 }),
  crash: fc.noBias(fc.integer({ min: 0, max: 999 })).map((k) => k / 1000),
  kind: fc.constantFrom<SourceKind>('seek', 'replay', 'push'),
  queueLimit: fc.integer({ min: 1, max: 4 }),
});

describe('crash and resume', () => {
  it('an error thrown mid-step, then resuming from the last checkpoint, ends bit-identical to an uninterrupted run', async () => {
    await fc.assert(
      fc.asyncProperty(arbCase, async (c) => {
        const spec = { seed: c.seed, batch: c.batch, batches: c.batches };
        const opts = { seed: c.seed, prepare, queueLimit: c.queueLimit };
        const reference = makeStep(c.seed);
        expect(await trainToEnd(reference, batchSource(spec, c.kind), opts)).toBe(c.batches);

        const dir = tempDir();
        const checkpoint = { dir, every: c.every };
        const poisonAt = Math.floor(c.crash * c.batches);
        await expect(trainToEnd(makeStep(c.seed), batchSource(spec, c.kind, { poisonAt }), { ...opts, checkpoint })).rejects.toThrow(FeedError);
        expect(listCheckpoints(dir)[0]?.step ?? 0).toBe(Math.floor(poisonAt / c.every) * c.every);

        const resumed = makeStep(c.seed); // a fresh process: params as initialized
        expect(await trainToEnd(resumed, batchSource(spec, c.kind), { ...opts, checkpoint })).toBe(c.batches);
        expect(bitsOf(resumed.variables())).toEqual(bitsOf(reference.variables()));
        rmSync(dir, { recursive: true, force: true });
      }),
      { numRuns: 50, ...fcSeed },
    );
  });

  it('a trainer process killed with SIGKILL at a random point, then resumed, ends bit-identical to an uninterrupted run', async () => {
    await fc.assert(
      fc.asyncProperty(arbCase, fc.integer({ min: 0, max: 30 }), async (c, killAfter) => {
        const spec = { seed: c.seed, batch: c.batch, batches: 30 };
        const reference = makeStep(c.seed);
        await trainToEnd(reference, batchSource(spec, 'seek'), { seed: c.seed, prepare });

        const dir = tempDir();
        const killedAt = await runAndKill(spec, c.every, dir, killAfter);
        const resumed = makeStep(c.seed);
        let resumedFrom = -1;
        await trainToEnd(resumed, batchSource(spec, 'seek'), { seed: c.seed, prepare, checkpoint: { dir, every: c.every }, onStart: (s) => (resumedFrom = s.step) });
        expect(resumedFrom).toBeLessThanOrEqual(killedAt);
        expect(bitsOf(resumed.variables())).toEqual(bitsOf(reference.variables()));
      }),
      { numRuns: 5, ...fcSeed },
    );
  });
});

/** Starts the fixture trainer, kills it once it has printed step `after` (or at its end); returns the last step it printed. */
function runAndKill(spec: { seed: number; batch: number; batches: number }, every: number, dir: string, after: number): Promise<number> {
  const args = ['--import', 'tsx', 'test/fixtures/online-trainer.ts', '--dir', dir, '--seed', String(spec.seed), '--batch', String(spec.batch), '--batches', String(spec.batches), '--every', String(every)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let last = 0;
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      for (const m of chunk.matchAll(/step (\d+)/g)) last = Math.max(last, Number(m[1]));
      if (last >= after && child.exitCode === null) child.kill('SIGKILL');
    });
    child.on('exit', (code, signal) => (signal === 'SIGKILL' || code === 0 ? resolve(last) : reject(new Error(`trainer exited ${code}: ${err}`))));
  });
}

describe('backpressure', () => {
  it('under a producer faster than training the queue stays within its bound and received = trained + dropped + queued', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<BackpressurePolicy>('block', 'drop-oldest', 'drop-newest'),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 12 }),
        async (policy, limit, bursts) => {
          let produced = 0;
          let worstLead = 0;
          const trainedIds: number[] = [];
          const producer = new Observable<Batch>((sub) => {
            let i = 0;
            const next = () => {
              if (sub.closed) return;
              if (i === bursts.length) return sub.complete();
              for (let k = 0; k < bursts[i]!; k++) sub.next(idBatch(produced++));
              i++;
              setImmediate(next);
            };
            setImmediate(next);
          });
          const events = await lastValueFrom(
            train(makeStep(1), producer, {
              policy, queueLimit: limit,
              prepare: (b) => {
                trainedIds.push(b['x']!.data[0]!);
                worstLead = Math.max(worstLead, produced - trainedIds.length);
                return b;
              },
            }).pipe(toArray()),
          );
          const total = bursts.reduce((a, b) => a + b, 0);
          for (const e of events) {
            expect(e.queueDepth).toBeLessThanOrEqual(limit);
            expect(e.received).toBe(e.trained + e.dropped + e.queueDepth);
          }
          const last = events[events.length - 1];
          expect(last?.trained ?? 0).toBe(trainedIds.length);
          expect(trainedIds.length + (last?.dropped ?? 0)).toBe(total);
          expect(trainedIds).toEqual([...trainedIds].sort((a, b) => a - b)); // FIFO, whatever is dropped
          if (policy === 'block') {
            expect(trainedIds).toEqual(Array.from({ length: total }, (_, i) => i));
            expect(worstLead).toBeLessThanOrEqual(limit + 1); // the queue plus the batch being pushed
          }
        },
      ),
      { numRuns: 60, ...fcSeed },
    );
  });

  it("'block' pauses a pull producer: it never runs more than the queue ahead of training", async () => {
    for (const limit of [1, 3]) {
      let produced = 0;
      let worstLead = 0;
      let started = 0;
      async function* producer() {
        for (let i = 0; i < 40; i++) {
          produced++;
          yield idBatch(i);
        }
      }
      const prep = (b: Batch) => {
        started++;
        worstLead = Math.max(worstLead, produced - started);
        return b;
      };
      const last = await lastValueFrom(train(makeStep(1), producer(), { queueLimit: limit, prepare: prep }));
      expect(last.trained).toBe(40);
      expect(worstLead).toBeLessThanOrEqual(limit);
      // a Node object-mode stream adds its own buffer (highWaterMark) and no more
      produced = 0;
      worstLead = 0;
      started = 0;
      const stream = Readable.from(producer(), { highWaterMark: 2 });
      expect((await lastValueFrom(train(makeStep(1), stream, { queueLimit: limit, prepare: prep }))).trained).toBe(40);
      expect(worstLead).toBeLessThanOrEqual(limit + 2 + 1);
    }
  });

  it('the bounded queue keeps its counters under any sequence of offers and takes', () => {
    fc.assert(
      fc.property(fc.constantFrom<BackpressurePolicy>('drop-oldest', 'drop-newest'), fc.integer({ min: 1, max: 4 }), fc.array(fc.boolean(), { maxLength: 60 }), (policy, limit, ops) => {
        const q = new BoundedQueue<number>(limit, policy);
        let n = 0;
        for (const offer of ops) {
          if (offer) q.offer(n++);
          else q.take();
          expect(q.length).toBeLessThanOrEqual(limit);
          expect(q.received).toBe(q.taken + q.dropped + q.length);
        }
      }),
      { numRuns: 100, ...fcSeed },
    );
  });
});

function idBatch(id: number): Batch {
  const x = new Float32Array(SIZES[0]!).fill(id);
  const y = new Float32Array(SIZES[2]!);
  y[id % SIZES[2]!] = 1;
  return { x: tensor(x, [1, SIZES[0]!]), y: tensor(y, [1, SIZES[2]!]) };
}

describe('sources and operators', () => {
  const spec = { seed: 5, batch: 4, batches: 10 };
  const batches = (): Batch[] => {
    const it = simulated(sample, { seed: 5 })[Symbol.iterator]();
    return Array.from({ length: 10 }, () => stack(Array.from({ length: 4 }, () => it.next().value as Batch)));
  };

  it('arrays, async iterables, object-mode streams and Observables train to the same params', async () => {
    const runs: Record<string, string>[] = [];
    async function* gen() {
      yield* batches();
    }
    for (const src of [batches(), gen(), Readable.from(batches()), from(batches()), batchSource(spec, 'seek')]) {
      const exe = makeStep(2);
      await trainToEnd(exe, src, {});
      runs.push(bitsOf(exe.variables()));
    }
    for (const r of runs) expect(r).toEqual(runs[0]);
  });

  it('shuffleWindow permutes its input the same way for the same seed; batchOf groups and keeps or drops the remainder', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 9 }), fc.nat(), async (n, size, seed) => {
        const input = Array.from({ length: n }, (_, i) => i);
        const a = await lastValueFrom(from(input).pipe(shuffleWindow(size, seed), toArray()));
        const b: number[] = [];
        for await (const v of pullPipe(input, shuffleWindow<number>(size, seed))) b.push(v);
        expect([...a].sort((x, y) => x - y)).toEqual(input);
        expect(b).toEqual(a);
        const groups = await lastValueFrom(from(input).pipe(batchOf(size, (g) => g), toArray()));
        expect(groups.flat()).toEqual(input);
        const whole = await lastValueFrom(from(input).pipe(batchOf(size, (g) => g, { dropPartial: true }), toArray()));
        expect(whole.every((g) => g.length === size) && whole.length === Math.floor(n / size)).toBe(true);
      }),
      { numRuns: 60, ...fcSeed },
    );
  });

  it('unsubscribing stops the run and releases a pull source; a source error ends the run with that error', async () => {
    let released = false;
    let pulled = 0;
    async function* endless() {
      try {
        for (let i = 0; ; i++) {
          pulled++;
          yield idBatch(i);
        }
      } finally {
        released = true;
      }
    }
    const events = await lastValueFrom(train(makeStep(1), endless(), { queueLimit: 2 }).pipe(take(3), toArray()));
    expect(events.map((e) => e.step)).toEqual([1, 2, 3]);
    await new Promise((r) => setTimeout(r, 20));
    expect(released).toBe(true);
    expect(pulled).toBeLessThanOrEqual(3 + 2 + 1);
    const failing = concat(from([idBatch(0), idBatch(1)]), throwError(() => new Error('producer failed')));
    await expect(lastValueFrom(train(makeStep(1), failing))).rejects.toThrow('producer failed');
  });

  it('a pull pipeline reads its source only as far as the trainer asks', async () => {
    let read = 0;
    const counted = { *[Symbol.iterator]() { for (let i = 0; ; i++) { read++; yield sample(i, () => 0.5); } } };
    const last = await lastValueFrom(train(makeStep(1), pullPipe(counted, batchOf(3, stack)), { maxSteps: 5, queueLimit: 2 }));
    expect(last.step).toBe(5);
    expect(read).toBeLessThanOrEqual(3 * (5 + 2 + 1));
  });
});

describe('live model, evaluation and checkpoints while training', () => {
  const spec = { seed: 8, batch: 8, batches: 40 };

  it('predictions use one consistent snapshot while training goes on; snapshots are frozen copies', async () => {
    const exe = makeStep(8);
    const run = train(exe, batchSource(spec, 'seek'), { snapshots: { every: 5 } });
    const snaps = new Map<number, Snapshot>();
    run.snapshots$.subscribe((s) => snaps.set(s.version, s));
    const queries = new Subject<Batch>();
    const inference = compile(mlpGraph(SIZES), { outputs: ['logits'] });
    const preds: Prediction<Batch>[] = [];
    predictWith(inference, queries, run.snapshots$, { outputs: ['logits'] }).subscribe((p) => preds.push(p));
    const query = { x: tensor(Float32Array.from({ length: 8 }, (_, i) => Math.sin(i)), [2, 4]) };
    const events: StepEvent[] = [];
    await new Promise<void>((done) => run.subscribe({ next: (e) => { events.push(e); if (e.step % 3 === 0) queries.next(query); }, complete: done }));
    expect(events.filter((e) => e.snapshot !== undefined).map((e) => e.step)).toEqual([5, 10, 15, 20, 25, 30, 35, 40]);
    expect(snaps.size).toBe(9); // the start, then every 5 steps
    expect(new Set(preds.map((p) => p.version)).size).toBeGreaterThan(3);
    for (let i = 1; i < preds.length; i++) expect(preds[i]!.version).toBeGreaterThanOrEqual(preds[i - 1]!.version);
    const check = compile(mlpGraph(SIZES), { outputs: ['logits'] });
    for (const p of preds) {
      const s = snaps.get(p.version)!;
      expect(p.step).toBe(s.step);
      check.setVariables(s.variables);
      expect(bitsOf(p.outputs)).toEqual(bitsOf(check.runSync(query, ['logits'], { update: false })));
    }
    const first = snaps.get(0)!;
    expect(Object.isFrozen(first) && Object.isFrozen(first.variables) && Object.isFrozen(first.variables['param:w0'])).toBe(true);
    expect(bitsOf(first.variables)).not.toEqual(bitsOf(snaps.get(8)!.variables)); // training moved on, the copy did not
    expect(bitsOf(snaps.get(8)!.variables)).toEqual(bitsOf(Object.fromEntries(Object.entries(exe.variables()).filter(([k]) => k.startsWith('param:')))));
  });

  it('held-out evaluation runs every K steps without changing training', async () => {
    const held = [stack(Array.from({ length: 16 }, (_, i) => sample(i, mulberry(i))))];
    const plain = makeStep(8);
    await trainToEnd(plain, batchSource(spec, 'seek'), {});
    const evaluated = makeStep(8);
    const events = await lastValueFrom(train(evaluated, batchSource(spec, 'seek'), { eval: { every: 10, data: held, outputs: ['loss', 'logits'], metrics: accuracy() } }).pipe(toArray()));
    expect(bitsOf(evaluated.variables())).toEqual(bitsOf(plain.variables()));
    const evals = events.filter((e) => e.eval);
    expect(evals.map((e) => e.eval!.step)).toEqual([10, 20, 30, 40]);
    const final = evaluate(evaluated, held, { outputs: ['loss'] }, 40);
    expect(evals[3]!.eval!.loss).toBe(final.loss);
    expect(evals[3]!.eval!.metrics['accuracy']).toBeGreaterThanOrEqual(0);
    expect(evals[3]!.eval!.loss!).toBeLessThan(evals[0]!.eval!.loss! + 1e-6);
  });

  it('maxSteps stops a run and a later run resumes at its position; a time-based checkpoint is written too', async () => {
    const dir = tempDir();
    const a = makeStep(8);
    const first = await lastValueFrom(train(a, batchSource(spec, 'replay'), { maxSteps: 13, checkpoint: { dir, every: 100, everySeconds: 3600 } }));
    expect(first.step).toBe(13);
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([13]); // the final one
    const b = makeStep(8);
    const events = await lastValueFrom(train(b, batchSource(spec, 'replay'), { checkpoint: { dir, everySeconds: 0 } }).pipe(toArray()));
    expect(events[0]!.step).toBe(14);
    expect(events.every((e) => e.checkpoint !== undefined)).toBe(true);
    const ref = makeStep(8);
    await trainToEnd(ref, batchSource(spec, 'replay'), {});
    expect(bitsOf(b.variables())).toEqual(bitsOf(ref.variables()));
  });
});

function mulberry(i: number) {
  let s = i + 1;
  return () => ((s = (s * 16807) % 2147483647) / 2147483647);
}
