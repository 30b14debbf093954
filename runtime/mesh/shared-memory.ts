// The in-process transport of a mesh: one SharedArrayBuffer slot per ordered pair of devices,
// handed over with Atomics (a state word flips EMPTY -> FULL -> EMPTY; the other side waits on it
// with a deadline and is woken by Atomics.notify). Tensor bytes are copied into the slot and out
// of it, never structured-cloned; a message larger than the slot goes in parts. A shared control
// word lets the mesh abort every wait at once when a device fails. It does not spawn threads
// (runtime/mesh/mesh.ts does).

import type { DeviceId } from '../../scheduler/steps.js';
import type { CpuArray } from '../cpu/render-js.js';
import { bytesOf, MeshError, RingCommunicator } from './communicator.js';

const EMPTY = 0, FULL = 1;
type WaitAsync = (a: Int32Array, index: number, value: number, timeoutMs: number) => { async: false; value: string } | { async: true; value: Promise<string> };
/** Atomics.waitAsync (ES2024; Node 16+) */
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
/** slot header, Int32 words: state, length of the part in the slot */
const STATE = 0, LENGTH = 1, HEADER_BYTES = 8;

/** What every thread of a mesh shares: a slot per ordered pair, and the control words. */
export interface SharedChannels {
  readonly size: number;
  /** slots[src * size + dst]; the diagonal is unused */
  readonly slots: readonly SharedArrayBuffer[];
  /** control word 0: 0 while the mesh is healthy, `d + 1` once device `d` failed */
  readonly control: SharedArrayBuffer;
}

/** Shared slots for `size` devices, each carrying up to `slotBytes` per part. */
export function sharedChannels(size: number, slotBytes = 1 << 20): SharedChannels {
  const slots: SharedArrayBuffer[] = [];
  for (let i = 0; i < size * size; i++) slots.push(new SharedArrayBuffer(i % (size + 1) === 0 ? HEADER_BYTES : HEADER_BYTES + slotBytes));
  return { size, slots, control: new SharedArrayBuffer(8) };
}

/** Marks device `failed` as failed and wakes every wait, on every thread (its first caller wins). */
export function abortChannels(ch: SharedChannels, failed: DeviceId): void {
  Atomics.compareExchange(new Int32Array(ch.control), 0, 0, failed + 1);
  for (const s of ch.slots) Atomics.notify(new Int32Array(s, 0, 2), STATE);
}

/** The device that failed the mesh, if one has. */
export function abortedBy(ch: SharedChannels): DeviceId | undefined {
  const v = Atomics.load(new Int32Array(ch.control), 0);
  return v === 0 ? undefined : v - 1;
}

/** A communicator over shared slots; one per device, each on its own thread. */
export class SharedMemoryCommunicator extends RingCommunicator {
  readonly size: number;
  private readonly control: Int32Array;

  constructor(readonly rank: DeviceId, private readonly channels: SharedChannels, private readonly deadlineMs = 10_000) {
    super();
    this.size = channels.size;
    this.control = new Int32Array(channels.control);
  }

  async send(buffer: CpuArray, peer: DeviceId): Promise<void> {
    const { head, data } = this.slot(this.rank, peer);
    const bytes = bytesOf(buffer);
    const deadline = Date.now() + this.deadlineMs;
    let off = 0;
    do {
      await this.until(head, EMPTY, peer, deadline, 'to take what this device sent');
      const part = Math.min(data.length, bytes.length - off);
      data.set(bytes.subarray(off, off + part));
      off += part;
      Atomics.store(head, LENGTH, part);
      Atomics.store(head, STATE, FULL);
      Atomics.notify(head, STATE);
    } while (off < bytes.length);
  }

  async recv(buffer: CpuArray, peer: DeviceId): Promise<void> {
    const { head, data } = this.slot(peer, this.rank);
    const bytes = bytesOf(buffer);
    const deadline = Date.now() + this.deadlineMs;
    let off = 0;
    do {
      await this.until(head, FULL, peer, deadline, `to send ${bytes.length} bytes`);
      const part = Atomics.load(head, LENGTH);
      if (off + part > bytes.length) throw new MeshError(peer, `sent more than the ${bytes.length} bytes device ${this.rank} expects`);
      bytes.set(data.subarray(0, part), off);
      off += part;
      Atomics.store(head, STATE, EMPTY);
      Atomics.notify(head, STATE);
    } while (off < bytes.length);
  }

  private slot(src: DeviceId, dst: DeviceId): { head: Int32Array; data: Uint8Array } {
    for (const d of [src, dst]) if (!Number.isInteger(d) || d < 0 || d >= this.size || src === dst) throw new MeshError(this.rank, `no channel from device ${src} to ${dst} in a mesh of ${this.size}`);
    const sab = this.channels.slots[src * this.size + dst]!;
    return { head: new Int32Array(sab, 0, 2), data: new Uint8Array(sab, HEADER_BYTES) };
  }

  private async until(head: Int32Array, want: number, peer: DeviceId, deadline: number, what: string): Promise<void> {
    for (;;) {
      const failed = Atomics.load(this.control, 0);
      if (failed !== 0) throw new MeshError(failed - 1, `failed, so device ${this.rank} stopped waiting for device ${peer}`);
      const v = Atomics.load(head, STATE);
      if (v === want) return;
      const left = deadline - Date.now();
      if (left <= 0) throw new MeshError(peer, `did not answer device ${this.rank} within ${this.deadlineMs} ms (waiting for it ${what})`);
      const w = waitAsync(head, STATE, v, left);
      if (w.async) await w.value;
    }
  }
}
