// Redis Streams as a resumable training source: entries read through a consumer group, batched
// (each batch tagged with its last entry ID, which checkpoints record) and acknowledged (XACK) only
// once a covering checkpoint is durable: a crashed trainer neither loses nor repeats an entry.
// One consumer per stream and group; it does not balance entries over several consumers.
// A lost connection is retried with backoff for `reconnectMs`; then the source fails with a
// RedisSourceError naming the URL and the stream. Connection errors never go unhandled.

import { Redis, ReplyError } from 'ioredis';
import { RheoError } from '../../graphs/errors.js';
import { allocArray, type HostTensor } from '../tensor.js';
import { dict } from '../../graphs/dict.js';
import type { StreamPosition } from './checkpoint.js';
import { stack } from './operators.js';
import { withToken, type Batch, type ResumableSource } from './sources.js';

export interface RedisEntry {
  readonly id: string;
  readonly fields: Readonly<Record<string, Buffer>>;
}

export interface RedisSourceOptions {
  /** a client (left open at the end) or a URL such as redis://127.0.0.1:6379 (closed at the end) */
  readonly redis: Redis | string;
  readonly stream: string;
  /** consumer group, created at the stream's start if missing (default 'rheo-trainer') */
  readonly group?: string;
  /** the consumer's name; keep it across restarts so its pending entries are found (default 'trainer') */
  readonly consumer?: string;
  readonly entriesPerBatch: number;
  /** entries to a batch (default: `decodeEntry` each and `stack`) */
  readonly decode?: (entries: readonly RedisEntry[]) => Batch;
  /** longest wait of one blocking read, ms (default 1000) */
  readonly blockMs?: number;
  /** end the stream once no new entry has arrived for this long, ms (default: never end) */
  readonly idleMs?: number;
  /**
   * how long to keep trying when Redis cannot be reached (at the start or after a lost
   * connection), with backoff from 50 ms to 1 s between attempts; then a RedisSourceError (ms,
   * default 30000)
   */
  readonly reconnectMs?: number;
}

/** Redis could not be reached for the source's `reconnectMs`: names the server and the stream. */
export class RedisSourceError extends RheoError {
  constructor(
    /** the server, without any password */
    readonly url: string,
    readonly stream: string,
    /** how long it was tried, ms */
    readonly waitedMs: number,
    override readonly cause: unknown,
  ) {
    super(`Redis source: no connection to ${url} (stream '${stream}') for ${waitedMs} ms; last error: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/** A URL without credentials, for messages. */
function displayUrl(redis: Redis | string): string {
  if (typeof redis !== 'string') return `redis://${redis.options.host ?? '127.0.0.1'}:${redis.options.port ?? 6379}`;
  try {
    const u = new URL(redis);
    u.password = '';
    u.username = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return redis.replace(/\/\/[^@/]*@/, '//');
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface RedisSource extends ResumableSource<Batch> {
  /** entries acknowledged so far by this source */
  readonly acked: number;
}

/**
 * A ResumableSource over a Redis stream for `train`.
 *
 * @example
 * const source = redisSource({ redis: 'redis://127.0.0.1:6379', stream: 'samples', entriesPerBatch: 64, idleMs: 5000 });
 * train(step, source, { checkpoint: { dir: 'ckpt', every: 100 } }).subscribe(...);
 */
export function redisSource(opts: RedisSourceOptions): RedisSource {
  const group = opts.group ?? 'rheo-trainer';
  const consumer = opts.consumer ?? 'trainer';
  const n = opts.entriesPerBatch;
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`redisSource: entriesPerBatch must be a positive integer, got ${n}`);
  const decode = opts.decode ?? ((entries: readonly RedisEntry[]) => stack(entries.map((e) => decodeEntry(e.fields))));
  const reconnectMs = opts.reconnectMs ?? 30_000;
  if (!(Number.isFinite(reconnectMs) && reconnectMs >= 0)) throw new RangeError(`redisSource: reconnectMs must be a non-negative number, got ${reconnectMs}`);
  const url = displayUrl(opts.redis);
  // Commands fail at once while the connection is down (no offline queue, no resending); `call`
  // retries them with backoff until `reconnectMs` has passed, while the client reconnects.
  const connection = {
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 10), 1000),
  };
  const owned = typeof opts.redis === 'string';
  const cmd = typeof opts.redis === 'string' ? new Redis(opts.redis, { lazyConnect: false, ...connection }) : opts.redis;
  // Blocking reads hold their connection; acknowledgements go over the other one.
  const reader = cmd.duplicate(connection);
  /** the last error seen, of a command or of the connection (which tells why it is down) */
  let lastError: unknown;
  let connectionError: unknown;
  const onError = (e: unknown) => (lastError = connectionError = e);
  cmd.on('error', onError);
  reader.on('error', onError);
  let acked = 0;
  let closed = false;

  /** `f` until it succeeds, a Redis reply error, or the connection has been down for `reconnectMs`. */
  async function call<T>(f: () => Promise<T>): Promise<T> {
    let downSince: number | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await f();
        if (downSince !== undefined) connectionError = undefined;
        return r;
      } catch (e) {
        if (e instanceof ReplyError || closed) throw e;
        lastError = e;
        downSince ??= Date.now();
        const left = reconnectMs - (Date.now() - downSince);
        if (left <= 0) throw new RedisSourceError(url, opts.stream, reconnectMs, connectionError ?? e);
        await sleep(Math.min(50 * 2 ** Math.min(attempt, 10), 1000, left));
      }
    }
  }

  let groupReady: Promise<void> | undefined;
  const ensureGroup = () =>
    (groupReady ??= call(() => cmd.xgroup('CREATE', opts.stream, group, '0', 'MKSTREAM')).then(
      () => undefined,
      (e: Error) => {
        if (!/BUSYGROUP/.test(e.message)) {
          groupReady = undefined;
          throw e;
        }
      },
    ));

  const read = async (id: string, count: number, block?: number): Promise<RedisEntry[]> => {
    const args: (string | number)[] = ['GROUP', group, consumer, 'COUNT', count];
    if (block !== undefined) args.push('BLOCK', block);
    args.push('STREAMS', opts.stream, id);
    const reply = (await call(() => reader.callBuffer('XREADGROUP', args))) as [Buffer, [Buffer, Buffer[] | null][]][] | null;
    const rows = reply?.[0]?.[1] ?? [];
    return rows.map(([rid, flat]) => {
      const fields = dict<Buffer>();
      for (let i = 0; flat && i + 1 < flat.length; i += 2) fields[flat[i]!.toString()] = flat[i + 1]!;
      return { id: rid.toString(), fields };
    });
  };

  /** Acknowledges this consumer's pending entries up to the position's entry ID. */
  async function commit(position: StreamPosition): Promise<void> {
    if (position.token === undefined) return;
    await ensureGroup();
    for (;;) {
      const rows = (await call(() => cmd.xpending(opts.stream, group, '-', position.token!, 1000, consumer))) as [string, string, number, number][];
      if (rows.length === 0) return;
      acked += await call(() => cmd.xack(opts.stream, group, ...rows.map((r) => r[0])));
      if (rows.length < 1000) return;
    }
  }

  async function* entries(from: StreamPosition): AsyncGenerator<RedisEntry> {
    await ensureGroup();
    if (from.token !== undefined) await commit(from); // a crash may have come between checkpoint and XACK
    // First this consumer's entries delivered before a restart and not covered by the checkpoint...
    for (let cursor = from.token ?? '0'; ; ) {
      const got = await read(cursor, Math.max(n, 100));
      if (got.length === 0) break;
      for (const e of got) if (Object.keys(e.fields).length) yield e; // a deleted entry comes back without fields
      cursor = got[got.length - 1]!.id;
    }
    // ...then new ones.
    const blockMs = opts.blockMs ?? 1000;
    let idleSince = Date.now();
    let last = from.token ?? '0';
    for (;;) {
      const wait = opts.idleMs === undefined ? blockMs : Math.max(1, Math.min(blockMs, opts.idleMs - (Date.now() - idleSince)));
      const before = lastError;
      let got = await read('>', n, wait);
      // After a reconnect, a read the server ran whose reply was lost left entries pending for
      // this consumer: take those (after the last one yielded) before new ones.
      if (lastError !== before) got = [...(await read(last, Math.max(n, 100))), ...got].filter((e, i, all) => all.findIndex((x) => x.id === e.id) === i);
      if (got.length) idleSince = Date.now();
      else if (opts.idleMs !== undefined && Date.now() - idleSince >= opts.idleMs) return;
      for (const e of got) {
        last = e.id;
        if (Object.keys(e.fields).length) yield e;
      }
    }
  }

  async function* batches(from: StreamPosition): AsyncGenerator<Batch> {
    let held: RedisEntry[] = [];
    for await (const e of entries(from)) {
      held.push(e);
      if (held.length < n) continue;
      const full = held;
      held = [];
      yield withToken(decode(full), full[full.length - 1]!.id);
    }
    if (held.length) yield withToken(decode(held), held[held.length - 1]!.id);
  }

  const source: RedisSource = {
    get acked() {
      return acked;
    },
    open: (from) => batches(from),
    commit,
    async close() {
      closed = true;
      reader.disconnect();
      if (owned) await cmd.quit().catch(() => cmd.disconnect());
      else cmd.off('error', onError);
    },
  };
  return source;
}

const DTYPE_CODES = ['f32', 'i32', 'bool', 'f64'] as const;

/**
 * A sample (record of tensors) as stream entry fields: per tensor a buffer of dtype code, rank,
 * u32 LE dims and little-endian data.
 *
 * @example
 * await redis.xadd('samples', '*', ...Object.entries(encodeEntry({ x, y })).flat());
 */
export function encodeEntry(sample: Batch): Record<string, Buffer> {
  const out = dict<Buffer>();
  for (const [name, t] of Object.entries(sample)) {
    const code = t.data instanceof Float64Array ? 3 : DTYPE_CODES.indexOf(t.dtype === 'f16' ? 'f32' : t.dtype);
    const head = Buffer.alloc(2 + 4 * t.shape.length);
    head[0] = code;
    head[1] = t.shape.length;
    t.shape.forEach((d, i) => head.writeUInt32LE(d, 2 + 4 * i));
    const body = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out[name] = Buffer.concat([head, body]);
  }
  return out;
}

/** The inverse of `encodeEntry`; a malformed field is a RangeError naming it. */
export function decodeEntry(fields: Readonly<Record<string, Buffer>>): Batch {
  const out = dict<HostTensor>();
  for (const [name, buf] of Object.entries(fields)) {
    const code = buf[0] ?? 255;
    const rank = buf[1] ?? 0;
    const kind = DTYPE_CODES[code];
    if (!kind || buf.length < 2 + 4 * rank) throw new RangeError(`decodeEntry: field '${name}' is not an encoded tensor`);
    const shape = Array.from({ length: rank }, (_, i) => buf.readUInt32LE(2 + 4 * i));
    const count = shape.reduce((a, b) => a * b, 1);
    const data = kind === 'f64' ? new Float64Array(count) : allocArray(kind, count);
    const body = buf.subarray(2 + 4 * rank);
    if (body.length !== data.byteLength) throw new RangeError(`decodeEntry: field '${name}' has ${body.length} data bytes, shape [${shape.join(', ')}] needs ${data.byteLength}`);
    new Uint8Array(data.buffer).set(body);
    out[name] = { dtype: kind === 'f64' ? 'f32' : kind, shape, data };
  }
  return out;
}
