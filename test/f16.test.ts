// binary16 on the host: f16round against every binary16 value and against a brute-force nearest
// value for random f32 inputs, and the encoder/decoder between Float32Array and binary16 bits.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeF16, decodeF16Bits, encodeF16, f16round, f16roundArray } from '../ops/f16.js';

/** Every positive finite binary16 value in order, with its bits; then 65536 as the overflow step (bits 0x7c00, even). */
const positives: { v: number; bits: number }[] = [];
for (let h = 1; h < 0x7c00; h++) positives.push({ v: decodeF16Bits(h), bits: h });
positives.push({ v: 65536, bits: 0x7c00 });

/** Nearest binary16 value by search over the table, ties to the even bit pattern. */
function nearest(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  let lo = -1, hi = positives.length - 1; // positives[lo] <= a < positives[hi], with lo = -1 meaning 0
  if (a >= positives[hi]!.v) return Math.sign(x) * Infinity;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (positives[mid]!.v <= a) lo = mid;
    else hi = mid;
  }
  const below = lo < 0 ? { v: 0, bits: 0 } : positives[lo]!, above = positives[hi]!;
  const dl = a - below.v, dh = above.v - a;
  const pick = dl < dh ? below : dh < dl ? above : below.bits % 2 === 0 ? below : above;
  const r = pick.v === 65536 ? Infinity : pick.v;
  return x < 0 || Object.is(x, -0) ? -r : r;
}

describe('f16round', () => {
  it('is the identity on every binary16 value (all 65536 bit patterns)', () => {
    for (let h = 0; h < 65536; h++) {
      const v = decodeF16Bits(h);
      expect(Object.is(f16round(v), v) || (Number.isNaN(v) && Number.isNaN(f16round(v))), `bits 0x${h.toString(16)}`).toBe(true);
    }
  });

  it('gives the nearest binary16 value of any f32, ties to even', () => {
    fc.assert(
      fc.property(fc.float({ noDefaultInfinity: false }), (x) => {
        const want = nearest(x), got = f16round(x);
        return Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want));
      }),
      { numRuns: 20000 },
    );
  });

  it('rounds at the interesting boundaries: overflow threshold, ties, subnormals', () => {
    const cases: [number, number][] = [
      [65504, 65504], [65519.99, 65504], [65520, Infinity], [-65520, -Infinity], [1e9, Infinity],
      [1 + 2 ** -11, 1], [1 + 3 * 2 ** -11, 1 + 2 ** -9], [2049, 2048], [2051, 2052],
      [2 ** -25, 0], [-(2 ** -25), -0], [3 * 2 ** -25, 2 ** -23], [2 ** -24, 2 ** -24], [1.4 * 2 ** -24, 2 ** -24],
      [2 ** -14 - 2 ** -25, 2 ** -14], [0.1, 0.0999755859375], [-0, -0],
    ];
    for (const [x, want] of cases) expect(Object.is(f16round(x), want), `f16round(${x}) = ${f16round(x)}, want ${want}`).toBe(true);
    expect(f16round(NaN)).toBeNaN();
  });

  it('numbers near a tie round as their exact value says (no double rounding through f32)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1024, max: 2047 }), fc.integer({ min: -14, max: 15 }), fc.boolean(), (m, e, up) => {
        // a tie between two binary16 values, nudged by less than an f32 ulp
        const tie = (m + 0.5) * 2 ** (e - 10);
        const x = tie * (1 + (up ? 1 : -1) * 2 ** -40);
        return f16round(x) === (up ? (m + 1) * 2 ** (e - 10) : m * 2 ** (e - 10)) || (tie * 2 >= 131040 && f16round(x) === (up ? Infinity : 65504));
      }),
    );
  });
});

describe('f16roundArray', () => {
  it('rounds a Float32Array as f16round rounds each value: every binary16 value, its f32 neighbours and the f32 values around each midpoint', () => {
    const xs: number[] = [];
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    const near = (v: number) => {
      f[0] = v;
      const b = u[0]!;
      for (let d = -2; d <= 2; d++) {
        u[0] = (b + d) >>> 0;
        xs.push(f[0]!);
      }
    };
    for (let h = 0; h < 0x7c00; h++) {
      const v = decodeF16Bits(h), next = decodeF16Bits(h + 1);
      near(v);
      near(-v);
      if (h + 1 <= 0x7c00) {
        const mid = (v + (h + 1 === 0x7c00 ? 65536 : next)) / 2;
        near(mid);
        near(-mid);
      }
    }
    xs.push(NaN, Infinity, -Infinity, 3.4e38, -3.4e38, 1e-45, -1e-45);
    const got = f16roundArray(Float32Array.from(xs));
    for (let i = 0; i < xs.length; i++) {
      const want = Math.fround(f16round(Math.fround(xs[i]!)));
      if (!Object.is(got[i], want) && !(Number.isNaN(got[i]) && Number.isNaN(want))) expect.fail(`f16roundArray(${xs[i]}) = ${got[i]}, f16round gives ${want}`);
    }
  });

  it('agrees with f16round on random f32 arrays, and rounds Float64Arrays too', () => {
    fc.assert(fc.property(fc.float32Array({ maxLength: 64 }), (a) => {
      const got = f16roundArray(Float32Array.from(a)), wide = f16roundArray(Float64Array.from(a));
      return Array.from(a).every((x, i) => {
        const want = f16round(x);
        return (Object.is(got[i], want) && Object.is(wide[i], want)) || (Number.isNaN(want) && Number.isNaN(got[i]) && Number.isNaN(wide[i]));
      });
    }), { numRuns: 2000 });
  });
});

describe('binary16 encoding', () => {
  it('encodes and decodes every bit pattern back to itself (NaNs as 0x7e00)', () => {
    const bits = Uint16Array.from({ length: 65536 }, (_, h) => h);
    const values = decodeF16(bits);
    const again = encodeF16(values);
    for (let h = 0; h < 65536; h++) {
      const nan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      expect(again[h], `bits 0x${h.toString(16)}`).toBe(nan ? 0x7e00 : h);
    }
  });

  it('encodes an f32 as its rounded value', () => {
    fc.assert(
      fc.property(fc.float(), (x) => {
        const want = Math.fround(f16round(x));
        // a plain array goes value by value, a Float32Array on its bits
        return [encodeF16([x]), encodeF16(Float32Array.of(x))].every((bits) => {
          const back = decodeF16(bits)[0]!;
          return Object.is(back, want) || (Number.isNaN(back) && Number.isNaN(want));
        });
      }),
    );
  });
});
