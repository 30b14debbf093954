// The gradient law, op by op: for every differentiable op, on random shapes (broadcasting
// included), the gradient graph from `grad` run in float64 on the reference interpreter equals
// central finite differences of the loss sum(op(params) * R) for a fixed random R. Values are
// drawn away from kinks (relu/abs at 0, ties of max/min, integer ratios of mod) by construction.

import { describe, it } from 'vitest';
import fc from 'fast-check';
import { graph, type Builder } from '../graphs/builder.js';
import { grad, gradName } from '../graphs/autodiff.js';
import { bool, f32, i32, numel, type Tensor } from '../graphs/types.js';
import { compile } from '../runtime/executor.js';
import { randUniform } from '../ops/rand.js';
import { arbBroadcastableTo, arbBroadcastPair, arbShape, fcParams, type ShapeOptions } from './arbitraries.js';

const H = 1e-6;
const RTOL = 1e-5;
const ATOL = 1e-6;
const RUNS = 100;
/** the most elements a param gets: the check perturbs each one twice */
const MAX_ELEMENTS = 60;

interface Param {
  readonly shape: number[];
  readonly values: number[];
}

type Build = (g: Builder, p: Record<string, Tensor>) => Tensor;

interface Case {
  readonly label: string;
  readonly params: Record<string, Param>;
  readonly build: Build;
  /** seed of R, the fixed random weights of the output elements in the loss */
  readonly seed: number;
}

/** Analytic gradients (float64, reference backend) equal central finite differences of the loss. */
function checkGradients(c: Case): void {
  const names = Object.keys(c.params);
  const fwd = graph('law', (g) => {
    const ps = Object.fromEntries(names.map((n) => [n, g.param(n, f32(...c.params[n]!.shape))]));
    const y = c.build(g, ps);
    const shape = y.shape as number[];
    const r = Array.from({ length: numel(shape) }, (_, i) => 2 * randUniform(c.seed, i) - 1);
    return { loss: g.sum(g.mul(y, g.constant(r, f32(...shape)))) };
  });
  const exe = compile(grad(fwd, 'loss'), { backend: 'reference', precision: 'f64' });
  const vars = Object.fromEntries(names.map((n) => [`param:${n}`, Float64Array.from(c.params[n]!.values)]));
  exe.setVariables(vars);
  const analytic = exe.runSync({}, names.map(gradName));
  const loss = (key: string, v: Float64Array): number => {
    exe.setVariables({ [key]: v });
    return exe.runSync({}, ['loss'])['loss']!.data[0]!;
  };
  for (const n of names) {
    const key = `param:${n}`;
    const v = vars[key]!;
    const got = analytic[gradName(n)]!.data;
    for (let i = 0; i < v.length; i++) {
      const x = v[i]!;
      v[i] = x + H;
      const up = loss(key, v);
      v[i] = x - H;
      const down = loss(key, v);
      v[i] = x;
      exe.setVariables({ [key]: v });
      const fd = (up - down) / (2 * H);
      const a = got[i]!;
      if (!(Math.abs(a - fd) <= RTOL * Math.max(Math.abs(a), Math.abs(fd)) + ATOL)) {
        throw new Error(`${c.label}: d loss / d ${n}[${i}] is ${a} by grad, ${fd} by finite differences`);
      }
    }
  }
}

// ------------------------------------------------------------------------------ values

/**
 * any: [-2, 2]; positive: [0.5, 2]; nonzero: ±[0.25, 2]; distinct: values at least 0.2 apart
 * (no ties for max/min, no flat rows for layerNorm); low/high: interleaved grids, so every low
 * value is at least 0.1 from every high value (max/min of two operands never tie).
 */
type Domain = 'any' | 'positive' | 'nonzero' | 'distinct' | 'low' | 'high';

function arbValues(n: number, d: Domain): fc.Arbitrary<number[]> {
  const arr = (a: fc.Arbitrary<number>) => fc.array(a, { minLength: n, maxLength: n });
  const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
  switch (d) {
    case 'any': return arr(fc.double({ min: -2, max: 2, noNaN: true }));
    case 'positive': return arr(fc.double({ min: 0.5, max: 2, noNaN: true }));
    case 'nonzero': return arr(fc.tuple(fc.boolean(), fc.double({ min: 0.25, max: 2, noNaN: true })).map(([s, m]) => (s ? -m : m)));
    case 'distinct':
      return fc
        .tuple(fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }), arr(unit))
        .map(([perm, noise]) => perm.map((k, i) => (k - n / 2) * 0.25 + noise[i]! * 0.05));
    case 'low':
    case 'high': {
      const off = d === 'low' ? 0 : 0.2;
      return arr(fc.tuple(fc.integer({ min: -5, max: 4 }), unit).map(([k, u]) => k * 0.4 + off + u * 0.1));
    }
  }
}

function arbParam(shape: readonly number[], d: Domain = 'any'): fc.Arbitrary<Param> {
  return arbValues(numel(shape), d).map((values) => ({ shape: [...shape], values }));
}

/** A case from arbitraries of its params; `label` names the op and its attributes. */
function arbCase(label: string, params: Record<string, fc.Arbitrary<Param>>, build: Build): fc.Arbitrary<Case> {
  return fc.record({ params: fc.record(params), seed: fc.nat() }).map(({ params: ps, seed }) => ({
    label, params: ps, build, seed,
    [fc.toStringMethod]: () => `${label} ${Object.entries(ps).map(([k, p]) => `${k}[${p.shape.join(',')}]=${JSON.stringify(p.values)}`).join(' ')} R seed ${seed}`,
  }));
}

function law(name: string, arb: fc.Arbitrary<Case>): void {
  it(name, () => fc.assert(fc.property(arb, checkGradients), fcParams(RUNS)));
}

const SMALL: ShapeOptions = { maxRank: 3, maxDim: 3 };
const dims = (max = 3) => fc.integer({ min: 1, max });

/** null (all axes) or a subset of the axes, sometimes written negative. */
function arbAxes(rank: number): fc.Arbitrary<number[] | null> {
  const some = fc.tuple(fc.subarray([...Array(rank).keys()]), fc.boolean()).map(([ax, neg]) => (neg ? ax.map((a) => a - rank) : ax));
  return fc.oneof(fc.constant(null), some);
}

function reduceLaw(name: string, domain: Domain, f: (g: Builder, x: Tensor, axes: number[] | null, keep: boolean) => Tensor): void {
  law(`${name} over random axes, keepdims both ways`, arbShape(SMALL).chain((s) =>
    fc.tuple(arbAxes(s.length), fc.boolean()).chain(([axes, keep]) =>
      arbCase(`${name}(axes ${JSON.stringify(axes)}, keepdims ${keep})`, { x: arbParam(s, domain) }, (g, p) => f(g, p['x']!, axes, keep)))));
}

// ------------------------------------------------------------------------------ laws

describe('gradients equal finite differences', () => {
  const UNARY: Record<string, Domain> = {
    neg: 'any', exp: 'any', log: 'positive', sqrt: 'positive', rsqrt: 'positive', abs: 'nonzero', sin: 'any',
    cos: 'any', tanh: 'any', sigmoid: 'any', relu: 'nonzero', recip: 'nonzero', square: 'any',
  };
  for (const [op, domain] of Object.entries(UNARY)) {
    law(op, arbShape(SMALL).chain((s) => arbCase(op, { x: arbParam(s, domain) }, (g, p) => (g as unknown as Record<string, (x: Tensor) => Tensor>)[op]!(p['x']!))));
  }

  const BINARY: Record<string, [string, Domain, Domain]> = {
    add: ['add', 'any', 'any'], sub: ['sub', 'any', 'any'], mul: ['mul', 'any', 'any'], div: ['div', 'any', 'nonzero'],
    pow: ['pow', 'positive', 'any'], max: ['maximum', 'low', 'high'], min: ['minimum', 'low', 'high'],
  };
  for (const [op, [method, da, db]] of Object.entries(BINARY)) {
    law(`${op} with broadcasting`, arbBroadcastPair(SMALL).chain(([sa, sb]) =>
      arbCase(op, { a: arbParam(sa, da), b: arbParam(sb, db) }, (g, p) => (g as unknown as Record<string, (a: Tensor, b: Tensor) => Tensor>)[method]!(p['a']!, p['b']!))));
  }

  // a = s(k + f) and b = s·[1, 1.01) keep a/b at least 0.1 from an integer, where mod jumps
  law('mod with broadcasting', arbBroadcastPair(SMALL).chain(([sa, sb]) =>
    fc.constantFrom(0.5, 1, 2).chain((s) => {
      const a = fc.array(fc.tuple(fc.integer({ min: -2, max: 1 }), fc.double({ min: 0.2, max: 0.8, noNaN: true })).map(([k, f]) => s * (k + f)), { minLength: numel(sa), maxLength: numel(sa) });
      const b = fc.array(fc.double({ min: 1, max: 1.01, noNaN: true }).map((v) => s * v), { minLength: numel(sb), maxLength: numel(sb) });
      return arbCase('mod', { a: a.map((values) => ({ shape: sa, values })), b: b.map((values) => ({ shape: sb, values })) }, (g, p) => g.mod(p['a']!, p['b']!));
    })));

  law('where with broadcasting', arbShape(SMALL).chain((t) =>
    fc.tuple(arbBroadcastableTo(t), arbBroadcastableTo(t), arbBroadcastableTo(t)).chain(([sc, sa, sb]) =>
      fc.array(fc.boolean(), { minLength: numel(sc), maxLength: numel(sc) }).chain((bits) =>
        arbCase(`where(cond [${sc}] ${JSON.stringify(bits.map(Number))})`, { a: arbParam(sa), b: arbParam(sb) }, (g, p) =>
          g.where(g.constant(bits.map(Number), bool(...sc)), p['a']!, p['b']!))))));

  law('cast f32 -> f32', arbShape(SMALL).chain((s) => arbCase('cast', { x: arbParam(s) }, (g, p) => g.op('cast', [p['x']!], { dtype: 'f32' }))));

  reduceLaw('sum', 'any', (g, x, axes, keep) => g.sum(x, axes, keep));
  reduceLaw('reduce_max', 'distinct', (g, x, axes, keep) => g.max(x, axes, keep));
  reduceLaw('reduce_min', 'distinct', (g, x, axes, keep) => g.min(x, axes, keep));
  reduceLaw('mean', 'any', (g, x, axes, keep) => g.mean(x, axes, keep));
  reduceLaw('logsumexp', 'any', (g, x, axes, keep) => g.logsumexp(x, axes, keep));

  law('matmul, batched with broadcast batch dims', fc.tuple(arbBroadcastPair({ maxRank: 2, maxDim: 2 }), dims(), dims(), dims()).chain(([[ba, bb], m, k, n]) =>
    arbCase('matmul', { a: arbParam([...ba, m, k]), b: arbParam([...bb, k, n]) }, (g, p) => g.matmul(p['a']!, p['b']! as never))));

  law('reshape', arbShape(SMALL).chain((s) =>
    fc.array(fc.nat({ max: 100 }), { maxLength: 4 }).chain((picks) => {
      let rest = numel(s);
      const to = picks.map((k) => {
        const divs = [...Array(rest).keys()].map((d) => d + 1).filter((d) => rest % d === 0);
        const d = divs[k % divs.length]!;
        rest /= d;
        return d;
      });
      to.push(rest);
      return arbCase(`reshape to [${to}]`, { x: arbParam(s) }, (g, p) => g.reshape(p['x']!, to));
    })));

  law('transpose', arbShape(SMALL).chain((s) =>
    fc.shuffledSubarray([...s.keys()], { minLength: s.length, maxLength: s.length }).chain((perm) =>
      arbCase(`transpose [${perm}]`, { x: arbParam(s) }, (g, p) => g.transpose(p['x']!, perm)))));

  law('broadcastTo', arbShape(SMALL).chain((t) => arbBroadcastableTo(t).chain((s) =>
    arbCase(`broadcastTo [${t}]`, { x: arbParam(s) }, (g, p) => g.broadcastTo(p['x']!, t)))));

  law('slice', arbShape({ ...SMALL, maxDim: 4, maxElements: MAX_ELEMENTS }).chain((s) =>
    fc.tuple(...s.map((d) => fc.tuple(fc.nat({ max: d - 1 }), fc.nat({ max: d - 1 })).map(([a, b]) => [Math.min(a, b), Math.max(a, b) + 1] as const))).chain((r) =>
      arbCase(`slice ${JSON.stringify(r)}`, { x: arbParam(s) }, (g, p) => g.slice(p['x']!, r.map((x) => x[0]), r.map((x) => x[1]))))));

  law('pad', arbShape(SMALL).chain((s) =>
    fc.tuple(fc.array(fc.nat({ max: 2 }), { minLength: s.length, maxLength: s.length }), fc.array(fc.nat({ max: 2 }), { minLength: s.length, maxLength: s.length }), fc.constantFrom(0, 1.5)).chain(([before, after, value]) =>
      arbCase(`pad [${before}] [${after}] value ${value}`, { x: arbParam(s) }, (g, p) => g.pad(p['x']!, before, after, value)))));

  law('concat', arbShape({ ...SMALL, minRank: 1 }).chain((s) =>
    fc.tuple(fc.nat({ max: s.length - 1 }), fc.array(dims(), { minLength: 2, maxLength: 3 })).chain(([axis, sizes]) => {
      const ps = Object.fromEntries(sizes.map((d, j) => [`x${j}`, arbParam(s.map((e, i) => (i === axis ? d : e)))]));
      return arbCase(`concat axis ${axis}`, ps, (g, p) => g.concat(sizes.map((_, j) => p[`x${j}`]!), axis));
    })));

  law('gather (w.r.t. the table; out-of-range indices clamp)', fc.tuple(dims(4), arbShape({ maxRank: 2, maxDim: 3 }), arbShape({ maxRank: 2, maxDim: 3 })).chain(([v, rest, is]) =>
    fc.array(fc.integer({ min: -1, max: v }), { minLength: numel(is), maxLength: numel(is) }).chain((idx) =>
      arbCase(`gather indices [${is}] ${JSON.stringify(idx)}`, { table: arbParam([v, ...rest]) }, (g, p) => g.gather(p['table']!, g.constant(idx, i32(...is)))))));

  law('scatterAdd (w.r.t. base and updates)', fc.tuple(dims(4), arbShape({ maxRank: 2, maxDim: 3 }), arbShape({ minRank: 1, maxRank: 2, maxDim: 3 })).chain(([v, rest, is]) =>
    fc.array(fc.integer({ min: 0, max: v - 1 }), { minLength: numel(is), maxLength: numel(is) }).chain((idx) =>
      arbCase(`scatterAdd indices [${is}] ${JSON.stringify(idx)}`, { base: arbParam([v, ...rest]), upd: arbParam([...is, ...rest]) }, (g, p) =>
        g.scatterAdd(p['base']!, g.constant(idx, i32(...is)), p['upd']!)))));

  // spatial sizes are before padding; the filters keep every param at most MAX_ELEMENTS
  const window = fc.record({ n: dims(2), c: dims(2), h: dims(4), w: dims(4), padding: fc.nat({ max: 1 }), stride: dims(2), kh: dims(3), kw: dims(3) })
    .map((o) => ({ ...o, kh: Math.min(o.kh, o.h + 2 * o.padding), kw: Math.min(o.kw, o.w + 2 * o.padding) }));
  const padded = (o: { h: number; w: number; padding: number }) => [o.h + 2 * o.padding, o.w + 2 * o.padding] as const;
  const windows = (o: { h: number; w: number; padding: number; kh: number; kw: number; stride: number }) => {
    const [h, w] = padded(o);
    return [Math.floor((h - o.kh) / o.stride) + 1, Math.floor((w - o.kw) / o.stride) + 1] as const;
  };

  law('conv2d with stride and padding (unfold2d, fold2d)', fc.tuple(window.filter((o) => o.n * o.c * o.h * o.w <= MAX_ELEMENTS), dims(2)).chain(([o, out]) =>
    arbCase(`conv2d stride ${o.stride} padding ${o.padding}`, { x: arbParam([o.n, o.c, o.h, o.w]), w: arbParam([out, o.c, o.kh, o.kw]) }, (g, p) =>
      g.conv2d(p['x']!, p['w']!, { stride: o.stride, padding: o.padding }))));

  law('unfold2d', window.filter((o) => o.n * o.c * padded(o)[0] * padded(o)[1] <= MAX_ELEMENTS).chain((o) =>
    arbCase(`unfold2d kernel [${o.kh},${o.kw}] stride ${o.stride}`, { x: arbParam([o.n, o.c, ...padded(o)]) }, (g, p) =>
      g.op('unfold2d', [p['x']!], { kernel: [o.kh, o.kw], stride: o.stride }))));

  law('fold2d', window.filter((o) => o.n * o.c * o.kh * o.kw * windows(o)[0] * windows(o)[1] <= MAX_ELEMENTS).chain((o) => {
    const [h, w] = padded(o);
    const [oh, ow] = windows(o);
    return arbCase(`fold2d kernel [${o.kh},${o.kw}] stride ${o.stride} size [${h},${w}]`, { y: arbParam([o.n, o.c, o.kh, o.kw, oh, ow]) }, (g, p) =>
      g.op('fold2d', [p['y']!], { kernel: [o.kh, o.kw], stride: o.stride, size: [h, w] }));
  }));

  const SPECS = ['ij,jk->ik', 'bij,bjk->bik', 'ij->ji', 'ij->', 'i,i->', 'ij,j->i', 'bi,bj->bij', 'ijk,jl->il', 'ij,jk,kl->il', 'ij,ik,j->k', 'abc,cd,bd->a'];
  law('einsum', fc.tuple(fc.constantFrom(...SPECS), fc.dictionary(fc.constantFrom(...'abcdijkl'), dims(), { minKeys: 8 })).chain(([spec, size]) => {
    const ins = spec.split('->')[0]!.split(',');
    const ps = Object.fromEntries(ins.map((ix, j) => [`x${j}`, arbParam([...ix].map((c) => size[c] ?? 2))]));
    return arbCase(`einsum '${spec}'`, ps, (g, p) => g.einsum(spec, ...ins.map((_, j) => p[`x${j}`]!)));
  }));

  for (const op of ['softmax', 'logSoftmax'] as const) {
    law(`${op} over a random axis`, arbShape({ ...SMALL, minRank: 1 }).chain((s) => fc.integer({ min: -s.length, max: s.length - 1 }).chain((axis) =>
      arbCase(`${op} axis ${axis}`, { x: arbParam(s) }, (g, p) => g[op](p['x']!, axis)))));
  }

  law('layerNorm with gamma and beta', arbShape({ ...SMALL, minRank: 1 }).chain((s) => fc.tuple(fc.boolean(), fc.boolean()).chain(([hasG, hasB]) => {
    const last = s[s.length - 1]!;
    const ps: Record<string, fc.Arbitrary<Param>> = { x: arbParam(s, 'distinct') };
    if (hasG) ps['gamma'] = arbParam([last]);
    if (hasB) ps['beta'] = arbParam([last]);
    return arbCase(`layerNorm${hasG ? ' gamma' : ''}${hasB ? ' beta' : ''}`, ps, (g, p) => g.layerNorm(p['x']!, p['gamma'], p['beta']));
  })));

  law('softmaxCrossEntropy (w.r.t. logits and labels)', arbShape({ ...SMALL, minRank: 1 }).chain((s) =>
    arbCase('softmaxCrossEntropy', { logits: arbParam(s), labels: arbParam(s, 'positive') }, (g, p) => g.softmaxCrossEntropy(p['logits']!, p['labels']!))));

  law('mse', arbShape(SMALL).chain((s) => arbCase('mse', { pred: arbParam(s), target: arbParam(s) }, (g, p) => g.mse(p['pred']!, p['target']!))));

  law('dropout (fixed seed: the gradient goes through the mask)', arbShape(SMALL).chain((s) => fc.tuple(fc.constantFrom(0.2, 0.5), fc.nat()).chain(([rate, seed]) =>
    arbCase(`dropout rate ${rate} seed ${seed}`, { x: arbParam(s) }, (g, p) => g.dropout(p['x']!, rate, seed)))));
});
