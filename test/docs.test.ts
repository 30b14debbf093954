// The API reference builds from the doc comments without a warning (`npm run docs`: TypeDoc,
// typedoc.json, warnings are errors) and covers every package entry. TypeDoc takes 10-30 s, so
// this test has a generous timeout of its own.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const json = (file: string): unknown => JSON.parse(readFileSync(join(ROOT, file), 'utf8'));

describe('API reference', () => {
  it("typedoc.json documents every package entry (package.json's exports)", () => {
    const pkg = json('package.json') as { exports: Record<string, string | { import: string }> };
    const sources = Object.values(pkg.exports)
      .filter((t): t is { import: string } => typeof t !== 'string')
      .map((t) => t.import.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts'));
    const config = json('typedoc.json') as { entryPoints: string[]; treatWarningsAsErrors: boolean };
    expect([...config.entryPoints].sort()).toEqual(sources.sort());
    expect(config.treatWarningsAsErrors).toBe(true);
  });

  it('TypeDoc builds it with no warnings', { timeout: 240_000 }, () => {
    const out = mkdtempSync(join(tmpdir(), 'rheo-api-'));
    try {
      const bin = join(dirname(createRequire(import.meta.url).resolve('typedoc/package.json')), 'bin', 'typedoc');
      const r = spawnSync(process.execPath, [bin, '--out', out], { cwd: ROOT, encoding: 'utf8', timeout: 200_000 });
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/\[warning\]/);
      expect(existsSync(join(out, 'index.html'))).toBe(true);
      expect(existsSync(join(out, 'functions', 'node.saveModel.html'))).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
