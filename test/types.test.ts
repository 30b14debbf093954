// Type-level tests: `tsc --noEmit` (part of the test command) checks the @ts-expect-error lines,
// so a literal-shape mismatch that type-checks would fail the build.
import { describe, expectTypeOf, it } from 'vitest';
import { dim, f32, graph, ShapeError, type Tensor } from '../index.js';

describe('literal shapes are tracked in TypeScript types', () => {
  it('matmul of [B, 784] by [784, 256] has type Tensor<f32, [B, 256]>', () => {
    graph('t', (g) => {
      const B = dim('batch');
      const x = g.input('x', f32(B, 784));
      const w = g.param('w', f32(784, 256));
      const h = g.matmul(x, w);
      expectTypeOf(h).toEqualTypeOf<Tensor<'f32', readonly ['batch', 256]>>();
      const r = g.relu(h);
      expectTypeOf(r).toEqualTypeOf<Tensor<'f32', readonly ['batch', 256]>>();
      return { r };
    });
  });

  it('a matmul whose literal inner dimensions differ does not compile (and throws at run time)', () => {
    let threw = false;
    try {
      graph('t', (g) => {
        const x = g.input('x', f32(32, 784));
        const w2 = g.param('w2', f32(256, 10));
        // @ts-expect-error inner dimensions differ: 784 vs 256
        const y = g.matmul(x, w2);
        return { y };
      });
    } catch (e) {
      threw = e instanceof ShapeError;
    }
    if (!threw) throw new Error('the runtime check did not fire');
  });

  it('batched matmul keeps the batch dims of its left operand', () => {
    graph('t', (g) => {
      const a = g.input('a', f32(5, 2, 3));
      const b = g.input('b', f32(3, 4));
      expectTypeOf(g.matmul(a, b)).toEqualTypeOf<Tensor<'f32', readonly [5, 2, 4]>>();
      return { a };
    });
  });
});
