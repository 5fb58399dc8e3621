import { defineConfig } from 'vitest/config';

/**
 * The relay's integration tests that go through startEnv (test/relay/env.ts), run a second time
 * with the relay on PostgreSQL (a fresh migrated database on each file's throwaway cluster). The
 * repository suites (store-core, refund-repo, counter-repo, bill-repo) already run both engines
 * themselves; crash tests start their own relays and PostgreSQL's are in pg-multi-crash.
 */
const RELAY_ON_BOTH = [
  'test/relay/flow.test.ts',
  'test/relay/notify.test.ts',
  'test/relay/notify-batch.test.ts',
  'test/relay/single.test.ts',
  'test/relay/close.test.ts',
  'test/relay/refunds.test.ts',
  'test/relay/pin.test.ts',
  'test/relay/reports.test.ts',
  'test/relay/timeline.test.ts',
  'test/relay/bills.test.ts',
  'test/relay/refund-bills.test.ts',
  'test/relay/single-bills.test.ts',
  'test/relay/hardening.test.ts',
  'test/relay/stop.test.ts',
];

export default defineConfig({
  test: {
    // Servers and SQLite files per test file: separate processes keep them apart.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // 2 cores: e2e browser tests and load-ish tests must not starve each other.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'all', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'relay-on-postgresql', include: RELAY_ON_BOTH, env: { RELAY_TEST_ENGINE: 'postgresql' } } },
    ],
  },
});
