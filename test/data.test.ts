import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DatasetError, encodeIdx, parseIdx, readIdx } from '../tools/data/idx.js';
import { batches, EMBEDDED_DIR, loadFashionMnist, NUM_CLASSES, PIXELS } from '../tools/data/fashion-mnist.js';
import { mulberry32, permutation } from '../runtime/rng.js';
import { lineChartSvg } from '../tools/plot.js';
import { createProgress } from '../tools/progress.js';

const idxArray = fc
  .array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 4 })
  .chain((dims) =>
    fc
      .uint8Array({ minLength: dims.reduce((a, b) => a * b, 1), maxLength: dims.reduce((a, b) => a * b, 1) })
      .map((data) => ({ dims, data })),
  );

function expectDatasetError(f: () => unknown, pattern: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DatasetError);
  expect((err as Error).message).toMatch(pattern);
}

describe('IDX', () => {
  it('decoding an encoded array gives back its dims and bytes, raw or gzip', () => {
    fc.assert(
      fc.property(idxArray, fc.boolean(), ({ dims, data }, gzip) => {
        const back = parseIdx(encodeIdx({ dims, data }, { gzip }));
        expect(back.dims).toEqual(dims);
        expect(Array.from(back.data)).toEqual(Array.from(data));
      }),
    );
  });

  it('refuses truncated files, naming the file and the shortfall', () => {
    fc.assert(
      fc.property(idxArray, fc.nat(), fc.boolean(), ({ dims, data }, cut, gzip) => {
        const raw = encodeIdx({ dims, data });
        const short = raw.subarray(0, cut % raw.length);
        const bytes = gzip ? gzipSync(short) : short;
        expectDatasetError(() => parseIdx(bytes, 'cut.idx'), /^cut\.idx: .*(too short|truncated)/);
      }),
    );
  });

  it('refuses trailing bytes, bad magic, unsupported dtypes and rank 0', () => {
    const good = encodeIdx({ dims: [2, 3], data: new Uint8Array(6) });
    expectDatasetError(() => parseIdx(Uint8Array.of(...good, 0), 'f'), /trailing bytes/);
    expectDatasetError(() => parseIdx(Uint8Array.of(1, ...good.subarray(1)), 'f'), /bad IDX magic 01 00 08 02/);
    const floats = Uint8Array.from(good);
    floats[2] = 0x0d;
    expectDatasetError(() => parseIdx(floats, 'f'), /dtype 0x0d \(float32\) is not supported/);
    expectDatasetError(() => parseIdx(Uint8Array.of(0, 0, 8, 0), 'f'), /rank is 0/);
  });

  it('refuses a corrupt gzip stream and a missing file', () => {
    const gz = gzipSync(encodeIdx({ dims: [64], data: new Uint8Array(64).fill(7) }));
    expectDatasetError(() => parseIdx(gz.subarray(0, gz.length - 6), 'x.gz'), /^x\.gz: corrupt gzip/);
    expectDatasetError(() => readIdx('/nonexistent/idx-file.gz'), /\/nonexistent\/idx-file\.gz: cannot read file \(ENOENT\)/);
  });
});

describe('Fashion-MNIST', () => {
  it('the embedded subset loads with 5000 train and 1000 test examples in [0, 1]', () => {
    const ds = loadFashionMnist({ dir: EMBEDDED_DIR });
    expect(ds.source).toBe('dir');
    expect([ds.train.count, ds.train.images.length, ds.train.labels.length]).toEqual([5000, 5000 * PIXELS, 5000]);
    expect([ds.test.count, ds.test.images.length, ds.test.labels.length]).toEqual([1000, 1000 * PIXELS, 1000]);
    for (const split of [ds.train, ds.test]) {
      expect(split.images.every((v) => v >= 0 && v <= 1)).toBe(true);
      const seen = new Set(split.labels);
      expect(seen.size).toBe(NUM_CLASSES);
    }
  });

  it('loading without a dir reports which source it used', () => {
    const ds = loadFashionMnist();
    expect(['debian', 'embedded']).toContain(ds.source);
    expect(ds.train.count).toBeGreaterThanOrEqual(5000);
  });

  it('a given dir without the files is an error naming the missing ones', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rheo-fmnist-'));
    try {
      writeFileSync(join(dir, 'train-labels-idx1-ubyte'), encodeIdx({ dims: [1], data: Uint8Array.of(3) }));
      expectDatasetError(() => loadFashionMnist({ dir }), /missing Fashion-MNIST files: train-images-idx3-ubyte\.gz, t10k/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a dir whose images and labels disagree in count is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rheo-fmnist-'));
    try {
      const img = (n: number) => encodeIdx({ dims: [n, 28, 28], data: new Uint8Array(n * PIXELS) });
      const lab = (n: number) => encodeIdx({ dims: [n], data: new Uint8Array(n) });
      writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), img(3));
      writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), lab(2));
      writeFileSync(join(dir, 't10k-images-idx3-ubyte'), img(1));
      writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), lab(1));
      expectDatasetError(() => loadFashionMnist({ dir }), /2 labels for 3 images/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('batches', () => {
  const dataset = fc.integer({ min: 0, max: 60 }).chain((n) =>
    fc.record({
      n: fc.constant(n),
      width: fc.integer({ min: 1, max: 4 }),
      labels: fc.array(fc.integer({ min: 0, max: NUM_CLASSES - 1 }), { minLength: n, maxLength: n }),
      batchSize: fc.integer({ min: 1, max: 70 }),
      seed: fc.integer(),
      shuffle: fc.boolean(),
    }),
  );
  // Row i's features all equal i, so a batch row tells which example it came from.
  const make = (n: number, width: number) => Float32Array.from({ length: n * width }, (_, k) => Math.floor(k / width));

  it('one epoch visits every example exactly once, with matching one-hot targets', () => {
    fc.assert(
      fc.property(dataset, ({ n, width, labels, batchSize, seed, shuffle }) => {
        const lab = Int32Array.from(labels);
        const seen: number[] = [];
        for (const b of batches(make(n, width), lab, batchSize, { shuffle, seed })) {
          expect(b.size).toBeLessThanOrEqual(batchSize);
          for (let r = 0; r < b.size; r++) {
            const i = b.x[r * width]!;
            seen.push(i);
            expect(b.labels[r]).toBe(lab[i]);
            const row = Array.from(b.y.subarray(r * NUM_CLASSES, (r + 1) * NUM_CLASSES));
            expect(row).toEqual(Array.from({ length: NUM_CLASSES }, (_, c) => (c === lab[i] ? 1 : 0)));
          }
        }
        expect(seen.slice().sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
        if (!shuffle) expect(seen).toEqual(Array.from({ length: n }, (_, i) => i));
      }),
    );
  });

  it('the same seed gives the same order; dropLast yields only full batches', () => {
    fc.assert(
      fc.property(dataset, ({ n, width, labels, batchSize, seed }) => {
        const x = make(n, width);
        const lab = Int32Array.from(labels);
        const order = (s: number) => [...batches(x, lab, batchSize, { shuffle: true, seed: s })].flatMap((b) => Array.from(b.x.filter((_, k) => k % width === 0)));
        expect(order(seed)).toEqual(order(seed));
        const full = [...batches(x, lab, batchSize, { shuffle: true, seed, dropLast: true })];
        expect(full.length).toBe(Math.floor(n / batchSize));
        expect(full.every((b) => b.size === batchSize && b.x.length === batchSize * width)).toBe(true);
      }),
    );
  });

  it('different seeds give different orders (for a large enough dataset)', () => {
    expect(Array.from(permutation(100, mulberry32(1)))).not.toEqual(Array.from(permutation(100, mulberry32(2))));
  });

  it('mulberry32 is reproducible and uniform-looking', () => {
    const a = mulberry32(123);
    const b = mulberry32(123);
    const xs = Array.from({ length: 10_000 }, () => a());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(xs.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(Math.abs(xs.reduce((s, v) => s + v, 0) / xs.length - 0.5)).toBeLessThan(0.02);
  });
});

/** Start/end tag balance and entity check: enough to catch a malformed SVG. */
function wellFormedXml(xml: string): boolean {
  const stack: string[] = [];
  const body = xml.replace(/<\?xml[^>]*\?>/, '');
  for (const m of body.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|&(?!(?:amp|lt|gt|quot|apos|#\d+);)/g)) {
    if (m[2] === undefined) return false; // a stray '<' or '&'
    if (m[4]) continue;
    if (m[1]) {
      if (stack.pop() !== m[2]) return false;
    } else stack.push(m[2]);
  }
  return stack.length === 0;
}

describe('lineChartSvg', () => {
  const point = fc.tuple(
    fc.oneof(fc.double({ min: -1e7, max: 1e7, noNaN: true }), fc.constant(Number.NaN)),
    fc.oneof(fc.double({ min: -1e7, max: 1e7, noNaN: true }), fc.constant(Number.NaN), fc.constant(Infinity)),
  );
  const series = fc.array(fc.record({ name: fc.string({ maxLength: 30, unit: 'binary' }), points: fc.array(point, { maxLength: 20 }) }), {
    maxLength: 6,
  });

  it('is well-formed XML with exactly one path per series and no NaN coordinates', () => {
    fc.assert(
      fc.property(series, fc.string({ maxLength: 20 }), (s, title) => {
        const svg = lineChartSvg({ title, xLabel: 'step <x>', yLabel: 'loss & acc', series: s });
        expect(wellFormedXml(svg)).toBe(true);
        expect(svg.match(/<path /g)?.length ?? 0).toBe(s.length);
        expect(svg.replace(/>[^<]*</g, '><')).not.toMatch(/NaN|Infinity/); // in attributes, i.e. coordinates
      }),
    );
  });

  it('draws a typical loss curve with axis labels and a legend entry per series', () => {
    const train = Array.from({ length: 200 }, (_, i) => [i, 2.3 * Math.exp(-i / 50) + 0.2] as [number, number]);
    const test = [[0, 2.2], [100, Number.NaN], [199, 0.4]] as [number, number][];
    const svg = lineChartSvg({ title: 'loss', xLabel: 'step', yLabel: 'cross-entropy', series: [{ name: 'train', points: train }, { name: 'test', points: test }] });
    expect(wellFormedXml(svg)).toBe(true);
    expect(svg).toContain('>cross-entropy</text>');
    expect(svg).toContain('>train</text>');
    expect(svg).toContain('>test</text>');
    expect(svg.match(/<circle /g)?.length).toBe(2); // the NaN splits 'test' into two lone points
    expect(wellFormedXml('<svg><g></svg>')).toBe(false);
  });
});

describe('progress', () => {
  const sink = () => {
    const lines: string[] = [];
    const stream = { isTTY: false, write: (s: string) => (lines.push(s), true) } as unknown as NodeJS.WriteStream;
    return { lines, stream };
  };

  it('quiet prints nothing', () => {
    const { lines, stream } = sink();
    const p = createProgress({ total: 10, quiet: true, stream });
    p.update(5, { loss: 1 });
    p.log('hello');
    p.stop();
    expect(lines).toEqual([]);
  });

  it('without a TTY it prints plain lines with the fields, and a final line on stop', () => {
    const { lines, stream } = sink();
    const p = createProgress({ total: 4, label: 'epoch 1', stream, logIntervalMs: 60_000 });
    p.update(1, { loss: 2.302585 });
    p.increment(1, { loss: 1.5, 'img/s': 12345.678 });
    p.increment();
    p.increment();
    p.stop();
    p.stop();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^epoch 1 1\/4 \(25%\) loss=2\.303 \d+\.\ds\n$/);
    expect(lines[1]).toMatch(/^epoch 1 4\/4 \(100%\) loss=1\.500 img\/s=12346 \d+\.\ds\n$/);
  });
});
