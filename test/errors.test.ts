import { describe, expect, it } from 'vitest';
import { compile, DTypeError, f32, FeedError, fromJSON, graph, i32, ShapeError, tensor, toJSON, UnknownOpError } from '../index.js';

describe('bad input raises typed errors that name the op, the shapes and the call site', () => {
  it('a matmul shape mismatch names matmul, both shapes and this file', () => {
    let err: unknown;
    try {
      graph('bad', (g) => {
        const a = g.input('a', f32(2, 3));
        const b = g.input('b', f32(4, 5));
        return { c: g.matmul(a, b as never) };
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShapeError);
    const e = err as ShapeError;
    expect(e.op).toBe('matmul');
    expect(e.message).toContain('[2, 3]');
    expect(e.message).toContain('[4, 5]');
    expect(e.message).toContain('inner dimensions differ (3 vs 4)');
    expect(e.message).toMatch(/errors\.test\.ts:\d+:\d+/);
  });

  it('a broadcasting mismatch in an elementwise op names the op and shapes', () => {
    expect(() =>
      graph('bad', (g) => {
        const a = g.input('a', f32(2, 3));
        const b = g.input('b', f32(2, 4));
        return { c: g.add(a, b as never) };
      }),
    ).toThrowError(/^add: cannot broadcast dimension 3 with 4 .*\[2, 3\], \[2, 4\].*errors\.test\.ts/);
  });

  it('a wrong dtype is a DTypeError naming the op, the dtypes and the shapes', () => {
    let err: unknown;
    try {
      graph('bad', (g) => {
        const a = g.input('a', f32(2, 3));
        const n = g.input('n', i32(2, 3));
        return { c: g.mul(a, n as never) };
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DTypeError);
    expect((err as DTypeError).op).toBe('mul');
    expect((err as Error).message).toContain('f32, i32');
    expect((err as Error).message).toContain('[2, 3]');
    expect((err as Error).message).toMatch(/errors\.test\.ts:\d+/);
  });

  it('exp of an i32 tensor is refused', () => {
    expect(() => graph('bad', (g) => ({ y: g.exp(g.input('n', i32(3)) as never) }))).toThrowError(DTypeError);
  });

  it('a missing feed is a FeedError naming the input and its declared shape', () => {
    const g = graph('g', (b) => {
      const x = b.input('x', f32('batch', 3));
      const w = b.input('w', f32(3, 2));
      return { y: b.matmul(x, w) };
    });
    const exe = compile(g);
    expect(() => exe.runSync({ x: tensor(new Float32Array(6), [2, 3]) })).toThrowError(FeedError);
    expect(() => exe.runSync({ x: tensor(new Float32Array(6), [2, 3]) })).toThrowError(/input 'w': no value was fed; declared shape \[3, 2\]/);
  });

  it('a feed of the wrong shape names the input, the declared and the fed shapes', () => {
    const g = graph('g', (b) => ({ y: b.relu(b.input('x', f32('batch', 3))) }));
    expect(() => compile(g).runSync({ x: tensor(new Float32Array(8), [2, 4]) })).toThrowError(/input 'x': axis 1 has size 4, expected 3; declared shape \[batch, 3\], fed shape \[2, 4\]/);
  });

  it('a feed of the wrong dtype is refused', () => {
    const g = graph('g', (b) => ({ y: b.relu(b.input('x', f32(3))) }));
    expect(() => compile(g).runSync({ x: tensor(new Int32Array(3), [3]) })).toThrowError(/input 'x': dtype i32 does not match declared f32/);
  });

  it('an unknown op in the builder is an UnknownOpError naming the op and input shapes', () => {
    let err: unknown;
    try {
      graph('g', (b) => ({ y: b.op('frobnicate', [b.input('x', f32(2, 2))]) }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnknownOpError);
    expect((err as UnknownOpError).op).toBe('frobnicate');
    expect((err as Error).message).toContain('[2, 2]');
    expect((err as Error).message).toMatch(/errors\.test\.ts/);
  });

  it('an unknown op in a deserialized graph is refused with UnknownOpError', () => {
    const g = graph('g', (b) => ({ y: b.relu(b.input('x', f32(2))) }));
    const text = toJSON(g).replace('"op":"relu"', '"op":"relu6000"');
    expect(() => fromJSON(text)).toThrowError(UnknownOpError);
    expect(() => fromJSON(text)).toThrowError(/unknown op 'relu6000' with input shapes \[2\]/);
  });
});
