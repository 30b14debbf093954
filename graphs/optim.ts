// Optimizers as graph transforms: each adds its moments as explicit `state` nodes and appends
// `updates` (param <- new value, state <- new value) computed from the `grad/<param>` outputs
// that `grad` made. The step counter is state too, so a checkpoint of state is complete.
// Nothing here executes; the executor applies updates after each run.

import type { Graph } from './graph.js';
import { extend, init, RNG_STEP, type Builder } from './builder.js';
import { GraphError } from './errors.js';
import { gradName } from './autodiff.js';
import type { Tensor } from './types.js';

export interface Optimizer {
  readonly name: string;
  readonly config: Readonly<Record<string, number | boolean>>;
  /** multiplies the learning rate step by step, computed in the graph from the step counter */
  readonly schedule?: Schedule;
  /** gradients are scaled together so that their global L2 norm is at most this */
  readonly clipNorm?: number;
  /**
   * add state and return the new value of `p` given its gradient `dp` and the new step count `t`;
   * `lr`, when given, is the step's learning rate as a scalar tensor (the schedule applied)
   */
  step(b: Builder, p: Tensor, dp: Tensor, t: Tensor, name: string, lr?: Tensor): Tensor;
}

/** Options every optimizer takes: a learning-rate schedule and gradient clipping. */
export interface CommonOptions {
  /** e.g. `warmup(500, cosine(10_000))`: the learning rate of each step is `lr * factor(step)` */
  readonly schedule?: Schedule;
  /** clip gradients by their global L2 norm (over every param together) to at most this */
  readonly clipNorm?: number;
}

// ---------------------------------------------------------------- learning-rate schedules

/**
 * A learning-rate schedule: a factor of the step number, computed in the graph from the
 * optimizer's step counter (a state, saved in checkpoints), so a resumed run continues exactly.
 * `n` counts the steps taken before the one the factor is for: 0 on the first step.
 */
export interface Schedule {
  readonly name: string;
  readonly config: Readonly<Record<string, number | string>>;
  /** the factor in the graph, from `n` (an f32 scalar) */
  factor(b: Builder, n: Tensor): Tensor;
  /** the same factor as a number (for plots and logs) */
  at(n: number): number;
}

function positiveInt(what: string, v: number): void {
  if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`${what} must be a positive integer, got ${v}`);
}

function finiteIn(what: string, v: number, lo: number, hi: number): void {
  if (!(Number.isFinite(v) && v >= lo && v <= hi)) throw new RangeError(`${what} must be a number in [${lo}, ${hi}], got ${v}`);
}

/**
 * Linear warmup over `steps` steps (factor (n + 1) / steps), then `then` (default: constant 1)
 * counted from the end of the warmup.
 *
 * ```ts
 * adam(1e-3, { schedule: warmup(500, cosine(9_500)) })
 * ```
 */
export function warmup(steps: number, then?: Schedule): Schedule {
  positiveInt('warmup: steps', steps);
  return {
    name: 'warmup',
    config: { steps, ...(then ? { then: then.name } : {}) },
    factor(b, n) {
      const ramp = b.div(b.add(n, 1), steps);
      if (!then) return b.minimum(ramp, 1);
      return b.where(b.lt(n, steps), ramp, then.factor(b, b.maximum(b.sub(n, steps), 0)));
    },
    at: (n) => (n < steps ? (n + 1) / steps : then ? then.at(n - steps) : 1),
  };
}

/**
 * Cosine decay from 1 to `final` (default 0) over `steps` steps, then `final`:
 * `final + (1 - final) (1 + cos(π min(n, steps) / steps)) / 2`.
 */
export function cosine(steps: number, opts: { final?: number } = {}): Schedule {
  positiveInt('cosine: steps', steps);
  const final = opts.final ?? 0;
  finiteIn('cosine: final', final, 0, 1);
  return {
    name: 'cosine',
    config: { steps, final },
    factor(b, n) {
      const c = b.cos(b.mul(b.minimum(n, steps), Math.PI / steps));
      return b.add(b.mul(b.add(c, 1), (1 - final) / 2), final);
    },
    at: (n) => final + ((1 - final) * (1 + Math.cos((Math.PI * Math.min(n, steps)) / steps))) / 2,
  };
}

/** Step decay: the factor is multiplied by `gamma` every `every` steps, `gamma^floor(n / every)`. */
export function stepDecay(every: number, gamma: number): Schedule {
  positiveInt('stepDecay: every', every);
  finiteIn('stepDecay: gamma', gamma, 0, Infinity);
  return {
    name: 'step',
    config: { every, gamma },
    factor: (b, n) => b.pow(b.scalar(gamma, n), b.floor(b.div(n, every))),
    at: (n) => gamma ** Math.floor(n / every),
  };
}

function common(name: string, lr: number, opts: CommonOptions): Pick<Optimizer, 'schedule' | 'clipNorm'> {
  finiteIn(`${name}: lr`, lr, 0, Infinity);
  if (opts.clipNorm !== undefined && !(Number.isFinite(opts.clipNorm) && opts.clipNorm > 0)) {
    throw new RangeError(`${name}: clipNorm must be a positive number, got ${opts.clipNorm}`);
  }
  return { ...(opts.schedule && { schedule: opts.schedule }), ...(opts.clipNorm !== undefined && { clipNorm: opts.clipNorm }) };
}

export function sgd(lr = 0.01, opts: CommonOptions & { momentum?: number; nesterov?: boolean; weightDecay?: number } = {}): Optimizer {
  const momentum = opts.momentum ?? 0, nesterov = opts.nesterov ?? false, wd = opts.weightDecay ?? 0;
  return {
    name: 'sgd',
    config: { lr, momentum, nesterov, weightDecay: wd },
    ...common('sgd', lr, opts),
    step(b, p, dp, _t, name, rate) {
      let d = wd ? b.add(dp, b.mul(p, wd)) : dp;
      if (momentum) {
        const v = b.state(`opt/${name}/velocity`, { dtype: p.dtype, shape: p.shape }, init.zeros());
        const v2 = b.add(b.mul(v, momentum), d);
        b.update(v, v2);
        d = nesterov ? b.add(d, b.mul(v2, momentum)) : v2;
      }
      return b.sub(p, b.mul(d, rate ?? lr));
    },
  };
}

function adamLike(name: string, lr: number, b1: number, b2: number, eps: number, decoupledWd: number, opts: CommonOptions): Optimizer {
  return {
    name,
    config: { lr, beta1: b1, beta2: b2, eps, weightDecay: decoupledWd },
    ...common(name, lr, opts),
    step(b, p, dp, t, pname, rate) {
      const shape = { dtype: p.dtype, shape: p.shape };
      const m = b.state(`opt/${pname}/m`, shape, init.zeros());
      const v = b.state(`opt/${pname}/v`, shape, init.zeros());
      const m2 = b.add(b.mul(m, b1), b.mul(dp, 1 - b1));
      const v2 = b.add(b.mul(v, b2), b.mul(b.mul(dp, dp), 1 - b2));
      b.update(m, m2);
      b.update(v, v2);
      const c1 = b.sub(b.scalar(1, t), b.pow(b.scalar(b1, t), t));
      const c2 = b.sub(b.scalar(1, t), b.pow(b.scalar(b2, t), t));
      const mhat = b.div(m2, c1);
      const vhat = b.div(v2, c2);
      let upd = b.mul(b.div(mhat, b.add(b.sqrt(vhat), eps)), rate ?? lr);
      if (decoupledWd) upd = b.add(upd, rate ? b.mul(p, b.mul(rate, decoupledWd)) : b.mul(p, lr * decoupledWd));
      return b.sub(p, upd);
    },
  };
}

/** Adam (Kingma & Ba), with the usual epsilon outside the square root. */
export function adam(lr = 1e-3, opts: CommonOptions & { beta1?: number; beta2?: number; eps?: number } = {}): Optimizer {
  return adamLike('adam', lr, opts.beta1 ?? 0.9, opts.beta2 ?? 0.999, opts.eps ?? 1e-8, 0, opts);
}

/** AdamW: Adam with decoupled weight decay (Loshchilov & Hutter). */
export function adamw(lr = 1e-3, opts: CommonOptions & { beta1?: number; beta2?: number; eps?: number; weightDecay?: number } = {}): Optimizer {
  return adamLike('adamw', lr, opts.beta1 ?? 0.9, opts.beta2 ?? 0.999, opts.eps ?? 1e-8, opts.weightDecay ?? 0.01, opts);
}

/** Add an optimizer's state and updates to a graph made by `grad`. */
export function applyOptimizer(g: Graph, opt: Optimizer): Graph {
  const params = g.nodes.filter((n) => n.op === 'param' && g.outputs[gradName(n.name!)] !== undefined);
  if (params.length === 0) throw new GraphError(`optimizer ${opt.name}: graph '${g.name}' has no grad/<param> outputs; apply grad() first`);
  return extend(g, (b) => {
    b.site = undefined;
    const t = b.state('opt/step', { dtype: 'f32', shape: [] }, init.zeros());
    const t2 = b.add(t, 1);
    b.update(t, t2);
    // random ops (dropout) read the step counter `rng/step`: each step draws fresh numbers
    const rng = g.nodes.find((n) => n.op === 'state' && n.name === RNG_STEP);
    if (rng && !g.updates.some((u) => u.target === rng.id)) b.update(b.tensor(rng.id), b.add(b.tensor(rng.id), 1));
    let grads = params.map((p) => b.tensor(g.outputs[gradName(p.name!)]!));
    if (opt.clipNorm !== undefined) {
      // one scale for every gradient: min(1, clipNorm / (‖g‖ + 1e-6)), ‖g‖ over all params together
      const squares = grads.map((d) => {
        const sq = b.sum(b.mul(d, d));
        return sq.dtype === 'f32' ? sq : b.cast(sq, 'f32');
      });
      const norm = b.sqrt(squares.reduce((a, c) => b.add(a, c)));
      const scale = b.minimum(b.div(b.scalar(opt.clipNorm, norm), b.add(norm, 1e-6)), 1);
      grads = grads.map((d) => b.mul(d, d.dtype === scale.dtype ? scale : b.cast(scale, d.dtype)));
    }
    const lr = opt.schedule ? b.mul(opt.schedule.factor(b, t), Number(opt.config['lr'] ?? 1)) : undefined;
    params.forEach((p, i) => {
      const next = opt.step(b, b.tensor(p.id), grads[i]!, t2, p.name!, lr);
      b.update(b.tensor(p.id), next);
    });
  });
}
