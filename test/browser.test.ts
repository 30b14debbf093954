// rheo in a browser: the main entry bundled by esbuild for `platform: 'browser'` (which fails on
// any `node:*` import), served from 127.0.0.1 (a secure context, so `navigator.gpu` exists) and
// run in headless Chromium: a few Adam steps on a tiny MLP on the CPU backend and on WebGPU
// (SwiftShader's adapter), compared with the same steps in Node, and a `train()` run that writes
// its checkpoints to a store of its own (no file system there). Needs Debian's `chromium`;
// without it the test is skipped, except under CI, where that is a failure.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import type { Page } from 'playwright-core';
import * as rheo from '../index.js';
import { sha256Js } from '../runtime/sha256.js';
import { CheckpointError, openCheckpointStore } from '../runtime/train/index.js';
import { CHROMIUM, bundleForBrowser, chromiumMissing, openPage, type BrowserPage } from './fixtures/browser-page.js';
import { tinyMlpLosses, type TinyMlpResult } from './fixtures/tiny-mlp.mjs';

if (chromiumMissing && !process.env['CI']) console.warn(`test/browser.test.ts skipped: no ${CHROMIUM} (apt-get install chromium)`);

// The page's script: rheo's main entry and the shared tiny-MLP program, plus a train() run with
// checkpoints kept in memory through the `checkpoint.store` seam.
const entry = `
import * as rheo from './index.ts';
import { tinyMlpLosses } from './test/fixtures/tiny-mlp.mjs';

async function trainWithStore() {
  const { graph, dim, f32, grad, compile, sgd, tensor, train } = rheo;
  const B = dim('batch');
  const model = graph('lin', (g) => {
    const x = g.input('x', f32(B, 2));
    const y = g.input('y', f32(B, 1));
    const w = g.param('w', f32(2, 1), g.init.zeros());
    return { loss: g.mse(g.matmul(x, w), y) };
  });
  const batches = Array.from({ length: 4 }, (_, i) => ({ x: tensor([i, 1, 1, i], [2, 2]), y: tensor([1, 2], [2, 1]) }));
  const saved = [];
  const store = {
    location: 'memory',
    loadLatest: () => undefined,
    write(state) {
      // what a browser store would keep (e.g. in IndexedDB): the safetensors bytes
      saved.push({ step: state.step, bytes: rheo.encodeSafetensors(state.variables).length });
      return 'memory:' + state.step;
    },
  };
  const losses = [];
  await new Promise((resolve, reject) => {
    train(compile(grad(model, 'loss'), { optimizer: sgd(0.1) }), batches, { checkpoint: { store, every: 2 } })
      .subscribe({ next: (e) => losses.push(e.loss), error: reject, complete: resolve });
  });
  return { losses, saved };
}

globalThis.rheoPage = { tinyMlpLosses: (options) => tinyMlpLosses(rheo, options), trainWithStore };
`;

let bundled: Promise<Uint8Array> | undefined;
/** The page's script, bundled once; esbuild fails on anything it cannot resolve for a browser. */
const bundle = (): Promise<Uint8Array> => (bundled ??= bundleForBrowser(entry));

describe('the main entry for browsers, checked in Node', () => {
  it('bundles with esbuild for platform browser, with no node: module and no Node-only file of rheo', async () => {
    expect((await bundle()).length).toBeGreaterThan(10_000);
  }, 60_000);

  it('hashes with a SHA-256 of its own that equals node:crypto', () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) % 251);
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000]) {
      expect(sha256Js(bytes.subarray(0, n))).toBe(createHash('sha256').update(bytes.subarray(0, n)).digest('hex'));
    }
    expect(sha256Js(bytes.subarray(0, 10), bytes.subarray(10, 500), bytes.subarray(500))).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it("train()'s checkpoint option takes 'dir' or 'store', one of them", async () => {
    const store = { location: 'memory', loadLatest: () => undefined, write: () => 'memory' };
    expect(await openCheckpointStore({ store })).toBe(store);
    await expect(openCheckpointStore({})).rejects.toThrow(CheckpointError);
    await expect(openCheckpointStore({ dir: 'x', store })).rejects.toThrow(/'dir' or 'store', not both/);
    expect((await openCheckpointStore({ dir: 'some/dir' })).location).toBe('some/dir');
  });
});

let opened: BrowserPage | undefined;
let page: Page;

describe.skipIf(chromiumMissing && !process.env['CI'])('in headless Chromium', () => {
  beforeAll(async () => {
    expect(chromiumMissing, `${CHROMIUM} is missing (apt-get install chromium)`).toBe(false);
    opened = await openPage(await bundle(), 'rheoPage');
    page = opened.page;
  }, 120_000);

  afterAll(async () => {
    await opened?.close();
  });

  const inPage = (options: { backend: 'cpu' | 'webgpu'; steps: number }) =>
    page.evaluate((o) => (globalThis as unknown as { rheoPage: { tinyMlpLosses(o: object): Promise<TinyMlpResult> } }).rheoPage.tinyMlpLosses(o), options);

  it('trains on the CPU backend exactly as Node does', async () => {
    const node = await tinyMlpLosses(rheo, { backend: 'cpu', steps: 5 });
    const browserRun = await inPage({ backend: 'cpu', steps: 5 });
    expect(browserRun.backend).toBe('cpu');
    expect(browserRun.losses).toHaveLength(5);
    for (let i = 0; i < 5; i++) expect(Math.abs(browserRun.losses[i]! - node.losses[i]!)).toBeLessThanOrEqual(1e-6);
    expect(browserRun.losses[4]!).toBeLessThan(browserRun.losses[0]!);
  }, 60_000);

  it('trains on WebGPU through navigator.gpu within f32 tolerance of Node', async () => {
    const node = await tinyMlpLosses(rheo, { backend: 'cpu', steps: 5 });
    const gpu = await inPage({ backend: 'webgpu', steps: 5 });
    expect(gpu.backend).toBe('webgpu');
    expect(gpu.adapter).toMatch(/navigator\.gpu/);
    for (let i = 0; i < 5; i++) expect(Math.abs(gpu.losses[i]! - node.losses[i]!)).toBeLessThanOrEqual(1e-4 * Math.abs(node.losses[i]!));
    console.log(`browser WebGPU adapter: ${gpu.adapter}`);
  }, 120_000);

  it('train() writes checkpoints to a store given in its options', async () => {
    const r = await page.evaluate(() =>
      (globalThis as unknown as { rheoPage: { trainWithStore(): Promise<{ losses: number[]; saved: { step: number; bytes: number }[] }> } }).rheoPage.trainWithStore(),
    );
    expect(r.losses).toHaveLength(4);
    expect(r.saved.map((s) => s.step)).toEqual([2, 4]);
    expect(r.saved[0]!.bytes).toBeGreaterThan(0);
  }, 60_000);
});
