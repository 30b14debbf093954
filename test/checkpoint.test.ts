import { describe, expect, it, beforeEach, afterEach } from 'vitest';
import fc from 'fast-check';
import { f16roundArray } from '../ops/f16.js';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adam, compile, grad, tensor, RheoError, type HostTensor } from '../index.js';
import { mlpGraph } from '../examples/mlp-model.js';
import {
  CheckpointError, decodeSafetensors, encodeSafetensors, listCheckpoints, loadLatest, readCheckpoint,
  restoreCheckpoint, writeCheckpoint, type CheckpointState,
} from '../runtime/train/index.js';

const seed = process.env['FC_SEED'] ? { seed: Number(process.env['FC_SEED']) } : {};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rheo-ckpt-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const bits = (t: HostTensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');

const arbTensor = fc
  .tuple(fc.constantFrom('F32', 'F16', 'F64', 'I32', 'BOOL'), fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }), fc.integer())
  .map(([kind, shape, s]): HostTensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const vals = Array.from({ length: n }, (_, i) => Math.sin(s + i * 7.1) * 1e3);
    if (kind === 'F32') return { dtype: 'f32', shape, data: Float32Array.from(vals) };
    // binary16 values, subnormals, infinities and the largest finite one among them
    if (kind === 'F16') return { dtype: 'f16', shape, data: f16roundArray(Float32Array.from(vals, (v, i) => (i % 5 === 3 ? v * 1e-9 : i % 7 === 6 ? v * 100 : i % 11 === 10 ? 65504 : v))) };
    if (kind === 'F64') return { dtype: 'f32', shape, data: Float64Array.from(vals) };
    if (kind === 'I32') return { dtype: 'i32', shape, data: Int32Array.from(vals, Math.round) };
    return { dtype: 'bool', shape, data: Uint8Array.from(vals, (v) => (v > 0 ? 1 : 0)) };
  });

function model() {
  return compile(grad(mlpGraph([5, 7, 3]), 'loss'), { optimizer: adam(0.01), seed: 3 });
}

function stateAt(step: number): CheckpointState {
  const exe = model();
  const x = tensor(Float32Array.from({ length: 10 }, (_, i) => Math.cos(i * step)), [2, 5]);
  const y = tensor(Float32Array.of(1, 0, 0, 0, 0, 1), [2, 3]);
  for (let i = 0; i < step; i++) exe.runSync({ x, y });
  return { step, position: { index: step * 2, token: `${1000 + step}-0` }, rng: { seed: 9, counter: step }, variables: exe.variables() };
}

describe('safetensors', () => {
  it('round-trips any tensors and metadata bit for bit, with 8-byte aligned data', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1 }).filter((k) => k !== '__metadata__'), arbTensor, { maxKeys: 5 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 4 }), (tensors, meta) => {
        const bytes = encodeSafetensors(tensors, meta);
        const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        expect((8 + headerLen) % 8).toBe(0);
        const back = decodeSafetensors(bytes);
        expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(tensors).sort());
        for (const [k, t] of Object.entries(tensors)) {
          expect(back.tensors[k]!.shape).toEqual(t.shape);
          expect(back.tensors[k]!.dtype).toBe(t.dtype);
          expect(back.tensors[k]!.data.constructor).toBe(t.data.constructor);
          expect(bits(back.tensors[k]!)).toBe(bits(t));
        }
        for (const [k, v] of Object.entries(meta)) if (k !== 'data_sha256' && k !== 'header_sha256') expect(back.metadata[k]).toBe(v);
      }),
      { numRuns: 100, ...seed },
    );
  });

  it('writes the layout other readers expect: u64 LE header length, JSON header, raw LE data', () => {
    const bytes = encodeSafetensors({ b: tensor(Int32Array.of(1, -2), [2]), a: tensor(Float32Array.of(1.5), [1, 1]) }, { step: '4' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8'));
    expect(header.a).toEqual({ dtype: 'F32', shape: [1, 1], data_offsets: [0, 4] });
    expect(header.b).toEqual({ dtype: 'I32', shape: [2], data_offsets: [4, 12] });
    expect(header.__metadata__.step).toBe('4');
    expect(header.__metadata__.data_sha256).toMatch(/^[0-9a-f]{64}$/);
    const data = Buffer.from(bytes.subarray(8 + n));
    expect(data.readFloatLE(0)).toBe(1.5);
    expect(data.readInt32LE(8)).toBe(-2);
  });

  it('stores f16 tensors as F16, two bytes an element, and decodes them exactly', () => {
    const vals = f16roundArray(Float32Array.of(0.1, -65504, 2 ** -24, Infinity, -0));
    const bytes = encodeSafetensors({ h: tensor(vals, [5], 'f16') });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8'));
    expect(header.h).toEqual({ dtype: 'F16', shape: [5], data_offsets: [0, 10] });
    expect(Buffer.from(bytes.subarray(8 + n)).readUInt16LE(0)).toBe(0x2e66); // 0.0999755859375
    const back = decodeSafetensors(bytes).tensors['h']!;
    expect(back.dtype).toBe('f16');
    expect(back.data).toEqual(vals);
  });

  it('refuses bytes cut at any length', () => {
    const bytes = encodeSafetensors(stateAt(1).variables, { step: '1' });
    for (let cut = 0; cut < bytes.length; cut++) {
      expect(() => decodeSafetensors(bytes.subarray(0, cut)), `cut at ${cut}`).toThrow(CheckpointError);
    }
  });

  it('refuses any single flipped byte, in the header or the data', () => {
    const bytes = encodeSafetensors(stateAt(1).variables, { step: '1' });
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = Uint8Array.from(bytes);
        bad[i]! ^= mask;
        expect(() => decodeSafetensors(bad), `byte ${i} ^ ${mask}`).toThrow(CheckpointError);
      }
    }
  });
});

describe('checkpoint files', () => {
  it('round-trip step, stream position, RNG state and every variable exactly', () => {
    const s = stateAt(5);
    const path = writeCheckpoint(dir, { ...s, metadata: { run: 'a' } });
    const back = readCheckpoint(path);
    expect(back.step).toBe(5);
    expect(back.position).toEqual({ index: 10, token: '1005-0' });
    expect(back.rng).toEqual({ seed: 9, counter: 5 });
    expect(back.metadata).toEqual({ run: 'a' });
    expect(Object.keys(back.variables).sort()).toEqual(Object.keys(s.variables).sort());
    for (const [k, t] of Object.entries(s.variables)) expect(bits(back.variables[k]!)).toBe(bits(t));
    const exe = model();
    restoreCheckpoint(exe, back);
    for (const [k, t] of Object.entries(exe.variables())) expect(bits(t)).toBe(bits(s.variables[k]!));
  });

  it('keep the newest K and leave no temp files', () => {
    for (let step = 1; step <= 6; step++) writeCheckpoint(dir, stateAt(step), { keep: 2 });
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([6, 5]);
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('ignore a temp file left by a writer that died, and remove it on the next write', () => {
    writeCheckpoint(dir, stateAt(1));
    const stale = join(dir, '.step-000000000002.safetensors.999999999.0.tmp');
    writeFileSync(stale, 'partial');
    expect(loadLatest(dir)!.step).toBe(1);
    writeCheckpoint(dir, stateAt(3));
    expect(readdirSync(dir).sort()).toEqual(['step-000000000001.safetensors', 'step-000000000003.safetensors']);
  });

  it('a checkpoint cut at any byte or with a flipped header byte is refused, and loading falls back to the previous one', () => {
    const prev = writeCheckpoint(dir, stateAt(2));
    const latest = writeCheckpoint(dir, stateAt(4));
    const good = readFileSync(latest);
    const headerEnd = 8 + Number(good.readBigUInt64LE(0));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.record({ kind: fc.constant('cut' as const), at: fc.integer({ min: 0, max: good.length - 1 }), mask: fc.constant(0) }),
          fc.record({ kind: fc.constant('flip' as const), at: fc.integer({ min: 0, max: headerEnd - 1 }), mask: fc.integer({ min: 1, max: 255 }) }),
        ),
        ({ kind, at, mask }) => {
          const bad = kind === 'cut' ? good.subarray(0, at) : Uint8Array.from(good);
          if (kind === 'flip') bad[at]! ^= mask;
          writeFileSync(latest, bad);
          expect(() => readCheckpoint(latest)).toThrow(CheckpointError);
          const loaded = loadLatest(dir)!;
          expect(loaded.path).toBe(prev);
          expect(loaded.step).toBe(2);
          expect(loaded.skipped.map((s) => s.path)).toEqual([latest]);
        },
      ),
      { numRuns: 200, ...seed },
    );
  });

  it('say why they are refused, and refuse when no checkpoint is good', () => {
    const p = writeCheckpoint(dir, stateAt(1));
    writeFileSync(p, readFileSync(p).subarray(0, 100));
    let err: unknown;
    try {
      readCheckpoint(p);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err).toBeInstanceOf(RheoError);
    expect((err as CheckpointError).file).toBe(p);
    expect((err as CheckpointError).message).toMatch(/truncated/);
    expect(() => loadLatest(dir)).toThrow(/no valid checkpoint/);
    expect(loadLatest(join(dir, 'absent'))).toBeUndefined();
  });

  it('refuse to restore into a graph they do not fit, leaving it untouched', () => {
    const path = writeCheckpoint(dir, stateAt(2));
    const other = compile(grad(mlpGraph([5, 6, 3]), 'loss'), { optimizer: adam(0.01), seed: 3 });
    const before = other.variables();
    expect(() => restoreCheckpoint(other, readCheckpoint(path))).toThrow(/does not fit graph/);
    for (const [k, t] of Object.entries(other.variables())) expect(bits(t)).toBe(bits(before[k]!));
  });
});
