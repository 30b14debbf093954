// Params, state and constants of a compiled graph, in one device's buffers, by node id. Executables
// derived from one another (reactive runs) share one store. Nobody frees by hand: once no
// executable holds a store, its buffers go back to the device.

import { GraphError } from '../graphs/errors.js';
import type { DType } from '../graphs/types.js';
import type { CpuArray } from './cpu/render-js.js';
import type { Device } from './device.js';

const unreachable = new FinalizationRegistry<{ device: Device; buffers: Map<number, unknown> }>(({ device, buffers }) => {
  for (const b of buffers.values()) device.free(b);
});

export class Variables<B = unknown> {
  private readonly buffers = new Map<number, B>();

  /** uploads every host value onto `device` */
  constructor(readonly device: Device<B>, host: ReadonlyMap<number, { dtype: DType; data: CpuArray }>) {
    for (const [id, v] of host) this.buffers.set(id, device.upload(v.dtype, v.data));
    unreachable.register(this, { device: device as Device, buffers: this.buffers as Map<number, unknown> });
  }

  has(id: number): boolean {
    return this.buffers.has(id);
  }

  get(id: number): B {
    const b = this.buffers.get(id);
    if (b === undefined) throw new GraphError(`node ${id} has no buffer on ${this.device.description}`);
    return b;
  }

  ids(): IterableIterator<number> {
    return this.buffers.keys();
  }

  /** Overwrite values (work recorded before still sees the old contents). */
  set(id: number, data: CpuArray): void {
    this.device.write(this.get(id), data);
  }

  /** Make `b` the buffer of variable `id`; the old buffer goes back to the device. */
  replace(id: number, b: B): void {
    const old = this.get(id);
    this.buffers.set(id, b);
    if (old !== b) this.device.free(old);
  }

  /** Copies of the values as of this call. */
  read(ids: readonly number[]): Promise<Map<number, CpuArray>> {
    return this.device.read(ids.map((id) => this.get(id))).then((data) => new Map(ids.map((id, i) => [id, data[i]!])));
  }

  /** The same, synchronously, on a device that can. */
  readSync(ids: readonly number[]): Map<number, CpuArray> {
    const data = this.device.readSync!(ids.map((id) => this.get(id)));
    return new Map(ids.map((id, i) => [id, data[i]!]));
  }
}
