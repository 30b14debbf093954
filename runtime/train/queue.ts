// The trainer's bounded queue between a data source and the training step, with the policy for
// an item that arrives when it is full and counters that always satisfy
// received = taken + dropped + length. It holds items only; pausing a producer is the caller's job.

/**
 * What happens when data arrives faster than training: `block` pauses the producer (a pull source
 * is read only when there is room; a push source waits while the trainer steps inside its call),
 * `drop-oldest` evicts the oldest queued item, `drop-newest` refuses the arriving one.
 */
export type BackpressurePolicy = 'block' | 'drop-oldest' | 'drop-newest';

export const POLICIES: readonly BackpressurePolicy[] = ['block', 'drop-oldest', 'drop-newest'];

export class BoundedQueue<T> {
  received = 0;
  taken = 0;
  dropped = 0;
  private items: T[] = [];

  constructor(
    readonly limit: number,
    readonly policy: BackpressurePolicy,
  ) {
    if (!(Number.isInteger(limit) && limit >= 1)) throw new RangeError(`queue limit must be a positive integer, got ${limit}`);
    if (!POLICIES.includes(policy)) throw new RangeError(`backpressure policy must be one of ${POLICIES.join(', ')}, got ${JSON.stringify(policy)}`);
  }

  get length(): number {
    return this.items.length;
  }

  get full(): boolean {
    return this.items.length >= this.limit;
  }

  /**
   * Adds an item; returns the item dropped to make room (or the refused item itself), if any.
   * Under `block` a full queue refuses with a RangeError: the caller must have made room first.
   */
  offer(item: T): T | undefined {
    this.received++;
    if (!this.full) {
      this.items.push(item);
      return undefined;
    }
    if (this.policy === 'block') {
      this.received--;
      throw new RangeError(`queue: offer to a full queue (limit ${this.limit}) under 'block'`);
    }
    this.dropped++;
    if (this.policy === 'drop-newest') return item;
    this.items.push(item);
    return this.items.shift();
  }

  take(): T | undefined {
    const item = this.items.shift();
    if (item !== undefined) this.taken++;
    return item;
  }

  peek(): T | undefined {
    return this.items[0];
  }
}
