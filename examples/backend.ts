// The examples' --backend flag (parsed as `backendOption` of cli.ts): auto (WebGPU when an adapter
// is found, else the CPU), webgpu or cpu; compiles on it and says which backend and adapter it
// took, or why it fell back.

import { compileAsync, type CompileOptions, type Executable, type Graph } from '../index.js';

export type BackendFlag = 'auto' | 'webgpu' | 'cpu';

/** Compiles on the flag's backend; without an adapter, `--backend webgpu` says so and exits 1. */
export async function compileOn(g: Graph, backend: BackendFlag, opts: Omit<CompileOptions, 'backend'> = {}): Promise<Executable> {
  return compileAsync(g, { ...opts, backend }).catch((e: Error) => {
    console.error(`--backend ${backend}: ${e.message}`);
    process.exit(1);
  });
}

/** e.g. 'webgpu on llvmpipe (...)' or 'cpu (no WebGPU adapter: ...)' */
export function describeBackend(exe: Executable): string {
  const info = exe.backendInfo;
  return info.backend === 'webgpu' ? `webgpu on ${info.adapter}` : `cpu${info.reason ? ` (${info.reason})` : ''}`;
}
