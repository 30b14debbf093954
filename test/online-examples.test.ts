// The online-training examples in --smoke mode, so they do not rot.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function runExample(file: string, args: string[] = []): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, '--', '--smoke', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${file} exited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

describe('online examples run in smoke mode', () => {
  it('online-fashion-mnist streams, evaluates, serves a live model, and plots', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rheo-online-example-'));
    try {
      const plot = join(dir, 'plot.svg');
      const out = runExample('examples/online-fashion-mnist.ts', ['--quiet', '--plot', plot]);
      const m = /test accuracy: ([\d.]+)%/.exec(out);
      expect(m, out).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(40);
      expect(out).toMatch(/live model v\d+ \(step \d+\)/);
      expect(existsSync(plot) && readFileSync(plot, 'utf8').startsWith('<svg')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('online-surrogate prints a held-out error that falls as data streams in', () => {
    const out = runExample('examples/online-surrogate.ts');
    const errors = [...out.matchAll(/relative L2 error ([\d.]+)%  \(/g)].map((m) => Number(m[1]));
    expect(errors.length, out).toBeGreaterThanOrEqual(3);
    expect(errors[errors.length - 1]!).toBeLessThan(errors[0]!);
    const baseline = Number(/baseline u\(T\) = u\(0\): relative L2 error ([\d.]+)%/.exec(out)![1]);
    expect(errors[errors.length - 1]!).toBeLessThan(baseline);
  });
});
