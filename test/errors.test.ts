import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compile, DTypeError, einsumNode, extend, f32, FeedError, fromJSON, grad, graph, i32, ShapeError, tensor, toJSON, UnknownOpError, type Builder, type Tensor } from '../index.js';

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

/** The line of this file that calls `lineHere()`, read from the stack without rheo's help. */
function lineHere(): number {
  const frame = new Error().stack!.split('\n')[2]!;
  return Number(/errors\.test\.ts:(\d+):\d+/.exec(frame)![1]);
}

function messageOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('no error was raised');
}

describe('errors name the line of user code that caused them', () => {
  it('inside a graph() callback, the call site is the offending line, not graph() or rheo internals', () => {
    let line = 0;
    const msg = messageOf(() =>
      graph('mlp', (g) => {
        const x = g.input('x', f32('batch', 784));
        const w2 = g.param('w2', f32(256, 10), g.init.he());
        line = lineHere(); return { logits: g.matmul(x, w2 as never) };
      }),
    );
    expect(msg).toContain('matmul: inner dimensions differ (784 vs 256)');
    expect(msg).toMatch(new RegExp(`\\(at test/errors\\.test\\.ts:${line}:\\d+\\)$`));
  });

  it('a composite op (softmaxCrossEntropy), a helper of the user, extend() and grad() all name the user line', () => {
    let line = 0;
    const ce = messageOf(() =>
      graph('g', (g) => {
        const logits = g.input('logits', f32(2, 10));
        const y = g.input('y', f32(2, 9));
        line = lineHere(); return { loss: g.softmaxCrossEntropy(logits, y) };
      }),
    );
    expect(ce).toContain(`errors.test.ts:${line}:`);

    let helperLine = 0;
    const block = (g: Builder, x: Tensor): Tensor => {
      helperLine = lineHere(); return g.add(x, g.input('b', f32(3)));
    };
    const viaHelper = messageOf(() => graph('g', (g) => ({ y: block(g, g.input('x', f32(2, 4))) })));
    expect(viaHelper).toContain(`errors.test.ts:${helperLine}:`);

    const base = graph('g', (g) => ({ y: g.relu(g.input('x', f32(2, 4))) }));
    const viaExtend = messageOf(() =>
      extend(base, (b) => {
        line = lineHere(); b.output('z', b.matmul(b.tensor(1), b.input('w', f32(5, 3)) as never));
      }),
    );
    expect(viaExtend).toContain(`errors.test.ts:${line}:`);

    // grad builds with the site of the node whose VJP it runs: the user line that made the node
    const model = graph('m', (g) => {
      const x = g.input('x', f32(3));
      const w = g.param('w', f32(3));
      line = lineHere(); return { loss: g.sum(g.mul(x, w)) };
    });
    expect(grad(model, 'loss').nodes.filter((n) => n.op !== 'input' && n.op !== 'param').every((n) => n.site?.startsWith(`test/errors.test.ts:${line}:`))).toBe(true);
  });

  it('a graph built by rheo itself for a user (einsum lowering) still names the user line', () => {
    let line = 0;
    const msg = messageOf(() =>
      graph('g', (g) => {
        const a = g.input('a', f32(3, 1));
        const b = g.input('b', f32(3, 4));
        line = lineHere(); return { c: g.einsum('ij,jk->ik', a, b) };
      }),
    );
    expect(msg).toContain(`(at test/errors.test.ts:${line}:`);
  });
});

describe('call sites in a user project', () => {
  it("a script run with tsx names its own line, also from a file called index.ts in a folder called graphs", () => {
    // tsx names anonymous callbacks '<anonymous>' in stack frames, and a user's project may have
    // its own index.ts and graphs/ folder: none of these may hide the user's line
    const dir = mkdtempSync(join(tmpdir(), 'rheo-site-'));
    try {
      mkdirSync(join(dir, 'graphs'));
      const file = join(dir, 'graphs', 'index.ts');
      const rheo = pathToFileURL(join(process.cwd(), 'index.ts')).href;
      const lines = [
        `import { graph, f32, dim } from '${rheo}';`,
        `const B = dim('batch');`,
        `const tryIt = (f: () => unknown) => { try { f(); } catch (e) { console.log((e as Error).message); } };`,
        `tryIt(() => graph('mlp', (g) => {`,
        `  const x = g.input('x', f32(B, 784));`,
        `  const w2 = g.param('w2', f32(256, 10), g.init.he());`,
        `  return { logits: g.matmul(x, w2 as never) };`,
        `}));`,
        `tryIt(() => graph('ce', (g) => {`,
        `  const logits = g.input('logits', f32(B, 10));`,
        `  return { loss: g.softmaxCrossEntropy(logits, g.input('y', f32(B, 9))) };`,
        `}));`,
      ];
      writeFileSync(file, lines.join('\n'));
      const r = spawnSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8', timeout: 60_000 });
      const out = r.stdout.trim().split('\n');
      expect(out, r.stderr).toHaveLength(2);
      expect(out[0]).toMatch(/^matmul: inner dimensions differ \(784 vs 256\).* \(at .*graphs[\\/]index\.ts:7:\d+\)$/);
      expect(out[1]).toMatch(/^softmaxCrossEntropy: .* \(at .*graphs[\\/]index\.ts:11:\d+\)$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('einsum sizes', () => {
  it("a summed index with sizes 1 and 3 is refused at build time, naming the index and both sizes", () => {
    const a = f32(3, 1), b = f32(3, 4);
    for (const build of [
      (g: Builder) => g.einsum('ij,jk->ik', g.input('a', a), g.input('b', b)),
      (g: Builder) => einsumNode(g, 'ij,jk->ik', g.input('a', a), g.input('b', b)),
      (g: Builder) => g.einsum('ij,jk->ik', g.input('a', f32(2, 3)), g.input('b', f32(1, 4))),
    ]) {
      let err: unknown;
      try {
        graph('g', (g) => ({ c: build(g) }));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ShapeError);
      expect((err as Error).message).toMatch(/^einsum: 'ij,jk->ik': index 'j' has sizes (1 and 3|3 and 1); it is summed over/);
      expect((err as Error).message).toContain('errors.test.ts:');
    }
    expect(() => graph('g', (g) => ({ c: g.einsum('ij,jk->ik', g.input('a', f32(3, 2)), g.input('b', f32(3, 4))) }))).toThrowError(/index 'j' has sizes 2 and 3/);
  });

  it('an index of the output still broadcasts from size 1, with the same values and gradients as written out', () => {
    const model = (useEinsum: 'builder' | 'node' | 'plain') =>
      graph('g', (g) => {
        const a = g.param('a', f32(3, 1), g.init.normal(1));
        const b = g.param('b', f32(3, 4), g.init.normal(1));
        const c = g.param('c', f32(4), g.init.normal(1));
        const y =
          useEinsum === 'builder' ? g.einsum('ij,ij,j->ij', a, b, c)
          : useEinsum === 'node' ? einsumNode(g, 'ij,ij,j->ij', a, b, c)
          : g.mul(g.mul(a, b), c);
        return { loss: g.sum(g.mul(y, y)) };
      });
    const run = (m: ReturnType<typeof model>) => {
      const exe = compile(grad(m, 'loss'), { seed: 5, rewrite: false });
      const out = exe.runSync({});
      return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v.data)]));
    };
    const plain = run(model('plain'));
    for (const kind of ['builder', 'node'] as const) {
      const got = run(model(kind));
      for (const [k, v] of Object.entries(plain)) got[k]!.forEach((x, i) => expect(x).toBeCloseTo(v[i]!, 4));
    }
  });
});

describe('feeds that are not tensors', () => {
  it('a null or undefined feed is a FeedError naming the input', () => {
    const exe = compile(graph('g', (b) => ({ y: b.relu(b.input('x', f32(2))) })));
    expect(() => exe.runSync({ x: null as never })).toThrowError(FeedError);
    expect(() => exe.runSync({ x: null as never })).toThrowError(/^input 'x': was fed null, not a tensor or an array of numbers; declared shape \[2\]$/);
    expect(() => exe.runSync({ x: undefined as never })).toThrowError(/^input 'x': was fed undefined/);
    expect(() => exe.runSync({ x: 3 as never })).toThrowError(/^input 'x': was fed a number/);
  });
});
