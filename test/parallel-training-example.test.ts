// examples/parallel-training.ts in smoke mode (small sizes): the 2 × 2 pipeline × tensor run prints
// the same loss curve as the single-device run, step by step, and a row per worker device.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';

describe('parallel-training example', () => {
  it('prints the single-device loss curve within float32 tolerance, and a table of the 4 devices', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'examples/parallel-training.ts', '--', '--smoke', '--schedule', 'zb-h1'], { encoding: 'utf8', timeout: 240_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const steps = [...r.stdout.matchAll(/pipeline×tensor loss ([\d.]+)\s+single-device loss ([\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
    expect(steps.length).toBe(4);
    for (const [pipe, single] of steps) {
      expect(Number.isFinite(single)).toBe(true);
      expect(Math.abs(pipe - single)).toBeLessThan(1e-5 * (1 + single));
    }
    const max = /max loss difference: ([\d.e+-]+)/.exec(r.stdout);
    expect(max).not.toBeNull();
    expect(Number(max![1])).toBeLessThan(1e-5);
    const rows = r.stdout.split('\n').filter((l) => /^\s+\d\s+\d\s+\d\s+[\d.]+ KiB/.test(l));
    expect(rows).toHaveLength(4);
  }, 300_000);
});
