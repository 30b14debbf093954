// Every example has a --smoke mode; running them here keeps them from rotting.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';

function runExample(file: string, args: string[] = []): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, '--smoke', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${file} exited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

describe('examples run in smoke mode', () => {
  it('fashion-mnist trains and reports a test accuracy well above chance', () => {
    const out = runExample('examples/fashion-mnist.ts', ['--quiet']);
    const m = /test accuracy: ([\d.]+)%/.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(40);
  });
});
