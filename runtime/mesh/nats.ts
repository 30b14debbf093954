// The communicator across processes and hosts: the same send/recv (and so the same ring
// collectives) over a NATS server. Processes form one mesh by rank, size and a subject prefix;
// device `d` listens on `<prefix>.to.<d>.from.*`, keeps what arrives in a mailbox per sender
// (NATS keeps one publisher's order on a subject), and tensors travel in parts under the server's
// max payload. Joining waits until every peer answers on `<prefix>.ready.<p>`, so nothing is
// published before its receiver listens. It does not start servers or processes.

import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { DeviceId } from '../../scheduler/steps.js';
import type { CpuArray } from '../cpu/render-js.js';
import { bytesOf, MeshError, RingCommunicator } from './communicator.js';

export interface NatsMeshOptions {
  /** e.g. 'nats://10.0.0.5:4222' (one or several) */
  readonly servers: string | readonly string[];
  readonly rank: DeviceId;
  readonly size: number;
  /** subjects of this mesh start with it; one per job (default 'rheo.mesh') */
  readonly prefix?: string;
  /** how long to wait for a peer (joining, or a message) before a MeshError naming it (default 10 s) */
  readonly deadlineMs?: number;
  /** largest part per message (default 256 KiB, and always under the server's max payload) */
  readonly chunkBytes?: number;
}

/** A device of a mesh whose peers are reached through NATS; `close()` when done. */
export class NatsCommunicator extends RingCommunicator {
  private readonly mailboxes: Uint8Array[][];
  private readonly waiters: ((() => void) | undefined)[];
  private readonly subs: Subscription[] = [];
  private readonly prefix: string;
  private readonly deadlineMs: number;
  private readonly chunk: number;
  private closed = false;

  private constructor(private readonly nc: NatsConnection, readonly rank: DeviceId, readonly size: number, opts: NatsMeshOptions) {
    super();
    this.prefix = opts.prefix ?? 'rheo.mesh';
    this.deadlineMs = opts.deadlineMs ?? 10_000;
    const max = nc.info?.max_payload ?? 1 << 20;
    this.chunk = Math.max(1, Math.min(opts.chunkBytes ?? 256 << 10, max - 512));
    this.mailboxes = Array.from({ length: size }, () => []);
    this.waiters = Array.from({ length: size }, () => undefined);
  }

  /** Connects, listens, and resolves once every other rank of the mesh has joined. */
  static async join(opts: NatsMeshOptions): Promise<NatsCommunicator> {
    const { rank, size } = opts;
    if (!Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size) throw new MeshError(rank, `is not a rank of a mesh of ${size}`);
    const deadlineMs = opts.deadlineMs ?? 10_000;
    let nc: NatsConnection;
    try {
      // loaded here, so importing the mesh costs nothing for in-process use
      const { connect } = await import('@nats-io/transport-node');
      nc = await connect({ servers: typeof opts.servers === 'string' ? opts.servers : [...opts.servers], timeout: deadlineMs });
    } catch (e) {
      throw new MeshError(rank, `could not reach NATS at ${String(opts.servers)}: ${(e as Error).message}`);
    }
    const c = new NatsCommunicator(nc, rank, size, opts);
    try {
      await c.listen();
      await c.awaitPeers(Date.now() + deadlineMs);
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  async send(buffer: CpuArray, peer: DeviceId): Promise<void> {
    this.checkPeer(peer);
    const bytes = bytesOf(buffer);
    const subject = `${this.prefix}.to.${peer}.from.${this.rank}`;
    let off = 0;
    // copies: the caller may change the buffer before the connection writes it out
    do {
      const part = Math.min(this.chunk, bytes.length - off);
      this.nc.publish(subject, bytes.slice(off, off + part));
      off += part;
    } while (off < bytes.length);
  }

  async recv(buffer: CpuArray, peer: DeviceId): Promise<void> {
    this.checkPeer(peer);
    const bytes = bytesOf(buffer);
    const box = this.mailboxes[peer]!;
    const deadline = Date.now() + this.deadlineMs;
    let off = 0;
    do {
      while (box.length === 0) await this.arrival(peer, deadline, bytes.length - off);
      const part = box.shift()!;
      if (off + part.length > bytes.length) throw new MeshError(peer, `sent more than the ${bytes.length} bytes device ${this.rank} expects`);
      bytes.set(part, off);
      off += part.length;
    } while (off < bytes.length);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters) w?.();
    await this.nc.close().catch(() => undefined);
  }

  private async listen(): Promise<void> {
    const inbox = this.nc.subscribe(`${this.prefix}.to.${this.rank}.from.*`, {
      callback: (err, msg) => {
        if (err) return;
        const from = Number(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
        if (!Number.isInteger(from) || from < 0 || from >= this.size) return;
        this.mailboxes[from]!.push(msg.data);
        this.waiters[from]?.();
      },
    });
    const ready = this.nc.subscribe(`${this.prefix}.ready.${this.rank}`, {
      callback: (_err, msg) => {
        msg.respond();
      },
    });
    this.subs.push(inbox, ready);
    await this.nc.flush();
  }

  private async awaitPeers(deadline: number): Promise<void> {
    for (let p = 0; p < this.size; p++) {
      if (p === this.rank) continue;
      for (;;) {
        try {
          await this.nc.request(`${this.prefix}.ready.${p}`, undefined, { timeout: 250 });
          break;
        } catch {
          if (Date.now() + 50 >= deadline) throw new MeshError(p, `did not join the mesh at ${this.prefix} within ${this.deadlineMs} ms`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
  }

  private arrival(peer: DeviceId, deadline: number, missing: number): Promise<void> {
    if (this.closed) return Promise.reject(new MeshError(this.rank, 'the communicator is closed'));
    const left = deadline - Date.now();
    if (left <= 0) return Promise.reject(new MeshError(peer, `did not send device ${this.rank} the ${missing} bytes it waits for within ${this.deadlineMs} ms`));
    return new Promise((resolve) => {
      const t = setTimeout(done, left);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.waiters[peer] = () => {
        this.waiters[peer] = undefined;
        done();
      };
    });
  }

  private checkPeer(peer: DeviceId): void {
    if (this.closed) throw new MeshError(this.rank, 'the communicator is closed');
    if (!Number.isInteger(peer) || peer < 0 || peer >= this.size || peer === this.rank) throw new MeshError(this.rank, `has no peer ${peer} in a mesh of ${this.size}`);
  }
}
