/** Print jobs of one order: state in words, printer trouble explained, retry and reprint. */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { PrintJob, PrintKind } from '../contract';
import { api, jobsFor, mergePrintJobs, useAppState } from '../store';
import { t } from '../i18n';
import { friendly, printerFailureText } from '../errors';

function latestPerKind(jobs: PrintJob[]): PrintJob[] {
  const seen = new Set<PrintKind>();
  return jobs.filter((j) => (seen.has(j.kind) ? false : (seen.add(j.kind), true)));
}

export function PrintStatus({ orderNo, kinds }: { orderNo: string; kinds: PrintKind[] }) {
  const s = useAppState();
  const [error, setError] = useState<string | null>(null);
  const jobs = latestPerKind(jobsFor(s, orderNo));
  const run = async (p: Promise<PrintJob>) => {
    setError(null);
    try {
      mergePrintJobs([await p]);
    } catch (err) {
      setError(friendly(err).text);
    }
  };
  const preview = jobs.find((j) => j.preview)?.preview;
  // The preview shows the whole slip: opened or grown, its newest line is scrolled into view.
  const [open, setOpen] = useState(false);
  const pre = useRef<HTMLPreElement>(null);
  const text = preview?.lines.join('\n') ?? '';
  useEffect(() => {
    if (open) pre.current?.scrollIntoView({ block: 'end' });
  }, [open, text]);
  return (
    <div class="print-status" data-testid="print-status">
      {kinds.map((kind) => {
        const job = jobs.find((j) => j.kind === kind);
        return (
          <div class="print-row" key={kind} data-kind={kind} data-state={job?.state ?? 'none'}>
            <span class="print-kind">{t(kind === 'slip' ? 'print.slip' : 'print.receipt')}</span>
            <span class={`print-state ${job?.state ?? ''}`}>
              {job ? t(`print.${job.state}`) + (job.reprint ? t('print.reprintMark') : '') : '—'}
            </span>
            {job?.state === 'failed' ? (
              <button class="btn small" onClick={() => run(api().retryPrint(job.id))}>{t('print.retry')}</button>
            ) : (
              // No job yet: this is the first paper, not a reprint (the services mark it REPRINT if one already printed).
              <button class="btn small" onClick={() => run(api().print(kind, orderNo, !!job))}>{t('print.reprint')}</button>
            )}
            {job?.state === 'failed' && <div class="print-failure">{printerFailureText(job.failure)}</div>}
          </div>
        );
      })}
      {error && <div class="error-line">{error}</div>}
      {preview && (
        <details class="preview" open={open} onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)}>
          <summary>{t('print.preview')}</summary>
          <pre ref={pre} data-testid="receipt-preview">{text}</pre>
        </details>
      )}
    </div>
  );
}
