// Grayscale PNG files with node:zlib only: write 8-bit grayscale images, and read the common
// non-interlaced 8-bit kinds (gray, gray+alpha, RGB, RGBA; converted to luminance). No palette,
// 16-bit or interlaced images: those are refused with a clear error.

import { deflateSync, inflateSync } from 'node:zlib';

export interface GrayImage {
  readonly width: number;
  readonly height: number;
  /** row-major, 0..1 */
  readonly pixels: Float64Array;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An 8-bit grayscale PNG of the image (values clamped to 0..1). */
export function encodeGrayPng(img: GrayImage): Buffer {
  const { width, height, pixels } = img;
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0; // filter: none
    for (let x = 0; x < width; x++) raw[y * (width + 1) + 1 + x] = Math.round(255 * Math.min(1, Math.max(0, pixels[y * width + x]!)));
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array())]);
}

/** Read a PNG as grayscale (luminance of RGB). */
export function decodePng(buf: Uint8Array): GrayImage {
  const b = Buffer.from(buf);
  if (b.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG file');
  let off = 8;
  let width = 0, height = 0, depth = 0, color = 0, interlace = 0;
  const idat: Buffer[] = [];
  while (off < b.length) {
    const len = b.readUInt32BE(off);
    const type = b.toString('ascii', off + 4, off + 8);
    const data = b.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      depth = data[8]!;
      color = data[9]!;
      interlace = data[12]!;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    off += 12 + len;
  }
  const channels = ({ 0: 1, 4: 2, 2: 3, 6: 4 } as Record<number, number>)[color];
  if (depth !== 8 || channels === undefined || interlace !== 0) {
    throw new Error(`PNG: only non-interlaced 8-bit gray, gray+alpha, RGB or RGBA images are read (bit depth ${depth}, color type ${color}, interlace ${interlace})`);
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const cur = new Uint8Array(stride);
  const prev = new Uint8Array(stride);
  const pixels = new Float64Array(width * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? cur[i - channels]! : 0;
      const up = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      const p = a + up - c;
      const pa = Math.abs(p - a), pb = Math.abs(p - up), pc = Math.abs(p - c);
      const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? up : f === 3 ? (a + up) >> 1 : pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
      cur[i] = (row[i]! + pred) & 0xff;
    }
    for (let x = 0; x < width; x++) {
      const px = cur.subarray(x * channels, x * channels + channels);
      pixels[y * width + x] = (channels >= 3 ? 0.299 * px[0]! + 0.587 * px[1]! + 0.114 * px[2]! : px[0]!) / 255;
    }
    prev.set(cur);
  }
  return { width, height, pixels };
}

/** Resample to a size by averaging the source pixels each target pixel covers (or the nearest one). */
export function resizeGray(img: GrayImage, width: number, height: number): GrayImage {
  const out = new Float64Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const y0 = Math.floor((y * img.height) / height), y1 = Math.max(y0 + 1, Math.floor(((y + 1) * img.height) / height));
    const x0 = Math.floor((x * img.width) / width), x1 = Math.max(x0 + 1, Math.floor(((x + 1) * img.width) / width));
    let s = 0;
    for (let v = y0; v < y1; v++) for (let u = x0; u < x1; u++) s += img.pixels[v * img.width + u]!;
    out[y * width + x] = s / ((y1 - y0) * (x1 - x0));
  }
  return { width, height, pixels: out };
}
