// Initial values of params and state from their `Init` descriptions, drawn from a generator
// seeded by (compile seed, tensor name) so a model initializes identically on every run and
// backend, and independently of the order params were declared in.

import type { Init } from '../graphs/builder.js';
import { mulberry32, normal } from './rng.js';

function hashName(seed: number, name: string): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function fans(shape: readonly number[]): [number, number] {
  if (shape.length === 0) return [1, 1];
  if (shape.length === 1) return [shape[0]!, shape[0]!];
  if (shape.length === 4) {
    const rf = shape[2]! * shape[3]!; // conv weights OIHW
    return [shape[1]! * rf, shape[0]! * rf];
  }
  const fanOut = shape[shape.length - 1]!;
  return [shape.slice(0, -1).reduce((a, b) => a * b, 1), fanOut];
}

export function initialValues(init: Init, shape: readonly number[], seed: number, name: string): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const rng = mulberry32(hashName(seed, name));
  const [fanIn, fanOut] = fans(shape);
  switch (init.kind) {
    case 'zeros': break;
    case 'constant': out.fill(init.value); break;
    case 'normal': for (let i = 0; i < n; i++) out[i] = (init.mean ?? 0) + init.std * normal(rng); break;
    case 'uniform': for (let i = 0; i < n; i++) out[i] = init.low + (init.high - init.low) * rng(); break;
    case 'he': {
      const std = Math.sqrt(2 / fanIn);
      for (let i = 0; i < n; i++) out[i] = std * normal(rng);
      break;
    }
    case 'glorot': {
      const lim = Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < n; i++) out[i] = (2 * rng() - 1) * lim;
      break;
    }
  }
  return out;
}
