// A matrix-product-state classifier (Stoudenmire & Schwab, "Supervised Learning with
// Quantum-Inspired Tensor Networks", 2016) as a rheo graph: pixels go through the local feature
// map φ(x) = [cos(πx/2), sin(πx/2)], a chain of cores contracts them from both ends toward a
// label core in the middle, and the label core's open index gives the class scores. It builds
// the graph and the host-side pieces around it (initial cores, pixel ordering); training it is
// the example's job.
//
// Each core is stored as a matrix [outer bond, physical × inner bond], where "inner" points
// toward the label site: one step of either environment is then a [B, D] × [D, 2D] matmul
// followed by a weighted sum over the two feature components. Environments are divided by their
// norm at every site so a product of ~200 cores neither overflows nor underflows f32; the logs
// of those norms are summed into the `logScale` output, so `logits · exp(logScale)` is the
// unnormalized MPS value (a positive per-image factor, which changes no prediction).

import { graph, dim, f32, type Graph, type Tensor } from '../index.js';
import type { Rng } from '../runtime/rng.js';
import { normal } from '../runtime/rng.js';

export interface MpsShape {
  /** number of pixel sites (the label core sits on one of them and reads its pixel too) */
  readonly sites: number;
  /** bond dimension D */
  readonly bond: number;
  readonly classes: number;
  /** index of the site carrying the label core (default: the middle one, floor(sites / 2)) */
  readonly labelSite?: number;
}

/** The site of the label core. */
export const labelSiteOf = (s: MpsShape): number => s.labelSite ?? Math.floor(s.sites / 2);

/** Param name of site i's core. */
export const coreName = (i: number): string => `core${i}`;

/**
 * Shape of site i's core as stored: [2, D] at an end site (no outer bond), [D, 2·C·D] for the
 * label core (left bond; physical, class, right bond), else [D, 2·D] (outer bond; physical,
 * inner bond). With one site the core is [2, C]; when the label sits at an end it has no bond on
 * that side: [2·C·D] is then stored as [1, 2·C·D] (outer bond of size 1).
 */
export function coreShape(s: MpsShape, i: number): [number, number] {
  const c = labelSiteOf(s);
  const D = s.bond;
  if (i === c) {
    const left = c > 0 ? D : 1;
    const right = c < s.sites - 1 ? D : 1;
    return [left, 2 * s.classes * right];
  }
  if (i === 0 || i === s.sites - 1) return [2, D];
  return [D, 2 * D];
}

/**
 * The classifier graph. Inputs: `x` [batch, sites] pixel values in [0, 1], already in site order;
 * `y` [batch, classes] one-hot labels. Outputs: `logits` [batch, classes], `loss` (softmax
 * cross-entropy) and `logScale` [batch] (see the header).
 */
export function mpsGraph(s: MpsShape, name = 'mps'): Graph {
  const B = dim('batch');
  const S = s.sites;
  const C = s.classes;
  const D = s.bond;
  const c = labelSiteOf(s);
  if (!(S >= 1 && c >= 0 && c < S && D >= 1 && C >= 1)) throw new RangeError(`mpsGraph: bad shape ${JSON.stringify(s)}`);
  return graph(name, (g) => {
    const x = g.input('x', f32(B, S));
    const y = g.input('y', f32(B, C));
    const cores = Array.from({ length: S }, (_, i) => g.param(coreName(i), f32(...coreShape(s, i)), g.init.zeros()));
    const angle = g.mul(x, Math.PI / 2);
    const cos = g.cos(angle);
    const sin = g.sin(angle);
    const col = (t: Tensor, i: number) => g.slice(t, [0, i], [Infinity, i + 1]); // [B, 1]
    const logs: Tensor[] = [];

    // One step toward the label site: env [B, D] · core [D, 2D] → [B, 2D]; mix the halves by φ.
    const absorb = (env: Tensor, i: number): Tensor => {
      const t = g.matmul(env, cores[i]!);
      const next = g.add(g.mul(g.slice(t, [0, 0], [Infinity, D]), col(cos, i)), g.mul(g.slice(t, [0, D], [Infinity, 2 * D]), col(sin, i)));
      return normalize(next);
    };
    // An end site: φ [B, 2] · core [2, D].
    const edge = (i: number): Tensor => normalize(g.matmul(g.concat([col(cos, i), col(sin, i)], 1), cores[i]!));
    // The tiny floor keeps an all-zero environment finite; it enters the scale and the division
    // alike, so logits · exp(logScale) stays exact.
    const normalize = (env: Tensor): Tensor => {
      const sq = g.add(g.sum(g.square(env), -1, true), 1e-30);
      logs.push(g.mul(g.log(sq), 0.5));
      return g.mul(env, g.rsqrt(sq));
    };

    let left: Tensor | null = null;
    for (let i = 0; i < c; i++) left = left ? absorb(left, i) : edge(i);
    let right: Tensor | null = null;
    for (let i = S - 1; i > c; i--) right = right ? absorb(right, i) : edge(i);

    // The label core [Dl, 2·C·Dr]: contract the left environment (or nothing at the left end),
    // the label site's φ, then the right environment.
    const Dr = c < S - 1 ? D : 1;
    const lab = cores[c]!;
    const t = left ? g.matmul(left, lab) : g.broadcastTo(lab, [B, 2 * C * Dr]); // [B, 2·C·Dr]
    const half = C * Dr;
    let scores = g.add(g.mul(g.slice(t, [0, 0], [Infinity, half]), col(cos, c)), g.mul(g.slice(t, [0, half], [Infinity, 2 * half]), col(sin, c)));
    if (right) scores = g.sum(g.mul(g.reshape(scores, [B, C, D]), g.reshape(right, [B, 1, D])), -1);
    const logits = g.reshape(scores, [B, C]);
    const logScale = logs.length ? g.reshape(logs.reduce((a, b) => g.add(a, b)), [B]) : g.sum(g.mul(x, 0), -1);
    return { logits, logScale, loss: g.softmaxCrossEntropy(logits, y) };
  });
}

/**
 * Initial cores near the identity, so that at the start each site passes the environment on
 * (scaled by cos + sin, which normalization removes) and gradients reach every site: bulk cores
 * are [I | I] plus N(0, noise²); end cores and the label core are N(0, 1) (the label core sets
 * the initial logit scale, which is then of order one).
 */
export function initialCores(s: MpsShape, rng: Rng, noise = 1e-2): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  const c = labelSiteOf(s);
  const D = s.bond;
  for (let i = 0; i < s.sites; i++) {
    const [rows, cols] = coreShape(s, i);
    const a = new Float32Array(rows * cols);
    const bulk = i !== c && i !== 0 && i !== s.sites - 1;
    for (let k = 0; k < a.length; k++) a[k] = (bulk ? noise : 1) * normal(rng);
    if (bulk) for (let r = 0; r < D; r++) { a[r * cols + r] += 1; a[r * cols + D + r] += 1; }
    out[`param:${coreName(i)}`] = a;
  }
  return out;
}

/**
 * Images [count, side²] (row-major) to MPS inputs [count, (side/f)²]: f×f average pooling, then
 * a snake order (row 0 left to right, row 1 right to left, …) so that sites adjacent in the
 * chain are adjacent in the image.
 */
export function mpsPixels(images: Float32Array, count: number, side: number, factor: number): Float32Array {
  const small = Math.floor(side / factor);
  const out = new Float32Array(count * small * small);
  const inv = 1 / (factor * factor);
  for (let n = 0; n < count; n++) {
    const img = n * side * side;
    for (let r = 0; r < small; r++) {
      for (let q = 0; q < small; q++) {
        let acc = 0;
        for (let dr = 0; dr < factor; dr++) for (let dq = 0; dq < factor; dq++) acc += images[img + (r * factor + dr) * side + q * factor + dq]!;
        const col = r % 2 === 0 ? q : small - 1 - q;
        out[n * small * small + r * small + col] = acc * inv;
      }
    }
  }
  return out;
}
