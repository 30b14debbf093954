// IEEE binary16 as numbers: `f16round` (Math.f16round, which Node 20 lacks), in-place rounding of
// a host array, and the encoder/decoder between a host's Float32Array and binary16 bytes (what
// WebGPU's `array<f16>` buffers hold). It lives with the ops because casts and constant folding
// round with it too. Host tensors keep f16 values in Float32Array; this module does not decide
// where values are rounded (devices do, after each kernel that stores f16).

const f64 = new Float64Array(1);
const hi32 = new Uint32Array(f64.buffer);
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/**
 * ROUNDER[e + 14] = 1.5 * 2^(e + 42) for binades e in [-14, 15]: adding it to a value of that binade
 * leaves the value's bits below 2^(e - 10) (binary16's spacing there) to the f64 addition, which
 * rounds them to nearest, ties to even; subtracting it again is exact. Below 2^-14 the spacing is
 * the subnormal 2^-24, the rounder of e = -14.
 */
const ROUNDER = Array.from({ length: 30 }, (_, i) => 1.5 * 2 ** (i - 14 + 42));

/**
 * The binary16 value nearest to `x` (ties to even), as a number: overflow (|x| >= 65520) gives
 * ±Infinity, subnormals are kept, NaN stays NaN and zeros keep their sign. Exact for any double.
 *
 * ```ts
 * f16round(0.1);     // 0.0999755859375
 * f16round(65519);   // 65504
 * f16round(65520);   // Infinity
 * ```
 */
export function f16round(x: number): number {
  const a = Math.abs(x);
  if (!(a < 65520)) return a === a ? (x > 0 ? Infinity : -Infinity) : NaN;
  if (a === 0) return x;
  f64[0] = a;
  const e = (hi32[HI]! >>> 20) - 1023;
  const c = ROUNDER[e < -14 ? 0 : e + 14]!;
  const r = a + c - c;
  return x < 0 ? -r : r;
}

/** Round every element of a float host array to binary16, in place; returns it. */
export function f16roundArray<A extends Float32Array | Float64Array>(a: A): A {
  if (a instanceof Float32Array) return roundF32Bits(a) as A;
  for (let i = 0; i < a.length; i++) a[i] = f16round(a[i]!);
  return a;
}

const TWO52 = 2 ** 52;

/**
 * f16round over f32 bit patterns (an f32 value has at most 24 significant bits, so integer
 * rounding of its bits is exact): a normal binary16 result keeps 10 fraction bits, rounded to
 * nearest even at bit 13 (a carry into the exponent is the next binade, as it should be); below
 * 2^-14 the value is rounded to a multiple of 2^-24 in f64, exactly; from 65520 up it is ±Infinity.
 */
function roundF32Bits(a: Float32Array): Float32Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i]!, abs = b & 0x7fffffff;
    if (abs < 0x38800000) {
      if (abs === 0) continue;
      const r = (Math.abs(a[i]!) * 16777216 + TWO52 - TWO52) / 16777216;
      a[i] = b >>> 31 ? -r : r;
    } else if (abs < 0x477ff000) u[i] = (b + 0xfff + ((b >>> 13) & 1)) & 0xffffe000;
    else if (abs <= 0x7f800000) u[i] = (b & 0x80000000) | 0x7f800000;
  }
  return a;
}

/** A copy of `a` with every element rounded to binary16 (`a` is left as it is). */
export function f16rounded(a: Float32Array): Float32Array {
  return f16roundArray(Float32Array.from(a));
}

/**
 * The binary16 bit patterns of `src`'s values, each rounded to nearest first (the bytes of an
 * `array<f16>`, little-endian on every platform WebGPU runs on). NaN encodes as 0x7e00.
 */
export function encodeF16(src: ArrayLike<number>, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  // f32 values round on their bits (exact); other numbers one by one, so that no value is rounded twice
  const f = src instanceof Float32Array ? roundF32Bits(Float32Array.from(src)) : Float32Array.from(src, f16round);
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
  for (let i = 0; i < f.length; i++) {
    const bits = u[i]!, abs = bits & 0x7fffffff;
    const sign = (bits >>> 16) & 0x8000;
    let h: number;
    if (abs > 0x7f800000) h = 0x7e00;
    else if (abs === 0x7f800000) h = 0x7c00;
    else if (abs < 0x38800000) h = Math.abs(f[i]!) * 2 ** 24; // subnormal (or zero): the count of 2^-24 steps
    else h = (((abs >>> 23) - 112) << 10) | ((abs >>> 13) & 0x3ff);
    dst[i] = (abs > 0x7f800000 ? 0 : sign) | h;
  }
  return dst;
}

let table: Float32Array | undefined;

/** The value of every binary16 bit pattern (256 KB, built on first use). */
function decodeTable(): Float32Array {
  if (table) return table;
  table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = decodeF16Bits(h);
  return table;
}

/** The value of one binary16 bit pattern. */
export function decodeF16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1024 + m) * 2 ** (e - 25);
}

/** Values of binary16 bit patterns, into a Float32Array (exact: every binary16 value is an f32). */
export function decodeF16(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const t = decodeTable();
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]!]!;
  return dst;
}
