import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The native addon keeps process-wide state (the record map, diag's global logger):
    // each test file runs in a process of its own.
    pool: 'forks',
    // One file at a time: several files are heavy (millions of updates, worker threads,
    // npm pack), and on 2 cores two of them at once can starve vitest's own RPC.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // `default` for people; the JSON file is what .ci/run totals.
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
  },
});
