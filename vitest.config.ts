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
  },
});
