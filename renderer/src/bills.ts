/** The one-line verdict of a bill reconciliation report, as the manager reads it. */
import type { ReconciliationReport } from './contract';
import { t } from './i18n';

/** Statuses that mean the merchant's bill was compared with the local records. */
const COMPARED = new Set(['OK', 'NO_STATEMENT']);

export function billSummary(report: ReconciliationReport): string {
  if (report.ok) return t('manager.billOk');
  const found = report.mismatch_count ?? report.mismatches.length;
  if (found > 0) return t('manager.billMismatch', { n: found });
  // Nothing differed, yet not every merchant was compared (bill not ready, no keys, failed):
  // never say "一致" or "0 mismatches" for a day that is not reconciled.
  return t('manager.billIncomplete', { n: report.merchants.filter((m) => !COMPARED.has(m.status)).length });
}
