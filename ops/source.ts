// Source ops: values that enter a graph rather than being computed from other nodes — inputs
// (fed per run), params (initialized once, updated by optimizers), state (e.g. optimizer
// moments), constants, iota and counter-based random numbers. No VJPs: sources are leaves.

import { defineOp } from './registry.js';
import { linearize } from './kernel-ir.js';
import { ShapeError } from './errors.js';
import type { Dim, DType, TensorType } from './types.js';

function declared(attrs: { readonly [k: string]: unknown }): TensorType {
  return { dtype: attrs['dtype'] as DType, shape: attrs['shape'] as Dim[] };
}

for (const name of ['input', 'param', 'state'] as const) {
  defineOp({ name, kind: 'source', infer: (_ins, attrs) => declared(attrs) });
}

/** A constant: `fill` (one value broadcast to the shape) or `data` (row-major values). */
defineOp({
  name: 'const',
  kind: 'source',
  computedSource: (attrs) => !Array.isArray(attrs['data']),
  infer(_ins, attrs, site) {
    const t = declared(attrs);
    const data = attrs['data'];
    if (Array.isArray(data)) {
      const n = t.shape.reduce<number>((a, d) => a * (typeof d === 'number' ? d : NaN), 1);
      if (data.length !== n) throw new ShapeError('const', [t.shape], `has ${data.length} values for ${n} elements`, site);
    }
    return t;
  },
  lower(ctx) {
    return { k: 'const', v: Number(ctx.attrs['fill']), dtype: ctx.out.dtype };
  },
});

/** iota: the index along `axis`, as a value. */
defineOp({
  name: 'iota',
  kind: 'elementwise',
  infer: (_ins, attrs) => declared(attrs),
  lower(ctx, idx) {
    return { k: 'index', at: idx[Number(ctx.attrs['axis'])]!, dtype: ctx.out.dtype };
  },
});

/**
 * Uniform [0, 1) numbers from a counter-based hash of (seed, element index): recomputable. An
 * optional input, an i32 scalar (the graph's `rng/step` counter), chooses the stream, so the
 * numbers change when it does and stay the same whenever they are recomputed within a run.
 */
defineOp({
  name: 'rand',
  kind: 'elementwise',
  infer(ins, attrs, site) {
    if (ins.length > 1 || (ins.length === 1 && (ins[0]!.dtype !== 'i32' || ins[0]!.shape.length !== 0))) {
      throw new ShapeError('rand', ins.map((t) => t.shape), 'takes at most one input, an i32 scalar key', site);
    }
    return declared(attrs);
  },
  lower(ctx, idx) {
    const at = linearize(idx, ctx.out.shape);
    const seed = Number(ctx.attrs['seed']);
    return ctx.ins.length ? { k: 'rand', seed, at, key: ctx.input(0, []), dtype: 'f32' } : { k: 'rand', seed, at, dtype: 'f32' };
  },
});
