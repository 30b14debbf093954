// Memory budgets as users write them: '256 MB', '1.5 GiB' or a number of bytes. The allocators
// whose measured peaks are checked against plans are the devices' (runtime/device.ts).

const SCALE: Readonly<Record<string, number>> = {
  '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, k: 1e3, m: 1e6, g: 1e9, t: 1e12,
  kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3, ti: 1024 ** 4,
};

/**
 * '256 MB', '1.5 GiB', '4096', 1e9 -> bytes. Units B, KB, MB, GB, TB (powers of 1000) and KiB,
 * MiB, GiB, TiB (powers of 1024); anything else, NaN, infinities and negative sizes are a RangeError.
 */
export function parseBytes(v: number | string): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`memory budget ${v} is not a number of bytes`);
    return Math.floor(v);
  }
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)(?:e(\d+))?\s*([a-z]*)\s*$/i.exec(String(v));
  if (!m) throw new RangeError(`memory budget '${v}' is not a number of bytes such as '256 MB' or '1.5 GiB'`);
  const scale = SCALE[m[3]!.toLowerCase()];
  if (scale === undefined) throw new RangeError(`memory budget '${v}' has an unknown unit '${m[3]}' (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`);
  return Math.floor(Number(m[1]) * 10 ** Number(m[2] ?? 0) * scale);
}
