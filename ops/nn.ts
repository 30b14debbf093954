// Neural-network ops defined by composition of primitives (as tinygrad writes sigmoid with
// exp2): mean, logsumexp, softmax, log-softmax, layer norm, losses, dropout, conv2d, one-hot.
// Each validates its own operands first, so errors name the op the user called; gradients come
// from the primitives' VJPs.

import type { OpBuilder } from './registry.js';
import { callSite, ShapeError } from './errors.js';
import type { DType, Tensor } from './types.js';
import { normalizeAxes, normalizeAxis, requireDType, shapesEqual } from './shape.js';

function countOf(g: OpBuilder, x: Tensor, axes: readonly number[] | null): Tensor {
  const ax = normalizeAxes('mean', axes, x.shape.length, [x.shape]);
  const numeric = ax.map((a) => x.shape[a]!);
  if (numeric.every((d) => typeof d === 'number')) return g.scalar(numeric.reduce<number>((p, d) => p * (d as number), 1), x);
  // symbolic axes: count by summing ones, which the planner folds into a constant per binding
  return g.sum(g.ones(x.shape, x.dtype), ax, false);
}

export function mean(g: OpBuilder, x: Tensor, axes: readonly number[] | null, keepdims: boolean): Tensor {
  requireDType('mean', [x], (d) => d === 'f32' || d === 'f16', 'a float tensor', g.site ?? callSite());
  const s = g.sum(x, axes, keepdims);
  const c = countOf(g, x, axes);
  return g.div(s, keepdims && c.shape.length ? g.reshape(c, s.shape) : c);
}

export function logsumexp(g: OpBuilder, x: Tensor, axes: readonly number[] | null, keepdims: boolean): Tensor {
  requireDType('logsumexp', [x], (d) => d === 'f32' || d === 'f16', 'a float tensor', g.site ?? callSite());
  const m = g.stopGradient(g.max(x, axes, true));
  const lse = g.add(g.log(g.sum(g.exp(g.sub(x, m)), axes, true)), m);
  if (keepdims) return lse;
  const ax = normalizeAxes('logsumexp', axes, x.shape.length, [x.shape]);
  return g.reshape(lse, x.shape.filter((_, i) => !ax.includes(i)));
}

export function softmax(g: OpBuilder, x: Tensor, axis: number): Tensor {
  requireDType('softmax', [x], (d) => d === 'f32' || d === 'f16', 'a float tensor', g.site ?? callSite());
  const a = normalizeAxis('softmax', axis, x.shape.length, [x.shape], g.site ?? callSite());
  const e = g.exp(g.sub(x, g.stopGradient(g.max(x, a, true))));
  return g.div(e, g.sum(e, a, true));
}

export function logSoftmax(g: OpBuilder, x: Tensor, axis: number): Tensor {
  requireDType('logSoftmax', [x], (d) => d === 'f32' || d === 'f16', 'a float tensor', g.site ?? callSite());
  const a = normalizeAxis('logSoftmax', axis, x.shape.length, [x.shape], g.site ?? callSite());
  return g.sub(x, logsumexp(g, x, [a], true));
}

export function layerNorm(g: OpBuilder, x: Tensor, gamma: Tensor | undefined, beta: Tensor | undefined, eps: number): Tensor {
  const site = g.site ?? callSite();
  requireDType('layerNorm', [x], (d) => d === 'f32' || d === 'f16', 'a float tensor', site);
  const last = x.shape[x.shape.length - 1];
  for (const p of [gamma, beta]) {
    if (p && !(p.shape.length === 1 && p.shape[0] === last)) {
      throw new ShapeError('layerNorm', [x.shape, p.shape], `gamma and beta must have shape [${last}]`, site);
    }
  }
  const mu = mean(g, x, [-1], true);
  const xc = g.sub(x, mu);
  const variance = mean(g, g.mul(xc, xc), [-1], true);
  let y = g.mul(xc, g.rsqrt(g.add(variance, eps)));
  if (gamma) y = g.mul(y, gamma);
  if (beta) y = g.add(y, beta);
  return y;
}

export function softmaxCrossEntropy(g: OpBuilder, logits: Tensor, labels: Tensor): Tensor {
  const site = g.site ?? callSite();
  if (logits.shape.length < 1 || !shapesEqual(logits.shape, labels.shape)) {
    throw new ShapeError('softmaxCrossEntropy', [logits.shape, labels.shape], 'logits and labels must have the same shape [..., classes]', site);
  }
  requireDType('softmaxCrossEntropy', [logits, labels], (d) => d === 'f32' || d === 'f16', 'float logits and labels', site);
  const lsm = logSoftmax(g, logits, -1);
  const perExample = g.neg(g.sum(g.mul(labels, lsm), -1));
  return perExample.shape.length ? mean(g, perExample, null, false) : perExample;
}

export function mse(g: OpBuilder, pred: Tensor, target: Tensor): Tensor {
  const site = g.site ?? callSite();
  if (!shapesEqual(pred.shape, target.shape)) {
    throw new ShapeError('mse', [pred.shape, target.shape], 'prediction and target must have the same shape', site);
  }
  const d = g.sub(pred, target);
  return mean(g, g.mul(d, d), null, false);
}

/**
 * Inverted dropout with an explicit seed. The mask is keyed by the graph's step counter
 * (`rng/step`): a fresh mask every training step, the same one whenever it is recomputed within
 * a step (rematerialization) and on every backend.
 */
export function dropout(g: OpBuilder, x: Tensor, rate: number, seed: number): Tensor {
  if (!(rate >= 0 && rate < 1)) throw new ShapeError('dropout', [x.shape], `rate must be in [0, 1), got ${rate}`, g.site ?? callSite());
  if (rate === 0) return x;
  const keep = g.ge(g.rand(x.shape, seed), g.scalar(rate, { dtype: 'f32' }));
  return g.where(keep, g.mul(x, 1 / (1 - rate)), 0);
}

/** conv2d, NCHW input and OIHW weights: pad, unfold into windows (a view), contract with einsum. */
export function conv2d(g: OpBuilder, x: Tensor, w: Tensor, stride: number, padding: number): Tensor {
  const site = g.site ?? callSite();
  if (x.shape.length !== 4 || w.shape.length !== 4) throw new ShapeError('conv2d', [x.shape, w.shape], 'expects x [N, C, H, W] and w [O, C, KH, KW]', site);
  if (x.shape[1] !== w.shape[1]) throw new ShapeError('conv2d', [x.shape, w.shape], `input channels differ (${x.shape[1]} vs ${w.shape[1]})`, site);
  const [kh, kw] = [w.shape[2], w.shape[3]];
  if (typeof kh !== 'number' || typeof kw !== 'number') throw new ShapeError('conv2d', [x.shape, w.shape], 'kernel size must be literal', site);
  const xp = g.pad(x, [0, 0, padding, padding], [0, 0, padding, padding]);
  const win = g.op('unfold2d', [xp], { kernel: [kh, kw], stride });
  return g.einsum('nckluv,ockl->nouv', win, w);
}

export function oneHot(g: OpBuilder, labels: Tensor, classes: number, dtype: DType): Tensor {
  requireDType('oneHot', [labels], (d) => d === 'i32', 'i32 labels', g.site ?? callSite());
  const shape = [...labels.shape, classes];
  const cls = g.iota(shape, labels.shape.length, 'i32');
  const lab = g.reshape(labels, [...labels.shape, 1]);
  return g.cast(g.eq(cls, lab), dtype);
}
