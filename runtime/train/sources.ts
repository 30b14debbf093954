// Data sources for online training. Push sources are rxjs Observables; pull sources are (async)
// iterables, read only when the trainer asks, which is how `block` pauses a producer. Resumable
// sources reopen at a stream position. It does not shuffle or batch (operators.ts does).

import { Observable, Subject, from, isObservable, type OperatorFunction } from 'rxjs';
import type { Readable } from 'node:stream';
import { randBits } from '../../ops/rand.js';
import { mulberry32, type Rng } from '../rng.js';
import type { HostTensor } from '../tensor.js';
import type { StreamPosition } from './checkpoint.js';

/** One training step's feeds: input name -> host tensor. */
export type Batch = Readonly<Record<string, HostTensor>>;

/** Anything the trainer can read items from: pushed (Observable) or pulled (iterables). */
export type SourceLike<T> = Observable<T> | AsyncIterable<T> | Iterable<T>;

/** A source that can start again at a position, and hear when a checkpoint covers a prefix of it. */
export interface ResumableSource<T> {
  /** the items from `from.index` on (the item at `from.index` first) */
  open(from: StreamPosition): SourceLike<T>;
  /** a checkpoint covering every item before `position` is durable (e.g. acknowledge them) */
  commit?(position: StreamPosition): void | Promise<void>;
  /** the run is over */
  close?(): void | Promise<void>;
}

/**
 * What `train` accepts: a plain source (replayed from its start on resume, the items before the
 * checkpoint's position skipped), a function of the position, or a ResumableSource.
 */
export type Source<T> = SourceLike<T> | ResumableSource<T> | ((from: StreamPosition) => SourceLike<T>);

export function isResumable<T>(s: Source<T>): s is ResumableSource<T> {
  // An iterable with an `open` method (a file stream has one) is a plain source, not a resumable one.
  return typeof s === 'object' && s !== null && !isObservable(s) && !(Symbol.asyncIterator in s) && !(Symbol.iterator in s) && typeof (s as ResumableSource<T>).open === 'function';
}

export function isPull<T>(s: SourceLike<T>): s is AsyncIterable<T> | Iterable<T> {
  return !isObservable(s);
}

/** An iterator over a pull source, async or not. */
export function pullIterator<T>(s: AsyncIterable<T> | Iterable<T>): AsyncIterator<T> | Iterator<T> {
  return Symbol.asyncIterator in s ? (s as AsyncIterable<T>)[Symbol.asyncIterator]() : (s as Iterable<T>)[Symbol.iterator]();
}

const tokens = new WeakMap<object, string>();

/** Tags an item with its source's name for it (e.g. a Redis entry ID), recorded in checkpoints. */
export function withToken<T extends object>(item: T, token: string): T {
  tokens.set(item, token);
  return item;
}

export function tokenOf(item: unknown): string | undefined {
  return typeof item === 'object' && item !== null ? tokens.get(item) : undefined;
}

/**
 * A Node readable stream in object mode as an Observable (each chunk one item). Reading goes
 * through the stream's async iterator, so the stream's own buffering applies; unsubscribing
 * destroys the stream. To have `block` pause the stream, pass the stream itself to `train`.
 *
 * @example
 * fromReadable<Batch>(Readable.from(batches)).subscribe((b) => console.log(Object.keys(b)));
 */
export function fromReadable<T>(readable: Readable): Observable<T> {
  return from(readable as AsyncIterable<T>);
}

/**
 * Simulated data, one item per index, each drawn from its own generator seeded by (seed, index):
 * the stream can start at any index and replays exactly, so resuming needs no replay.
 * `count` bounds it (default: endless).
 *
 * @example
 * const noisy = simulated((i, rng) => ({ x: tensor([i, rng()], [2]) }), { seed: 7 });
 * for (const s of noisy) { ... }
 */
export function simulated<T>(make: (index: number, rng: Rng) => T, opts: { seed?: number; from?: number; count?: number } = {}): Iterable<T> {
  const seed = opts.seed ?? 0;
  const start = opts.from ?? 0;
  const end = opts.count ?? Infinity;
  return {
    *[Symbol.iterator]() {
      for (let i = start; i < end; i++) yield make(i, mulberry32(randBits(seed, i)));
    },
  };
}

/**
 * A pull source passed through synchronous rxjs operators (map, filter, `shuffleWindow`,
 * `batchOf`, ...) and still pulled: an input is read only when an output is asked for and none
 * is ready. Operators that emit later (delay, debounce) are not supported.
 *
 * @example
 * const batches = pullPipe(samples, shuffleWindow(1024, 1), batchOf(64, stack));
 * for await (const b of batches) exe.runSync(b);
 */
export function pullPipe<A, B>(source: AsyncIterable<A> | Iterable<A>, op1: OperatorFunction<A, B>): AsyncIterable<B>;
export function pullPipe<A, B, C>(source: AsyncIterable<A> | Iterable<A>, op1: OperatorFunction<A, B>, op2: OperatorFunction<B, C>): AsyncIterable<C>;
export function pullPipe<A, B, C, D>(source: AsyncIterable<A> | Iterable<A>, op1: OperatorFunction<A, B>, op2: OperatorFunction<B, C>, op3: OperatorFunction<C, D>): AsyncIterable<D>;
export function pullPipe(source: AsyncIterable<unknown> | Iterable<unknown>, ...ops: OperatorFunction<unknown, unknown>[]): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator]() {
      const input = new Subject<unknown>();
      const ready: unknown[] = [];
      let finished = false;
      let failure: { error: unknown } | undefined;
      const out = (ops as [OperatorFunction<unknown, unknown>]).reduce<Observable<unknown>>((o, op) => o.pipe(op), input);
      const sub = out.subscribe({
        next: (v) => ready.push(v),
        error: (error) => (failure = { error }),
        complete: () => (finished = true),
      });
      const it = pullIterator(source);
      let upstreamDone = false;
      return {
        async next(): Promise<IteratorResult<unknown>> {
          while (ready.length === 0 && !finished && !failure) {
            if (upstreamDone) {
              finished = true;
              break;
            }
            const r = await it.next();
            if (r.done) {
              upstreamDone = true;
              input.complete();
            } else input.next(r.value);
          }
          if (ready.length) return { done: false, value: ready.shift() };
          if (failure) throw failure.error;
          sub.unsubscribe();
          return { done: true, value: undefined };
        },
        async return(): Promise<IteratorResult<unknown>> {
          sub.unsubscribe();
          await it.return?.();
          return { done: true, value: undefined };
        },
      };
    },
  };
}

/** Samples in a batch: the leading dim of its first tensor of rank ≥ 1 (1 if it has none). */
export function batchSizeOf(batch: Batch): number {
  for (const t of Object.values(batch)) if (t.shape.length >= 1) return t.shape[0]!;
  return 1;
}
