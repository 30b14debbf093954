// No test, example, bench or library module reads a file outside the repository by a path
// written into it: the only absolute paths in the sources are the system programs and datasets
// Debian installs (listed below, each with its fallback), so `npm test` passes on a machine that
// has nothing beside the repository.

import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Absolute paths the sources may name, and why each is safe without it. */
const ALLOWED = new Map([
  ['/usr/bin/chromium', "the browser test's Chromium (installed by .ci/run; the test skips without it unless CI is set)"],
  ['/usr/share/datasets/fashion-mnist/', "Debian's dataset-fashion-mnist (the loader falls back to the subset in data/)"],
]);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'node_modules' || name.startsWith('.') ? [] : sources(p);
    return /\.(ts|mts|mjs|js)$/.test(name) ? [p] : [];
  });
}

describe('the repository is self-contained', () => {
  it('no source names an absolute path outside the repository except the system files it falls back from', () => {
    const found: string[] = [];
    for (const dir of ['test', 'bench', 'examples', 'tools', 'runtime', 'graphs', 'scheduler', 'ops']) {
      for (const file of sources(dir)) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(/['"`](\/(?:work|home|root|mnt|usr|opt|var|srv|data|shared)\/[^'"`]*)['"`]/g)) {
          if (!ALLOWED.has(m[1]!)) found.push(`${file}: ${m[1]}`);
        }
      }
    }
    expect(found).toEqual([]);
  });
});
