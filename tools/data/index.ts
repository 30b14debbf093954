// Datasets from files (Node): Fashion-MNIST (Debian's package, a directory, or the subset shipped
// with rheo) and the IDX format it is stored in. The package entry 'rheo/data'.

export {
  loadFashionMnist, batches, CLASS_NAMES, FASHION_MNIST_FILES, DEBIAN_DIR, EMBEDDED_DIR, IMAGE_SIZE, PIXELS, NUM_CLASSES,
} from './fashion-mnist.js';
export type { FashionMnist, Split, Batch, BatchOptions } from './fashion-mnist.js';
export { DatasetError, parseIdx, readIdx, encodeIdx } from './idx.js';
export type { IdxArray } from './idx.js';
