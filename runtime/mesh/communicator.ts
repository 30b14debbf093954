// The Communicator: how the devices of a mesh move tensors to each other — point-to-point send and
// recv, and the collectives the plan's `collective` steps name, built here once as ring
// algorithms over send/recv (all-reduce = reduce-scatter then all-gather). Transports (shared
// memory between threads, NATS between processes) implement only send and recv. It does not
// decide what to communicate: the plan's steps do.

import { RheoError } from '../../graphs/errors.js';
import type { CollectiveOp, DeviceId } from '../../scheduler/steps.js';
import type { CpuArray } from '../cpu/render-js.js';

/**
 * A device of a mesh failed, died or missed a deadline. `device` is the one at fault when known
 * (the worker that threw or exited, the peer that went silent), else the one that reported.
 */
export class MeshError extends RheoError {
  constructor(readonly device: DeviceId, detail: string) {
    super(`device ${device}: ${detail}`);
  }
}

/**
 * Moves tensors between the devices of a mesh. Every call is collective in the usual sense: the
 * peers named must make the matching calls in the same order. Buffers are host arrays of the same
 * length and type on every side; everything is in place.
 *
 * Layout of the collectives over a group of `n` devices (`group` order gives the ranks; the
 * caller must be in the group): the buffer is cut into `n` flat chunks, chunk `i` being
 * `chunkBounds(length, n, i)` — for a row-major tensor whose first axis divides by `n`, chunk `i`
 * is the `i`-th slice along axis 0.
 * - `allReduce`: every element becomes the sum over the group (the same bits on every device).
 * - `reduceScatter`: chunk `i` of the member of rank `i` becomes the sum of everyone's chunk `i`;
 *   its other chunks hold unspecified values afterwards.
 * - `allGather`: every member's chunk `i` becomes rank `i`'s chunk `i`.
 * - `allToAll`: chunk `j` of rank `i` goes to rank `j`, where it lands as chunk `i` (the length
 *   must divide by `n`).
 * Every wait has a deadline; a transport that misses it throws `MeshError` naming the peer.
 */
export interface Communicator {
  /** this device's id in the mesh */
  readonly rank: DeviceId;
  /** devices in the mesh */
  readonly size: number;
  send(buffer: CpuArray, peer: DeviceId): Promise<void>;
  /** fill `buffer` with what `peer` sends (same length and type) */
  recv(buffer: CpuArray, peer: DeviceId): Promise<void>;
  allReduce(buffer: CpuArray, group: readonly DeviceId[]): Promise<void>;
  reduceScatter(buffer: CpuArray, group: readonly DeviceId[]): Promise<void>;
  allGather(buffer: CpuArray, group: readonly DeviceId[]): Promise<void>;
  allToAll(buffer: CpuArray, group: readonly DeviceId[]): Promise<void>;
}

/** Elements `[start, end)` of chunk `i` when `length` elements are cut into `parts` chunks. */
export function chunkBounds(length: number, parts: number, i: number): [number, number] {
  return [Math.floor((i * length) / parts), Math.floor(((i + 1) * length) / parts)];
}

/** Runs a plan step's collective through `comm`. */
export function runCollective(comm: Communicator, op: CollectiveOp, buffer: CpuArray, group: readonly DeviceId[]): Promise<void> {
  switch (op) {
    case 'all-reduce':
      return comm.allReduce(buffer, group);
    case 'reduce-scatter':
      return comm.reduceScatter(buffer, group);
    case 'all-gather':
      return comm.allGather(buffer, group);
    case 'all-to-all':
      return comm.allToAll(buffer, group);
  }
}

/** The bytes of a typed array's elements `[start, end)`, without a copy. */
export function bytesOf(a: CpuArray, start = 0, end = a.length): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset + start * a.BYTES_PER_ELEMENT, (end - start) * a.BYTES_PER_ELEMENT);
}

const mod = (a: number, n: number) => ((a % n) + n) % n;

/**
 * The collectives as rings over a transport's send and recv: each step sends one chunk to the next
 * member and receives one from the previous, both at once, so every link carries `(n-1)/n` of the
 * buffer per phase.
 */
export abstract class RingCommunicator implements Communicator {
  abstract readonly rank: DeviceId;
  abstract readonly size: number;
  abstract send(buffer: CpuArray, peer: DeviceId): Promise<void>;
  abstract recv(buffer: CpuArray, peer: DeviceId): Promise<void>;

  async reduceScatter(buffer: CpuArray, group: readonly DeviceId[]): Promise<void> {
    const { r, n, next, prev } = this.ring(group);
    const tmp = new (buffer.constructor as new (n: number) => CpuArray)(Math.ceil(buffer.length / n) + 1);
    // after step s, the chunk received holds the sum over s+2 members; after n-1 steps rank r holds chunk r
    for (let s = 0; s < n - 1; s++) {
      const [a, b] = chunkBounds(buffer.length, n, mod(r - s - 1, n));
      const [c, d] = chunkBounds(buffer.length, n, mod(r - s - 2, n));
      const into = tmp.subarray(0, d - c);
      await Promise.all([this.send(buffer.subarray(a, b), next), this.recv(into, prev)]);
      const dst = buffer.subarray(c, d);
      for (let k = 0; k < into.length; k++) dst[k]! += into[k]!;
    }
  }

  async allGather(buffer: CpuArray, group: readonly DeviceId[]): Promise<void> {
    const { r, n, next, prev } = this.ring(group);
    for (let s = 0; s < n - 1; s++) {
      const [a, b] = chunkBounds(buffer.length, n, mod(r - s, n));
      const [c, d] = chunkBounds(buffer.length, n, mod(r - s - 1, n));
      await Promise.all([this.send(buffer.subarray(a, b), next), this.recv(buffer.subarray(c, d), prev)]);
    }
  }

  async allReduce(buffer: CpuArray, group: readonly DeviceId[]): Promise<void> {
    await this.reduceScatter(buffer, group);
    await this.allGather(buffer, group);
  }

  async allToAll(buffer: CpuArray, group: readonly DeviceId[]): Promise<void> {
    const { r, n } = this.ring(group);
    if (buffer.length % n !== 0) throw new MeshError(this.rank, `all-to-all of ${buffer.length} elements over ${n} devices: the length must divide by the group size`);
    const out = buffer.slice();
    // step k: send to the member k ahead, receive from the member k behind (a perfect matching)
    for (let k = 1; k < n; k++) {
      const to = mod(r + k, n), from = mod(r - k, n);
      const [a, b] = chunkBounds(buffer.length, n, to);
      const [c, d] = chunkBounds(buffer.length, n, from);
      await Promise.all([this.send(buffer.subarray(a, b), group[to]!), this.recv(out.subarray(c, d), group[from]!)]);
    }
    buffer.set(out);
  }

  private ring(group: readonly DeviceId[]): { r: number; n: number; next: DeviceId; prev: DeviceId } {
    const r = group.indexOf(this.rank);
    if (r < 0) throw new MeshError(this.rank, `collective over [${group.join(', ')}], a group without this device`);
    const n = group.length;
    return { r, n, next: group[mod(r + 1, n)]!, prev: group[mod(r - 1, n)]! };
  }
}
