/** The state file: written whole (temp + rename), read back on start, a damaged one named clearly. */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initSandbox, startSandbox } from '../../shared/sandbox';
import { StateStore } from '../../shared/sandbox/state';

const dir = mkdtempSync(join(tmpdir(), 'sandbox-state-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sandbox state', () => {
  it('writes state.json atomically at close and refuses a damaged one with its path', async () => {
    await initSandbox(dir);
    const sb = await startSandbox({ dir });
    await fetch(sb.url + '/sandbox/control/clock', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"offset_seconds":42}' });
    await sb.close();
    const path = join(dir, 'sandbox', 'state.json');
    expect(JSON.parse(readFileSync(path, 'utf8')).clock_offset_seconds).toBe(42);
    expect(readdirSync(join(dir, 'sandbox')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    writeFileSync(path, '{"version":1,"orders":');
    await expect(startSandbox({ dir })).rejects.toMatchObject({ code: 'STATE_INVALID', message: expect.stringContaining(path) });
    // init refuses to overwrite a folder with history.
    await expect(initSandbox(dir)).rejects.toMatchObject({ code: 'ALREADY_INITIALIZED' });
    expect(existsSync(path)).toBe(true);
  });
});

describe('sandbox state writes', () => {
  it('a failed background write does not crash the process hosting the sandbox and is retried', async () => {
    const d = mkdtempSync(join(tmpdir(), 'sandbox-state-fail-'));
    const store = new StateStore(d);
    try {
      // The temp file's path is taken by a directory: the write fails (as on a full disk).
      const blocker = join(d, `state.json.${process.pid}.tmp`);
      mkdirSync(blocker);
      store.state.clock_offset_seconds = 7;
      store.save();
      await new Promise((r) => setTimeout(r, 100)); // before the fix: an uncaught exception here
      expect(existsSync(join(d, 'state.json'))).toBe(false);
      rmSync(blocker, { recursive: true });
      await new Promise((r) => setTimeout(r, 1500));
      expect(JSON.parse(readFileSync(join(d, 'state.json'), 'utf8')).clock_offset_seconds).toBe(7);
    } finally {
      store.close();
      rmSync(d, { recursive: true, force: true });
    }
  });
});
