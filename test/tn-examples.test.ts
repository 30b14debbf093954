// The tensor-network examples in --smoke mode: the image is compressed within its target RSE and
// both PNGs are written; the MLP's hidden layer is replaced by a searched network and fine-tuned.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function runExample(file: string, args: string[] = []): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, '--', '--smoke', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${file} exited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

describe('tensor-network examples run in smoke mode', () => {
  it('tn-compress-image meets its target RSE and writes the original and the reconstruction', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rheo-tn-image-'));
    try {
      const out = runExample('examples/tn-compress-image.ts', ['--out', dir]);
      expect(out).toMatch(/RSE [\d.]+ \(target [\d.]+, met\)/);
      expect(existsSync(join(dir, 'tn-image-original.png'))).toBe(true);
      expect(existsSync(join(dir, 'tn-image-reconstruction.png'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tn-compress-mlp replaces the hidden layer by a smaller network and fine-tunes it', () => {
    const out = runExample('examples/tn-compress-mlp.ts');
    const m = /^\s+([\d.]+)×\s+(\d+)\s+\[[\d, ]+\]\s+[\d.]+\s+[\d.]+% → ([\d.]+)%/m.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(10);
    expect(Number(m![3])).toBeGreaterThan(10); // above chance after fine-tuning
  });
});
