// Training conveniences: learning-rate schedules against their closed forms step by step (and
// across a restore of the variables), gradient clipping by global norm, `grad` with respect to
// inputs against finite differences, dropout masks that change every step yet resume exactly,
// the numerics check naming the op that made a NaN, and the checkpoint directory checked
// before the first step.

import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import {
  CheckpointError, FeedError, GraphError, NumericsError, compile, cosine, f32, dim, grad, graph, i32, sgd, adam, stepDecay, tensor, warmup,
  type Executable, type Graph, type HostTensor, type Schedule,
} from '../index.js';
import { randUniform } from '../ops/rand.js';
import { listCheckpoints, train } from '../runtime/train/index.js';
import { batchSource, prepare, trainToEnd, SIZES } from './fixtures/online-trainer.js';
import { fcParams } from './arbitraries.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'rheo-options-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const bitsOf = (vars: Record<string, HostTensor>) =>
  Object.fromEntries(Object.entries(vars).map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex')]));

/** loss = sum(w): every gradient is 1, so an SGD step moves each weight by exactly -lr·factor. */
const linear = graph('linear', (g) => {
  const w = g.param('w', f32(2), g.init.zeros());
  return { loss: g.sum(w) };
});

describe('learning-rate schedules', () => {
  const LR = 0.5;
  // closed forms, written independently of graphs/optim.ts; n = steps taken before this one
  const cases: [string, Schedule, (n: number) => number][] = [
    ['cosine(4)', cosine(4), (n) => 0.5 * (1 + Math.cos((Math.PI * Math.min(n, 4)) / 4))],
    ['stepDecay(3, 0.5)', stepDecay(3, 0.5), (n) => 0.5 ** Math.floor(n / 3)],
    ['warmup(4)', warmup(4), (n) => Math.min(1, (n + 1) / 4)],
    ['warmup(3, cosine(5, { final: 0.1 }))', warmup(3, cosine(5, { final: 0.1 })), (n) => (n < 3 ? (n + 1) / 3 : 0.1 + (0.9 * (1 + Math.cos((Math.PI * Math.min(n - 3, 5)) / 5))) / 2)],
  ];
  for (const [label, schedule, closed] of cases) {
    it(`${label}: each step's learning rate is lr times the closed form, also after the variables are restored elsewhere`, () => {
      const make = () => compile(grad(linear, 'loss'), { optimizer: sgd(LR, { schedule }), precision: 'f64' });
      let exe: Executable = make();
      let w = 0;
      for (let n = 0; n < 12; n++) {
        if (n === 6) {
          // a fresh executable with the variables of the first: the schedule reads the step counter state
          const next = make();
          next.setVariables(exe.variables());
          exe = next;
        }
        exe.runSync({});
        const now = exe.variables()['param:w']!.data[0]!;
        expect(w - now).toBeCloseTo(LR * closed(n), 12);
        expect(schedule.at(n)).toBeCloseTo(closed(n), 12);
        w = now;
      }
    });
  }

  it('schedules apply to Adam too, and bad arguments are RangeErrors', () => {
    const plain = compile(grad(linear, 'loss'), { optimizer: adam(0.1), precision: 'f64' });
    const halved = compile(grad(linear, 'loss'), { optimizer: adam(0.1, { schedule: stepDecay(1, 0.5) }), precision: 'f64' });
    let prevP = 0, prevH = 0;
    for (let n = 0; n < 4; n++) {
      plain.runSync({});
      halved.runSync({});
      const p = plain.variables()['param:w']!.data[0]!, h = halved.variables()['param:w']!.data[0]!;
      expect(prevH - h).toBeCloseTo((prevP - p) * 0.5 ** n, 12);
      prevP = p;
      prevH = h;
    }
    expect(() => cosine(0)).toThrow(RangeError);
    expect(() => warmup(1.5)).toThrow(RangeError);
    expect(() => stepDecay(2, NaN)).toThrow(RangeError);
    expect(() => sgd(NaN)).toThrow(RangeError);
    expect(() => adam(1e-3, { clipNorm: 0 })).toThrow(RangeError);
  });
});

describe('gradient clipping by global norm', () => {
  it('an SGD step with lr 1 moves the params by the gradients scaled to a global norm of at most clipNorm', () => {
    const g = graph('two-params', (b) => {
      const x1 = b.input('x1', f32(3));
      const x2 = b.input('x2', f32(2));
      const w1 = b.param('w1', f32(3), b.init.zeros());
      const w2 = b.param('w2', f32(2), b.init.zeros());
      return { loss: b.add(b.sum(b.mul(w1, x1)), b.sum(b.mul(w2, x2))) };
    });
    const arbVec = (n: number) => fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: n, maxLength: n });
    fc.assert(
      fc.property(arbVec(3), arbVec(2), fc.double({ min: 0.1, max: 20, noNaN: true }), (g1, g2, clip) => {
        const exe = compile(grad(g, 'loss'), { optimizer: sgd(1, { clipNorm: clip }), precision: 'f64' });
        exe.runSync({ x1: g1, x2: g2 });
        const v = exe.variables();
        const moved = [...v['param:w1']!.data, ...v['param:w2']!.data].map((x) => -x);
        const grads = [...g1, ...g2];
        const norm = Math.hypot(...grads);
        const scale = Math.min(1, clip / (norm + 1e-6));
        moved.forEach((m, i) => expect(m).toBeCloseTo(grads[i]! * scale, 9));
        expect(Math.hypot(...moved)).toBeLessThanOrEqual(clip + 1e-9);
      }),
      fcParams(40),
    );
  });
});

describe('grad with respect to inputs', () => {
  const H = 1e-6;
  it('grad/x for chosen inputs equals central finite differences (float64), next to grad/<param>', () => {
    const B = dim('batch');
    const g = graph('wrt-input', (b) => {
      const x = b.input('x', f32(B, 3));
      const s = b.input('s', f32(3));
      const w = b.param('w', f32(3, 2));
      const h = b.tanh(b.matmul(b.mul(x, s), w));
      return { loss: b.sum(b.mul(h, b.exp(h))) };
    });
    const dg = grad(g, 'loss', { wrt: ['x', 's', 'w'] });
    expect(Object.keys(dg.outputs).sort()).toEqual(['grad/s', 'grad/w', 'grad/x', 'loss']);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.nat(1000), (rows, seed) => {
        const exe = compile(dg, { backend: 'reference', precision: 'f64', seed });
        const x = Float64Array.from({ length: rows * 3 }, (_, i) => 2 * randUniform(seed, i) - 1);
        const s = Float64Array.from({ length: 3 }, (_, i) => 2 * randUniform(seed + 1, i) - 1);
        // host tensors over the Float64Arrays themselves (`tensor()` would round them to f32)
        const feeds = () => ({ x: { dtype: 'f32' as const, shape: [rows, 3], data: x }, s: { dtype: 'f32' as const, shape: [3], data: s } });
        const out = exe.runSync(feeds(), ['grad/x', 'grad/s'], { update: false });
        const loss = () => exe.runSync(feeds(), ['loss'], { update: false })['loss']!.data[0]!;
        for (const [name, v] of [['x', x], ['s', s]] as const) {
          const got = out[`grad/${name}`]!.data;
          expect(got.length).toBe(v.length);
          for (let i = 0; i < v.length; i++) {
            const orig = v[i]!;
            v[i] = orig + H;
            const up = loss();
            v[i] = orig - H;
            const down = loss();
            v[i] = orig;
            const fd = (up - down) / (2 * H);
            expect(Math.abs(got[i]! - fd)).toBeLessThanOrEqual(1e-5 * Math.max(Math.abs(fd), Math.abs(got[i]!)) + 1e-6);
          }
        }
      }),
      fcParams(20),
    );
  });

  it('names that are not a float param or input are GraphErrors', () => {
    const g = graph('wrt-bad', (b) => {
      const k = b.input('k', i32(3));
      const x = b.input('x', f32(3));
      return { loss: b.sum(b.mul(x, b.cast(k, 'f32'))) };
    });
    expect(() => grad(g, 'loss', { wrt: ['nope'] })).toThrow(GraphError);
    expect(() => grad(g, 'loss', { wrt: ['k'] })).toThrow(/i32/);
  });
});

describe('dropout draws a fresh mask every training step', () => {
  /** the online fixture's MLP with dropout on the hidden layer */
  const dropMlp = (rate: number): Graph => graph('drop-mlp', (g) => {
    const B = dim('batch');
    const x = g.input('x', f32(B, SIZES[0]!));
    const y = g.input('y', f32(B, SIZES[2]!));
    const w1 = g.param('w1', f32(SIZES[0]!, SIZES[1]!));
    const w2 = g.param('w2', f32(SIZES[1]!, SIZES[2]!));
    const h = g.dropout(g.relu(g.matmul(x, w1)), rate, 5);
    const logits = g.matmul(h, w2);
    return { logits, h, loss: g.softmaxCrossEntropy(logits, y) };
  });
  const makeStep = (seed: number) => compile(grad(dropMlp(0.4), 'loss'), { optimizer: adam(0.02), seed });

  it('masks differ from step to step while training, and stay the same in forward runs', () => {
    const x = tensor(Float32Array.from({ length: 4 * SIZES[0]! }, (_, i) => 1 + (i % 3)), [4, SIZES[0]!]);
    const y = tensor(Float32Array.from({ length: 4 * SIZES[2]! }, (_, i) => (i % SIZES[2]! === 0 ? 1 : 0)), [4, SIZES[2]!]);
    // a forward-only graph: nothing advances the counter, every run draws the same mask
    const fwd = compile(dropMlp(0.5), { seed: 1 });
    const maskOf = (h: HostTensor) => Array.from(h.data, (v) => (v === 0 ? 0 : 1)).join('');
    const m0 = maskOf(fwd.runSync({ x }, ['h'])['h']!);
    expect(maskOf(fwd.runSync({ x }, ['h'])['h']!)).toBe(m0);
    // training: with w1 positive, h is zero exactly where dropped
    const step = compile(grad(dropMlp(0.5), 'loss'), { optimizer: sgd(0), seed: 1 });
    step.setVariables({ 'param:w1': new Float32Array(SIZES[0]! * SIZES[1]!).fill(0.1) });
    const masks = Array.from({ length: 6 }, () => maskOf(step.runSync({ x, y }, ['h'])['h']!));
    expect(new Set(masks).size).toBe(masks.length);
    expect(step.variables()['state:rng/step']!.data[0]).toBe(6);
    // the first training step draws what the forward graph draws (counter 0)
    const fresh = compile(grad(dropMlp(0.5), 'loss'), { optimizer: sgd(0), seed: 1 });
    fresh.setVariables({ 'param:w1': new Float32Array(SIZES[0]! * SIZES[1]!).fill(0.1) });
    expect(masks[0]).toBe(maskOf(fresh.runSync({ x, y }, ['h'])['h']!));
  });

  it('a run that fails mid-way and resumes from its checkpoint ends bit-identical to an uninterrupted one', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(1000), fc.integer({ min: 2, max: 4 }), fc.integer({ min: 1, max: 11 }), async (seed, every, poisonAt) => {
        const spec = { seed, batch: 3, batches: 12 };
        const opts = { seed, prepare };
        const reference = makeStep(seed);
        expect(await trainToEnd(reference, batchSource(spec, 'seek'), opts)).toBe(12);
        const dir = tempDir();
        const checkpoint = { dir, every };
        await expect(trainToEnd(makeStep(seed), batchSource(spec, 'seek', { poisonAt }), { ...opts, checkpoint })).rejects.toThrow(FeedError);
        expect(listCheckpoints(dir)[0]?.step ?? 0).toBe(Math.floor(poisonAt / every) * every);
        const resumed = makeStep(seed);
        expect(await trainToEnd(resumed, batchSource(spec, 'seek'), { ...opts, checkpoint })).toBe(12);
        const ref = reference.variables();
        expect(ref['state:rng/step']!.data[0]).toBe(12);
        expect(bitsOf(resumed.variables())).toEqual(bitsOf(ref));
      }),
      fcParams(8),
    );
  });
});

describe('numerics check', () => {
  const B = dim('batch');
  const logOfNegative = graph('log-negative', (g) => {
    const x = g.input('x', f32(B, 3));
    const w = g.param('w', f32(3, 1), g.init.ones());
    const shifted = g.sub(g.matmul(x, w), 2);
    const bad = g.log(shifted); // log of a negative number where x sums below 2
    return { loss: g.mean(g.square(bad)) };
  });
  const feeds = { x: tensor([1, 1, 1, 0.1, 0.2, 0.3], [2, 3]) };

  it('names the log that made the NaN: node id, op and the line that built it', async () => {
    const exe = compile(grad(logOfNegative, 'loss'), { optimizer: sgd(0.1), checkNumerics: true });
    let err: unknown;
    try {
      exe.runSync(feeds);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NumericsError);
    const ne = err as NumericsError;
    expect(ne.op).toBe('log');
    expect(exe.graph.nodes[ne.nodeId]!.op).toBe('log');
    expect(ne.site).toMatch(/training-options\.test\.ts:\d+/);
    expect(ne.value).toBe('NaN');
    expect(ne.element).toBe(1);
    expect(ne.message).toMatch(/node \d+ \(log, at .*training-options\.test\.ts:\d+/);
    // the same through the asynchronous run, and through train()
    await expect(exe.run(feeds)).rejects.toBeInstanceOf(NumericsError);
    const run = train(compile(grad(logOfNegative, 'loss'), { optimizer: sgd(0.1) }), [feeds as never], { checkNumerics: true });
    await expect(lastValueFrom(run.pipe(toArray()))).rejects.toThrow(/numerics check: node \d+ \(log/);
  });

  it('is off by default, and a run without NaN passes the check', () => {
    const plain = compile(grad(logOfNegative, 'loss'), { optimizer: sgd(0.1) });
    expect(Number.isNaN(plain.runSync(feeds)['loss']!.data[0])).toBe(true);
    const ok = compile(grad(logOfNegative, 'loss'), { optimizer: sgd(0.01), checkNumerics: true });
    expect(Number.isFinite(ok.runSync({ x: tensor([1, 1, 1, 2, 2, 2], [2, 3]) })['loss']!.data[0])).toBe(true);
  });

  it('a NaN fed in is named as that input', () => {
    const exe = compile(grad(logOfNegative, 'loss'), { optimizer: sgd(0.1), checkNumerics: true });
    expect(() => exe.runSync({ x: tensor([5, 5, NaN, 5, 5, 5], [2, 3]) })).toThrow(/node 0 \(input 'x', at .*\) produced NaN at element 2/);
  });
});

describe('the checkpoint directory', () => {
  it("is checked before the first step: a path under a file is a CheckpointError and nothing trains", async () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'x');
    const exe = compile(grad(graph('cw', (g) => ({ loss: g.sum(g.param('w', f32(2))) })), 'loss'), { optimizer: sgd(0.1) });
    const before = bitsOf(exe.variables());
    let started = false;
    const run = train(exe, [{}, {}, {}], { checkpoint: { dir: join(file, 'sub'), every: 1 }, onStart: () => (started = true) });
    const events: unknown[] = [];
    await expect(new Promise((resolve, reject) => run.subscribe({ next: (e) => events.push(e), error: reject, complete: () => resolve(undefined) }))).rejects.toBeInstanceOf(CheckpointError);
    expect(events).toEqual([]);
    expect(started).toBe(false);
    expect(bitsOf(exe.variables())).toEqual(before);
  });
});
