// The WebAssembly device computes what the reference interpreter computes: on random graphs and
// the gradient graphs of random losses, fused and unfused, on one thread and on two; kernel by
// kernel with every launch split across threads however small; in double precision; and its
// allocator counts bytes the way the plan does.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { graph } from '../graphs/builder.js';
import { grad } from '../graphs/autodiff.js';
import type { Graph } from '../graphs/graph.js';
import { f32 } from '../graphs/types.js';
import { compile, type Outputs } from '../runtime/executor.js';
import type { HostTensor } from '../runtime/tensor.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';
import { interpretKernel } from '../runtime/interpreter.js';
import { allocArray } from '../runtime/tensor.js';
import { WasmDevice, wasmAvailable } from '../runtime/wasm/device.js';
import { arbGraph, fcParams, withRandomLoss } from './arbitraries.js';

/** |a - b| <= rtol * max(|a|, |b|) + atol, element by element (NaN equals NaN). */
function closeArrays(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, label: string): void {
  expect(got.length, label).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const a = got[i]!, b = want[i]!;
    if (a === b || (Number.isNaN(a) && Number.isNaN(b))) continue;
    if (!(Math.abs(a - b) <= rtol * Math.max(Math.abs(a), Math.abs(b)) + atol)) throw new Error(`${label} element ${i}: wasm ${a}, reference ${b}`);
  }
}

function expectClose(got: Outputs, want: Outputs, rtol: number, atol: number): void {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const [name, w] of Object.entries(want)) {
    expect(got[name]!.shape, name).toEqual(w.shape);
    closeArrays(got[name]!.data, w.data, rtol, atol, `output '${name}'`);
  }
}

function run(g: Graph, opts: Parameters<typeof compile>[1], feeds: Record<string, HostTensor>, variables: Record<string, HostTensor>): Outputs {
  const exe = compile(g, opts);
  exe.setVariables(variables);
  return exe.runSync(feeds);
}

const reference = { backend: 'reference' as const, fuse: false };

describe.skipIf(!wasmAvailable() && !process.env['CI'])('wasm device', () => {
  for (const threads of [1, 2]) {
    for (const fuse of [true, false]) {
      const how = `${threads} thread${threads > 1 ? 's' : ''}, ${fuse ? 'fused' : 'unfused'}`;
      it(`equals the reference interpreter on random graphs (${how})`, () => {
        fc.assert(
          fc.property(arbGraph({ maxOps: 10 }), ({ graph: g, feeds, variables }) => {
            expectClose(run(g, { backend: 'wasm', threads, fuse }, feeds, variables), run(g, reference, feeds, variables), 1e-4, 1e-4);
          }),
          fcParams(threads === 1 && fuse ? 60 : 25),
        );
      });

      it(`equals the reference on gradient graphs of random losses (${how})`, () => {
        fc.assert(
          fc.property(arbGraph({ maxOps: 8, params: true }), ({ graph: g, feeds, variables }) => {
            const gg = grad(withRandomLoss(g), 'loss');
            expectClose(run(gg, { backend: 'wasm', threads, fuse }, feeds, variables), run(gg, reference, feeds, variables), 1e-4, 1e-4);
          }),
          fcParams(threads === 1 && fuse ? 60 : 25),
        );
      });
    }
  }

  it('splits every launch across threads, however small, and each kernel still equals the interpreter', () => {
    const device = new WasmDevice({ threads: 3, minParallelWork: 0 });
    try {
      fc.assert(
        fc.property(arbGraph({ maxOps: 8, params: true }), fc.integer({ min: 1, max: 2 ** 30 }), ({ graph: g, feeds }, seed) => {
          const gg = grad(withRandomLoss(g), 'loss');
          const shapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.shape]));
          let s = seed;
          const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
          for (const step of compile(gg).plan(shapes).steps) {
            if (step.kind !== 'launch') continue;
            const k = step.kernel;
            const ins: CpuArray[] = k.inputs.map((p) => {
              const a = allocArray(p.dtype, p.size);
              for (let i = 0; i < a.length; i++) a[i] = p.dtype === 'bool' ? (rnd() < 0.5 ? 1 : 0) : p.dtype === 'i32' ? Math.floor(rnd() * 8) - 2 : Math.round((rnd() * 4 - 2) * 1024) / 1024;
              return a;
            });
            const n = k.out.shape.reduce((p, d) => p * d, 1);
            const want = allocArray(k.out.dtype, n);
            interpretKernel(k, ins, want);
            const bufs = ins.map((a, j) => device.upload(k.inputs[j]!.dtype, a));
            const out = device.alloc(k.out.dtype, n);
            device.launch(k, bufs, out);
            const [got] = device.readSync([out]);
            for (const b of [...bufs, out]) device.free(b);
            closeArrays(got!, want, 1e-4, 1e-3, `kernel ${k.name} (${k.kind}, out [${k.out.shape.join(', ')}])`);
          }
        }),
        fcParams(40),
      );
      expect(device.memory.liveBytes).toBe(0);
    } finally {
      device.close();
    }
  });

  it('elementwise chains over rows of any length (sixteen lanes, four, the scalar tail, split anywhere) equal the interpreter, relu of -0 and NaN included', () => {
    const devices = [new WasmDevice({ threads: 1 }), new WasmDevice({ threads: 2, minParallelWork: 0 })];
    const special = [0, -0, NaN, Infinity, -Infinity, 1e-3, -1e-3];
    try {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 3 }),
          fc.integer({ min: 1, max: 70 }),
          fc.array(fc.oneof(fc.constantFrom(...special), fc.integer({ min: -4096, max: 4096 }).map((v) => v / 1024)), { minLength: 1, maxLength: 64 }),
          fc.constantFrom(1.5, -0.5),
          (rows, cols, values, a) => {
            const g = graph('chain', (b) => {
              const x = b.input('x', f32(rows, cols));
              const y = b.input('y', f32(rows, cols));
              return { out: b.add(b.mul(b.relu(b.add(b.mul(x, a), y)), 0.75), b.relu(b.neg(y))) };
            });
            const n = rows * cols;
            const x = Float32Array.from({ length: n }, (_, i) => values[i % values.length]!);
            const y = Float32Array.from({ length: n }, (_, i) => values[(i * 7 + 3) % values.length]!);
            const [step] = compile(g).plan({ x: [rows, cols], y: [rows, cols] }).steps.filter((s) => s.kind === 'launch');
            if (step?.kind !== 'launch') throw new Error('the chain is one launch');
            const k = step.kernel;
            const ins = k.inputs.map((p) => (p.size === n ? [x, y][k.inputs.indexOf(p)]! : allocArray(p.dtype, p.size)));
            const want = allocArray(k.out.dtype, n);
            interpretKernel(k, ins, want);
            for (const device of devices) {
              const bufs = ins.map((v, j) => device.upload(k.inputs[j]!.dtype, v));
              const out = device.alloc(k.out.dtype, n);
              device.launch(k, bufs, out);
              const [got] = device.readSync([out]);
              for (const b of [...bufs, out]) device.free(b);
              closeArrays(got!, want, 1e-6, 0, `${device.description}, [${rows}, ${cols}]`);
              for (let i = 0; i < n; i++) if (want[i] === 0) expect(Object.is(got![i], want[i]), `sign of zero at ${i}`).toBe(true);
            }
          },
        ),
        fcParams(60),
      );
    } finally {
      for (const d of devices) d.close();
    }
  });

  it('runs of a kernel split across threads, whose output array is made while it runs, equal the reference, run after run', async () => {
    const n = 3 << 15;
    const g = graph('chain', (b) => {
      const x = b.input('x', f32(n / 64, 64));
      const p = b.param('p', f32(n / 64, 64));
      return { y: b.add(b.mul(b.relu(b.add(b.mul(x, 1.5), p)), b.reshape(b.transpose(p, [1, 0]), [n / 64, 64])), 0.125), z: b.sum(x, [1]) };
    });
    const p = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.01));
    const wasm = compile(g, { backend: 'wasm', threads: 2 });
    const reference = compile(g, { backend: 'reference' });
    for (const e of [wasm, reference]) e.setVariables({ 'param:p': p });
    for (let r = 0; r < 3; r++) {
      const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + r));
      const want = reference.runSync({ x });
      for (const got of [wasm.runSync({ x }), await wasm.run({ x })]) {
        closeArrays(got['y']!.data, want['y']!.data, 1e-5, 1e-6, `y, run ${r}`);
        closeArrays(got['z']!.data, want['z']!.data, 1e-5, 1e-5, `z, run ${r}`);
      }
    }
  });

  it("stores floats in double precision with precision 'f64'", () => {
    const g = graph('f64', (b) => {
      const x = b.input('x', f32(5, 7));
      const w = b.input('w', f32(7, 3));
      return { y: b.sum(b.tanh(b.matmul(x, w)), [1]), z: b.add(x, 1e-12) };
    });
    const x = Float64Array.from({ length: 35 }, (_, i) => Math.sin(i) / 3);
    const w = Float64Array.from({ length: 21 }, (_, i) => Math.cos(i) / 3);
    const got = compile(g, { backend: 'wasm', precision: 'f64' }).runSync({ x, w });
    const want = compile(g, { backend: 'reference', precision: 'f64' }).runSync({ x, w });
    expect(got['z']!.data).toBeInstanceOf(Float64Array);
    closeArrays(got['y']!.data, want['y']!.data, 1e-12, 1e-14, 'y');
    closeArrays(got['z']!.data, want['z']!.data, 0, 0, 'z');
  });

  it('matmuls of awkward shapes (edges of every tile and block, strided and batched operands) equal the interpreter', () => {
    const device = new WasmDevice({ threads: 2, minParallelWork: 0 });
    try {
      for (const [m, k, n, batch] of [[1, 1, 1, 1], [7, 300, 13, 1], [97, 513, 9, 1], [13, 5, 521, 2], [64, 64, 64, 3]] as const) {
        const g = graph('mm', (b) => {
          const x = b.input('x', f32(batch, k, m));
          const w = b.input('w', f32(batch, k, n));
          return { y: b.relu(b.matmul(b.transpose(x, [0, 2, 1]), w)) };
        });
        const x = Float32Array.from({ length: batch * m * k }, (_, i) => Math.sin(i * 0.37));
        const w = Float32Array.from({ length: batch * k * n }, (_, i) => Math.cos(i * 0.11));
        const got = compile(g, { backend: 'wasm', threads: 2 }).runSync({ x, w });
        const want = compile(g, { backend: 'reference' }).runSync({ x, w });
        closeArrays(got['y']!.data, want['y']!.data, 1e-4, 1e-4, `[${batch}] ${m}×${k}·${k}×${n}`);
      }
    } finally {
      device.close();
    }
  });

  // sizes on both sides of the GEMM's register tile (4 × 8) and cache blocks (kc 256, mc 96, nc 512)
  const gemmDim = fc.oneof(fc.integer({ min: 1, max: 20 }), fc.constantFrom(95, 96, 97, 255, 256, 257), fc.integer({ min: 509, max: 515 }));
  for (const relaxedSimd of [true, false]) {
    it(`every matmul kernel equals the interpreter, with${relaxedSimd ? ' relaxed-SIMD multiply-adds where the engine has them' : ' separate multiplies and adds'} (odd sizes, transposes, batches, 1 and 2 threads)`, () => {
      const devices = [1, 2].map((threads) => new WasmDevice({ threads, minParallelWork: 0, relaxedSimd }));
      try {
        fc.assert(
          fc.property(
            fc.record({ m: gemmDim, k: gemmDim, n: gemmDim, batch: fc.integer({ min: 1, max: 3 }), ta: fc.boolean(), tb: fc.boolean(), broadcastB: fc.boolean(), relu: fc.boolean() })
              .filter(({ m, k, n, batch }) => m * k * n * batch <= 3_000_000),
            fc.integer({ min: 1, max: 2 ** 30 }),
            ({ m, k, n, batch, ta, tb, broadcastB, relu }, seed) => {
              const g = graph('mm', (b) => {
                const x = b.input('x', ta ? f32(batch, k, m) : f32(batch, m, k));
                const wb = broadcastB ? 1 : batch;
                const w = b.input('w', tb ? f32(wb, n, k) : f32(wb, k, n));
                const y = b.matmul(ta ? b.transpose(x, [0, 2, 1]) : x, tb ? b.transpose(w, [0, 2, 1]) : w);
                return { y: relu ? b.relu(y) : y };
              });
              let s = seed;
              const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
              const steps = compile(g).plan({ x: ta ? [batch, k, m] : [batch, m, k], w: [broadcastB ? 1 : batch, ...(tb ? [n, k] : [k, n])] }).steps;
              for (const step of steps) {
                if (step.kind !== 'launch' || step.kernel.kind !== 'matmul') continue;
                const kern = step.kernel;
                const ins = kern.inputs.map((p) => Float32Array.from({ length: p.size }, rnd));
                const want = new Float32Array(kern.out.shape.reduce((p, d) => p * d, 1));
                interpretKernel(kern, ins, want);
                for (const device of devices) {
                  const bufs = ins.map((a) => device.upload('f32', a));
                  const out = device.alloc('f32', want.length);
                  device.launch(kern, bufs, out);
                  const [got] = device.readSync([out]);
                  for (const bf of [...bufs, out]) device.free(bf);
                  closeArrays(got!, want, 1e-4, 1e-4 * Math.sqrt(kern.k), `${device.description}: [${batch}] ${m}×${k}·${k}×${n}${ta ? ' (A transposed)' : ''}${tb ? ' (B transposed)' : ''}`);
                }
              }
            },
          ),
          fcParams(30),
        );
      } finally {
        for (const d of devices) d.close();
      }
    }, 600_000);
  }

  it('a concatenation of 24 inputs reads each only where it is selected', () => {
    // every branch of the fused select chain but one indexes outside its buffer
    const g = graph('wide', (b) => {
      const xs = Array.from({ length: 24 }, (_, i) => b.input(`x${i}`, f32(3, 3)));
      return { out: b.sum(b.reshape(b.concat(xs, 0), [24, 3, 3]), [0]) };
    });
    const feeds = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`x${i}`, Float32Array.from({ length: 9 }, (_, j) => i + j / 8)]));
    const got = compile(g, { backend: 'wasm' }).runSync(feeds)['out']!.data;
    closeArrays(got, compile(g, reference).runSync(feeds)['out']!.data, 1e-6, 0, 'out');
  });

  it('counts live and peak bytes as the plan does, and reuses freed memory', () => {
    const device = new WasmDevice({ threads: 1 });
    const a = device.alloc('f32', 1000), b = device.alloc('bool', 3);
    expect(device.memory.liveBytes).toBe(4003);
    device.free(a);
    const c = device.alloc('f32', 1000);
    expect(c.ptr).toBe(a.ptr);
    expect(device.memory.peakBytes).toBe(4003);
    device.free(b);
    device.free(c);
    expect(device.memory.liveBytes).toBe(0);
  });
});
