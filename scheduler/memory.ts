// Liveness and memory planning: every intermediate buffer gets an offset in one arena, reusing
// the bytes of values that are dead (greedy by size, best fit among free gaps, as TFLite's
// arena planner). The plan states its peak; the executor allocates exactly that arena.
// Persistent buffers (inputs, params, state, constants) live outside the arena.

export interface Lifetime {
  readonly id: number;
  readonly bytes: number;
  /** step that writes the buffer */
  readonly first: number;
  /** last step that reads it (inclusive) */
  readonly last: number;
}

export interface MemoryPlan {
  /** arena byte offset per buffer id */
  readonly offsets: ReadonlyMap<number, number>;
  /** bytes of the arena: the planned peak of intermediate memory */
  readonly arenaBytes: number;
  /** the largest total of simultaneously live bytes: a lower bound on any arena */
  readonly liveBytesPeak: number;
}

export const ALIGN = 64;

const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

export function planMemory(lifetimes: readonly Lifetime[]): MemoryPlan {
  const order = [...lifetimes].sort((a, b) => b.bytes - a.bytes || a.first - b.first);
  const placed: { off: number; end: number; first: number; last: number }[] = [];
  const offsets = new Map<number, number>();
  let arena = 0;
  for (const l of order) {
    const size = align(l.bytes);
    const clash = placed
      .filter((p) => p.first <= l.last && l.first <= p.last)
      .sort((a, b) => a.off - b.off);
    // best fit: the smallest gap between overlapping buffers that holds this one
    let best = -1, bestGap = Infinity, cursor = 0;
    for (const p of clash) {
      const gap = p.off - cursor;
      if (gap >= size && gap < bestGap) { best = cursor; bestGap = gap; }
      cursor = Math.max(cursor, p.end);
    }
    const off = best >= 0 ? best : cursor;
    placed.push({ off, end: off + size, first: l.first, last: l.last });
    offsets.set(l.id, off);
    arena = Math.max(arena, off + size);
  }
  let live = 0;
  const steps = Math.max(0, ...lifetimes.map((l) => l.last + 1));
  for (let s = 0; s < steps; s++) {
    let sum = 0;
    for (const l of lifetimes) if (l.first <= s && s <= l.last) sum += align(l.bytes);
    live = Math.max(live, sum);
  }
  return { offsets, arenaBytes: arena, liveBytesPeak: live };
}
