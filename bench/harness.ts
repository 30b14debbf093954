/**
 * Shared helpers for every benchmark in bench/.
 *
 * Output contract (see DESIGN.md, "Benchmarks"): a bench prints exactly one JSON object per line
 * on stdout, with the keys
 *
 *   {"bench", "case", "metric", "value", "unit", "peer", "peer_value", "ratio"}
 *
 * plus an optional "note". Everything else a bench wants to say (progress, debug output) goes to
 * stderr, so that stdout stays machine-readable.
 *
 * `ratio` is always "ours relative to the peer, lower is better":
 *   - time metrics (unit "ms"):        ratio = our_ms / peer_ms
 *   - throughput metrics (GFLOP/s...): ratio = peer_rate / our_rate
 * For the same amount of work per call the two are the same number (our_time / peer_time), so a
 * ratio of 0.5 always means "we take half the peer's time" whatever the metric's unit.
 *
 * Flags understood by every bench:
 *   --quick          fewer warm-up and timed runs; keeps each whole bench under a minute on a
 *                    2-core machine
 *   --peers=a,b      only run these peers (names as in bench/peers.ts); --peers= runs none
 *   --debug          extra diagnostics on stderr (never on stdout)
 */
import { performance } from 'node:perf_hooks';

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

const argv = process.argv.slice(2);

/** True when the bench was started with `--quick`. */
export const QUICK: boolean = argv.includes('--quick');

/** True when the bench was started with `--debug`. */
export const DEBUG: boolean = argv.includes('--debug');

/**
 * The peer names given with `--peers=a,b,c`, or `undefined` when the flag is absent (meaning
 * "all peers"). `--peers=` (empty) yields an empty list: run no peer.
 */
export function peerFilter(): string[] | undefined {
  const arg = argv.find((a) => a.startsWith('--peers='));
  if (arg === undefined) return undefined;
  return arg
    .slice('--peers='.length)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Writes a diagnostic line to stderr when `--debug` is set. */
export function debug(...parts: unknown[]): void {
  if (DEBUG) console.error('[debug]', ...parts);
}

/** Writes a progress line to stderr (always; stdout is reserved for JSON records). */
export function progress(...parts: unknown[]): void {
  console.error(...parts);
}

// ---------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------

export interface MeasureOptions {
  /**
   * Untimed calls before timing starts (JIT compilation, caches, allocator warm-up). Cut short,
   * after at least one call, once warm-up has taken half of `maxTimeMs`.
   */
  warmup?: number;
  /** Target number of timed calls. */
  runs?: number;
  /** Keep timing (beyond `runs`) until at least this much timed wall-clock has passed. */
  minTimeMs?: number;
  /**
   * Stop early once this much timed wall-clock has passed and at least `minRuns` calls were
   * timed. Keeps very slow cases (e.g. a 1024³ matmul in plain JS) bounded.
   */
  maxTimeMs?: number;
  /** Lower bound on timed calls when `maxTimeMs` cuts a measurement short. */
  minRuns?: number;
}

export interface Measurement {
  /** Median of the timed samples, in milliseconds. */
  medianMs: number;
  /** Every timed sample, in call order, in milliseconds. */
  samplesMs: number[];
  /** Fastest sample, in milliseconds. */
  minMs: number;
}

/** Default options: a short, bounded measurement with `--quick`, a longer one otherwise. */
export function defaultMeasureOptions(): Required<MeasureOptions> {
  return QUICK
    ? { warmup: 2, runs: 5, minTimeMs: 0, maxTimeMs: 3_000, minRuns: 3 }
    : { warmup: 5, runs: 15, minTimeMs: 1_000, maxTimeMs: 20_000, minRuns: 5 };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Times `fn` (sync or async; an async fn is awaited, so it must resolve only once its result has
 * been read back) and returns the median and all samples in milliseconds.
 */
export async function measure(
  fn: () => unknown | Promise<unknown>,
  options: MeasureOptions = {},
): Promise<Measurement> {
  const o = { ...defaultMeasureOptions(), ...options };
  // Warm-up: a case so slow that warm-up alone would eat half the time budget gets one call.
  const warmStart = performance.now();
  for (let i = 0; i < o.warmup; i++) {
    await fn();
    if (performance.now() - warmStart >= o.maxTimeMs / 2) break;
  }
  const samples: number[] = [];
  const start = performance.now();
  for (;;) {
    const t0 = performance.now();
    await fn();
    const t1 = performance.now();
    samples.push(t1 - t0);
    const elapsed = t1 - start;
    const n = samples.length;
    if (n >= Math.max(o.minRuns, 1) && elapsed >= o.maxTimeMs) break;
    if (n >= o.runs && elapsed >= o.minTimeMs) break;
  }
  return { medianMs: median(samples), samplesMs: samples, minMs: Math.min(...samples) };
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/** One output line. `peer` is null for a record that compares against nobody. */
export interface BenchRecord {
  bench: string;
  case: string;
  metric: string;
  value: number | null;
  unit: string;
  peer: string | null;
  peer_value: number | null;
  /** ours / peer for times, peer / ours for throughputs: lower is better either way. */
  ratio: number | null;
  note?: string;
}

const round = (x: number | null): number | null =>
  x === null || !Number.isFinite(x) ? null : Number(x.toPrecision(6));

/** Prints one record as one JSON line on stdout, keys in the documented order. */
export function emit(record: BenchRecord): void {
  const out: Record<string, unknown> = {
    bench: record.bench,
    case: record.case,
    metric: record.metric,
    value: round(record.value),
    unit: record.unit,
    peer: record.peer,
    peer_value: round(record.peer_value),
    ratio: round(record.ratio),
  };
  if (record.note !== undefined) out.note = record.note;
  process.stdout.write(JSON.stringify(out) + '\n');
}

/**
 * Emits a record saying that `peer` could not run this case, and why. `value` is our figure (or
 * null if we did not run either); `peer_value` and `ratio` are null.
 */
export function emitPeerSkipped(
  base: { bench: string; case: string; metric: string; unit: string; value: number | null },
  peer: string,
  why: string,
): void {
  emit({ ...base, peer, peer_value: null, ratio: null, note: why });
}

// ---------------------------------------------------------------------------------------------
// Metrics: how a median time becomes a reported value
// ---------------------------------------------------------------------------------------------

export interface MetricSpec {
  /** The "metric" field, e.g. "step_time" or "throughput". */
  name: string;
  /** The "unit" field, e.g. "ms" or "GFLOP/s". */
  unit: string;
  /** "time": value = median ms, lower is better. "rate": value = work / time, higher is better. */
  kind: 'time' | 'rate';
  /** For "rate": the work one call does, in `unit` × seconds (e.g. GFLOP for GFLOP/s). */
  workPerCall?: number;
}

/** A time metric: the value is the median call time in ms. */
export function timeMetric(name = 'time'): MetricSpec {
  return { name, unit: 'ms', kind: 'time' };
}

/** A GFLOP/s metric for a call that does `flops` floating-point operations. */
export function gflopsMetric(flops: number, name = 'throughput'): MetricSpec {
  return { name, unit: 'GFLOP/s', kind: 'rate', workPerCall: flops / 1e9 };
}

/** The reported value of a metric for a median call time of `ms`. */
export function metricValue(metric: MetricSpec, ms: number): number {
  if (metric.kind === 'time') return ms;
  return (metric.workPerCall ?? NaN) / (ms / 1e3);
}

/**
 * ours relative to peer, lower is better: our_ms / peer_ms for times; peer_rate / our_rate for
 * rates (which equals our_ms / peer_ms when both do the same work per call).
 */
export function metricRatio(metric: MetricSpec, ours: number, peer: number): number {
  return metric.kind === 'time' ? ours / peer : peer / ours;
}

// ---------------------------------------------------------------------------------------------
// Running a case against the peers
// ---------------------------------------------------------------------------------------------

/**
 * A timed unit of work. It must read its result back to JavaScript before resolving. It may carry
 * a `dispose` that frees what the case allocated (called once timing is done).
 */
export type CaseFn<T = unknown> = (() => Promise<T> | T) & { dispose?: () => void };

/** A string in place of a case means "cannot run this case", and says why. */
export type CaseOrSkip<T = unknown> = CaseFn<T> | string;

/** The part of a peer (bench/peers.ts) that `runAgainstPeers` needs. */
export interface PeerLike {
  name: string;
  setup(): Promise<void>;
}

const errorText = (e: unknown): string =>
  e instanceof Error ? `${e.name}: ${e.message}` : String(e);

/** Runs `make()` and then times the case it returns; errors become a skip reason. */
async function timeCase(
  make: () => Promise<CaseOrSkip> | CaseOrSkip,
  options: MeasureOptions | undefined,
): Promise<Measurement | string> {
  let fn: CaseOrSkip;
  try {
    fn = await make();
  } catch (e) {
    return `setup failed: ${errorText(e)}`;
  }
  if (typeof fn === 'string') return fn;
  try {
    return await measure(fn, options);
  } catch (e) {
    return `run failed: ${errorText(e)}`;
  } finally {
    try {
      fn.dispose?.();
    } catch {
      /* a failing cleanup must not hide the measurement */
    }
  }
}

const setupDone = new WeakMap<object, Promise<void>>();

/** Calls `peer.setup()` once per peer object per process, whatever the number of cases. */
export function ensureSetup(peer: PeerLike): Promise<void> {
  let p = setupDone.get(peer);
  if (p === undefined) {
    p = peer.setup();
    setupDone.set(peer, p);
  }
  return p;
}

export interface RunOptions extends MeasureOptions {
  /** Added to the "note" field of every record of this case (e.g. which backend we used). */
  note?: string;
}

export interface RunResult {
  ours: Measurement | string;
  peers: Record<string, Measurement | string>;
}

/**
 * Measures our implementation of a case, then each peer's, and emits one record per peer (or one
 * record with `peer: null` when there are no peers). Peers are measured one after another, each
 * case disposed before the next starts, so they do not compete for memory or cores.
 *
 * @param ours     our timed unit; or `caseFactory(make)`, where `make` builds it (its errors are
 *                 reported like a skip); or a string saying why we cannot run the case (then
 *                 "value" is null and the peers are still measured)
 * @param peers    the peers to compare with (e.g. `selectedPeers()` from bench/peers.ts)
 * @param peerCase how to get a peer's implementation of this case, e.g. `(p) => p.matmul(1024)`
 * @param options  measurement options (defaults: `defaultMeasureOptions()`) and a note
 *
 * Example:
 *   await runAgainstPeers('matmul', 'f32_n1024', gflopsMetric(2 * 1024 ** 3),
 *                         ourMatmul1024, selectedPeers(), (p) => p.matmul(1024));
 */
export async function runAgainstPeers<P extends PeerLike>(
  bench: string,
  caseName: string,
  metric: MetricSpec,
  ours: CaseOrSkip | CaseFactory,
  peers: readonly P[],
  peerCase: (peer: P) => Promise<CaseOrSkip> | CaseOrSkip,
  options: RunOptions = {},
): Promise<RunResult> {
  const { note, ...measureOptions } = options;
  const [r] = await runCasesAgainstPeers(bench, [{ case: caseName, ours, note }], metric, peers, peerCase, measureOptions);
  return r!;
}

/** One of our implementations of a problem (e.g. on one backend), for `runCasesAgainstPeers`. */
export interface OurCase {
  /** the "case" field of its records */
  case: string;
  ours: CaseOrSkip | CaseFactory;
  /** the "note" field of its records (e.g. which backend) */
  note?: string;
}

/**
 * Like `runAgainstPeers` for several implementations of ours (e.g. one per backend) of the same
 * problem: each is measured, each peer is measured once, and every (ours, peer) pair is one record.
 */
export async function runCasesAgainstPeers<P extends PeerLike>(
  bench: string,
  cases: readonly OurCase[],
  metric: MetricSpec,
  peers: readonly P[],
  peerCase: (peer: P) => Promise<CaseOrSkip> | CaseOrSkip,
  options: MeasureOptions = {},
): Promise<RunResult[]> {
  const mine = [];
  for (const c of cases) {
    // `ours` is the timed function itself, unless it was wrapped with `caseFactory`.
    const result = await timeCase(() => (isFactory(c.ours) ? c.ours() : c.ours), options);
    const value = typeof result === 'string' ? null : metricValue(metric, result.medianMs);
    const notes: string[] = c.note !== undefined ? [c.note] : [];
    if (typeof result === 'string') notes.push(`ours: ${result}`);
    progress(`${bench}/${c.case}: ours ${typeof result === 'string' ? result : fmt(value, metric.unit)}`);
    mine.push({ c, result, value, notes, base: { bench, case: c.case, metric: metric.name, unit: metric.unit, value } });
  }
  const results: RunResult[] = mine.map((m) => ({ ours: m.result, peers: {} }));
  if (peers.length === 0) {
    for (const m of mine) emit({ ...m.base, peer: null, peer_value: null, ratio: null, ...noteField(m.notes) });
    return results;
  }
  for (const peer of peers) {
    let r: Measurement | string;
    try {
      await ensureSetup(peer);
      r = await timeCase(() => peerCase(peer), options);
    } catch (e) {
      r = `setup failed: ${errorText(e)}`;
    }
    results.forEach((x) => (x.peers[peer.name] = r));
    if (typeof r === 'string') {
      progress(`${bench}: ${peer.name} skipped (${r})`);
      for (const m of mine) emitPeerSkipped(m.base, peer.name, [...m.notes, r].join('; '));
      continue;
    }
    const peerValue = metricValue(metric, r.medianMs);
    progress(`${bench}: ${peer.name} ${fmt(peerValue, metric.unit)}`);
    for (const m of mine) {
      emit({
        ...m.base,
        peer: peer.name,
        peer_value: peerValue,
        ratio: m.value === null ? null : metricRatio(metric, m.value, peerValue),
        ...noteField(m.notes),
      });
    }
  }
  return results;
}

const FACTORY: unique symbol = Symbol('case factory');

/** A function that builds our case; made with `caseFactory`. */
export type CaseFactory = (() => Promise<CaseOrSkip>) & { readonly [FACTORY]: true };

/**
 * Marks `make` as a factory to be called (once, inside the measured run's error handling) to
 * obtain our case, instead of being timed itself: `runAgainstPeers(..., caseFactory(async () =>
 * { const step = await compileStep(); return () => step.run(); }), ...)`.
 */
export function caseFactory(make: () => Promise<CaseOrSkip> | CaseOrSkip): CaseFactory {
  return Object.assign(async () => make(), { [FACTORY]: true as const });
}

function isFactory(x: CaseOrSkip | CaseFactory): x is CaseFactory {
  return typeof x === 'function' && (x as Partial<CaseFactory>)[FACTORY] === true;
}

function noteField(notes: string[]): { note?: string } {
  return notes.length > 0 ? { note: notes.join('; ') } : {};
}

function fmt(v: number | null, unit: string): string {
  return v === null ? 'n/a' : `${v.toPrecision(4)} ${unit}`;
}
