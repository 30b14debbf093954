// Online training on rxjs: `train(step, source, options)` consumes a stream of batches through a
// bounded queue with an explicit backpressure policy, runs one training step per batch and emits
// step events; on the way it evaluates, publishes live snapshots and writes checkpoints, and it
// resumes from the newest good checkpoint exactly where that one left the stream.

import { Observable, ReplaySubject } from 'rxjs';
import type { Executable, Feeds } from '../executor.js';
import type { StreamPosition } from './checkpoint.js';
import type { CheckpointStore } from './checkpoint-store.js';
import type { EvalOptions, EvalResult } from './evaluate.js';
import type { BackpressurePolicy } from './queue.js';
import { Run } from './run.js';
import type { Snapshot } from './snapshots.js';
import type { Batch, Source } from './sources.js';

export { stepSeed } from './run.js';

export interface TrainOptions {
  /** what to do when batches arrive faster than training (default 'block') */
  readonly policy?: BackpressurePolicy;
  /** most batches held between the source and the step (default 4) */
  readonly queueLimit?: number;
  /** the loss output (default 'loss') */
  readonly loss?: string;
  /** further outputs reported in each event's `metrics` (non-scalars as their mean) */
  readonly metrics?: readonly string[];
  /** stop after this step number (counted across resumes) */
  readonly maxSteps?: number;
  /** seed of the per-step seeds given to `prepare` (default 0; a resumed run keeps its checkpoint's) */
  readonly seed?: number;
  /** turns a batch into the step's feeds, e.g. noise or augmentation drawn from `seed` */
  readonly prepare?: (batch: Batch, ctx: { readonly step: number; readonly seed: number }) => Feeds;
  /** publish a snapshot of the params every `every` steps (and at the start and the end) */
  readonly snapshots?: { readonly every: number; readonly include?: 'params' | 'all' };
  readonly checkpoint?: CheckpointOptions;
  /** evaluate on held-out data every `every` steps */
  readonly eval?: EvalOptions & { readonly every: number };
  /** called once the run has resumed (or not) and before the first step */
  readonly onStart?: (info: StartInfo) => void;
  /**
   * check every step for NaN and ±Infinity (see the compile option `checkNumerics`): the run
   * fails with a NumericsError naming the first op that made one
   */
  readonly checkNumerics?: boolean;
}

/**
 * Where and when a run checkpoints: `dir` (Node: safetensors files there, written atomically) or
 * `store` (any other place, e.g. IndexedDB in a browser; see CheckpointStore), one of the two.
 */
export interface CheckpointOptions {
  /** created if missing; checked writable before the first step (a CheckpointError if not) */
  readonly dir?: string;
  /** keeps the checkpoints instead of a directory */
  readonly store?: CheckpointStore;
  /** every this many steps */
  readonly every?: number;
  /** and/or when this many seconds have passed since the last one */
  readonly everySeconds?: number;
  /** checkpoints kept (default 3) */
  readonly keep?: number;
  /** resume from the newest good checkpoint there (default true) */
  readonly resume?: boolean;
  /** write one when the run completes (default true) */
  readonly final?: boolean;
}

export interface StartInfo {
  readonly step: number;
  readonly position: StreamPosition;
  /** the checkpoint resumed from */
  readonly checkpoint?: string;
  /** newer checkpoints refused on the way, and why */
  readonly skipped: readonly { readonly path: string; readonly reason: string }[];
}

export interface StepEvent {
  /** steps taken, counted across resumes */
  readonly step: number;
  readonly loss: number;
  readonly metrics: Readonly<Record<string, number>>;
  /** samples trained per second since this run started */
  readonly samplesPerSec: number;
  /** batches waiting; the counters are this run's: received = trained + dropped + queueDepth */
  readonly queueDepth: number;
  readonly received: number;
  readonly trained: number;
  readonly dropped: number;
  /** the stream position a resume from now would start at */
  readonly position: StreamPosition;
  readonly eval?: EvalResult;
  /** the checkpoint written after this step */
  readonly checkpoint?: string;
  /** the snapshot version published after this step */
  readonly snapshot?: number;
}

/**
 * Step events; a run starts on subscription and stops on unsubscribe. Subscribe once: each
 * subscription is a run on the same executable, and `snapshots$` completes with the first to end.
 */
export interface TrainRun extends Observable<StepEvent> {
  /** the live model: the latest snapshot replays to each new subscriber; completes with the run */
  readonly snapshots$: Observable<Snapshot>;
}

/**
 * Trains `step` (an executable compiled with an optimizer) online on a stream of batches.
 *
 * @example
 * const run = train(step, pullPipe(samples, shuffleWindow(1000, 1), batchOf(64, stack)), {
 *   checkpoint: { dir: 'ckpt', every: 500 }, snapshots: { every: 100 },
 * });
 * run.subscribe((e) => console.log(e.step, e.loss, e.samplesPerSec));
 */
export function train(step: Executable, source: Source<Batch>, options: TrainOptions = {}): TrainRun {
  const snapshots$ = new ReplaySubject<Snapshot>(1);
  const events$ = new Observable<StepEvent>((subscriber) => {
    const run = new Run(step, source, options, subscriber, snapshots$);
    void run.start();
    return () => run.stop();
  });
  return Object.assign(events$, { snapshots$: snapshots$.asObservable() });
}
