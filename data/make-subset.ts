// Rebuilds data/fashion-mnist-subset/ from the full Fashion-MNIST files: the first 5000
// training and first 1000 test examples, in the original IDX gzip layout and file names.
// Usage: npx tsx data/make-subset.ts [fullDir]   (default: the Debian package's dir)
// It checks the written files decode back to exactly the source prefix and prints class counts.

import { createHash } from 'node:crypto';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeIdx, readIdx } from '../tools/data/idx.js';
import { CLASS_NAMES, DEBIAN_DIR, EMBEDDED_DIR, FASHION_MNIST_FILES } from '../tools/data/fashion-mnist.js';

const TRAIN_COUNT = 5000;
const TEST_COUNT = 1000;

const srcDir = process.argv[2] ?? DEBIAN_DIR;
mkdirSync(EMBEDDED_DIR, { recursive: true });

function subset(imagesFile: string, labelsFile: string, count: number): void {
  const images = readIdx(join(srcDir, imagesFile));
  const labels = readIdx(join(srcDir, labelsFile));
  const [, h, w] = images.dims as [number, number, number];
  const parts = [
    { file: imagesFile, dims: [count, h, w], data: images.data.subarray(0, count * h * w) },
    { file: labelsFile, dims: [count], data: labels.data.subarray(0, count) },
  ];
  for (const { file, dims, data } of parts) {
    const path = join(EMBEDDED_DIR, file);
    writeFileSync(path, encodeIdx({ dims, data }, { gzip: true }));
    const back = readIdx(path);
    if (back.dims.join() !== dims.join() || Buffer.compare(back.data, data) !== 0) {
      throw new Error(`${path} does not decode back to the source prefix`);
    }
    const sha = createHash('sha256').update(encodeIdx({ dims, data })).digest('hex');
    console.log(`${file}: dims [${dims.join(', ')}], ${statSync(path).size} bytes, sha256 of IDX content ${sha}`);
  }
  const counts = new Array<number>(CLASS_NAMES.length).fill(0);
  for (const l of labels.data.subarray(0, count)) counts[l]!++;
  const min = Math.min(...counts);
  const max = Math.max(...counts);
  console.log(`  classes: ${counts.map((c, i) => `${i} ${CLASS_NAMES[i]}=${c}`).join(', ')}`);
  console.log(`  balance: min ${min}, max ${max} (uniform would be ${count / counts.length})`);
  if (min < (0.75 * count) / counts.length) throw new Error(`class balance too skewed: min ${min} of ${count}`);
}

subset(FASHION_MNIST_FILES.trainImages, FASHION_MNIST_FILES.trainLabels, TRAIN_COUNT);
subset(FASHION_MNIST_FILES.testImages, FASHION_MNIST_FILES.testLabels, TEST_COUNT);
const total = Object.values(FASHION_MNIST_FILES).reduce((s, f) => s + statSync(join(EMBEDDED_DIR, f)).size, 0);
console.log(`total ${total} bytes (${(total / 2 ** 20).toFixed(2)} MiB) in ${EMBEDDED_DIR}`);
