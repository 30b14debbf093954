// The examples' command lines: typed options (numbers and integers with ranges, choices, lists,
// strings, switches) over node:util's parseArgs, a --help text made from them, and one rule for
// mistakes: a bad value or an unknown flag prints a one-line message naming the flag and exits
// with code 2, never a stack trace. A `--` before the flags is accepted (`npm start -- --epochs 2`
// and `npx tsx examples/x.ts -- --epochs 2` both work).

import { parseArgs } from 'node:util';

interface Common {
  /** one line for --help */
  readonly help: string;
}
/** a finite number in [min, max] (inclusive; default unbounded) */
export interface NumberOption extends Common { readonly type: 'number'; readonly default?: number; readonly min?: number; readonly max?: number }
/** an integer in [min, max] */
export interface IntOption extends Common { readonly type: 'int'; readonly default?: number; readonly min?: number; readonly max?: number }
/** one of `choices` */
export interface EnumOption<C extends string = string> extends Common { readonly type: 'enum'; readonly choices: readonly C[]; readonly default?: C }
/** comma-separated integers, each in [min, max] */
export interface IntListOption extends Common { readonly type: 'ints'; readonly default?: readonly number[]; readonly min?: number; readonly max?: number }
export interface StringOption extends Common { readonly type: 'string'; readonly default?: string; readonly placeholder?: string }
/** a switch: present or not */
export interface FlagOption extends Common { readonly type: 'flag' }

export type OptionSpec = NumberOption | IntOption | EnumOption | IntListOption | StringOption | FlagOption;

type ValueOf<O> =
  O extends FlagOption ? boolean
  : O extends EnumOption<infer C> ? (O extends { readonly default: string } ? C : C | undefined)
  : O extends IntListOption ? (O extends { readonly default: readonly number[] } ? number[] : number[] | undefined)
  : O extends NumberOption | IntOption ? (O extends { readonly default: number } ? number : number | undefined)
  : O extends StringOption ? (O extends { readonly default: string } ? string : string | undefined)
  : never;

export type Values<S extends Record<string, OptionSpec>> = { -readonly [K in keyof S]: ValueOf<S[K]> };

export interface Usage {
  /** e.g. 'npx tsx examples/fashion-mnist.ts' */
  readonly command: string;
  /** what the program does, a few lines */
  readonly summary: string;
}

/** A usage error: the message names the flag. */
export class UsageError extends Error {}

/** `--backend auto|webgpu|cpu`, as every example that can train on WebGPU takes it. */
export const backendOption = {
  type: 'enum',
  choices: ['auto', 'webgpu', 'cpu'],
  default: 'auto',
  help: 'auto: WebGPU when an adapter is found, else the CPU',
} as const satisfies EnumOption;

function range(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return ` in [${min}, ${max}]`;
  if (min !== undefined) return min === 0 ? ' ≥ 0' : ` ≥ ${min}`;
  if (max !== undefined) return ` ≤ ${max}`;
  return '';
}

function describeValue(o: OptionSpec): string {
  switch (o.type) {
    case 'number': return `N${range(o.min, o.max)}`;
    case 'int': return `INT${range(o.min, o.max)}`;
    case 'enum': return o.choices.join('|');
    case 'ints': return `INT,INT,...`;
    case 'string': return o.placeholder ?? 'TEXT';
    case 'flag': return '';
  }
}

/** The --help text. */
export function helpText(usage: Usage, spec: Readonly<Record<string, OptionSpec>>): string {
  const rows = Object.entries(spec).map(([name, o]) => {
    const v = describeValue(o);
    const left = `  --${name}${v ? ` ${v}` : ''}`;
    const def = 'default' in o && o.default !== undefined ? ` (default ${Array.isArray(o.default) ? o.default.join(',') : String(o.default)})` : '';
    return [left, `${o.help}${def}`] as const;
  });
  rows.push(['  --help', 'print this and exit']);
  const width = Math.min(40, Math.max(...rows.map(([l]) => l.length)) + 2);
  const lines = rows.map(([l, r]) => (l.length + 2 > width ? `${l}\n${' '.repeat(width)}${r}` : `${l.padEnd(width)}${r}`));
  return `usage: ${usage.command} [options]\n\n${usage.summary.trim()}\n\noptions:\n${lines.join('\n')}\n`;
}

function convert(name: string, o: OptionSpec, raw: string): unknown {
  const bad = (what: string): never => {
    throw new UsageError(`--${name} must be ${what}, got '${raw}'`);
  };
  const num = (s: string, int: boolean, min?: number, max?: number): number => {
    const t = s.trim();
    const v = t === '' ? NaN : Number(t);
    const what = `${int ? 'an integer' : 'a finite number'}${range(min, max)}`;
    if (!Number.isFinite(v) || (int && !Number.isInteger(v))) return bad(what);
    if ((min !== undefined && v < min) || (max !== undefined && v > max)) return bad(what);
    return v;
  };
  switch (o.type) {
    case 'number': return num(raw, false, o.min, o.max);
    case 'int': return num(raw, true, o.min, o.max);
    case 'enum': return o.choices.includes(raw) ? raw : bad(`one of ${o.choices.join(', ')}`);
    case 'ints': {
      const parts = raw.split(',');
      const what = `comma-separated integers${range(o.min, o.max)}`;
      return parts.map((p) => {
        try {
          return num(p, true, o.min, o.max);
        } catch {
          return bad(what);
        }
      });
    }
    case 'string': return raw;
    case 'flag': return true;
  }
}

/** Parses `argv` by `spec`; throws a UsageError (flag named) or returns 'help'. */
export function parseOptions<const S extends Record<string, OptionSpec>>(spec: S, argv: readonly string[]): Values<S> | 'help' {
  // a `--` is how npm passes flags through; here it is only a separator and is dropped
  const args = argv.filter((a) => a !== '--');
  if (args.includes('--help') || args.includes('-h')) return 'help';
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [name, o] of Object.entries(spec)) options[name] = { type: o.type === 'flag' ? 'boolean' : 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(msg);
  }
  const out: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(spec)) {
    const raw = parsed.values[name];
    if (o.type === 'flag') out[name] = raw === true;
    else if (typeof raw === 'string') out[name] = convert(name, o, raw);
    else out[name] = 'default' in o && o.default !== undefined ? (Array.isArray(o.default) ? [...o.default] : o.default) : undefined;
  }
  return out as Values<S>;
}

/**
 * The options of this process's command line. `--help` prints the help text and exits 0; a bad
 * value or an unknown flag prints its message and exits 2.
 *
 * @example
 * const args = cli({ command: 'npx tsx examples/x.ts', summary: 'Trains x.' }, {
 *   epochs: { type: 'int', min: 1, default: 10, help: 'passes over the data' },
 *   smoke: { type: 'flag', help: 'a short run for the tests' },
 * });
 */
export function cli<const S extends Record<string, OptionSpec>>(usage: Usage, spec: S, argv: readonly string[] = process.argv.slice(2)): Values<S> {
  let v: Values<S> | 'help';
  try {
    v = parseOptions(spec, argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${e.message}\n(--help lists the options)\n`);
    process.exit(2);
  }
  if (v === 'help') {
    process.stdout.write(helpText(usage, spec));
    process.exit(0);
  }
  return v;
}
