// Fashion-MNIST for the examples: finds the IDX files (a given dir, else the Debian package's
// dir, else the subset committed under data/), decodes them to [0,1] floats and int labels,
// and cuts seeded, deterministic mini-batches. It does not download anything, augment, or
// normalize beyond /255; the caller reports which source was used.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatasetError, readIdx } from './idx.js';
import { mulberry32, permutation } from '../../runtime/rng.js';

export const IMAGE_SIZE = 28;
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;
export const NUM_CLASSES = 10;
/** Label i's name, as in the dataset's documentation. */
export const CLASS_NAMES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
  'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

/** The four files, named as in the original distribution and the Debian package. */
export const FASHION_MNIST_FILES = {
  trainImages: 'train-images-idx3-ubyte.gz',
  trainLabels: 'train-labels-idx1-ubyte.gz',
  testImages: 't10k-images-idx3-ubyte.gz',
  testLabels: 't10k-labels-idx1-ubyte.gz',
} as const;

export const DEBIAN_DIR = '/usr/share/datasets/fashion-mnist/';
/**
 * The committed subset (first 5000 train, first 1000 test examples); see data/README.md. It is
 * the package's `data/` folder: two levels above this file in the sources (tools/data/), three
 * in the built package (dist/tools/data/).
 */
export const EMBEDDED_DIR = [
  fileURLToPath(new URL('../../data/fashion-mnist-subset/', import.meta.url)),
  fileURLToPath(new URL('../../../data/fashion-mnist-subset/', import.meta.url)),
].find((d) => existsSync(d)) ?? fileURLToPath(new URL('../../data/fashion-mnist-subset/', import.meta.url));

export interface Split {
  /** count × 784 pixels, row-major 28×28 per image, scaled to [0, 1]. */
  readonly images: Float32Array;
  /** count labels in 0..9. */
  readonly labels: Int32Array;
  readonly count: number;
}

export interface FashionMnist {
  readonly source: 'dir' | 'debian' | 'embedded';
  readonly dir: string;
  readonly train: Split;
  readonly test: Split;
}

/**
 * Loads Fashion-MNIST. With `dir`, the four files must be there (each either `.gz` or with the
 * `.gz` dropped); otherwise the Debian package's dir is used when complete, else the embedded
 * subset. Any file that is present but malformed is a DatasetError, never a silent fallback.
 *
 * @example
 * const ds = loadFashionMnist();
 * console.log(`Fashion-MNIST from ${ds.source} (${ds.dir}): ${ds.train.count} train, ${ds.test.count} test`);
 */
export function loadFashionMnist(opts: { dir?: string } = {}): FashionMnist {
  if (opts.dir !== undefined) {
    const missing = Object.values(FASHION_MNIST_FILES).filter((f) => findFile(opts.dir!, f) === undefined);
    if (missing.length) throw new DatasetError(opts.dir, `missing Fashion-MNIST files: ${missing.join(', ')}`);
    return loadFrom('dir', opts.dir);
  }
  if (hasAllFiles(DEBIAN_DIR)) return loadFrom('debian', DEBIAN_DIR);
  if (hasAllFiles(EMBEDDED_DIR)) return loadFrom('embedded', EMBEDDED_DIR);
  throw new DatasetError(EMBEDDED_DIR, `no Fashion-MNIST files here nor in ${DEBIAN_DIR}`);
}

function findFile(dir: string, name: string): string | undefined {
  for (const candidate of [join(dir, name), join(dir, name.replace(/\.gz$/, ''))]) {
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

function hasAllFiles(dir: string): boolean {
  return Object.values(FASHION_MNIST_FILES).every((f) => findFile(dir, f) !== undefined);
}

function loadFrom(source: FashionMnist['source'], dir: string): FashionMnist {
  const f = FASHION_MNIST_FILES;
  return {
    source,
    dir,
    train: loadSplit(findFile(dir, f.trainImages)!, findFile(dir, f.trainLabels)!),
    test: loadSplit(findFile(dir, f.testImages)!, findFile(dir, f.testLabels)!),
  };
}

function loadSplit(imagesPath: string, labelsPath: string): Split {
  const img = readIdx(imagesPath);
  const lab = readIdx(labelsPath);
  if (img.dims.length !== 3 || img.dims[1] !== IMAGE_SIZE || img.dims[2] !== IMAGE_SIZE) {
    throw new DatasetError(imagesPath, `expected dims [N, 28, 28], got [${img.dims.join(', ')}]`);
  }
  if (lab.dims.length !== 1) throw new DatasetError(labelsPath, `expected dims [N], got [${lab.dims.join(', ')}]`);
  const count = img.dims[0]!;
  if (lab.dims[0] !== count) {
    throw new DatasetError(labelsPath, `${lab.dims[0]} labels for ${count} images in ${imagesPath}`);
  }
  const images = new Float32Array(img.data.length);
  for (let i = 0; i < images.length; i++) images[i] = img.data[i]! / 255;
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const l = lab.data[i]!;
    if (l >= NUM_CLASSES) throw new DatasetError(labelsPath, `label ${l} at index ${i} is not in 0..${NUM_CLASSES - 1}`);
    labels[i] = l;
  }
  return { images, labels, count };
}

/** One mini-batch: B rows of features, one-hot targets and the integer labels. */
export interface Batch {
  /** B × features (784 for Fashion-MNIST images). */
  readonly x: Float32Array;
  /** B × numClasses, one-hot. */
  readonly y: Float32Array;
  readonly labels: Int32Array;
  /** B: batchSize, or fewer for a kept last partial batch. */
  readonly size: number;
}

export interface BatchOptions {
  /** Visit examples in a seeded random order (default false: dataset order). */
  readonly shuffle?: boolean;
  /** Seed of the shuffle (default 0). Use e.g. `seed + epoch` for a fresh order each epoch. */
  readonly seed?: number;
  /** Drop a last batch smaller than batchSize (default false: keep it). */
  readonly dropLast?: boolean;
  /** Width of the one-hot targets (default 10). */
  readonly numClasses?: number;
}

/**
 * One epoch of mini-batches. The row width is images.length / labels.length. Each batch owns
 * fresh arrays, so a consumer may keep them (e.g. queued to a device) while iteration goes on.
 *
 * @example
 * for (const { x, y } of batches(ds.train.images, ds.train.labels, 128, { shuffle: true, seed: epoch })) step(x, y);
 */
export function* batches(
  images: Float32Array,
  labels: Int32Array,
  batchSize: number,
  opts: BatchOptions = {},
): Generator<Batch, void, undefined> {
  const { shuffle = false, seed = 0, dropLast = false, numClasses = NUM_CLASSES } = opts;
  const n = labels.length;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batches: batchSize must be a positive integer, got ${batchSize}`);
  }
  const width = n === 0 ? 0 : images.length / n;
  if (!Number.isInteger(width)) {
    throw new RangeError(`batches: ${images.length} image values do not split into ${n} rows`);
  }
  const order = shuffle ? permutation(n, mulberry32(seed)) : null;
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    if (size < batchSize && dropLast) return;
    const x = new Float32Array(size * width);
    const y = new Float32Array(size * numClasses);
    const out = new Int32Array(size);
    for (let b = 0; b < size; b++) {
      const i = order ? order[start + b]! : start + b;
      const label = labels[i]!;
      if (label < 0 || label >= numClasses) {
        throw new RangeError(`batches: label ${label} at index ${i} is not in 0..${numClasses - 1}`);
      }
      x.set(images.subarray(i * width, (i + 1) * width), b * width);
      y[b * numClasses + label] = 1;
      out[b] = label;
    }
    yield { x, y, labels: out, size };
  }
}
