// Saved models: a trained model saved with saveModel and loaded with loadModel predicts what the
// trained executable predicts, on the CPU and on WebGPU; a training checkpoint's params go into a
// forward-only executable; a broken model directory is a ModelError naming the file; the params
// file reads the same with independent safetensors readers; summary counts an MLP's params.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { safetensors as jaxSafetensors } from '@jax-js/loaders';
import {
  adam, compile, compileAsync, dim, f32, formatSummary, grad, graph, paramsOf, planGraph, summary, tensor,
  restoreCheckpoint, CheckpointError, ModelError, type Graph, type HostTensor,
} from '../index.js';
import { loadModel, readCheckpoint, saveModel, writeCheckpoint, MODEL_FILES } from '../node.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { acquireWebGpu, lastAcquireFailure } from '../runtime/webgpu/device.js';

const gpu = await acquireWebGpu();
gpu?.destroy();
if (!gpu) console.warn(`WebGPU round-trip skipped: no adapter (${lastAcquireFailure})`);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rheo-model-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mlp = mlpGraph([6, 8, 3]);
const x = tensor(Float32Array.from({ length: 4 * 6 }, (_, i) => Math.sin(i * 1.3)), [4, 6]);
const y = tensor(Float32Array.from({ length: 4 * 3 }, (_, i) => (i % 3 === Math.floor(i / 3) % 3 ? 1 : 0)), [4, 3]);

/** A training executable of `mlp` after a few Adam steps. */
function trained() {
  const step = compile(grad(mlp, 'loss'), { optimizer: adam(0.05), seed: 7 });
  for (let i = 0; i < 5; i++) step.runSync({ x, y });
  return step;
}

const values = (t: HostTensor) => Array.from(t.data);

function expectClose(a: HostTensor, b: HostTensor, tol: number) {
  expect(a.shape).toEqual(b.shape);
  a.data.forEach((v, i) => expect(Math.abs(v - b.data[i]!), `element ${i}: ${v} vs ${b.data[i]}`).toBeLessThanOrEqual(tol * (1 + Math.abs(v))));
}

function flipped(bytes: Uint8Array, at: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[at]! ^= 0xff;
  return copy;
}

function thrown(f: () => unknown): ModelError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelError);
    return e as ModelError;
  }
  throw new Error('expected a ModelError');
}

describe('saveModel and loadModel', () => {
  it('a trained model round-trips: the forward graph, its params only, and the trained predictions on the CPU', async () => {
    const step = trained();
    const vars = step.variables();
    expect(Object.keys(vars).some((k) => k.startsWith('state:'))).toBe(true); // optimizer state exists ...
    await saveModel(dir, mlp, step);
    const { graph: g, params } = loadModel(dir);
    expect(Object.keys(params).sort()).toEqual(['param:b0', 'param:b1', 'param:w0', 'param:w1']); // ... and is not saved
    for (const k of Object.keys(params)) expect(values(params[k]!)).toEqual(values(vars[k]!));
    expect(g.updates).toEqual([]);
    expect(Object.keys(g.outputs).sort()).toEqual(['logits', 'loss']);

    const infer = compile(g);
    infer.setVariables(params);
    const { logits } = infer.runSync({ x }, ['logits']);
    const reference = compile(mlp);
    reference.setVariables(paramsOf(mlp, vars));
    expect(values(logits)).toEqual(values(reference.runSync({ x }, ['logits']).logits));
    expectClose(logits, step.runSync({ x, y }, ['logits'], { update: false }).logits, 1e-6);
  });

  it.skipIf(!gpu && !process.env['CI'])('the loaded model runs on WebGPU and predicts what the trained model predicts', async () => {
    const step = trained();
    await saveModel(dir, mlp, step);
    const { graph: g, params } = loadModel(dir);
    const infer = await compileAsync(g, { backend: 'webgpu' });
    expect(infer.backendInfo.backend).toBe('webgpu');
    infer.setVariables(params);
    const { logits } = await infer.run({ x }, ['logits']);
    expectClose(logits, step.runSync({ x, y }, ['logits'], { update: false }).logits, 1e-4);
  });

  it.skipIf(!gpu && !process.env['CI'])('saves from a WebGPU executable as from a CPU one', async () => {
    const step = await compileAsync(grad(mlp, 'loss'), { backend: 'webgpu', optimizer: adam(0.05), seed: 7 });
    for (let i = 0; i < 3; i++) await step.run({ x, y });
    await saveModel(dir, mlp, step);
    const saved = await step.readVariables();
    const { params } = loadModel(dir);
    for (const [k, t] of Object.entries(params)) expect(values(t)).toEqual(values(saved[k]!));
  });

  it('a training checkpoint fills a forward-only executable through paramsOf, where restoreCheckpoint refuses its optimizer state', async () => {
    const step = trained();
    const path = writeCheckpoint(join(dir, 'ckpt'), { step: 5, position: { index: 5 }, rng: { seed: 7, counter: 5 }, variables: step.variables() });
    const ckpt = readCheckpoint(path);
    const infer = compile(mlp);
    expect(() => restoreCheckpoint(infer, ckpt)).toThrow(CheckpointError);
    infer.setVariables(paramsOf(mlp, ckpt));
    expectClose(infer.runSync({ x }, ['logits']).logits, step.runSync({ x, y }, ['logits'], { update: false }).logits, 1e-6);

    await saveModel(join(dir, 'model'), mlp, ckpt); // a model straight from a checkpoint
    expect(values(loadModel(join(dir, 'model')).params['param:w1']!)).toEqual(values(step.variables()['param:w1']!));
  });

  it("weights that do not fit the graph, or a training graph, are a ModelError naming the source and the param", async () => {
    const step = trained();
    const other = mlpGraph([6, 5, 3]);
    const e = thrown(() => paramsOf(other, step.variables()));
    expect(e.file).toBe('<variables>');
    expect(e.message).toMatch(/'param:w0' has shape \[6, 8\], graph 'mlp' declares \[6, 5\]/);
    const path = writeCheckpoint(dir, { step: 1, position: { index: 1 }, rng: { seed: 0, counter: 1 }, variables: { 'param:w0': step.variables()['param:w0']! } });
    const e2 = thrown(() => paramsOf(mlp, readCheckpoint(path)));
    expect(e2.file).toBe(path);
    expect(e2.message).toMatch(/has no 'param:b0'/);
    await expect(saveModel(join(dir, 'model'), step.graph, step)).rejects.toThrow(/a training graph\): save the model graph/);
  });

  it('a missing or corrupt model directory is a ModelError naming the file', async () => {
    const graphFile = join(dir, MODEL_FILES.graph);
    const paramsFile = join(dir, MODEL_FILES.params);
    expect(thrown(() => loadModel(join(dir, 'absent'))).file).toBe(join(dir, 'absent', MODEL_FILES.graph));

    await saveModel(dir, mlp, trained());
    const good = { graph: readFileSync(graphFile), params: readFileSync(paramsFile) };
    const cases: [string, () => void, string, RegExp][] = [
      ['params file missing', () => unlinkSync(paramsFile), paramsFile, /missing/],
      ['params file truncated', () => writeFileSync(paramsFile, good.params.subarray(0, good.params.length - 9)), paramsFile, /truncated/],
      ['a flipped weight byte', () => writeFileSync(paramsFile, flipped(good.params, good.params.length - 3)), paramsFile, /checksum/],
      ['graph file not JSON', () => writeFileSync(graphFile, '{"format": "rheo.graph/1", "nodes": ['), graphFile, /does not parse/],
      ['graph file empty', () => writeFileSync(graphFile, ''), graphFile, /does not parse/],
      ['graph file of another model', () => writeFileSync(graphFile, readFileSync(join(dir, 'other', MODEL_FILES.graph))), paramsFile, /another graph\.json/],
    ];
    await saveModel(join(dir, 'other'), mlpGraph([6, 8, 3], 'other'), trained());
    for (const [what, breakIt, file, reason] of cases) {
      writeFileSync(graphFile, good.graph);
      writeFileSync(paramsFile, good.params);
      breakIt();
      const e = thrown(() => loadModel(dir));
      expect(e.file, what).toBe(file);
      expect(e.message, what).toMatch(reason);
      expect(e.message, what).toContain(file);
    }
  });

  it('param names that are also object keys (__proto__, constructor, toString, hasOwnProperty) round-trip', async () => {
    const g = graph('keys', (b) => {
      const v = b.input('x', f32(dim('batch'), 2));
      const a = b.param('constructor', f32(2, 2), b.init.he());
      const c = b.param('toString', f32(2), b.init.zeros());
      const d = b.param('hasOwnProperty', f32(2), b.init.zeros());
      const p = b.param('__proto__', f32(2), b.init.zeros());
      return { y: b.add(b.add(b.add(b.matmul(v, a), c), d), p) };
    });
    const exe = compile(g, { seed: 1 });
    await saveModel(dir, g, exe);
    const { params } = loadModel(dir);
    expect(Object.keys(params).sort()).toEqual(['param:__proto__', 'param:constructor', 'param:hasOwnProperty', 'param:toString']);
    for (const [k, t] of Object.entries(exe.variables())) expect(values(params[k]!)).toEqual(values(t));
  });
});

describe('interop: the params file is plain safetensors', () => {
  async function savedParams(): Promise<{ bytes: Uint8Array<ArrayBuffer>; expected: Record<string, HostTensor> }> {
    const step = trained();
    await saveModel(dir, mlp, step);
    const vars = step.variables();
    const expected: Record<string, HostTensor> = {};
    for (const name of ['w0', 'b0', 'w1', 'b1']) expected[name] = vars[`param:${name}`]!;
    return { bytes: new Uint8Array(readFileSync(join(dir, MODEL_FILES.params))), expected };
  }

  it("jax-js's safetensors reader (@jax-js/loaders) reads rheo's params: names, dtypes, shapes and values", async () => {
    const { bytes, expected } = await savedParams();
    const file = jaxSafetensors.parse(bytes);
    expect(Object.keys(file.tensors).sort()).toEqual(Object.keys(expected).sort());
    for (const [name, t] of Object.entries(expected)) {
      const got = file.tensors[name]!;
      expect(got.dtype).toBe('F32');
      expect(got.shape).toEqual([...t.shape]);
      expect(Array.from(got.data as Float32Array)).toEqual(values(t));
    }
    expect(file.metadata?.['format']).toBe('rheo.model/1');
  });

  it('a reader written from the safetensors spec reads them too', async () => {
    const { bytes, expected } = await savedParams();
    // The format: u64 little-endian N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}},
    // then the data, offsets relative to its start, little-endian.
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const data = bytes.slice(8 + n);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    expect(names.sort()).toEqual(Object.keys(expected).sort());
    for (const name of names) {
      const { dtype, shape, data_offsets: [b, e] } = header[name]!;
      expect(dtype).toBe('F32');
      expect(shape).toEqual([...expected[name]!.shape]);
      const view = new DataView(data.buffer, b, e - b);
      expect(Array.from({ length: (e - b) / 4 }, (_, i) => view.getFloat32(i * 4, true))).toEqual(values(expected[name]!));
    }
  });
});

describe('summary', () => {
  const B = dim('batch');
  const net: Graph = graph('mlp', (g) => {
    const input = g.input('x', f32(B, 784));
    const labels = g.input('y', f32(B, 10));
    const h = g.relu(g.add(g.matmul(input, g.param('w1', f32(784, 256), g.init.he())), g.param('b1', f32(256), g.init.zeros())));
    const logits = g.add(g.matmul(h, g.param('w2', f32(256, 10), g.init.he())), g.param('b2', f32(10), g.init.zeros()));
    return { logits, loss: g.softmaxCrossEntropy(logits, labels) };
  });

  it('counts the params of an MLP 784-256-10 as 784·256 + 256 + 256·10 + 10 = 203,530', () => {
    const s = summary(net);
    expect(s.params.map((p) => [p.name, p.shape, p.count])).toEqual([
      ['w1', [784, 256], 200_704], ['b1', [256], 256], ['w2', [256, 10], 2_560], ['b2', [10], 10],
    ]);
    expect(s.totalParams).toBe(203_530);
    expect(s.ops['matmul']).toBe(2);
    expect(s.ops['relu']).toBe(1);
    expect(s.ops['param']).toBeUndefined();
    expect(s.step).toBeUndefined();
    expect(formatSummary(s)).toMatch(/^total params\s+203,530$/m);
  });

  it("states one run's FLOPs (the matmuls' 2·m·n·k and a little more) and the plan's bytes", () => {
    const s = summary(net, { x: [32, 784] }, { outputs: ['logits'] });
    const matmulFlops = 2 * 32 * (784 * 256 + 256 * 10);
    expect(s.step!.flops).toBeGreaterThanOrEqual(matmulFlops);
    expect(s.step!.flops).toBeLessThan(matmulFlops * 1.01);
    expect(s.step!.paramBytes).toBe(203_530 * 4);
    expect(s.step!.inputBytes).toBe(32 * 784 * 4);
    expect(s.step!.inputShapes).toEqual({ x: [32, 784] });
    const plan = planGraph(net, net.nodes.map((n) => n.shape.map((d) => (typeof d === 'number' ? d : 32))), { outputs: ['logits'], withUpdates: false });
    expect(s.step!.peakBytes).toBe(plan.peakBytes);
    expect(s.step!.kernels).toBe(plan.kernelCount);
    expect(formatSummary(s)).toMatch(/one run of logits with x \[32, 784\]:\n\s+FLOPs\s+[\d,]+/);

    const training = summary(grad(net, 'loss'), { x: [32, 784], y: [32, 10] });
    expect(training.totalParams).toBe(203_530);
    expect(training.step!.flops).toBeGreaterThan(2 * matmulFlops); // the backward pass costs more than the forward
  });
});
