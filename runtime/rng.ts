// A small seeded PRNG (mulberry32) and the helpers built on it: uniform ints, normals and
// permutations. Deterministic across platforms so that shuffles and initializations replay
// exactly from a seed. Not cryptographic, and 32 bits of state: fine for data order and
// weight init, not for anything that needs long independent streams.

/** A source of uniform floats in [0, 1). */
export type Rng = () => number;

/**
 * mulberry32: a 32-bit state generator with a full 2^32 period.
 *
 * @example
 * const rng = mulberry32(42);
 * rng(); // same value on every run and platform
 */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A uniform integer in [0, n). */
export function randomInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** A standard normal sample (Box-Muller; one of the pair is discarded for simplicity). */
export function normal(rng: Rng): number {
  // 1 - u keeps the log argument in (0, 1], avoiding log(0).
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, rng: Rng): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}
