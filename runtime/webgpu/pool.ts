/// <reference types="webgpu" />
// Pooled GPU buffers: storage buffers and read-back staging buffers recycled by size class (four
// classes per power of two), and a record of buffers released while recorded commands may still
// use them. It knows nothing of tensors, kernels or submission; the backend tells it when it submits.

const USAGE_STORAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST
const USAGE_READBACK = 0x01 | 0x08; // MAP_READ | COPY_DST

/** The size a buffer of `bytes` is made with (at least 16 bytes, a multiple of 16). */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, bytes);
  const p = 2 ** Math.floor(Math.log2(b));
  const step = Math.max(16, p / 4);
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly staging = new Map<number, GPUBuffer[]>();
  /** released since the last submit: recorded commands may still read them */
  private unsubmitted: [number, GPUBuffer][] = [];
  private readonly all = new Set<GPUBuffer>();

  /** `stats` counts the buffers made (the backend's counters). */
  constructor(
    private readonly device: GPUDevice,
    private readonly stats: { buffersCreated: number; bytesCreated: number },
  ) {}

  /**
   * A storage buffer of at least `bytes`. One released since the last submit is taken only with
   * `recycleUnsubmitted`: a kernel output may reuse it (dispatches run in order), an upload may
   * not (queue writes run before the commands still being recorded).
   */
  take(bytes: number, recycleUnsubmitted: boolean): GPUBuffer {
    const cls = sizeClass(bytes);
    let buffer = this.free.get(cls)?.pop();
    if (!buffer && recycleUnsubmitted) {
      const i = this.unsubmitted.findIndex(([c]) => c === cls);
      if (i >= 0) buffer = this.unsubmitted.splice(i, 1)[0]![1];
    }
    return buffer ?? this.create(cls, USAGE_STORAGE);
  }

  /** Give back a storage buffer of at least `bytes` (as taken). */
  give(bytes: number, buffer: GPUBuffer): void {
    this.unsubmitted.push([sizeClass(bytes), buffer]);
  }

  /** The backend submitted every recorded command: released buffers are free for any use. */
  submitted(): void {
    for (const [cls, b] of this.unsubmitted) push(this.free, cls, b);
    this.unsubmitted = [];
  }

  /** A mappable staging buffer of `sizeClass(bytes)` bytes. */
  takeStaging(bytes: number): GPUBuffer {
    const cls = sizeClass(bytes);
    return this.staging.get(cls)?.pop() ?? this.create(cls, USAGE_READBACK);
  }

  giveStaging(bytes: number, buffer: GPUBuffer): void {
    push(this.staging, sizeClass(bytes), buffer);
  }

  private create(size: number, usage: number): GPUBuffer {
    const b = this.device.createBuffer({ size, usage });
    this.all.add(b);
    this.stats.buffersCreated++;
    this.stats.bytesCreated += size;
    return b;
  }

  /** Destroy every buffer the pool made. */
  destroy(): void {
    for (const b of this.all) b.destroy();
    this.all.clear();
    this.free.clear();
    this.staging.clear();
    this.unsubmitted = [];
  }
}

function push(m: Map<number, GPUBuffer[]>, cls: number, b: GPUBuffer): void {
  let l = m.get(cls);
  if (!l) m.set(cls, (l = []));
  l.push(b);
}
