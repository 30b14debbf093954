// Step progress for training loops: a cli-progress bar with payload fields (loss, throughput,
// ...) on a terminal, plain periodic log lines when stdout is not a TTY (CI logs, files), and
// nothing at all with `quiet`. It formats and throttles output only; computing the fields
// (rates, averages) is the caller's job.

import { MultiBar, type SingleBar } from 'cli-progress';

/** Payload values shown after the bar as `name=value`; numbers are shown with about 4 significant digits. */
export type ProgressFields = Readonly<Record<string, number | string>>;

export interface ProgressOptions {
  /** Number of steps that make 100%. */
  readonly total: number;
  /** Shown before the bar / at the start of each log line, e.g. `epoch 3/10`. */
  readonly label?: string;
  /** Print nothing (tests). */
  readonly quiet?: boolean;
  /** Where to write (default process.stdout). */
  readonly stream?: NodeJS.WriteStream;
  /** Log lines even on a terminal (e.g. when the output is also captured). */
  readonly plain?: boolean;
  /** In log-line mode, the least time between two lines (default 2000 ms; 0 logs every update). */
  readonly logIntervalMs?: number;
}

export interface Progress {
  /** Sets the step count (absolute) and merges `fields` into the shown payload. */
  update(step: number, fields?: ProgressFields): void;
  /** Advances by `delta` steps (default 1). */
  increment(delta?: number, fields?: ProgressFields): void;
  /** Prints a line without breaking the bar (above it on a terminal). */
  log(message: string): void;
  /** Finishes: redraws the final state on a terminal, prints a last line otherwise. Idempotent. */
  stop(): void;
}

/**
 * @example
 * const bar = createProgress({ total: steps, label: `epoch ${epoch}` });
 * for (let s = 1; s <= steps; s++) bar.update(s, { loss, 'img/s': rate });
 * bar.stop();
 */
export function createProgress(opts: ProgressOptions): Progress {
  if (opts.quiet) return { update() {}, increment() {}, log() {}, stop() {} };
  const stream = opts.stream ?? process.stdout;
  // cli-progress draws nothing on a stream that is not a TTY, so the bar is only used on one.
  return stream.isTTY === true && !opts.plain ? barProgress(opts, stream) : lineProgress(opts, stream);
}

/** `loss=0.5321 img/s=12346`: short and of steady width, so a live bar does not jitter. */
export function formatFields(fields: ProgressFields): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? formatNumber(v) : v}`)
    .join(' ');
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v) || (Number.isInteger(v) && Math.abs(v) < 1e6)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(3);
  return a >= 1000 ? v.toFixed(0) : v.toPrecision(4);
}

function barProgress(opts: ProgressOptions, stream: NodeJS.WriteStream): Progress {
  const label = opts.label ? `${opts.label} ` : '';
  // MultiBar (with one bar) rather than SingleBar because only MultiBar can print log lines
  // above a live bar without the two overwriting each other.
  const multi = new MultiBar({
    stream,
    format: `${label}[{bar}] {percentage}% {value}/{total} | {fields} | {duration_formatted}<{eta_formatted}`,
    barsize: 20,
    hideCursor: true,
    clearOnComplete: false,
    autopadding: true,
    etaBuffer: 50,
  });
  const fields: Record<string, number | string> = {};
  const bar: SingleBar = multi.create(opts.total, 0, { fields: '' });
  let stopped = false;
  const payload = (f?: ProgressFields) => {
    if (f) Object.assign(fields, f);
    return { fields: formatFields(fields) };
  };
  return {
    update(step, f) {
      if (!stopped) bar.update(step, payload(f));
    },
    increment(delta = 1, f) {
      if (!stopped) bar.increment(delta, payload(f));
    },
    log(message) {
      if (stopped) stream.write(`${message}\n`);
      else multi.log(`${message}\n`);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
    },
  };
}

function lineProgress(opts: ProgressOptions, stream: NodeJS.WriteStream): Progress {
  const interval = opts.logIntervalMs ?? 2000;
  const label = opts.label ? `${opts.label} ` : '';
  const start = Date.now();
  const fields: Record<string, number | string> = {};
  let step = 0;
  let lastLine = -Infinity;
  let lastLoggedStep = -1;
  let stopped = false;
  const write = () => {
    const pct = opts.total > 0 ? Math.floor((100 * step) / opts.total) : 100;
    const secs = ((Date.now() - start) / 1000).toFixed(1);
    const f = formatFields(fields);
    stream.write(`${label}${step}/${opts.total} (${pct}%)${f ? ` ${f}` : ''} ${secs}s\n`);
    lastLine = Date.now();
    lastLoggedStep = step;
  };
  const maybeWrite = () => {
    if (Date.now() - lastLine >= interval) write();
  };
  return {
    update(s, f) {
      if (stopped) return;
      step = s;
      if (f) Object.assign(fields, f);
      maybeWrite();
    },
    increment(delta = 1, f) {
      if (stopped) return;
      step += delta;
      if (f) Object.assign(fields, f);
      maybeWrite();
    },
    log(message) {
      stream.write(`${message}\n`);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (lastLoggedStep !== step) write();
    },
  };
}
