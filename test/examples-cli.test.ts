// The examples' command lines: every example prints its usage for --help (exit 0), refuses a bad
// value by naming the flag (exit 2, no stack trace) and an unknown flag (exit 2). The parser
// itself (examples/cli.ts) is checked in-process on every kind of option. The smoke runs of the
// examples (examples, online-examples, mps and tn-examples tests) pass their flags after `--`.

import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { parseOptions, helpText, UsageError, type OptionSpec } from '../examples/cli.js';

interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runExample(file: string, args: readonly string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('error', reject);
    p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** example -> a flag and a bad value for it */
const EXAMPLES: Record<string, [string, string]> = {
  'examples/fashion-mnist.ts': ['--epochs', 'abc'],
  'examples/mps-fashion-mnist.ts': ['--bond', '2.5'],
  'examples/online-fashion-mnist.ts': ['--samples', 'abc'],
  'examples/online-surrogate.ts': ['--lr', 'abc'],
  'examples/parallel-training.ts': ['--steps', 'abc'],
  'examples/tn-compress-image.ts': ['--target', 'Infinity'],
  'examples/tn-compress-mlp.ts': ['--compressions', '10,x'],
};

const noStack = (r: Result) => expect(r.stderr + r.stdout).not.toMatch(/\n\s+at |Error:/);

describe('every example CLI', () => {
  for (const [file, [flag, bad]] of Object.entries(EXAMPLES)) {
    it(`${file}: --help, a bad ${flag}, an unknown flag`, async () => {
      const [help, badValue, unknown] = await Promise.all([
        runExample(file, ['--help']),
        runExample(file, ['--', flag, bad]),
        runExample(file, ['--no-such-flag', '1']),
      ]);
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/^usage: npx tsx examples\/[\w-]+\.ts \[options\]/);
      expect(help.stdout).toContain('--smoke');
      expect(help.stdout).toContain(flag);
      expect(badValue.status, badValue.stdout + badValue.stderr).toBe(2);
      expect(badValue.stderr).toContain(`${flag} must be`);
      expect(badValue.stderr).toContain(`'${bad}'`);
      noStack(badValue);
      expect(unknown.status).toBe(2);
      expect(unknown.stderr).toContain("'--no-such-flag'");
      noStack(unknown);
    }, 120_000);
  }
});

describe('examples/cli.ts', () => {
  const spec = {
    lr: { type: 'number', min: 0, default: 1e-3, help: 'learning rate' },
    epochs: { type: 'int', min: 1, max: 100, default: 10, help: 'epochs' },
    hidden: { type: 'ints', min: 1, default: [256, 256], help: 'layers' },
    policy: { type: 'enum', choices: ['block', 'drop-oldest'], default: 'block', help: 'policy' },
    samples: { type: 'int', min: 1, help: 'samples' },
    out: { type: 'string', help: 'out' },
    smoke: { type: 'flag', help: 'smoke' },
  } as const satisfies Record<string, OptionSpec>;

  it('converts values, keeps defaults, and takes flags after -- or without', () => {
    const a = parseOptions(spec, ['--', '--lr', '0.5', '--epochs=3', '--hidden', '64,32', '--smoke']);
    expect(a).toEqual({ lr: 0.5, epochs: 3, hidden: [64, 32], policy: 'block', samples: undefined, out: undefined, smoke: true });
    expect(parseOptions(spec, [])).toEqual({ lr: 1e-3, epochs: 10, hidden: [256, 256], policy: 'block', samples: undefined, out: undefined, smoke: false });
    expect(parseOptions(spec, ['--policy', 'drop-oldest', '--out', 'x'])).toMatchObject({ policy: 'drop-oldest', out: 'x' });
    expect(parseOptions(spec, ['--', '--help'])).toBe('help');
  });

  it('refuses bad values naming the flag: not numbers, NaN, infinities, out of range, non-integers, unknown choices and flags', () => {
    const bad: [string[], RegExp][] = [
      [['--lr', 'abc'], /^--lr must be a finite number ≥ 0, got 'abc'$/],
      [['--lr', 'NaN'], /^--lr must be/],
      [['--lr', 'Infinity'], /^--lr must be/],
      [['--lr=-1'], /^--lr must be/],
      [['--lr', '-1'], /--lr/],
      [['--lr', ''], /^--lr must be/],
      [['--epochs', 'abc'], /^--epochs must be an integer in \[1, 100\], got 'abc'$/],
      [['--epochs', '2.5'], /^--epochs must be an integer/],
      [['--epochs', '101'], /^--epochs must be/],
      [['--samples', 'abc'], /^--samples must be an integer ≥ 1, got 'abc'$/],
      [['--hidden', '64,,32'], /^--hidden must be comma-separated integers ≥ 1/],
      [['--hidden', '0'], /^--hidden must be/],
      [['--policy', 'drop'], /^--policy must be one of block, drop-oldest, got 'drop'$/],
      [['--bogus'], /'--bogus'/],
      [['stray'], /stray/],
      [['--lr'], /--lr/],
    ];
    for (const [argv, message] of bad) {
      let err: unknown;
      try {
        parseOptions(spec, argv);
      } catch (e) {
        err = e;
      }
      expect(err, argv.join(' ')).toBeInstanceOf(UsageError);
      expect((err as Error).message, argv.join(' ')).toMatch(message);
    }
  });

  it('lists every option with its kind and default in the help text', () => {
    const text = helpText({ command: 'npx tsx examples/x.ts', summary: 'Does x.' }, spec);
    for (const name of Object.keys(spec)) expect(text).toContain(`--${name}`);
    expect(text).toContain('--epochs INT in [1, 100]');
    expect(text).toContain('(default 256,256)');
    expect(text).toContain('block|drop-oldest');
  });
});
