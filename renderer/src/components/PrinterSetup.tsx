/**
 * Printer setup on the Settings screen: a test page and the printer's real-time status, both with
 * the saved printer (the result is said in the screen's language; the technician's detail below).
 */
import { useState } from 'preact/hooks';
import type { PrinterStatus, TestPrintResult } from '../../../shared/contracts/terminal-api';
import { api } from '../store';
import { t, type MessageKey } from '../i18n';
import { friendly } from '../errors';

export function PrinterSetup({ dirty }: { dirty: boolean }) {
  const [busy, setBusy] = useState<'test' | 'status' | null>(null);
  const [test, setTest] = useState<TestPrintResult | null>(null);
  const [status, setStatus] = useState<PrinterStatus | null>(null);
  const [error, setError] = useState<string | null>(null);

  const run = async (what: 'test' | 'status') => {
    setBusy(what);
    setError(null);
    try {
      if (what === 'test') setTest(await api().testPrint());
      else setStatus(await api().printerStatus());
    } catch (err) {
      setError(friendly(err).text);
    } finally {
      setBusy(null);
    }
  };

  const printer = (p: string) => p.replace(/^tcp:\/\//, '');
  const testText = test
    ? test.preview ? t('printer.testPreview') : test.ok ? t('printer.testOk', { printer: printer(test.printer) }) : t('printer.testFailed', { message: test.message ?? '' })
    : '';

  return (
    <section class="printer-setup" data-testid="printer-setup">
      <h3>{t('printer.title')}</h3>
      {dirty && <div class="hint">{t('printer.unsaved')}</div>}
      <div class="printer-actions">
        <button type="button" class="btn" data-testid="printer-test" disabled={busy !== null} onClick={() => void run('test')}>
          {busy === 'test' ? t('printer.testing') : t('printer.test')}
        </button>
        <button type="button" class="btn" data-testid="printer-status" disabled={busy !== null} onClick={() => void run('status')}>
          {busy === 'status' ? t('printer.checking') : t('printer.status')}
        </button>
      </div>
      {status && (
        <div class={`printer-state ${status.state}`} data-testid="printer-state" data-state={status.state}>
          {t(`printer.state.${status.state}` as MessageKey, { printer: printer(status.printer) })}
          {status.raw.length > 0 && <span class="hint"> · DLE EOT: {status.raw.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ')}</span>}
        </div>
      )}
      {test && (
        <div class={`printer-test-result ${test.ok ? 'ok' : 'bad'}`} data-testid="printer-test-result" data-ok={String(test.ok)}>{testText}</div>
      )}
      {test?.preview && <pre class="printer-preview" data-testid="printer-test-preview">{test.preview.lines.join('\n')}</pre>}
      {error && <div class="printer-test-result bad">{error}</div>}
    </section>
  );
}
