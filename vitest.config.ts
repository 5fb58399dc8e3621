import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Servers and SQLite files per test file: separate processes keep them apart.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // 2 cores: e2e browser tests and load-ish tests must not starve each other.
    maxWorkers: 2,
  },
});
