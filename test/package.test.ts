// The published package, as a user gets it: `npm pack` (whose prepack builds dist/), the tarball
// installed into a fresh project, and plain `node` (no TypeScript loader) running an ES module
// and a CommonJS file that use the public entry points. The install is offline: the project gets
// a lockfile pinning rheo's dependencies to the versions this repository's lockfile resolved,
// so npm takes them from its cache (which `npm ci` filled; what is missing there is fetched).
// A consumer TypeScript file is type-checked against the installed package's declarations too.

import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as rheo from '../index.js';
import { tinyMlpLosses } from './fixtures/tiny-mlp.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'rheo-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  dev?: boolean;
  devOptional?: boolean;
  [k: string]: unknown;
}
interface PackageJson {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  exports: Record<string, unknown>;
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };

function run(cmd: string, args: string[], cwd: string, timeout = 240_000): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, NODE_OPTIONS: '' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Where Node would find `name` from the lockfile location `from` (walking up nested node_modules). */
function locate(from: string, name: string): string {
  let base = from;
  for (;;) {
    const key = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (lock.packages[key]) return key;
    if (!base) throw new Error(`package-lock.json has no ${name} reachable from '${from}'`);
    const i = base.lastIndexOf('/node_modules/');
    base = i < 0 ? '' : base.slice(0, i);
  }
}

/** A lockfile for a project depending on the tarball and fast-check, with the repository's resolutions. */
function consumerLock(tarball: string): { packageJson: object; lockfile: object } {
  const deps = { rheo: `file:${tarball}`, 'fast-check': lock.packages['node_modules/fast-check']!.version! };
  const packages: Record<string, LockEntry> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: deps },
    'node_modules/rheo': {
      version: pkg.version,
      resolved: `file:${tarball}`,
      dependencies: pkg.dependencies,
      ...(pkg.peerDependencies && { peerDependencies: pkg.peerDependencies }),
      ...(pkg.peerDependenciesMeta && { peerDependenciesMeta: pkg.peerDependenciesMeta }),
    },
  };
  const queue = [...Object.keys(pkg.dependencies), 'fast-check'].map((d) => locate('', d));
  while (queue.length) {
    const key = queue.pop()!;
    if (packages[key]) continue;
    const { dev: _dev, devOptional: _devOptional, ...entry } = lock.packages[key]!;
    packages[key] = entry;
    for (const d of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) queue.push(locate(key, d));
  }
  return {
    packageJson: { name: 'consumer', version: '1.0.0', private: true, dependencies: deps },
    lockfile: { name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages },
  };
}

// The ES module: every entry point loads; a graph compiles and trains; train() writes its
// checkpoints through the directory store it loads on demand; rheo/testing draws shapes.
const esm = `
import * as rheo from 'rheo';
import { writeCheckpoint, readCheckpoint, listCheckpoints } from 'rheo/node';
import { arbShape } from 'rheo/testing';
import { loadFashionMnist, PIXELS } from 'rheo/data';
import { lineChartSvg } from 'rheo/plot';
import { createProgress } from 'rheo/progress';
import { encodeGrayPng } from 'rheo/png';
import { redisSource } from 'rheo/redis';
import fc from 'fast-check';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { tinyMlpLosses } from './tiny-mlp.mjs';

const out = { entries: [typeof writeCheckpoint, typeof readCheckpoint, typeof redisSource, typeof createProgress, typeof encodeGrayPng] };
out.cpu = await tinyMlpLosses(rheo);
out.shapes = fc.sample(arbShape({ maxRank: 2, maxDim: 3 }), { seed: 1, numRuns: 5 });
const ds = loadFashionMnist();
out.data = { source: ds.source, train: ds.train.count, pixels: PIXELS };
out.svg = lineChartSvg({ title: 'loss', xLabel: 'step', yLabel: 'loss', series: [{ name: 'train', points: out.cpu.losses.map((l, i) => [i, l]) }] }).startsWith('<svg');

const B = rheo.dim('batch');
const model = rheo.graph('lin', (g) => {
  const x = g.input('x', rheo.f32(B, 2));
  const y = g.input('y', rheo.f32(B, 1));
  const w = g.param('w', rheo.f32(2, 1), g.init.zeros());
  return { loss: g.mse(g.matmul(x, w), y) };
});
const step = rheo.compile(rheo.grad(model, 'loss'), { optimizer: rheo.sgd(0.1) });
const batches = Array.from({ length: 4 }, (_, i) => ({ x: rheo.tensor([i, 1, 1, i], [2, 2]), y: rheo.tensor([1, 2], [2, 1]) }));
const dir = join(mkdtempSync(join(tmpdir(), 'rheo-consumer-')), 'ckpt');
const events = await lastValueFrom(rheo.train(step, batches, { checkpoint: { dir, every: 2 } }).pipe(toArray()));
out.train = { steps: events.length, checkpoints: listCheckpoints(dir).map((c) => c.step), last: readCheckpoint(listCheckpoints(dir)[0].path).step };
console.log(JSON.stringify(out));
`;

// The CommonJS file: the package is ESM only, so CommonJS loads it with import().
const cjs = `
(async () => {
  const rheo = await import('rheo');
  const { tinyMlpLosses } = await import('./tiny-mlp.mjs');
  const { arbShape } = await import('rheo/testing');
  console.log(JSON.stringify({ cpu: await tinyMlpLosses(rheo), testing: typeof arbShape }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

// Declarations: the public types resolve through the exports map under Node's own resolution.
const consumerTs = `
import { compile, graph, f32, tensor, type HostTensor, type Executable } from 'rheo';
import { writeCheckpoint } from 'rheo/node';
import { arbShape } from 'rheo/testing';
import { loadFashionMnist } from 'rheo/data';
import { redisSource } from 'rheo/redis';
const g = graph('sq', (b) => ({ y: b.mul(b.input('x', f32(3)), b.input('x2', f32(3))) }));
const exe: Executable = compile(g);
const t: HostTensor = tensor([1, 2, 3], [3]);
const n: number = exe.runSync({ x: t, x2: t }).y!.data[0]!;
void [n, writeCheckpoint, arbShape, loadFashionMnist, redisSource];
`;

describe('the npm package', () => {
  it('packs, installs offline into a fresh project, and runs with plain node as ESM and CommonJS, as the sources do', async () => {
    const t0 = performance.now();
    const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], root).stdout) as { filename: string; files: { path: string }[] }[];
    const tPack = performance.now();
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files).toContain('dist/test/arbitraries.js');
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    for (const [sub, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue;
      const { types, import: js } = target as { types: string; import: string };
      expect(files, sub).toContain(types.replace(/^\.\//, ''));
      expect(files, sub).toContain(js.replace(/^\.\//, ''));
    }

    const project = join(work, 'consumer');
    mkdirSync(project);
    const { packageJson, lockfile } = consumerLock(`../${packed[0]!.filename}`);
    writeFileSync(join(project, 'package.json'), JSON.stringify(packageJson, null, 2));
    writeFileSync(join(project, 'package-lock.json'), JSON.stringify(lockfile, null, 2));
    const install = ['ci', '--ignore-scripts', '--no-audit', '--no-fund'];
    try {
      run('npm', [...install, '--offline'], project);
    } catch (e) {
      // a cache that lacks a tarball (node_modules not installed by npm here): fetch what is missing
      if (!/ENOTCACHED/.test(String(e))) throw e;
      run('npm', [...install, '--prefer-offline'], project);
    }
    const tInstall = performance.now();

    copyFileSync(join(root, 'test/fixtures/tiny-mlp.mjs'), join(project, 'tiny-mlp.mjs'));
    writeFileSync(join(project, 'main.mjs'), esm);
    writeFileSync(join(project, 'main.cjs'), cjs);
    const fromEsm = JSON.parse(run(process.execPath, ['main.mjs'], project).stdout) as {
      entries: string[];
      cpu: { backend: string; losses: number[] };
      shapes: number[][];
      data: { source: string; train: number; pixels: number };
      svg: boolean;
      train: { steps: number; checkpoints: number[]; last: number };
    };
    const fromCjs = JSON.parse(run(process.execPath, ['main.cjs'], project).stdout) as { cpu: { losses: number[] }; testing: string };
    const tRun = performance.now();

    expect(fromEsm.entries).toEqual(['function', 'function', 'function', 'function', 'function']);
    expect(fromEsm.cpu.backend).toBe('cpu');
    expect(fromEsm.shapes).toHaveLength(5);
    expect(fromEsm.data.pixels).toBe(784);
    expect(fromEsm.data.train).toBeGreaterThan(0);
    expect(fromEsm.svg).toBe(true);
    expect(fromEsm.train).toEqual({ steps: 4, checkpoints: [4, 2], last: 4 });
    expect(fromCjs.testing).toBe('function');
    // the same numbers as the sources, bit for bit
    const fromSources = await tinyMlpLosses(rheo);
    expect(fromEsm.cpu.losses).toEqual(fromSources.losses);
    expect(fromCjs.cpu.losses).toEqual(fromSources.losses);

    writeFileSync(join(project, 'consumer.ts'), consumerTs);
    const tsconfig = { compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: true, types: [] }, files: ['consumer.ts'] };
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(tsconfig));
    run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', '.'], project);
    const tTypes = performance.now();
    const s = (a: number, b: number) => `${((b - a) / 1000).toFixed(1)} s`;
    console.log(`npm pack (with build) ${s(t0, tPack)}, npm ci --offline ${s(tPack, tInstall)}, node ESM + CJS ${s(tInstall, tRun)}, tsc ${s(tRun, tTypes)}`);
  }, 400_000);
});
