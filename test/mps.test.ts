// The MPS classifier of examples/mps-model.ts: the contraction the graph builds (two normalized
// environments meeting at the label core) equals a direct dense evaluation — the full tensor
// Ψ[class, p1, …, pN] built from the cores, contracted with the product of feature vectors —
// on tiny random MPSs; and the Fashion-MNIST example runs in smoke mode.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { compile, tensor } from '../index.js';
import { coreName, coreShape, labelSiteOf, mpsGraph, mpsPixels, type MpsShape } from '../examples/mps-model.js';
import { fcParams } from './arbitraries.js';

/** Site i's core as A[l][p][k][r] (k: class, only on the label site; else size 1), from its stored layout. */
function semanticCore(s: MpsShape, i: number, w: Float32Array): number[][][][] {
  const c = labelSiteOf(s);
  const D = s.bond;
  const [rows, cols] = coreShape(s, i);
  const at = (r: number, q: number) => w[r * cols + q]!;
  const build = (L: number, K: number, R: number, f: (l: number, p: number, k: number, r: number) => number) =>
    Array.from({ length: L }, (_, l) => [0, 1].map((p) => Array.from({ length: K }, (_, k) => Array.from({ length: R }, (_, r) => f(l, p, k, r)))));
  if (i === c) {
    const R = cols / (2 * s.classes);
    return build(rows, s.classes, R, (l, p, k, r) => at(l, p * s.classes * R + k * R + r));
  }
  const edge = i === 0 || i === s.sites - 1;
  if (i < c) return edge ? build(1, 1, D, (_l, p, _k, r) => at(p, r)) : build(D, 1, D, (l, p, _k, r) => at(l, p * D + r));
  return edge ? build(D, 1, 1, (l, p) => at(p, l)) : build(D, 1, D, (l, p, _k, r) => at(r, p * D + l));
}

/**
 * f(x)[k] = Σ_config Ψ[k, config] Π_i φ(x_i)[p_i], with Ψ built densely from the cores. With
 * `magnitude`, every core entry and feature is replaced by its absolute value: a bound on the
 * terms that cancel, which is what float rounding scales with.
 */
function denseEvaluate(s: MpsShape, cores: Float32Array[], x: ArrayLike<number>, magnitude = false): number[] {
  const A = cores.map((w, i) => semanticCore(s, i, magnitude ? w.map(Math.abs) : w));
  const c = labelSiteOf(s);
  const psi: number[][] = []; // psi[config][k]
  for (let config = 0; config < 1 << s.sites; config++) {
    // row vector over the current bond, one per class once the label core is passed
    let v: number[][] = [[1]];
    for (let i = 0; i < s.sites; i++) {
      const p = (config >> i) & 1;
      const core = A[i]!;
      const K = i === c ? s.classes : 1;
      const R = core[0]![p]![0]!.length;
      const next: number[][] = [];
      for (const row of v) {
        for (let k = 0; k < K; k++) {
          next.push(Array.from({ length: R }, (_, r) => row.reduce((acc, vl, l) => acc + vl * core[l]![p]![k]![r]!, 0)));
        }
      }
      v = next;
    }
    psi.push(v.map((row) => row[0]!));
  }
  const phi = (t: number): number[] => [Math.cos((Math.PI / 2) * t), Math.sin((Math.PI / 2) * t)].map((v) => (magnitude ? Math.abs(v) : v));
  const f = new Array<number>(s.classes).fill(0);
  psi.forEach((amp, config) => {
    let w = 1;
    for (let i = 0; i < s.sites; i++) w *= phi(x[i]!)[(config >> i) & 1];
    amp.forEach((a, k) => (f[k]! += a * w));
  });
  return f;
}

const arbCase = fc
  .record({ sites: fc.integer({ min: 1, max: 6 }), bond: fc.integer({ min: 1, max: 4 }), classes: fc.integer({ min: 1, max: 4 }), batch: fc.integer({ min: 1, max: 3 }) })
  .chain((s) =>
    fc.record({
      shape: fc.constant(s),
      labelSite: fc.integer({ min: 0, max: s.sites - 1 }),
      // multiples of 1/8 and of 1/1000: no value so small that f32 would hold it as a subnormal
      cores: fc.array(fc.array(fc.integer({ min: -16, max: 16 }).map((v) => v / 8), { minLength: 64, maxLength: 64 }), { minLength: s.sites, maxLength: s.sites }),
      x: fc.array(fc.integer({ min: 0, max: 1000 }).map((v) => v / 1000), { minLength: s.batch * s.sites, maxLength: s.batch * s.sites }),
    }),
  );

describe('MPS classifier', () => {
  it('the graph contraction equals the dense evaluation of the MPS, up to its stated scale', () => {
    fc.assert(
      fc.property(arbCase, ({ shape: { sites, bond, classes, batch }, labelSite, cores, x }) => {
        const s: MpsShape = { sites, bond, classes, labelSite };
        // float64: the law is about the contraction and its scale bookkeeping; f32 range and rounding
        // (tiny environments whose squares underflow) are not what it checks
        const exe = compile(mpsGraph(s), { precision: 'f64' });
        // cores of any size from the drawn pool of values (cycled)
        const values = Array.from({ length: sites }, (_, i) => {
          const [r, q] = coreShape(s, i);
          return Float32Array.from({ length: r * q }, (_, k) => cores[i]![k % 64]!);
        });
        exe.setVariables(Object.fromEntries(values.map((v, i) => [`param:${coreName(i)}`, v])));
        const out = exe.runSync({ x: tensor(Float32Array.from(x), [batch, sites]) }, ['logits', 'logScale']);
        for (let b = 0; b < batch; b++) {
          // the graph's input is f32: the dense evaluation reads the same values (cos near π/2 is ill-conditioned)
          const xb = x.slice(b * sites, (b + 1) * sites).map(Math.fround);
          const want = denseEvaluate(s, values, xb);
          const bound = denseEvaluate(s, values, xb, true);
          const scale = Math.exp(out.logScale!.data[b]!);
          const got = Array.from(out.logits!.data.subarray(b * classes, (b + 1) * classes), (v) => v * scale);
          // f32 rounding errors scale with the whole output vector (the classes share one environment), not with one class
          const scaleOfAll = Math.max(...bound);
          got.forEach((g, k) => expect(Math.abs(g - want[k]!), `class ${k}: ${g} vs ${want[k]}`).toBeLessThanOrEqual(1e-5 * scaleOfAll + 1e-30));
        }
      }),
      fcParams(60),
    );
  });

  it('pools images and orders the pixels as a snake', () => {
    // a 4×4 image with value 10·row + col, pooled 2×2: [[5.5, 7.5], [25.5, 27.5]] → snake 5.5, 7.5, 27.5, 25.5
    const img = Float32Array.from({ length: 16 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4));
    expect(Array.from(mpsPixels(img, 1, 4, 2))).toEqual([5.5, 7.5, 27.5, 25.5]);
  });

  it('the Fashion-MNIST example trains in smoke mode to well above chance', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'examples/mps-fashion-mnist.ts', '--', '--smoke', '--quiet', '--backend', 'cpu'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const m = /test accuracy: ([\d.]+)%/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(40);
  });
});
