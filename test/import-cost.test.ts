// Importing the library costs nothing: no WebAssembly module is compiled or instantiated until
// it is needed (HiGHS loads on the first exact solve). Checked in a fresh Node process, with the
// WebAssembly entry points wrapped to count calls before the import.

import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

// A graph whose optimum under a budget of 3 values is known: node 4 reads node 0 after nodes
// 1, 2 and 3 have needed every byte, so node 0 (compute 5) is computed twice: cost 9 + 5.
const child = `
const calls = [];
// the TypeScript loader (tsx) compiles its own lexer to WebAssembly: not the library's doing
const count = (k) => { if (!/node_modules[\\/]tsx[\\/]/.test(new Error().stack)) calls.push(k); };
for (const k of ['instantiate', 'instantiateStreaming', 'compile', 'compileStreaming']) {
  const f = WebAssembly[k];
  if (f) WebAssembly[k] = function (...args) { count(k); return f.apply(this, args); };
}
for (const k of ['Module', 'Instance']) {
  WebAssembly[k] = new Proxy(WebAssembly[k], { construct(t, args, nt) { count(k); return Reflect.construct(t, args, nt); } });
}
const rheo = await import(new URL('index.ts', 'file://${root}/').href);
const atImport = [...calls];
const { solveExact } = await import(new URL('scheduler/remat/exact.ts', 'file://${root}/').href);
const graph = {
  nodes: [5, 1, 1, 1, 1].map((compute, id) => ({ id, compute, bytes: 1 })),
  edges: [[0, 1], [1, 2], [2, 3], [1, 3], [0, 4], [3, 4]],
};
const plan = solveExact(graph, 3, { timeLimitMs: 10000 });
console.log(JSON.stringify({ atImport, afterSolve: calls, exports: typeof rheo.compile, stats: plan.stats }));
`;

describe('importing rheo', () => {
  it('instantiates no WebAssembly module, and a first exact solve still runs the MILP to the optimum', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      atImport: string[];
      afterSolve: string[];
      exports: string;
      stats: { solver: string; optimal: boolean; cost: number; peak: number };
    };
    expect(out.exports).toBe('function');
    expect(out.atImport).toEqual([]);
    // HiGHS was loaded by the solve itself
    expect(out.afterSolve).toContain('Instance');
    expect(out.stats.solver).toBe('exact');
    expect(out.stats.optimal).toBe(true);
    expect(out.stats.cost).toBe(14);
    expect(out.stats.peak).toBeLessThanOrEqual(3);
  }, 120_000);
});
