// The counter-based random number generator shared by every backend: a pure function of
// (seed, index) so a kernel can draw its numbers in any order, on any device, and get the same
// bits. `randUniform` is the reference (and the CPU backend's implementation); `RAND_WGSL` is the
// same function in WGSL. It is not a cryptographic generator and keeps no state.

/** The "lowbias32" integer finalizer (a murmur3-style avalanche): u32 -> u32. */
export function hash32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** Raw 32 random bits for element `index` of the stream `seed` (both taken modulo 2^32). */
export function randBits(seed: number, index: number): number {
  const k = hash32((seed + 0x9e3779b9) >>> 0);
  return hash32((hash32((index ^ k) >>> 0) + k) >>> 0);
}

/**
 * The seed of stream `key` of `seed`: `seed + hash32(key)` modulo 2^32. Key 0 is the seed itself,
 * so a random op keyed by a step counter draws at step 0 what an unkeyed one draws.
 */
export function keyedSeed(seed: number, key: number): number {
  return (seed + hash32(key >>> 0)) >>> 0;
}

/**
 * A uniform number in [0, 1) with 24 random bits, so it is exactly representable in f32 and
 * every backend returns the same value.
 *
 * ```ts
 * randUniform(42, 0); // the same number on the CPU and in WGSL's rheo_rand(42u, 0u)
 * ```
 */
export function randUniform(seed: number, index: number): number {
  return (randBits(seed, index) >>> 8) / 16777216;
}

/** WGSL source defining `rheo_hash32(u32) -> u32` and `rheo_rand(seed: u32, index: u32) -> f32`. */
export const RAND_WGSL = /* wgsl */ `
fn rheo_hash32(x0: u32) -> u32 {
  var x = x0;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  return x ^ (x >> 16u);
}
fn rheo_rand(seed: u32, index: u32) -> f32 {
  let k = rheo_hash32(seed + 0x9e3779b9u);
  let h = rheo_hash32(rheo_hash32(index ^ k) + k);
  return f32(h >> 8u) / 16777216.0;
}
`;
