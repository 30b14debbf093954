// Launches that carry their host copies (a feed only they read, an output read into a host
// array) run on the wasm device in row chunks, staging chunks at the head of their buffers:
// whatever the chunk size, plans run that way give what the reference interpreter gives, on
// random graphs and on elementwise chains with broadcast inputs, params, outputs that other
// kernels read, `into` arrays and an `into` array that is also a feed.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { graph } from '../graphs/builder.js';
import type { Graph } from '../graphs/graph.js';
import { f32, type DType } from '../graphs/types.js';
import { compile, type Outputs } from '../runtime/executor.js';
import type { CpuArray } from '../runtime/cpu/render-js.js';
import { runPlan } from '../runtime/plan-interpreter.js';
import { allocArray, type HostTensor } from '../runtime/tensor.js';
import { Variables } from '../runtime/variables.js';
import { WasmDevice, wasmAvailable, type WasmDeviceOptions, type WasmLaunchRecord } from '../runtime/wasm/device.js';
import { streamLayout } from '../runtime/wasm/stream.js';
import { arbGraph, fcParams } from './arbitraries.js';

/** |a - b| <= rtol * max(|a|, |b|) + atol, element by element (NaN equals NaN). */
function closeArrays(got: ArrayLike<number>, want: ArrayLike<number>, label: string): void {
  expect(got.length, label).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const a = got[i]!, b = want[i]!;
    if (a === b || (Number.isNaN(a) && Number.isNaN(b))) continue;
    if (!(Math.abs(a - b) <= 1e-4 * Math.max(Math.abs(a), Math.abs(b)) + 1e-4)) throw new Error(`${label} element ${i}: wasm ${a}, reference ${b}`);
  }
}

/**
 * The graph's plan for the wasm device, run by the plan interpreter on `device` (so that its
 * chunk size can be chosen): outputs by name, in the plan's order.
 */
function runOn(device: WasmDevice, g: Graph, feeds: Record<string, HostTensor>, variables: Record<string, HostTensor>, into?: Record<string, CpuArray>): Record<string, CpuArray> {
  const exe = compile(g, { backend: 'wasm', threads: 1 });
  exe.setVariables(variables);
  const vs = exe.variables();
  const plan = exe.plan(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.shape])), exe.defaultOutputs, { update: false });
  const host = new Map<number, { dtype: DType; data: CpuArray }>();
  const fed = new Map<number, { dtype: DType; data: CpuArray }>();
  for (const n of exe.graph.nodes) {
    if (n.op === 'param' || n.op === 'state') host.set(n.id, { dtype: n.dtype, data: vs[`${n.op}:${n.name}`]!.data });
    else if (n.op === 'const' && Array.isArray(n.attrs['data'])) {
      const values = n.attrs['data'] as number[];
      const a = allocArray(n.dtype, values.length);
      a.set(values);
      host.set(n.id, { dtype: n.dtype, data: a });
    } else if (n.op === 'input' && feeds[n.name!] && plan.buffers.has(n.id)) fed.set(n.id, { dtype: n.dtype, data: feeds[n.name!]!.data });
  }
  const vars = new Variables(device, host);
  const before = device.memory.liveBytes;
  const r = runPlan(plan, vars, fed, { update: false, sync: true, ...(into ? { into: new Map(Object.entries(into)) } : {}) });
  // the run holds nothing after it (the variables are given back when `vars` is collected)
  expect(device.memory.liveBytes).toBe(before);
  const values = r.values as CpuArray[];
  return Object.fromEntries(Object.keys(plan.outputs).map((name, i) => [name, values[i]!]));
}

/** Values in [-2, 2) from a seed: `values(n)` gives the next n. */
function seededValues(seed: number): (n: number) => Float32Array {
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 4 - 2;
  return (n) => Float32Array.from({ length: n }, rnd);
}

/** Row-chunk sizes in bytes: a row or less, a few rows, and the default */
const CHUNK_BYTES = fc.constantFrom(4, 12, 64, 1 << 16);

/** `body` run with a new device and the records of its streamed launches; the device closed after */
function withStreamed<T>(opts: WasmDeviceOptions, body: (device: WasmDevice, streamed: WasmLaunchRecord[]) => T): T {
  const device = new WasmDevice(opts);
  const streamed: WasmLaunchRecord[] = [];
  device.profiler = (r) => void (r.streamed && streamed.push(r));
  try {
    return body(device, streamed);
  } finally {
    device.close();
  }
}

function reference(g: Graph, feeds: Record<string, HostTensor>, variables: Record<string, HostTensor>): Outputs {
  const exe = compile(g, { backend: 'reference', fuse: false });
  exe.setVariables(variables);
  return exe.runSync(feeds, undefined, { update: false });
}

describe.skipIf(!wasmAvailable() && !process.env['CI'])('wasm device: launches streamed with their host copies', () => {
  it('random graphs run with row chunks of any size equal the reference interpreter', () => {
    const devices = [4, 16, 100, 1 << 16].map((streamChunkBytes) => new WasmDevice({ threads: 1, streamChunkBytes }));
    try {
      fc.assert(
        fc.property(arbGraph({ maxOps: 8, params: true, maxDim: 9, maxElements: 300 }), ({ graph: g, feeds, variables }) => {
          const want = reference(g, feeds, variables);
          for (const device of devices) {
            const got = runOn(device, g, feeds, variables);
            for (const [name, w] of Object.entries(want)) closeArrays(got[name]!, w.data, `output '${name}'`);
          }
        }),
        fcParams(60),
      );
    } finally {
      for (const d of devices) d.close();
    }
  });

  it('elementwise chains of fed rows, broadcast feeds and params stream, and equal the reference, read into new arrays, into given ones, or into a feed they read', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 4, max: 21 }),
        CHUNK_BYTES,
        fc.constantFrom('new', 'into', 'into u'),
        fc.integer({ min: 0, max: 2 ** 30 }),
        (rows, cols, streamChunkBytes, read, seed) => {
          const g = graph('rows', (b) => {
            const x = b.input('x', f32(rows, cols));
            const bias = b.input('bias', f32(cols));
            const p = b.param('p', f32(rows, cols));
            const u = b.input('u', f32(rows, cols));
            const z = b.add(b.mul(b.relu(b.add(b.mul(x, 1.5), bias)), p), 0.25);
            // x and u are each read by one kernel; z is an output that another kernel (a
            // reduction) reads too; y is read by nothing else
            return { y: b.sub(b.mul(u, u), b.relu(p)), z, s: b.sum(z, [1]) };
          });
          const values = seededValues(seed);
          const feeds = {
            x: { dtype: 'f32' as const, shape: [rows, cols], data: values(rows * cols) },
            u: { dtype: 'f32' as const, shape: [rows, cols], data: values(rows * cols) },
            bias: { dtype: 'f32' as const, shape: [cols], data: values(cols) },
          };
          const variables = { 'param:p': { dtype: 'f32' as const, shape: [rows, cols], data: values(rows * cols) } };
          const want = reference(g, feeds, variables);
          withStreamed({ threads: 1, streamChunkBytes }, (device, streamed) => {
            const u = feeds.u.data.slice();
            const into = read === 'new' ? undefined : { y: read === 'into u' ? feeds.u.data : new Float32Array(rows * cols), z: new Float32Array(rows * cols) };
            const got = runOn(device, g, feeds, variables, into);
            for (const name of ['y', 'z', 's']) closeArrays(got[name]!, want[name]!.data, `output '${name}'`);
            if (into) for (const name of ['y', 'z'] as const) expect(got[name]).toBe(into[name]);
            if (read !== 'into u') expect(feeds.u.data).toEqual(u);
            // y's kernel and z's stream (s's, a reduction, does not)
            expect(streamed.length).toBe(2);
          });
        },
      ),
      fcParams(80),
    );
  });

  it("kernels of fed rows only, read only into host arrays, stage their chunks in the calling thread's own memory and equal the reference, on one thread or two", () => {
    fc.assert(
      fc.property(
        // (one row is not split: its index has no row variable)
        fc.integer({ min: 2, max: 9 }),
        fc.integer({ min: 4, max: 21 }),
        CHUNK_BYTES,
        fc.constantFrom(1, 2),
        fc.constantFrom('new', 'into', 'into x'),
        fc.integer({ min: 0, max: 2 ** 30 }),
        (rows, cols, streamChunkBytes, threads, read, seed) => {
          const g = graph('fed', (b) => {
            const x = b.input('x', f32(rows, cols));
            const u = b.input('u', f32(rows, cols));
            const v = b.input('v', f32(rows, cols));
            // x read at two places of one kernel; a boolean output of another
            return { y: b.sub(b.mul(b.relu(b.add(b.mul(x, 1.5), u)), x), b.mul(u, u)), m: b.gt(v, 0.5) };
          });
          const values = seededValues(seed);
          const feeds = {
            x: { dtype: 'f32' as const, shape: [rows, cols], data: values(rows * cols) },
            u: { dtype: 'f32' as const, shape: [rows, cols], data: values(rows * cols) },
            v: { dtype: 'f32' as const, shape: [rows, cols], data: values(rows * cols) },
          };
          const want = reference(g, feeds, {});
          withStreamed({ threads, streamChunkBytes }, (device, streamed) => {
            const x = feeds.x.data.slice();
            const into = read === 'new' ? undefined : { y: read === 'into x' ? feeds.x.data : new Float32Array(rows * cols) };
            const got = runOn(device, g, feeds, {}, into);
            for (const name of ['y', 'm']) closeArrays(got[name]!, want[name]!.data, `output '${name}'`);
            if (into) expect(got['y']).toBe(into.y);
            if (read !== 'into x') expect(feeds.x.data).toEqual(x);
            // both kernels streamed, through the calling thread's own memory unless y's array is
            // x's (a feed that is also an `into` array is written to the device first)
            expect(streamed.length).toBe(2);
            expect(streamed.filter((r) => r.ownMemory).length).toBe(read === 'into x' ? 1 : 2);
          });
        },
      ),
      fcParams(60),
    );
  });

  it('kernels of params only, read into host arrays on two threads, are computed on the workers while this thread copies the chunks out as they finish, and equal the reference', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 40 }),
        fc.integer({ min: 4, max: 21 }),
        CHUNK_BYTES,
        fc.constantFrom('new', 'into'),
        fc.integer({ min: 0, max: 2 ** 30 }),
        (rows, cols, streamChunkBytes, read, seed) => {
          const g = graph('resident', (b) => {
            const p = b.param('p', f32(rows, cols));
            const q = b.param('q', f32(rows, cols));
            const r = b.param('r', f32(cols));
            // a chain over two params and a broadcast row; a boolean output of another kernel
            return { y: b.add(b.mul(b.relu(b.add(b.mul(p, 1.5), q)), r), 0.25), m: b.gt(p, q) };
          });
          const values = seededValues(seed);
          const variables = {
            'param:p': { dtype: 'f32' as const, shape: [rows, cols], data: values(rows * cols) },
            'param:q': { dtype: 'f32' as const, shape: [rows, cols], data: values(rows * cols) },
            'param:r': { dtype: 'f32' as const, shape: [cols], data: values(cols) },
          };
          const want = reference(g, {}, variables);
          withStreamed({ threads: 2, streamChunkBytes, minParallelWork: 0 }, (device, streamed) => {
            const into = read === 'new' ? undefined : { y: new Float32Array(rows * cols), m: new Uint8Array(rows * cols) };
            const got = runOn(device, g, {}, variables, into);
            for (const name of ['y', 'm']) closeArrays(got[name]!, want[name]!.data, `output '${name}'`);
            if (into) expect(got['y']).toBe(into.y);
            // each kernel took that path where it has two chunks at least (a chunk of y's rows
            // of f32, m's of 1-byte booleans)
            const chunks = (rowBytes: number) => rows >= 2 * Math.max(1, Math.floor(streamChunkBytes / rowBytes));
            expect(streamed.filter((r) => r.copiedAsComputed).length).toBe([cols * 4, cols].filter(chunks).length);
            expect(streamed.length).toBe(2);
          });
        },
      ),
      fcParams(60),
    );
  });

  it('a 1M-element chain over a param, read run after run as its param changes, is each run\'s chain (no chunk copied out before it is computed)', async () => {
    const rows = 4096, cols = 256;
    const g = graph('chain', (b) => ({ y: b.add(b.mul(b.relu(b.add(b.mul(b.param('x', f32(rows, cols)), 1.5), -0.25)), 2), 1) }));
    const exe = compile(g, { backend: 'wasm', threads: 2 });
    const device = exe.device as WasmDevice;
    const paths: boolean[] = [];
    device.profiler = (r) => void paths.push(r.copiedAsComputed === true);
    for (let run = 0; run < 4; run++) {
      const x = seededValues(run + 1)(rows * cols);
      exe.setVariables({ 'param:x': { dtype: 'f32', shape: [rows, cols], data: x } });
      const y = (await exe.run({}))['y']!.data;
      for (let i = 0; i < x.length; i++) {
        const want = Math.fround(Math.fround(Math.max(0, Math.fround(Math.fround(x[i]! * 1.5) - 0.25)) * 2) + 1);
        if (Math.abs(y[i]! - want) > 1e-6 * Math.abs(want) + 1e-6) throw new Error(`run ${run} element ${i}: ${y[i]} against ${want}`);
      }
    }
    expect(paths).toEqual([true, true, true, true]);
  });

  it('an input is staged only where a chunk of rows reads just its own rows of it', () => {
    const n = 8;
    const g = graph('layouts', (b) => {
      const x = b.input('x', f32(n + 1, n));
      const row = b.input('row', f32(n));
      const w = b.input('w', f32(n, n));
      // x's rows r and r + 1 for output row r; row broadcast over rows; w's rows as they are
      return { y: b.add(b.add(b.slice(x, [1, 0], [n + 1, n]), b.slice(x, [0, 0], [n, n])), b.mul(row, w)) };
    });
    const [step] = compile(g, { backend: 'wasm' }).plan({ x: [n + 1, n], row: [n], w: [n, n] }).steps;
    // (the graph is rewritten the same way every time it is compiled)
    if (step?.kind !== 'launch' || step.kernel.kind !== 'map') throw new Error('one map kernel');
    const spans = streamLayout(step.kernel, false)?.spans;
    const exe = compile(g, { backend: 'wasm' });
    const at = (name: string) => spans?.[step.inputs.indexOf(exe.graph.nodes.find((m) => m.op === 'input' && m.name === name)!.id)];
    expect([at('x'), at('row'), at('w')]).toEqual([null, null, n]);
    // f64 devices run scalar code, which is not streamed
    expect(streamLayout(step.kernel, true)).toBeNull();
  });
});
