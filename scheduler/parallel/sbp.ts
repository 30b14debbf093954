// SBP sharding annotations (OneFlow): per tensor and per mesh axis, a tensor is split along one of
// its axes, broadcast (every device holds all of it) or a partial sum (the devices' values add up
// to it). This module holds the vocabulary — the annotations, the mesh, local shapes and the
// bytes a conversion ("boxing") moves; propagation and lowering live in sbp-propagate.ts and
// sbp-lower.ts. It runs nothing.

import { RheoError } from '../../graphs/errors.js';
import type { CollectiveOp } from '../steps.js';

export type Sbp =
  | { readonly kind: 'split'; readonly axis: number }
  | { readonly kind: 'broadcast' }
  | { readonly kind: 'partial' };

/** One annotation per mesh axis. */
export type NdSbp = readonly Sbp[];

export const split = (axis: number): Sbp => ({ kind: 'split', axis });
export const broadcast: Sbp = { kind: 'broadcast' };
export const partialSum: Sbp = { kind: 'partial' };

/**
 * Devices in one or two (or more) named dimensions, numbered row-major: device id = Σ coord[a] ·
 * stride[a]. A collective on mesh axis `a` runs among the devices that share every other coordinate.
 */
export interface Mesh {
  readonly shape: readonly number[];
}

/** An annotation that cannot hold: a split that does not divide, a dim split on two mesh axes, an unknown op. */
export class SbpError extends RheoError {}

export function sbpEqual(a: Sbp, b: Sbp): boolean {
  return a.kind === b.kind && (a.kind !== 'split' || a.axis === (b as { axis: number }).axis);
}

export function sbpString(s: Sbp): string {
  return s.kind === 'split' ? `S(${s.axis})` : s.kind === 'broadcast' ? 'B' : 'P';
}

export function ndSbpString(s: NdSbp): string {
  return `[${s.map(sbpString).join(', ')}]`;
}

export function meshSize(mesh: Mesh): number {
  return mesh.shape.reduce((a, b) => a * b, 1);
}

/** The coordinates of device `d`. */
export function coordsOf(mesh: Mesh, d: number): number[] {
  const c: number[] = [];
  for (let a = mesh.shape.length - 1; a >= 0; a--) {
    c.unshift(d % mesh.shape[a]!);
    d = Math.floor(d / mesh.shape[a]!);
  }
  return c;
}

export function deviceOf(mesh: Mesh, coords: readonly number[]): number {
  return coords.reduce((d, c, a) => d * mesh.shape[a]! + c, 0);
}

/** The devices that take part with `d` in a collective on mesh axis `axis`, ordered by their coordinate on it. */
export function groupOf(mesh: Mesh, d: number, axis: number): number[] {
  const c = coordsOf(mesh, d);
  return Array.from({ length: mesh.shape[axis]! }, (_, i) => deviceOf(mesh, c.map((x, a) => (a === axis ? i : x))));
}

/** The shape each device holds of a tensor of global shape `shape` under `s`. */
export function localShape(shape: readonly number[], s: NdSbp, mesh: Mesh): number[] {
  const out = [...shape];
  const splitBy = new Set<number>();
  s.forEach((x, a) => {
    if (x.kind !== 'split') return;
    if (splitBy.has(x.axis)) throw new SbpError(`dimension ${x.axis} of [${shape.join(', ')}] is split on two mesh axes`);
    splitBy.add(x.axis);
    const n = mesh.shape[a]!;
    if (x.axis >= shape.length || out[x.axis]! % n !== 0) throw new SbpError(`S(${x.axis}) on mesh axis ${a} (${n} devices) does not divide [${shape.join(', ')}]`);
    out[x.axis] = out[x.axis]! / n;
  });
  return out;
}

/** Whether `s` can shard a tensor of `shape` on `n` devices of one mesh axis. */
export function fits(s: Sbp, shape: readonly number[], n: number): boolean {
  return s.kind !== 'split' || (s.axis < shape.length && shape[s.axis]! % n === 0);
}

/** The collective a conversion on one mesh axis takes, or null for none / a local slice. */
export function boxingOp(from: Sbp, to: Sbp): CollectiveOp | 'slice' | null {
  if (sbpEqual(from, to)) return null;
  if (from.kind === 'broadcast' && to.kind === 'split') return 'slice';
  if (from.kind === 'partial') return to.kind === 'broadcast' ? 'all-reduce' : to.kind === 'split' ? 'reduce-scatter' : null;
  if (from.kind === 'split') return to.kind === 'broadcast' ? 'all-gather' : to.kind === 'split' ? 'all-to-all' : null;
  return null;
}

/** Whether `from` can be converted to `to` (there is no conversion into a partial sum). */
export function canBox(from: Sbp, to: Sbp): boolean {
  return sbpEqual(from, to) || boxingOp(from, to) !== null;
}

/**
 * Bytes a device sends to convert a tensor of `bytes` (its size on this mesh axis) among `n`
 * devices, ring algorithms: all-reduce 2(n−1)/n, all-gather and reduce-scatter (n−1)/n, all-to-all
 * (n−1)/n². A reduce-scatter is charged an all-gather more: a split activation is gathered again
 * downstream, so by default partial sums reduce to broadcast, and a split wins only where the
 * destination wants it (a sharded variable, ZeRO) — Megatron's layout, not sequence parallelism.
 */
export function boxingCost(from: Sbp, to: Sbp, bytes: number, n: number): number {
  const op = boxingOp(from, to);
  if (sbpEqual(from, to) || op === 'slice') return 0;
  const f = (n - 1) / n;
  switch (op) {
    case 'all-reduce': return 2 * f * bytes;
    case 'reduce-scatter': return 2 * f * bytes;
    case 'all-gather': return f * bytes;
    case 'all-to-all': return (f * bytes) / n;
    default: return Infinity;
  }
}
