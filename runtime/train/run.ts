// One online-training run: the pump or subscription that fills the bounded queue, the loop that
// steps on it, and what happens after a step (evaluation, snapshot, checkpoint, commit). The
// public surface (options, events, `train`) is trainer.ts; this file has no API of its own.
// A step is recorded on the device when it is taken from the queue (on the CPU that is when it
// runs); its event, evaluation, snapshot and checkpoint resolve when their values are read back,
// in step order, so the same code trains on the CPU and on WebGPU.

import { Subject, takeUntil, type Subscriber, type Subscription } from 'rxjs';
import { randBits } from '../../ops/rand.js';
import { dict } from '../../graphs/dict.js';
import type { Executable } from '../executor.js';
import type { StreamPosition } from './checkpoint.js';
import { openCheckpointStore, restoreCheckpoint, type CheckpointStore } from './checkpoint-store.js';
import { evaluateRecorded, type EvalResult } from './evaluate.js';
import { BoundedQueue } from './queue.js';
import { captureSnapshot, type Snapshot } from './snapshots.js';
import { batchSizeOf, isPull, isResumable, pullIterator, tokenOf, type Batch, type ResumableSource, type Source, type SourceLike } from './sources.js';
import type { StartInfo, StepEvent, TrainOptions } from './trainer.js';

/** The seed `prepare` gets for a step: a pure function of the run's seed and the step number. */
export function stepSeed(seed: number, step: number): number {
  return randBits(seed, step);
}

interface Item {
  readonly batch: Batch;
  readonly index: number;
  /** token of the item before it: the position's token once this item is the queue's head */
  readonly prevToken: string | undefined;
}

// setImmediate where there is one (Node); a macrotask elsewhere (browsers)
const later: (f: () => void) => unknown = typeof setImmediate === 'function' ? setImmediate : (f) => setTimeout(f, 0);
const immediate = () => new Promise<void>((resolve) => later(resolve));

/** One training run: what `train` starts for each subscriber. */
export class Run {
  private readonly queue: BoundedQueue<Item>;
  private readonly stop$ = new Subject<void>();
  private readonly resumable: ResumableSource<Batch> | undefined;
  /** running: reading and training; finishing: source closed, final checkpoint on its way; stopped */
  private state: 'running' | 'finishing' | 'stopped' = 'running';
  private stepNo = 0;
  private seed: number;
  private nextIndex = 0;
  private skipUntil = 0;
  private lastToken: string | undefined;
  private sourceDone = false;
  private wake: (() => void) | undefined;
  private room: (() => void) | undefined;
  private started = 0;
  private samples = 0;
  private version = 0;
  private lastSnapshot = -1;
  private lastCheckpoint = { step: -1, at: 0 };
  private commits: Promise<void> = Promise.resolve();
  /** events of recorded steps, emitted in order once their values are read back */
  private emitted: Promise<void> = Promise.resolve();
  /** checkpoint writes under way, settled or not */
  private writes: Promise<void> = Promise.resolve();
  private closed: Promise<void> | undefined;
  private subscription: Subscription | undefined;
  private store: CheckpointStore | undefined;

  constructor(
    private readonly exe: Executable,
    private readonly source: Source<Batch>,
    private readonly opts: TrainOptions,
    private readonly out: Subscriber<StepEvent>,
    private readonly snapshots$: Subject<Snapshot>,
  ) {
    this.queue = new BoundedQueue(opts.queueLimit ?? 4, opts.policy ?? 'block');
    this.seed = opts.seed ?? 0;
    this.resumable = isResumable(source) ? source : undefined;
  }

  async start(): Promise<void> {
    try {
      await this.exe.ready();
      if (this.opts.checkpoint) {
        this.store = await openCheckpointStore(this.opts.checkpoint);
        await this.store.open?.();
      }
      const position = await this.resume();
      this.started = performance.now();
      this.lastCheckpoint = { step: this.stepNo, at: Date.now() };
      if (this.opts.snapshots) this.publish();
      if (this.maxedOut()) return await this.finish();
      this.connect(position);
      await this.loop();
    } catch (e) {
      this.fail(e);
    }
  }

  /** The subscriber left: stop reading and training, write nothing more. */
  stop(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.disconnect();
    void this.close().catch(() => undefined);
  }

  private get running(): boolean {
    return this.state === 'running';
  }

  private async resume(): Promise<StreamPosition> {
    let position: StreamPosition = { index: 0 };
    let info: StartInfo = { step: 0, position, skipped: [] };
    const ck = this.opts.checkpoint;
    if (ck && ck.resume !== false) {
      const c = await this.store!.loadLatest();
      if (c) {
        restoreCheckpoint(this.exe, c);
        this.stepNo = c.step;
        this.seed = c.rng.seed;
        position = c.position;
        info = { step: c.step, position, checkpoint: c.path, skipped: c.skipped };
      }
    }
    this.opts.onStart?.(info);
    return position;
  }

  /** Opens the source at `position`: a plain source is replayed and its first items skipped. */
  private connect(position: StreamPosition): void {
    const src = this.source;
    let opened: SourceLike<Batch>;
    if (this.resumable) opened = this.resumable.open(position);
    else if (typeof src === 'function') opened = src(position);
    else opened = src as SourceLike<Batch>;
    if (this.resumable || typeof src === 'function') this.nextIndex = position.index;
    else this.skipUntil = position.index;
    this.lastToken = position.token;
    if (isPull(opened)) {
      void this.pump(pullIterator(opened));
      return;
    }
    this.subscription = opened.pipe(takeUntil(this.stop$)).subscribe({
      next: (b) => this.push(b),
      error: (e) => this.fail(e),
      complete: () => this.ended(),
    });
  }

  private disconnect(): void {
    this.stop$.next();
    this.subscription?.unsubscribe();
    this.wake?.();
    this.room?.();
  }

  /** Reads a pull source only while the queue has room, whatever the policy. */
  private async pump(it: AsyncIterator<Batch> | Iterator<Batch>): Promise<void> {
    try {
      while (this.running) {
        while (this.queue.full && this.running) await new Promise<void>((r) => (this.room = r));
        if (!this.running) break;
        const r = await it.next();
        if (r.done) return this.ended();
        if (this.running) this.receive(r.value);
      }
      await it.return?.();
    } catch (e) {
      if (this.running) this.fail(e); // once finishing or stopped, a read cut short by closing is expected
    }
  }

  /** A pushed batch. Under 'block' a full queue makes the trainer step here, inside the producer's call. */
  private push(batch: Batch): void {
    try {
      while (this.running && this.queue.policy === 'block' && this.queue.full) this.trainOne();
      if (this.running) this.receive(batch);
    } catch (e) {
      this.fail(e);
    }
  }

  private receive(batch: Batch): void {
    if (this.nextIndex < this.skipUntil) {
      this.nextIndex++;
      this.lastToken = tokenOf(batch) ?? this.lastToken;
      return;
    }
    const item: Item = { batch, index: this.nextIndex++, prevToken: this.lastToken };
    this.lastToken = tokenOf(batch) ?? this.lastToken;
    this.queue.offer(item);
    this.wake?.();
  }

  private ended(): void {
    this.sourceDone = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      if (this.queue.length === 0) {
        if (this.sourceDone) break;
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      this.trainOne();
      await immediate();
    }
    if (this.state !== 'stopped') await this.finish();
  }

  private maxedOut(): boolean {
    return this.opts.maxSteps !== undefined && this.stepNo >= this.opts.maxSteps;
  }

  private position(): StreamPosition {
    const head = this.queue.peek();
    const [index, token] = head ? [head.index, head.prevToken] : [this.nextIndex, this.lastToken];
    return token === undefined ? { index } : { index, token };
  }

  /**
   * One training step on the queue's head, recorded now, then evaluation, snapshot and checkpoint
   * when due (each reads the params as they are after this step); the event follows when the
   * values are back.
   */
  private trainOne(): void {
    const item = this.queue.take()!;
    this.room?.();
    const stepNo = this.stepNo + 1;
    const { opts, exe } = this;
    const feeds = opts.prepare ? opts.prepare(item.batch, { step: stepNo, seed: stepSeed(this.seed, stepNo) }) : item.batch;
    const lossName = opts.loss ?? 'loss';
    const run = exe.record(feeds, [lossName, ...(opts.metrics ?? [])], opts.checkNumerics === undefined ? {} : { checkNumerics: opts.checkNumerics });
    this.stepNo = stepNo;
    this.samples += batchSizeOf(item.batch);
    const due = (every: number | undefined) => every !== undefined && every > 0 && stepNo % every === 0;
    const evaluation: Promise<EvalResult> | undefined = opts.eval && due(opts.eval.every) ? evaluateRecorded(exe, opts.eval.data, opts.eval, stepNo) : undefined;
    const snapshot = opts.snapshots && due(opts.snapshots.every) ? this.publish() : undefined;
    const ck = opts.checkpoint;
    const timeUp = ck?.everySeconds !== undefined && Date.now() - this.lastCheckpoint.at >= ck.everySeconds * 1000;
    const checkpoint = ck && (due(ck.every) || timeUp) ? this.checkpoint() : undefined;
    const q = this.queue;
    const counts = { queueDepth: q.length, received: q.received, trained: q.taken, dropped: q.dropped, position: this.position() };
    const samples = this.samples;
    if (this.maxedOut()) {
      this.state = 'finishing';
      this.disconnect();
    }
    this.emit(async () => {
      const [res, evalResult, path] = await Promise.all([run, evaluation, checkpoint]);
      const metrics = dict<number>();
      for (const m of opts.metrics ?? []) metrics[m] = mean(res[m]!.data);
      const elapsed = (performance.now() - this.started) / 1000;
      const event: StepEvent = {
        step: stepNo,
        loss: res[lossName]!.data[0]!,
        metrics,
        samplesPerSec: elapsed > 0 ? samples / elapsed : 0,
        ...counts,
        ...(evalResult && { eval: evalResult }),
        ...(path !== undefined && { checkpoint: path }),
        ...(snapshot !== undefined && { snapshot }),
      };
      this.out.next(event);
    });
  }

  /** Queue work that emits, after everything emitted before it. */
  private emit(f: () => Promise<void>): void {
    this.emitted = this.emitted.then(() => (this.state === 'stopped' ? undefined : f()));
    this.emitted.catch((e: unknown) => this.fail(e));
  }

  /** Takes a snapshot of the params now; it is published in order. Returns its version. */
  private publish(): number {
    const v = this.version++;
    this.lastSnapshot = this.stepNo;
    const snap = captureSnapshot(this.exe, v, this.stepNo, this.opts.snapshots?.include);
    this.emit(async () => this.snapshots$.next(await snap));
    return v;
  }

  /** Takes the params and state now; resolves to the checkpoint's path once written. */
  private checkpoint(): Promise<string> {
    const ck = this.opts.checkpoint!;
    const position = this.position();
    const step = this.stepNo;
    const rng = { seed: this.seed, counter: step };
    this.lastCheckpoint = { step, at: Date.now() };
    const written = this.exe.captureVariables().then((variables) => this.store!.write({ step, position, rng, variables }, ck.keep ?? 3));
    this.writes = this.writes.then(() => written.then(() => undefined, () => undefined));
    const resumable = this.resumable;
    if (resumable?.commit) {
      this.commits = this.commits.then(() => written).then(() => resumable.commit!(position));
      this.commits.catch((e: unknown) => this.fail(e));
    }
    return written;
  }

  /** The source is exhausted or maxSteps reached: final checkpoint and snapshot, then complete. */
  private async finish(): Promise<void> {
    try {
      this.state = 'finishing';
      this.disconnect();
      const ck = this.opts.checkpoint;
      const final = ck && ck.final !== false && this.lastCheckpoint.step !== this.stepNo ? this.checkpoint() : undefined;
      if (this.opts.snapshots && this.lastSnapshot !== this.stepNo) this.publish();
      await final;
      await this.emitted;
      await this.close();
      if (this.state !== 'finishing') return;
      this.state = 'stopped';
      this.snapshots$.complete();
      this.out.complete();
    } catch (e) {
      this.fail(e);
    }
  }

  /** Waits for outstanding commits, then closes a resumable source (once). */
  private close(): Promise<void> {
    this.closed ??= this.commits.finally(async () => {
      await this.resumable?.close?.();
    });
    return this.closed;
  }

  private fail(e: unknown): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.disconnect();
    void this.close().catch(() => undefined);
    // checkpoints of steps taken before the failure are on disk before it is reported (on WebGPU
    // their values may still be on their way back from the device)
    void this.writes.then(() => {
      this.snapshots$.error(e);
      this.out.error(e);
    });
  }
}

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return a.length ? s / a.length : NaN;
}
