/**
 * The policy of the processes we start (npm start, Electron main) for errors nobody caught, in a
 * real child process: an unhandled rejection is logged loudly and the process keeps serving; an
 * uncaught exception is logged, the clean shutdown runs, and the process exits with code 1.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { expect, it } from 'vitest';

const policy = resolve(__dirname, '../../shared/terminal/process-policy.ts');

const run = (body: string) => spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
  import { installProcessPolicy } from ${JSON.stringify(policy)};
  installProcessPolicy({ name: 'test', shutdown: async () => { await new Promise((r) => setImmediate(r)); console.log('shutdown-done'); } });
  ${body}
`], { encoding: 'utf8', timeout: 30_000 });

it('an unhandled rejection is logged with its stack and the process keeps running', () => {
  const r = run(`
    Promise.reject(new Error('lost-print-job'));
    setTimeout(() => console.log('still-serving'), 20);
  `);
  expect(r.stderr).toMatch(/\[test\] UNHANDLED PROMISE REJECTION[\s\S]*Error: lost-print-job\n\s+at /);
  expect(r.stdout).toContain('still-serving');
  expect(r.stdout).not.toContain('shutdown-done');
  expect(r.status).toBe(0);
});

it('an uncaught exception shuts down cleanly, then exits with code 1', () => {
  const r = run(`
    setInterval(() => undefined, 1000); // a server would keep the process alive
    setTimeout(() => { throw new Error('corrupt-state'); }, 0);
  `);
  expect(r.stderr).toMatch(/\[test\] FATAL: uncaught exception[\s\S]*Error: corrupt-state/);
  expect(r.stdout).toContain('shutdown-done');
  expect(r.status).toBe(1);
});
