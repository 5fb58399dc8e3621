/**
 * The embedded default keeps starting when its token file (embedded.json) is gone or unreadable
 * while relay.db still knows the terminals: e.g. the first start interrupted after the terminals
 * were added, or the file deleted. New terminals are issued instead of failing with TERMINAL_EXISTS.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbedded } from '../../shared/terminal/embedded';

const dir = mkdtempSync(join(tmpdir(), 'pos-recover-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('embedded default: lost token file', () => {
  it('starts again with fresh, working cashier and manager tokens', async () => {
    const first = await startEmbedded({ dataDir: dir, webHost: false, relayLogLevel: 'silent' });
    const oldTokens = [first.cashierToken, first.managerToken];
    await first.close();
    writeFileSync(join(dir, 'embedded.json'), '{"cashier_tok'); // truncated by a crash
    const second = await startEmbedded({ dataDir: dir, webHost: false, relayLogLevel: 'silent' });
    try {
      expect([second.cashierToken, second.managerToken]).not.toEqual(oldTokens);
      const s = await second.services.session();
      expect(s.role).toBe('cashier');
      expect(s.terminal).toMatch(/^cashier-1/);
      expect(s.manager).toBe(true);
    } finally {
      await second.close();
    }
    // And the tokens issued now are kept for the next start.
    const third = await startEmbedded({ dataDir: dir, webHost: false, relayLogLevel: 'silent' });
    try {
      expect(third.cashierToken).toBe(second.cashierToken);
    } finally {
      await third.close();
    }
  }, 60_000);
});
