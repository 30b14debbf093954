import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // two test files at a time even on a 2-core machine (vitest's default there is one): most
    // files spend their time in one thread, and the suite's time halves (784 s to 401 s)
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // a worker process runs file after file without loading the library again, and the WebGPU
    // files share the process's one backend and its pipeline cache, as executables do (401 s to
    // 355 s); no test file changes process-wide state it does not put back
    isolate: false,
  },
});
