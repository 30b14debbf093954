// The safetensors layout for checkpoints: an 8-byte little-endian header length, a JSON header
// (dtype, shape and data_offsets per tensor; string `__metadata__`), then raw little-endian data.
// f16 tensors (binary16 values in a Float32Array) are stored as F16, two bytes an element.
// Adds SHA-256 checksums of the data section and of the header to the metadata and validates
// every field on read. Pure bytes in and out: writing files atomically is checkpoint.ts's job.

import { RheoError } from '../../graphs/errors.js';
import { dict, dictOf, lookup } from '../../graphs/dict.js';
import type { CpuArray } from '../cpu/render-js.js';
import type { HostTensor } from '../tensor.js';
import { sha256 } from '../sha256.js';
import { decodeF16, encodeF16 } from '../../ops/f16.js';

/** A checkpoint is truncated, corrupted, or does not fit the model it is restored into. */
export class CheckpointError extends RheoError {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`checkpoint ${file}: ${reason}`);
  }
}

/** Metadata keys this module owns: checksums written by `encodeSafetensors`, checked on read. */
export const DATA_CHECKSUM = 'data_sha256';
export const HEADER_CHECKSUM = 'header_sha256';

/** The header is at most this long (as in the reference implementation): a guard against a flipped length. */
const MAX_HEADER_BYTES = 100_000_000;
const PLACEHOLDER = '0'.repeat(64);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface DTypeCodec {
  readonly bytes: number;
  readonly dtype: HostTensor['dtype'];
  make(n: number): CpuArray;
}
const CODECS: Readonly<Record<string, DTypeCodec>> = {
  F32: { bytes: 4, dtype: 'f32', make: (n) => new Float32Array(n) },
  F16: { bytes: 2, dtype: 'f16', make: (n) => new Float32Array(n) },
  F64: { bytes: 8, dtype: 'f32', make: (n) => new Float64Array(n) },
  I32: { bytes: 4, dtype: 'i32', make: (n) => new Int32Array(n) },
  BOOL: { bytes: 1, dtype: 'bool', make: (n) => new Uint8Array(n) },
};

function codeOf(t: HostTensor): string {
  const d = t.data;
  if (d instanceof Float64Array) return 'F64';
  if (d instanceof Float32Array) return t.dtype === 'f16' ? 'F16' : 'F32';
  if (d instanceof Int32Array) return 'I32';
  return 'BOOL';
}

export interface Safetensors {
  readonly tensors: Record<string, HostTensor>;
  readonly metadata: Record<string, string>;
}

const utf8 = new TextEncoder();
const utf8Length = (s: string): number => utf8.encode(s).length;

/**
 * Tensors (in name order) and string metadata as safetensors bytes, with `data_sha256` and
 * `header_sha256` added to the metadata. The header checksum covers the length prefix and the
 * header text with the checksum's own 64 hex digits written as zeros.
 *
 * @example
 * const bytes = encodeSafetensors({ w: tensor([1, 2], [2]) }, { step: '10' });
 * decodeSafetensors(bytes).metadata.step; // '10'
 */
export function encodeSafetensors(tensors: Readonly<Record<string, HostTensor>>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header = dict<unknown>();
  let offset = 0;
  const entries = names.map((name) => {
    const t = tensors[name]!;
    const code = codeOf(t);
    const start = offset;
    offset += t.data.length * CODECS[code]!.bytes;
    return { name, start, entry: { dtype: code, shape: [...t.shape], data_offsets: [start, offset] } };
  });
  const data = new Uint8Array(offset);
  for (const e of entries) {
    const t = tensors[e.name]!;
    writeLE(e.entry.dtype === 'F16' ? encodeF16(t.data) : t.data, data, e.start);
  }
  header['__metadata__'] = dict([...Object.entries(metadata), [DATA_CHECKSUM, sha256(data)], [HEADER_CHECKSUM, PLACEHOLDER]]);
  for (const e of entries) header[e.name] = e.entry;
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((utf8Length(json) + 8) % 8)) % 8); // data starts 8-byte aligned
  const text = utf8.encode(json);
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  const digest = sha256(out.subarray(0, 8 + text.length));
  out.set(utf8.encode(digest), 8 + checksumOffset(json, PLACEHOLDER));
  out.set(data, 8 + text.length);
  return out;
}

/** The byte offset, within the header text, of the header checksum's value (-1: not there). */
function checksumOffset(json: string, value: string): number {
  const key = `"${HEADER_CHECKSUM}":"`;
  const i = json.indexOf(key + value + '"');
  return i < 0 ? -1 : utf8Length(json.slice(0, i)) + key.length;
}

/**
 * Parses and validates safetensors bytes written by `encodeSafetensors`: the length prefix, the
 * header's JSON, both checksums, every dtype, shape and offset, and that the tensors tile the
 * data section exactly. Anything else is a CheckpointError naming `file` and what is wrong.
 */
export function decodeSafetensors(bytes: Uint8Array, file = '<bytes>'): Safetensors {
  const fail = (reason: string): never => {
    throw new CheckpointError(file, reason);
  };
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, less than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    fail(`truncated or corrupt header length: declares ${declared} header bytes, ${bytes.length - 8} bytes follow`);
  }
  const headerLen = Number(declared);
  const headerBytes = bytes.subarray(8, 8 + headerLen);
  let json: string;
  try {
    json = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('header is not a JSON object');
  const h = header as Record<string, unknown>;
  const meta = h['__metadata__'];
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return fail('header has no __metadata__ object');
  const metadata = dictOf(meta as Record<string, unknown>);
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') fail(`metadata '${k}' is not a string`);
  const headerSum = metadata[HEADER_CHECKSUM];
  if (typeof headerSum !== 'string' || !/^[0-9a-f]{64}$/.test(headerSum)) fail(`metadata has no valid ${HEADER_CHECKSUM}`);
  const at = checksumOffset(json, headerSum as string);
  if (at < 0) fail(`${HEADER_CHECKSUM} is not written in canonical form`);
  const zeroed = Uint8Array.from(bytes.subarray(0, 8 + headerLen));
  zeroed.set(utf8.encode(PLACEHOLDER), 8 + at);
  if (sha256(zeroed) !== headerSum) fail('header checksum mismatch: the header is corrupted');

  const data = bytes.subarray(8 + headerLen);
  const spans: [number, number, string][] = [];
  const halves = new Set<string>();
  const tensors = dict<HostTensor>();
  for (const [name, entry] of Object.entries(h)) {
    if (name === '__metadata__') continue;
    const e = entry as Record<string, unknown>;
    const codec = typeof e?.['dtype'] === 'string' ? lookup(CODECS, e['dtype']) : undefined;
    if (!codec) return fail(`tensor '${name}' has unsupported dtype ${JSON.stringify(e?.['dtype'])}`);
    const shape = e['shape'];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return fail(`tensor '${name}' has a malformed shape`);
    const offs = e['data_offsets'];
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0) || offs[1] < offs[0]) {
      return fail(`tensor '${name}' has malformed data_offsets`);
    }
    const n = (shape as number[]).reduce((a, b) => a * b, 1);
    if (offs[1] - offs[0] !== n * codec.bytes) fail(`tensor '${name}': data_offsets span ${offs[1] - offs[0]} bytes, shape [${shape.join(', ')}] needs ${n * codec.bytes}`);
    spans.push([offs[0], offs[1], name]);
    if (codec.dtype === 'f16') halves.add(name);
    tensors[name] = { dtype: codec.dtype, shape: shape as number[], data: codec.make(n) };
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let end = 0;
  for (const [b, e, name] of spans) {
    if (b !== end) fail(`tensor '${name}' starts at byte ${b} of the data, expected ${end} (tensors must tile the data without gaps or overlaps)`);
    end = e;
  }
  if (data.length < end) fail(`truncated data: the header describes ${end} bytes, ${data.length} present`);
  if (data.length > end) fail(`${data.length - end} trailing bytes after the described data`);
  const dataSum = metadata[DATA_CHECKSUM];
  if (typeof dataSum !== 'string') fail(`metadata has no ${DATA_CHECKSUM}`);
  if (sha256(data) !== dataSum) fail('data checksum mismatch: the tensor data is corrupted');
  for (const [b, , name] of spans) {
    const dst = tensors[name]!.data;
    if (!halves.has(name)) readLE(data, b, dst);
    else {
      const bits = new Uint16Array(dst.length);
      readLE(data, b, bits);
      decodeF16(bits, dst as Float32Array);
    }
  }
  return { tensors, metadata: metadata as Record<string, string> };
}

function writeLE(src: CpuArray | Uint16Array, dst: Uint8Array, at: number): void {
  if (LITTLE_ENDIAN) {
    dst.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), at);
    return;
  }
  const v = new DataView(dst.buffer, dst.byteOffset + at);
  for (let i = 0; i < src.length; i++) {
    if (src instanceof Float32Array) v.setFloat32(i * 4, src[i]!, true);
    else if (src instanceof Float64Array) v.setFloat64(i * 8, src[i]!, true);
    else if (src instanceof Int32Array) v.setInt32(i * 4, src[i]!, true);
    else if (src instanceof Uint16Array) v.setUint16(i * 2, src[i]!, true);
    else v.setUint8(i, src[i]!);
  }
}

function readLE(src: Uint8Array, at: number, dst: CpuArray | Uint16Array): void {
  if (LITTLE_ENDIAN) {
    new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(src.subarray(at, at + dst.byteLength));
    return;
  }
  const v = new DataView(src.buffer, src.byteOffset + at);
  for (let i = 0; i < dst.length; i++) {
    if (dst instanceof Float32Array) dst[i] = v.getFloat32(i * 4, true);
    else if (dst instanceof Float64Array) dst[i] = v.getFloat64(i * 8, true);
    else if (dst instanceof Int32Array) dst[i] = v.getInt32(i * 4, true);
    else if (dst instanceof Uint16Array) dst[i] = v.getUint16(i * 2, true);
    else dst[i] = v.getUint8(i);
  }
}
