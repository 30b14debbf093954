// Every example has a --smoke mode; running them here keeps them from rotting (flags after `--`, as
// `npx tsx examples/x.ts -- --smoke` passes them). The main example
// runs on the CPU and, where an adapter is found (always under CI), on WebGPU, to the same accuracy.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { acquireWebGpu, lastAcquireFailure } from '../runtime/webgpu/device.js';

function runExample(file: string, args: string[] = []): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, '--', '--smoke', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${file} exited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const gpu = await acquireWebGpu();
gpu?.destroy();
if (!gpu) console.warn(`WebGPU smoke run skipped: no adapter (${lastAcquireFailure})`);

function accuracy(out: string): number {
  const m = /test accuracy: ([\d.]+)%/.exec(out);
  expect(m, out).not.toBeNull();
  return Number(m![1]);
}

describe('examples run in smoke mode', () => {
  let cpuAccuracy = NaN;

  it('fashion-mnist trains and reports a test accuracy well above chance', () => {
    const out = runExample('examples/fashion-mnist.ts', ['--quiet', '--backend', 'cpu']);
    expect(out).toContain('backend: cpu');
    cpuAccuracy = accuracy(out);
    expect(cpuAccuracy).toBeGreaterThan(40);
  });

  it.skipIf(!gpu && !process.env.CI)('fashion-mnist on WebGPU trains to the CPU accuracy within 0.5 points', () => {
    const out = runExample('examples/fashion-mnist.ts', ['--quiet', '--backend', 'webgpu']);
    expect(out).toMatch(/backend: webgpu on /);
    const acc = accuracy(out);
    expect(acc).toBeGreaterThan(40);
    if (!Number.isNaN(cpuAccuracy)) expect(Math.abs(acc - cpuAccuracy)).toBeLessThanOrEqual(0.5);
  });
});
