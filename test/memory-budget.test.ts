import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compile, f32, graph, parseBytes } from '../index.js';
import { fcParams } from './arbitraries.js';

const UNITS: [string, number][] = [['B', 1], ['KB', 1e3], ['MB', 1e6], ['GB', 1e9], ['TB', 1e12], ['KiB', 1024], ['MiB', 1024 ** 2], ['GiB', 1024 ** 3], ['TiB', 1024 ** 4]];

describe('memory budgets', () => {
  it('a whole number of any unit, with or without a space, in any case, is that many bytes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4096 }), fc.constantFrom(...UNITS), fc.boolean(), fc.boolean(), (n, [unit, scale], space, lower) => {
        const text = `${n}${space ? ' ' : ''}${lower ? unit.toLowerCase() : unit}`;
        expect(parseBytes(text)).toBe(n * scale);
      }),
      fcParams(200),
    );
  });

  it('plain numbers are bytes; NaN, infinities, negatives, unknown units and malformed numbers are a RangeError', () => {
    expect(parseBytes(1e9)).toBe(1e9);
    expect(parseBytes('4096')).toBe(4096);
    for (const bad of [NaN, Infinity, -1, '1.2.3 MB', '5 XB', '', 'MB', 'twelve']) expect(() => parseBytes(bad), String(bad)).toThrow(RangeError);
    const g = graph('tiny', (b) => ({ y: b.relu(b.input('x', f32(2))) }));
    expect(() => compile(g, { memoryBudget: Number.NaN })).toThrow(RangeError);
    expect(() => compile(g, { memoryBudget: '1 TB' })).not.toThrow();
  });
});
