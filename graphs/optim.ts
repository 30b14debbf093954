// Optimizers as graph transforms: each adds its moments as explicit `state` nodes and appends
// `updates` (param <- new value, state <- new value) computed from the `grad/<param>` outputs
// that `grad` made. The step counter is state too, so a checkpoint of state is complete.
// Nothing here executes; the executor applies updates after each run.

import type { Graph } from './graph.js';
import { extend, init, type Builder } from './builder.js';
import { GraphError } from './errors.js';
import { gradName } from './autodiff.js';
import type { Tensor } from './types.js';

export interface Optimizer {
  readonly name: string;
  readonly config: Readonly<Record<string, number | boolean>>;
  /** add state and return the new value of `p` given its gradient `dp` and the new step count `t` */
  step(b: Builder, p: Tensor, dp: Tensor, t: Tensor, name: string): Tensor;
}

export function sgd(lr = 0.01, opts: { momentum?: number; nesterov?: boolean; weightDecay?: number } = {}): Optimizer {
  const momentum = opts.momentum ?? 0, nesterov = opts.nesterov ?? false, wd = opts.weightDecay ?? 0;
  return {
    name: 'sgd',
    config: { lr, momentum, nesterov, weightDecay: wd },
    step(b, p, dp, _t, name) {
      let d = wd ? b.add(dp, b.mul(p, wd)) : dp;
      if (momentum) {
        const v = b.state(`opt/${name}/velocity`, { dtype: p.dtype, shape: p.shape }, init.zeros());
        const v2 = b.add(b.mul(v, momentum), d);
        b.update(v, v2);
        d = nesterov ? b.add(d, b.mul(v2, momentum)) : v2;
      }
      return b.sub(p, b.mul(d, lr));
    },
  };
}

function adamLike(name: string, lr: number, b1: number, b2: number, eps: number, decoupledWd: number): Optimizer {
  return {
    name,
    config: { lr, beta1: b1, beta2: b2, eps, weightDecay: decoupledWd },
    step(b, p, dp, t, pname) {
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
      let upd = b.mul(b.div(mhat, b.add(b.sqrt(vhat), eps)), lr);
      if (decoupledWd) upd = b.add(upd, b.mul(p, lr * decoupledWd));
      return b.sub(p, upd);
    },
  };
}

/** Adam (Kingma & Ba), with the usual epsilon outside the square root. */
export function adam(lr = 1e-3, opts: { beta1?: number; beta2?: number; eps?: number } = {}): Optimizer {
  return adamLike('adam', lr, opts.beta1 ?? 0.9, opts.beta2 ?? 0.999, opts.eps ?? 1e-8, 0);
}

/** AdamW: Adam with decoupled weight decay (Loshchilov & Hutter). */
export function adamw(lr = 1e-3, opts: { beta1?: number; beta2?: number; eps?: number; weightDecay?: number } = {}): Optimizer {
  return adamLike('adamw', lr, opts.beta1 ?? 0.9, opts.beta2 ?? 0.999, opts.eps ?? 1e-8, opts.weightDecay ?? 0.01);
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
    for (const p of params) {
      const next = opt.step(b, b.tensor(p.id), b.tensor(g.outputs[gradName(p.name!)]!), t2, p.name!);
      b.update(b.tensor(p.id), next);
    }
  });
}
