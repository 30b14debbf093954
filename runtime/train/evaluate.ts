// Held-out evaluation while training: runs chosen outputs over a fixed set of batches without
// updates and averages them, weighted by batch size, with
// optional per-batch metrics such as accuracy. It never changes params or state.

import type { Executable, Outputs } from '../executor.js';
import { batchSizeOf, type Batch } from './sources.js';
import { dict, lookup } from '../../graphs/dict.js';

export interface EvalOptions {
  /** held-out batches, iterated afresh at each evaluation: an array, or a function giving a fresh iterable */
  readonly data: Iterable<Batch> | (() => Iterable<Batch>);
  /** outputs to average (default ['loss']); non-scalars are averaged over their elements */
  readonly outputs?: readonly string[];
  /** per-batch metrics from the outputs, e.g. `accuracy()`; averaged weighted by batch size */
  readonly metrics?: (outputs: Outputs, batch: Batch) => Readonly<Record<string, number>>;
}

export interface EvalResult {
  /** the training step after which it ran */
  readonly step: number;
  readonly samples: number;
  /** the 'loss' output's mean, when it is among the outputs */
  readonly loss?: number;
  /** every averaged output and metric by name */
  readonly metrics: Readonly<Record<string, number>>;
}

/**
 * Evaluates `exe` on held-out data without updating it.
 *
 * @example
 * const { loss, metrics } = evaluate(step, testBatches, { outputs: ['loss', 'logits'], metrics: accuracy() }, 0);
 */
export function evaluate(exe: Executable, data: EvalOptions['data'], opts: Omit<EvalOptions, 'data'> = {}, step = 0): EvalResult {
  const outputs = opts.outputs ?? ['loss'];
  const batches = [...(typeof data === 'function' ? data() : data)];
  return summarize(batches, batches.map((b) => exe.runSync(b, outputs, { update: false })), outputs, opts, step);
}

/**
 * `evaluate` on any device: every batch's run is recorded before this returns (so it sees the
 * params as they are now, whatever runs after it), and the averages resolve when read back.
 */
export function evaluateRecorded(exe: Executable, data: EvalOptions['data'], opts: Omit<EvalOptions, 'data'> = {}, step = 0): Promise<EvalResult> {
  const outputs = opts.outputs ?? ['loss'];
  const batches = [...(typeof data === 'function' ? data() : data)];
  const runs = batches.map((b) => exe.record(b, outputs, { update: false }));
  return Promise.all(runs).then((outs) => summarize(batches, outs, outputs, opts, step));
}

function summarize(batches: readonly Batch[], outs: readonly Outputs[], outputs: readonly string[], opts: Omit<EvalOptions, 'data'>, step: number): EvalResult {
  const sums = dict<number>();
  let samples = 0;
  batches.forEach((batch, i) => {
    const n = batchSizeOf(batch);
    const out = outs[i]!;
    const add = (name: string, v: number) => (sums[name] = (sums[name] ?? 0) + v * n);
    for (const name of outputs) add(name, mean(out[name]!.data));
    if (opts.metrics) for (const [name, v] of Object.entries(opts.metrics(out, batch))) add(name, v);
    samples += n;
  });
  const metrics = dict(Object.entries(sums).map(([k, v]) => [k, v / samples] as const));
  return metrics['loss'] === undefined ? { step, samples, metrics } : { step, samples, loss: metrics['loss'], metrics };
}

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return a.length ? s / a.length : NaN;
}

/**
 * Classification accuracy of `logits` [B, C] against one-hot `target` [B, C] (a feed of the batch).
 *
 * @example
 * evaluate(step, test, { outputs: ['logits'], metrics: accuracy('logits', 'y') }).metrics.accuracy;
 */
export function accuracy(logits = 'logits', target = 'y'): (outputs: Outputs, batch: Batch) => Record<string, number> {
  return (outputs, batch) => {
    const l = lookup(outputs, logits), y = lookup(batch, target);
    if (!l || !y) throw new RangeError(`accuracy: needs output '${logits}' and feed '${target}'`);
    const [rows, classes] = [l.shape[0]!, l.shape[1]!];
    let correct = 0;
    for (let i = 0; i < rows; i++) {
      let best = 0, truth = 0;
      for (let c = 1; c < classes; c++) {
        if (l.data[i * classes + c]! > l.data[i * classes + best]!) best = c;
        if (y.data[i * classes + c]! > y.data[i * classes + truth]!) truth = c;
      }
      if (best === truth) correct++;
    }
    return { accuracy: correct / rows };
  };
}
