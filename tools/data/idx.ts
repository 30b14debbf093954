// IDX files (the MNIST family's container): a 4-byte magic (0, 0, dtype, rank), big-endian
// uint32 dims, then the elements. Reads raw or gzip-compressed files and checks every header
// field against the bytes actually present, so a truncated download fails loudly here.
// Only unsigned-byte element data is supported; other IDX dtypes are refused, not converted.

import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { RheoError } from '../../graphs/errors.js';

/** A dataset file is missing, corrupt, or not what the loader expects. */
export class DatasetError extends RheoError {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

/** An IDX array: its dims (outermost first) and its elements in row-major order. */
export interface IdxArray {
  readonly dims: number[];
  readonly data: Uint8Array;
}

const UBYTE = 0x08;
const DTYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Parses IDX bytes, gunzipping first when they start with the gzip magic. `file` only names
 * the source in errors. The returned data is a copy-free view into the (decompressed) buffer.
 *
 * @example
 * const { dims, data } = parseIdx(readFileSync('t10k-labels-idx1-ubyte.gz'), 't10k-labels');
 * // dims = [10000], data[i] in 0..9
 */
export function parseIdx(bytes: Uint8Array, file = '<bytes>'): IdxArray {
  let raw = bytes;
  if (isGzip(bytes)) {
    try {
      raw = gunzipSync(bytes);
    } catch (e) {
      throw new DatasetError(file, `corrupt gzip stream (${(e as Error).message})`);
    }
  }
  if (raw.length < 4) throw new DatasetError(file, `${raw.length} bytes is too short for an IDX header`);
  if (raw[0] !== 0 || raw[1] !== 0) {
    const magic = Array.from(raw.subarray(0, 4), (b) => hex(b)).join(' ');
    throw new DatasetError(file, `bad IDX magic ${magic}: the first two bytes must be zero`);
  }
  const dtype = raw[2]!;
  if (dtype !== UBYTE) {
    const name = DTYPE_NAMES[dtype] ?? 'not an IDX dtype';
    throw new DatasetError(file, `IDX dtype 0x${hex(dtype)} (${name}) is not supported; only 0x08 (unsigned byte)`);
  }
  const rank = raw[3]!;
  if (rank === 0) throw new DatasetError(file, 'IDX rank is 0; expected at least one dimension');
  const headerLength = 4 + 4 * rank;
  if (raw.length < headerLength) {
    throw new DatasetError(file, `truncated header: rank ${rank} needs ${headerLength} bytes, file has ${raw.length}`);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const have = raw.length - headerLength;
  if (have !== count) {
    const what = have < count ? 'truncated data' : 'trailing bytes after data';
    throw new DatasetError(file, `${what}: dims [${dims.join(', ')}] need ${count} bytes, found ${have}`);
  }
  return { dims, data: raw.subarray(headerLength) };
}

/** Reads and parses an IDX file (raw or gzip). A missing or unreadable file is a DatasetError. */
export function readIdx(path: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new DatasetError(path, `cannot read file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseIdx(bytes, path);
}

/**
 * Encodes an unsigned-byte IDX array; `gzip: true` compresses it at the highest level.
 *
 * @example
 * parseIdx(encodeIdx({ dims: [2, 2], data: Uint8Array.of(1, 2, 3, 4) }, { gzip: true })); // round-trips
 */
export function encodeIdx(array: IdxArray, opts: { gzip?: boolean } = {}): Uint8Array {
  const { dims, data } = array;
  if (dims.length === 0 || dims.length > 255) throw new DatasetError('<encode>', `rank ${dims.length} is not in 1..255`);
  const count = dims.reduce((a, b) => a * b, 1);
  if (dims.some((d) => !Number.isInteger(d) || d < 0 || d > 0xffffffff) || count !== data.length) {
    throw new DatasetError('<encode>', `dims [${dims.join(', ')}] do not describe ${data.length} elements`);
  }
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = UBYTE;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return opts.gzip ? new Uint8Array(gzipSync(out, { level: 9 })) : out;
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}
