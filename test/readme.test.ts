// The README's code runs: each ```ts block is a file under examples/readme/ (named by the HTML
// comment above the block) and must equal it; those files are type-checked with the project
// (tsconfig's include, `import ... from 'rheo'` resolved by tsconfig's paths) and run here with
// tsx, each checked for the output the README promises.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const DIR = 'examples/readme';

interface Block {
  readonly file: string | undefined;
  readonly code: string;
  readonly line: number;
}

/** Fenced code blocks in TypeScript or JavaScript, with the file named in the comment line above. */
function codeBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    let j = i + 1;
    while (j < lines.length && lines[j] !== '```') j++;
    if (['ts', 'typescript', 'js', 'javascript', 'mjs', 'tsx'].includes(open[1]!)) {
      const marker = /^<!-- (\S+) -->$/.exec(lines[i - 1] ?? '');
      blocks.push({ file: marker?.[1], code: lines.slice(i + 1, j).join('\n') + '\n', line: i + 1 });
    }
    i = j;
  }
  return blocks;
}

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const blocks = codeBlocks(readme);
const files = readdirSync(join(ROOT, DIR)).filter((f) => f.endsWith('.ts')).sort().map((f) => `${DIR}/${f}`);

function run(file: string): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${file} exited with ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const numbers = (s: string) => [...s.matchAll(/-?\d+(?:\.\d+)?(?:e[-+]?\d+)?/gi)].map((m) => Number(m[0]));

/** What each README program must print. */
const EXPECT: Record<string, (out: string) => void> = {
  '01-first-graph.ts': (out) => {
    const losses = [...out.matchAll(/^step (\d+): loss ([\d.]+)$/gm)].map((m) => Number(m[2]));
    expect(losses, out).toHaveLength(4);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[3]!, out).toBeLessThan(losses[0]!);
  },
  '02-webgpu.ts': (out) => {
    expect(out).toMatch(/requested: 'auto'/);
    expect(out).toMatch(/backend: '(webgpu|cpu)'/);
    const m = /^loss (\S+), w = \[(.*)\]$/m.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(1e-4);
    expect(numbers(m![2]!)).toEqual([1, 2, 3]);
  },
  '03-reactive.ts': (out) => {
    const rows = [...out.matchAll(/\[(.*)\]/g)].map((m) => numbers(m[1]!));
    expect(rows, out).toEqual([[2, 3, 4], [3, 5, 7]]);
  },
  '04-save-load.ts': (out) => {
    expect(out).toMatch(/^saved to out\/mlp-model$/m);
    expect(out).toMatch(/^loaded predictions equal the trained model's: true$/m);
    expect(out).toMatch(/^total params\s+203,530$/m);
  },
};

describe('README code', () => {
  it('every TypeScript block names its file in examples/readme/ and equals it', () => {
    expect(blocks.length).toBeGreaterThan(0);
    for (const b of blocks) {
      expect(b.file, `README.md:${b.line}: a code block without <!-- ${DIR}/<name>.ts --> above it`).toBeDefined();
      expect(files, `README.md:${b.line}: ${b.file} is not a file in ${DIR}/`).toContain(b.file);
      expect(b.code, `README.md:${b.line} differs from ${b.file}`).toBe(readFileSync(join(ROOT, b.file!), 'utf8'));
    }
  });

  it(`every file in ${DIR}/ is in the README, has an expected output, and is type-checked with the project`, () => {
    expect(blocks.map((b) => b.file).sort()).toEqual(files);
    for (const f of files) expect(EXPECT, `no expected output for ${f}`).toHaveProperty([f.slice(DIR.length + 1)]);
    const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { include: string[]; compilerOptions: { paths?: Record<string, string[]> } };
    expect(tsconfig.include.some((p) => DIR === p || DIR.startsWith(`${p}/`))).toBe(true);
  });

  it("tsconfig's paths map every package entry ('rheo', 'rheo/node', ...) to the source of what it exports", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | { import: string }> };
    const paths = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { paths?: Record<string, string[]> } }).compilerOptions.paths ?? {};
    const expected: Record<string, string[]> = {};
    for (const [sub, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue; // ./package.json
      expected[`rheo${sub.slice(1)}`] = [target.import.replace(/^\.\/dist\//, './').replace(/\.js$/, '.ts')];
    }
    expect(paths).toEqual(expected);
  });

  it.each(files)('%s runs and prints what the README says', (file) => {
    EXPECT[file.slice(DIR.length + 1)]!(run(file));
  });
});
