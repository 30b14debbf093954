// rxjs operators that shape a sample stream into training batches: a seeded shuffling window and
// fixed-size batching with a collate function (`stack` stacks samples along a new leading axis).
// Both are synchronous, so `pullPipe` can run them on pull sources too. Randomness is a pure
// function of (seed, draw number): the same input stream shuffles the same way in every run.

import { Observable, type MonoTypeOperatorFunction, type OperatorFunction } from 'rxjs';
import { randBits } from '../../ops/rand.js';
import { dict, lookup } from '../../graphs/dict.js';
import { allocArray, type HostTensor } from '../tensor.js';
import type { Batch } from './sources.js';

/**
 * Shuffles within a window: holds `size` items and, for each new one, emits a randomly chosen
 * held item in its place; on completion emits the rest in random order. The k-th draw uses
 * (seed, k) only, so the output depends on nothing but the seed and the input sequence.
 *
 * @example
 * from([1, 2, 3, 4, 5]).pipe(shuffleWindow(3, 42)).subscribe(console.log); // a permutation of 1..5
 */
export function shuffleWindow<T>(size: number, seed: number): MonoTypeOperatorFunction<T> {
  if (!(Number.isInteger(size) && size >= 1)) throw new RangeError(`shuffleWindow: size must be a positive integer, got ${size}`);
  return (source) =>
    new Observable<T>((out) => {
      const held: T[] = [];
      let draws = 0;
      const pick = (n: number) => Math.floor((randBits(seed, draws++) / 4294967296) * n);
      return source.subscribe({
        next(v) {
          if (held.length < size) {
            held.push(v);
            return;
          }
          const j = pick(size);
          const chosen = held[j]!;
          held[j] = v;
          out.next(chosen);
        },
        error: (e) => out.error(e),
        complete() {
          while (held.length && !out.closed) {
            const j = pick(held.length);
            const chosen = held[j]!;
            held[j] = held[held.length - 1]!;
            held.pop();
            out.next(chosen);
          }
          out.complete();
        },
      });
    });
}

/**
 * Groups every `n` items into one with `collate` (e.g. `stack`). A last group of fewer than `n`
 * is collated too unless `dropPartial`.
 *
 * @example
 * samples$.pipe(batchOf(64, stack)); // Observable<Batch> of 64 samples each
 */
export function batchOf<T, B>(n: number, collate: (items: T[]) => B, opts: { dropPartial?: boolean } = {}): OperatorFunction<T, B> {
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`batchOf: n must be a positive integer, got ${n}`);
  return (source) =>
    new Observable<B>((out) => {
      let group: T[] = [];
      return source.subscribe({
        next(v) {
          group.push(v);
          if (group.length < n) return;
          const full = group;
          group = [];
          out.next(collate(full));
        },
        error: (e) => out.error(e),
        complete() {
          if (group.length && !opts.dropPartial) out.next(collate(group));
          out.complete();
        },
      });
    });
}

/**
 * Stacks samples (records of same-shaped tensors) into one batch along a new leading axis.
 *
 * @example
 * stack([{ x: tensor([1, 2], [2]) }, { x: tensor([3, 4], [2]) }]).x.shape; // [2, 2]
 */
export function stack(samples: readonly Batch[]): Batch {
  if (samples.length === 0) throw new RangeError('stack: no samples');
  const first = samples[0]!;
  const out = dict<HostTensor>();
  for (const [name, t0] of Object.entries(first)) {
    const n = t0.data.length;
    const data = t0.data instanceof Float64Array ? new Float64Array(n * samples.length) : allocArray(t0.dtype, n * samples.length);
    samples.forEach((s, i) => {
      const t = lookup(s, name);
      if (!t || t.dtype !== t0.dtype || t.data.length !== n || t.shape.length !== t0.shape.length || t.shape.some((d, k) => d !== t0.shape[k])) {
        throw new RangeError(`stack: sample ${i}'s '${name}' is ${t ? `${t.dtype}[${t.shape.join(', ')}]` : 'missing'}, sample 0's is ${t0.dtype}[${t0.shape.join(', ')}]`);
      }
      data.set(t.data, i * n);
    });
    out[name] = { dtype: t0.dtype, shape: [samples.length, ...t0.shape], data };
  }
  return out;
}
