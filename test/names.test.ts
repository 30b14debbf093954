// Names that are also keys of Object.prototype ('__proto__', 'constructor', 'toString', ...) used
// as input, param, state and output names across the whole API give exactly what ordinary names
// give: building, JSON, running, gradients, optimizers, variables, safetensors, checkpoints,
// saved models and reactive runs.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import {
  adam, compile, decodeSafetensors, encodeSafetensors, f32, fromJSON, grad, graph, reactive, restoreCheckpoint, tensor, toJSON,
  type Graph, type HostTensor,
} from '../index.js';
import { readCheckpoint, writeCheckpoint } from '../runtime/train/checkpoint.js';
import { loadModel, saveModel } from '../runtime/model-files.js';
import { fcParams } from './arbitraries.js';

const TRICKY = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'] as const;
const ORDINARY = ['x', 'w', 'out', 'loss'] as const;

interface Names {
  readonly x: string;
  readonly y: string;
  readonly w: string;
  readonly b: string;
  readonly s: string;
  readonly pred: string;
  readonly loss: string;
}
const PLAIN: Names = { x: 'x0', y: 'y0', w: 'w0', b: 'b0', s: 's0', pred: 'pred0', loss: 'loss0' };

/** Names for each role: inputs, params, state and outputs each distinct among themselves. */
const arbNames: fc.Arbitrary<Names> = fc
  .tuple(
    fc.uniqueArray(fc.constantFrom(...TRICKY, ...ORDINARY), { minLength: 2, maxLength: 2 }),
    fc.uniqueArray(fc.constantFrom(...TRICKY, ...ORDINARY), { minLength: 2, maxLength: 2 }),
    fc.constantFrom(...TRICKY, ...ORDINARY),
    fc.uniqueArray(fc.constantFrom(...TRICKY, ...ORDINARY), { minLength: 2, maxLength: 2 }),
  )
  .map(([[x, y], [w, b], s, [pred, loss]]) => ({ x: x!, y: y!, w: w!, b: b!, s: s!, pred: pred!, loss: loss! }));

/** A record with exactly these own entries, whatever the keys (no prototype setter involved). */
function rec<T>(entries: readonly (readonly [string, T])[]): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

function model(n: Names): Graph {
  return graph('named', (g) => {
    const x = g.input(n.x, f32('batch', 3));
    const y = g.input(n.y, f32('batch', 2));
    const w = g.param(n.w, f32(3, 2), g.init.normal(0.5));
    const b = g.param(n.b, f32(2), g.init.uniform(-0.5, 0.5));
    const s = g.state(n.s, f32(2), g.init.constant(0.25));
    g.update(s, g.mul(s, 0.5));
    const pred = g.add(g.add(g.matmul(x, w), b), s);
    return rec([[n.pred, pred], [n.loss, g.mse(pred, y)]]);
  });
}

const X = tensor(Float32Array.from({ length: 6 }, (_, i) => Math.sin(i + 1)), [2, 3]);
const Y = tensor(Float32Array.of(0.5, -1, 1, 0.25), [2, 2]);
const bits = (t: HostTensor | undefined): string => (t ? `${t.dtype}[${t.shape.join(',')}]:${Array.from(t.data).join(',')}` : 'missing');
const feedsOf = (n: Names) => rec([[n.x, X], [n.y, Y]]);
/** The variables of `vars` under the plain names' keys, for comparison. */
const varKeys = (n: Names): [string, string][] => [[`param:${n.w}`, `param:${PLAIN.w}`], [`param:${n.b}`, `param:${PLAIN.b}`], [`state:${n.s}`, `state:${PLAIN.s}`]];

// initial values are drawn per name: the params start from these instead
const W = tensor(Float32Array.from({ length: 6 }, (_, i) => Math.cos(i * 1.7) / 2), [3, 2]);
const B = tensor(Float32Array.of(0.125, -0.375), [2]);
const startValues = (n: Names) => rec([[`param:${n.w}`, W], [`param:${n.b}`, B]]);

/** What every step gives with these names (with ordinary ones: the reference). */
function trace(n: Names) {
  const g = model(n);
  const fwd = compile(g, { seed: 7 });
  fwd.setVariables(startValues(n));
  const out = fwd.runSync(feedsOf(n));
  const vars = fwd.variables();
  const step = compile(grad(g, n.loss), { optimizer: adam(0.1), seed: 7 });
  step.setVariables(startValues(n));
  const losses = [0, 1].map(() => step.runSync(feedsOf(n))[n.loss]);
  return { g, out, vars, step, losses, trained: step.variables() };
}
const ref = trace(PLAIN);

describe('names that are also Object.prototype keys', () => {
  it('give what ordinary names give across build, JSON, runs, grad, optimizers, variables, safetensors, checkpoints, saved models and reactive runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rheo-names-'));
    let k = 0;
    try {
      await fc.assert(
        fc.asyncProperty(arbNames, async (n) => {
          const t = trace(n);
          // build
          expect(Object.keys(t.g.outputs).sort()).toEqual([n.pred, n.loss].sort());
          for (const [name, op] of [[n.x, 'input'], [n.y, 'input'], [n.w, 'param'], [n.b, 'param'], [n.s, 'state']] as const) {
            expect(t.g.nodes.filter((m) => m.op === op && m.name === name)).toHaveLength(1);
          }
          // JSON
          const text = toJSON(t.g);
          const back = fromJSON(text);
          expect(toJSON(back)).toBe(text);
          expect(Object.keys(back.outputs).sort()).toEqual([n.pred, n.loss].sort());
          // compile and run: outputs, variables
          expect(Object.keys(t.out).sort()).toEqual([n.pred, n.loss].sort());
          expect(bits(t.out[n.pred])).toBe(bits(ref.out[PLAIN.pred]));
          expect(bits(t.out[n.loss])).toBe(bits(ref.out[PLAIN.loss]));
          expect(Object.keys(t.vars).sort()).toEqual(varKeys(n).map(([a]) => a).sort());
          for (const [a, p] of varKeys(n)) expect(bits(t.vars[a])).toBe(bits(ref.vars[p]));
          // grad and optimizer: losses and trained params and moments
          t.losses.forEach((l, i) => expect(bits(l)).toBe(bits(ref.losses[i])));
          expect(Object.keys(t.trained)).toHaveLength(Object.keys(ref.trained).length);
          for (const [a, p] of varKeys(n)) expect(bits(t.trained[a])).toBe(bits(ref.trained[p]));
          for (const [key, v] of Object.entries(t.trained)) if (key.startsWith('state:opt/')) expect(bits(v)).toBe(bits(ref.trained[key.replace(`/${n.w}/`, `/${PLAIN.w}/`).replace(`/${n.b}/`, `/${PLAIN.b}/`)]));
          // setVariables with the names' keys
          const fresh = compile(t.g, { seed: 99 });
          fresh.setVariables(rec(varKeys(n).map(([a, p]) => [a, ref.trained[p]!] as const)));
          const again = fresh.runSync(feedsOf(n), [n.pred]);
          const refAgain = compile(ref.g, { seed: 99 });
          refAgain.setVariables(rec(varKeys(PLAIN).map(([, p]) => [p, ref.trained[p]!] as const)));
          expect(bits(again[n.pred])).toBe(bits(refAgain.runSync(feedsOf(PLAIN), [PLAIN.pred])[PLAIN.pred]));
          // safetensors keyed by the bare names, with metadata keyed by them too
          const raw = rec([[n.x, X], [n.y, Y]]);
          const decoded = decodeSafetensors(encodeSafetensors(raw, rec([[n.pred, 'p'], [n.loss, 'l']])));
          expect(Object.keys(decoded.tensors).sort()).toEqual([n.x, n.y].sort());
          expect(bits(decoded.tensors[n.x])).toBe(bits(X));
          expect(bits(decoded.tensors[n.y])).toBe(bits(Y));
          expect([decoded.metadata[n.pred], decoded.metadata[n.loss]]).toEqual(['p', 'l']);
          // checkpoints: write, read, restore into a fresh training executable
          const ckDir = join(dir, `ck${k++}`);
          const path = writeCheckpoint(ckDir, { step: 2, position: { index: 4 }, rng: { seed: 1, counter: 2 }, variables: t.trained, metadata: rec([[n.x, 'meta']]) });
          const ck = readCheckpoint(path);
          expect(ck.metadata?.[n.x]).toBe('meta');
          const resumed = compile(grad(t.g, n.loss), { optimizer: adam(0.1), seed: 123 });
          restoreCheckpoint(resumed, ck);
          const after = resumed.runSync(feedsOf(n))[n.loss];
          const refResumed = compile(grad(ref.g, PLAIN.loss), { optimizer: adam(0.1), seed: 123 });
          refResumed.setVariables(ref.trained);
          expect(bits(after)).toBe(bits(refResumed.runSync(feedsOf(PLAIN))[PLAIN.loss]));
          // saved models: params keyed by the param names, the graph's outputs by theirs
          const modelDir = join(dir, `model${k++}`);
          await saveModel(modelDir, t.g, t.step);
          const loaded = loadModel(modelDir);
          expect(Object.keys(loaded.params).sort()).toEqual([`param:${n.w}`, `param:${n.b}`].sort());
          expect(bits(loaded.params[`param:${n.w}`])).toBe(bits(ref.trained[`param:${PLAIN.w}`]));
          expect(Object.keys(loaded.graph.outputs).sort()).toEqual([n.pred, n.loss].sort());
          // reactive: Observables keyed by input names, outputs by output names
          const sx = new Subject<HostTensor>(), sy = new Subject<HostTensor>();
          const live = compile(t.g, { seed: 7 });
          live.setVariables(startValues(n));
          const run = reactive(live, rec([[n.x, sx], [n.y, sy]]));
          const got: Record<string, HostTensor> = {};
          const subs = [n.pred, n.loss].map((o) => run.outputs[o]!.subscribe((v) => Object.defineProperty(got, o, { value: v, enumerable: true })));
          sx.next(X);
          sy.next(Y);
          subs.forEach((s) => s.unsubscribe());
          expect(bits(got[n.pred])).toBe(bits(ref.out[PLAIN.pred]));
          expect(bits(got[n.loss])).toBe(bits(ref.out[PLAIN.loss]));
        }),
        fcParams(50),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('lookups of absent names find nothing inherited', () => {
    const g = model(PLAIN);
    const exe = compile(g);
    expect(() => exe.runSync(feedsOf(PLAIN), ['toString'])).toThrowError(/has no output 'toString'/);
    expect(() => grad(g, 'constructor')).toThrowError(/has no output 'constructor'/);
    expect(() => exe.setVariables(rec([['param:valueOf', X]]))).toThrowError(/no param named 'valueOf'/);
    const out = exe.runSync(feedsOf(PLAIN));
    expect(out['toString']).toBeUndefined();
    expect(exe.variables()['hasOwnProperty']).toBeUndefined();
    const decoded = decodeSafetensors(encodeSafetensors({ a: X }));
    expect(decoded.tensors['constructor']).toBeUndefined();
    expect(decoded.metadata['toString']).toBeUndefined();
  });
});
