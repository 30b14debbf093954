// WebGPU kernels that need what only Chromium's adapter (SwiftShader) has here: subgroup
// operations and timestamp queries. Random reduction graphs (sum, mean, max, min, argmax,
// logsumexp, softmax, layer norm over random shapes and axes, rows longer than a workgroup and off
// its size) run in the page on WebGPU in every subgroup variant the tuner can pick, forced one at
// a time, and on rheo's CPU backend in the same page; cases are drawn by fast-check here and sent
// there. The autotuner then tunes a reduction there once, on timestamp queries, and its choice
// runs. Needs Debian's `chromium` with a 'subgroups' adapter: skipped without it, except under
// CI, where either missing is a failure.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Page } from 'playwright-core';
import type { Kernel } from '../ops/kernel-ir.js';
import { candidates, type KernelVariant, type TuningRecord } from '../runtime/webgpu/tuner.js';
import type { ReduceVariant } from '../runtime/webgpu/render-wgsl-reduce.js';
import { CHROMIUM, bundleForBrowser, chromiumMissing, openPage, type BrowserPage } from './fixtures/browser-page.js';
import { reducedLength, type ReduceGraphCase, type ReduceGraphOp } from './fixtures/reduce-graphs.js';

if (chromiumMissing && !process.env['CI']) console.warn(`test/browser-webgpu.test.ts skipped: no ${CHROMIUM} (apt-get install chromium)`);

const entry = `
import * as rheo from './index.ts';
import { acquireWebGpu, lastAcquireFailure } from './runtime/webgpu/device.ts';
import { WebGpuBackend } from './runtime/webgpu/backend.ts';
import { TuningStore } from './runtime/webgpu/tuner.ts';
import { reduceGraph, reduceFeeds } from './test/fixtures/reduce-graphs.ts';

let gpu;
async function device() {
  gpu ??= await acquireWebGpu();
  if (!gpu) throw new Error('no WebGPU adapter: ' + lastAcquireFailure);
  return gpu;
}
const plain = (outs) => Object.fromEntries(Object.entries(outs).map(([k, t]) => [k, Array.from(t.data)]));

/** A backend whose launches are kept, to tell which of its kernels combined through subgroup operations. */
function watched(be) {
  const launched = new Set();
  const run = be.run.bind(be);
  be.run = (k, ins, out) => { launched.add(k); run(k, ins, out); };
  const subgroupKernels = () => [...launched].filter((k) =>
    be.render(k).passes.some((p) => /subgroup(Add|Max|Min)\\(/.test(p.code))).length;
  return { be, launched, subgroupKernels };
}

const backends = new Map();
async function runCase(c, variant) {
  const key = JSON.stringify(variant);
  if (!backends.has(key)) backends.set(key, watched(new WebGpuBackend(await device(), { reduce: variant, tuning: new TuningStore(null) })));
  const w = backends.get(key);
  w.launched.clear();
  const g = reduceGraph(c), feeds = reduceFeeds(c);
  const cpu = rheo.compile(g, { backend: 'cpu' }).runSync(feeds);
  const got = await (await rheo.compileAsync(g, { backend: 'webgpu', webgpu: w.be })).run(feeds);
  return { cpu: plain(cpu), gpu: plain(got), subgroupKernels: w.subgroupKernels() };
}

async function tuneOnce(c) {
  const tuning = new TuningStore(null);
  const w = watched(new WebGpuBackend(await device(), { tune: true, tuning, tuneBudgetMs: 60000 }));
  const g = reduceGraph(c), feeds = reduceFeeds(c);
  const exe = await rheo.compileAsync(g, { backend: 'webgpu', webgpu: w.be });
  await exe.run(feeds); // launches the heuristic variants; the read tunes their signatures
  const got = await exe.run(feeds);
  const chosen = [...w.launched].map((k) => w.be.variantOf(k));
  return { records: JSON.parse(tuning.exportTuning()).adapters, chosen, gpu: plain(got), cpu: plain(rheo.compile(g, { backend: 'cpu' }).runSync(feeds)) };
}

async function adapter() {
  const d = await device();
  return { features: [...d.features], info: d.info, limits: { maxInvocations: Math.min(d.limits.maxComputeInvocationsPerWorkgroup, d.limits.maxComputeWorkgroupSizeX) } };
}

globalThis.rheoWebGpuPage = { adapter, runCase, tuneOnce };
`;

interface CaseResult {
  readonly cpu: Record<string, number[]>;
  readonly gpu: Record<string, number[]>;
  readonly subgroupKernels: number;
}
interface PageApi {
  adapter(): Promise<{ features: string[]; info: { description: string; architecture: string }; limits: { maxInvocations: number } }>;
  runCase(c: ReduceGraphCase, v: ReduceVariant): Promise<CaseResult>;
  tuneOnce(c: ReduceGraphCase): Promise<{
    records: Record<string, Record<string, TuningRecord>>;
    chosen: (KernelVariant | null)[];
    cpu: Record<string, number[]>;
    gpu: Record<string, number[]>;
  }>;
}

let opened: BrowserPage | undefined;
let page: Page;
const api = <K extends keyof PageApi>(name: K, ...args: Parameters<PageApi[K]>): ReturnType<PageApi[K]> =>
  page.evaluate(([n, a]) => {
    const p = (globalThis as unknown as { rheoWebGpuPage: Record<string, (...x: unknown[]) => unknown> }).rheoWebGpuPage;
    return p[n as string]!(...(a as unknown[]));
  }, [name, args] as const) as ReturnType<PageApi[K]>;

/** Every reduction variant with subgroup combines that the tuner offers an adapter with the feature. */
function subgroupVariants(maxInvocations: number): ReduceVariant[] {
  // a full sum of 2^22 elements: long enough that no split the tuner tries collapses into another
  const n = 1 << 22;
  const k: Kernel = {
    kind: 'map', name: 'probe', inputs: [{ dtype: 'f32', size: n }], out: { dtype: 'f32', shape: [] },
    expr: { k: 'reduce', op: 'sum', vars: [{ name: 'r', size: n }], body: { k: 'load', buf: 0, at: { k: 'var', name: 'r' }, dtype: 'f32' }, dtype: 'f32' },
  } as Kernel;
  return candidates(k, { workgroupMatmul: true, subgroups: true, maxInvocations }, null)
    .flatMap((v) => (v.kind === 'reduce' && v.reduce.subgroups ? [v.reduce] : []));
}

const OPS: ReduceGraphOp[] = ['sum', 'mean', 'max', 'min', 'argmax', 'logsumexp', 'softmax', 'layerNorm'];

/** Small integers: a dim of 1-4, or one past a workgroup and off its size (65-3000, never a multiple of 64). */
const dimArb = fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 65, max: 3000 }).map((d) => (d % 64 === 0 ? d + 1 : d)));

const caseArb: fc.Arbitrary<ReduceGraphCase> = fc.record({
  op: fc.constantFrom(...OPS),
  shape: fc.array(dimArb, { minLength: 1, maxLength: 3 }),
  axisBits: fc.integer({ min: 1, max: 7 }),
  seed: fc.integer(),
  ties: fc.boolean(),
}).map(({ op, shape, axisBits, seed, ties }) => {
  let axes = shape.map((_, i) => i).filter((i) => axisBits & (1 << i));
  if (axes.length === 0) axes = [shape.length - 1];
  // argmax and softmax take one axis: the longest of those drawn, so that it is past a workgroup
  if (op === 'argmax' || op === 'softmax') axes = [axes.reduce((a, i) => (shape[i]! > shape[a]! ? i : a))];
  return { op, shape, axes, seed, ties };
}).filter((c) => c.shape.reduce((a, d) => a * d, 1) <= 40_000 && reducedLength(c) > 64);

function expectSame(c: ReduceGraphCase, r: { cpu: Record<string, number[]>; gpu: Record<string, number[]> }, what: string): void {
  const len = reducedLength(c);
  for (const [name, want] of Object.entries(r.cpu)) {
    const got = r.gpu[name]!;
    expect(got.length, `${what}: ${name}'s length`).toBe(want.length);
    for (let i = 0; i < want.length; i++) {
      const g = got[i]!, w = want[i]!;
      // argmax exactly (ties as the CPU resolves them); float32 sums in another order otherwise
      const tol = c.op === 'argmax' ? 0 : 1e-4 * Math.max(1, Math.abs(w)) + 2e-5 * Math.sqrt(len);
      if (!(Math.abs(g - w) <= tol)) {
        expect.fail(`${what}: ${c.op} over axes [${c.axes.join(', ')}] of [${c.shape.join(', ')}] (seed ${c.seed}${c.ties ? ', ties' : ''}) ${name}[${i}]: webgpu ${g}, cpu ${w}`);
      }
    }
  }
}

describe.skipIf(chromiumMissing && !process.env['CI'])('WebGPU subgroups and timestamp queries in headless Chromium', () => {
  let variants: ReduceVariant[] = [];

  beforeAll(async () => {
    expect(chromiumMissing, `${CHROMIUM} is missing (apt-get install chromium)`).toBe(false);
    opened = await openPage(await bundleForBrowser(entry), 'rheoWebGpuPage');
    page = opened.page;
    const a = await api('adapter');
    console.log(`browser WebGPU adapter: ${a.info.architecture || a.info.description}, features ${a.features.filter((f) => /subgroup|timestamp|f16/.test(f)).join(', ')}`);
    expect(a.features, "the browser's adapter has no 'subgroups'").toContain('subgroups');
    expect(a.features, "the browser's adapter has no 'timestamp-query'").toContain('timestamp-query');
    variants = subgroupVariants(a.limits.maxInvocations);
  }, 120_000);

  afterAll(async () => {
    await opened?.close();
  });

  it('the tuner offers subgroup reductions in both workgroup sizes and several splits', () => {
    expect(new Set(variants.map((v) => v.workgroupSize))).toEqual(new Set([64, 256]));
    expect(variants.length).toBeGreaterThanOrEqual(8);
  });

  it('every subgroup variant the tuner can pick, forced, gives the CPU backend\'s numbers on random reduction graphs', async () => {
    // per variant, random cases after one that it surely splits (a row sum past 256 and off its
    // size); each variant must have combined some kernel through subgroup operations
    const sure: ReduceGraphCase = { op: 'sum', shape: [2, 2999], axes: [1], seed: 1, ties: false };
    for (const v of variants) {
      let combined = 0;
      await fc.assert(fc.asyncProperty(caseArb, async (c) => {
        const r = await api('runCase', c, v);
        expectSame(c, r, `variant ${JSON.stringify(v)}`);
        combined += r.subgroupKernels;
      }), { numRuns: 4, examples: [[sure]] });
      expect(combined, `variant ${JSON.stringify(v)} never combined through subgroup operations`).toBeGreaterThan(0);
    }
  }, 300_000);

  it('the autotuner times candidates with timestamp queries, subgroup variants among them, and its choice runs correctly', async () => {
    const c: ReduceGraphCase = { op: 'sum', shape: [3, 20_011], axes: [1], seed: 5, ties: false };
    const r = await api('tuneOnce', c);
    const recs = Object.values(r.records).flatMap((t) => Object.values(t));
    expect(recs.length).toBeGreaterThan(0);
    for (const rec of recs) {
      expect(rec.clock).toBe('timestamp-query');
      const times = Object.values(rec.timings);
      expect(times.length).toBeGreaterThan(1);
      for (const t of times) expect(t).toBeGreaterThanOrEqual(0);
      expect(rec.ms).toBe(Math.min(...times));
    }
    expect(recs.some((rec) => Object.keys(rec.timings).some((k) => k.includes('"subgroups":true')))).toBe(true);
    // the second run launched the tuned choices, and they give the CPU's numbers
    for (const rec of recs) expect(r.chosen).toContainEqual(rec.variant);
    expectSame(c, r, 'tuned');
  }, 300_000);
});
