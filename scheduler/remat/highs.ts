// HiGHS, the MILP solver (WebAssembly), loaded on its first use so that importing the library
// compiles and instantiates nothing. Planning is synchronous, so on Node the first exact solve
// loads it synchronously: the wasm bytes are compiled with `new WebAssembly.Module`, and the
// package's loader (an async function even when the instance is handed to it at once) runs in
// a vm context whose microtasks drain before the call returns. Where that is not available (a
// browser), the first exact solve starts the asynchronous load and the planner uses the
// heuristic until it is ready; `loadExactSolver()` waits for it. Nothing here solves anything.

import type { Highs } from 'highs';
import type * as NodeFs from 'node:fs';
import type * as NodeModule from 'node:module';
import type * as NodeVm from 'node:vm';

let highs: Highs | null = null;
let loading: Promise<Highs> | null = null;
let loadFailed = false;

/**
 * The solver, loaded now if it can be loaded synchronously; null while an asynchronous load is
 * under way (which this call starts when none is).
 */
export function exactSolver(): Highs | null {
  if (highs) return highs;
  if (loading) return null;
  highs = loadSync();
  if (!highs && !loadFailed) {
    // where it cannot load (a browser with no loader given), planning stays on the heuristic
    loadExactSolver().catch(() => {
      loadFailed = true;
    });
  }
  return highs;
}

/**
 * Loads HiGHS ahead of the first exact solve. Needed only where it cannot be loaded
 * synchronously (browsers): until it resolves, exact planning falls back to the heuristic.
 * `load` replaces the default `import('highs')`, for bundles that ship the package and its
 * `highs.wasm` their own way.
 *
 * @example
 *   await loadExactSolver();
 *   planRematerialization(graph, budget); // the MILP runs from the first call on
 */
export async function loadExactSolver(load?: () => Promise<Highs>): Promise<void> {
  if (highs) return;
  loading ??= (load ?? importHighs)();
  try {
    highs = await loading;
  } finally {
    loading = null;
  }
}

/**
 * The `highs` package's default loader. The specifier is a variable so that bundlers for the
 * browser leave the package (whose Node branch imports `node:module`) out of the main bundle; a
 * browser app passes its own loader to `loadExactSolver`, e.g.
 * `() => import('highs').then((m) => m.default({ locateFile: () => wasmUrl }))`.
 */
async function importHighs(): Promise<Highs> {
  const name = 'highs';
  const m = (await import(/* @vite-ignore */ name)) as typeof import('highs');
  return m.default();
}

/** Drops the instance (an aborted solve leaves it unusable); the next use loads a fresh one. */
export function discardExactSolver(h: Highs): void {
  if (highs === h) highs = null;
}

type BuiltinGetter = (id: string) => unknown;

/** Node: the package's CommonJS build run on a synchronously compiled module; null elsewhere. */
function loadSync(): Highs | null {
  const getBuiltin = (globalThis as { process?: { getBuiltinModule?: BuiltinGetter } }).process?.getBuiltinModule;
  if (!getBuiltin) return null;
  const fs = getBuiltin('node:fs') as typeof NodeFs;
  const vm = getBuiltin('node:vm') as typeof NodeVm;
  const { createRequire } = getBuiltin('node:module') as typeof NodeModule;
  const script = createRequire(import.meta.url).resolve('highs'); // build/highs.js, next to highs.wasm
  // the project's TypeScript libs do not declare WebAssembly; Node has it
  const WebAssembly = (globalThis as unknown as { WebAssembly: { Module: new (bytes: Uint8Array) => unknown } }).WebAssembly;
  const wasm = new WebAssembly.Module(fs.readFileSync(script.replace(/[^/\\]*$/, 'highs.wasm')));
  const box: { wasm: unknown; highs?: Highs; error?: unknown } = { wasm };
  const sandbox = { box, WebAssembly, TextDecoder, TextEncoder, console, crypto: globalThis.crypto, performance, setTimeout, clearTimeout };
  const context = vm.createContext(sandbox, { microtaskMode: 'afterEvaluate' });
  const source = fs.readFileSync(script, 'utf8');
  vm.runInContext(
    `var module = { exports: {} }, exports = module.exports;\n${source}\n;` +
      'module.exports({ instantiateWasm(imports, done) { done(new WebAssembly.Instance(box.wasm, imports)); return {}; } })' +
      '.then((h) => { box.highs = h; }, (e) => { box.error = e; });',
    context,
    { filename: script },
  );
  if (box.error !== undefined) throw box.error;
  return box.highs ?? null;
}
