/** The figures of a shift or day-end report, as the relay computed them (no arithmetic here). */
import type { DayEndMerchant, MerchantFigures, RefundFigures, ReportTotals } from '../contract';
import { formatFen } from '../money';
import { tc } from '../counter-i18n';

export function ReportFigures(p: {
  testid: string;
  sales: ReportTotals;
  refunds: RefundFigures;
  net: number;
  merchants: (MerchantFigures | DayEndMerchant)[];
  openOrders: ReportTotals;
  withBill?: boolean;
}) {
  return (
    <div class="report" data-testid={p.testid}>
      <div class="report-totals">
        <div class="figure" data-testid={`${p.testid}-sales`} data-count={p.sales.count} data-amount={p.sales.amount}>
          <span class="figure-label">{tc('report.sales')}</span>
          <span class="figure-value">{formatFen(p.sales.amount)}</span>
          <span class="figure-sub">{tc('report.count', { n: p.sales.count })}</span>
        </div>
        <div class="figure" data-testid={`${p.testid}-refunds`} data-amount={p.refunds.amount}>
          <span class="figure-label">{tc('report.refunds')}</span>
          <span class="figure-value">{formatFen(p.refunds.amount)}</span>
          <span class="figure-sub">{tc('report.count', { n: p.refunds.count })}</span>
        </div>
        <div class="figure strong" data-testid={`${p.testid}-net`} data-amount={p.net}>
          <span class="figure-label">{tc('report.net')}</span>
          <span class="figure-value">{formatFen(p.net)}</span>
        </div>
        <div class="figure" data-testid={`${p.testid}-open`} data-count={p.openOrders.count}>
          <span class="figure-label">{tc('report.open')}</span>
          <span class="figure-value">{formatFen(p.openOrders.amount)}</span>
          <span class="figure-sub">{tc('report.count', { n: p.openOrders.count })}</span>
        </div>
      </div>
      {!p.refunds.available && <div class="hint small">{tc('report.noRefunds')}</div>}
      <table class="table">
        <thead>
          <tr>
            <th>{tc('report.merchant')}</th><th class="num">{tc('report.sales')}</th><th class="num">{tc('report.amount')}</th>
            <th class="num">{tc('report.refundAmount')}</th><th class="num">{tc('report.net')}</th>
            {p.withBill && <th>{tc('report.bill')}</th>}
          </tr>
        </thead>
        <tbody>
          {p.merchants.map((m) => (
            <tr key={m.mchid} data-testid={`${p.testid}-merchant`} data-mchid={m.mchid} data-count={m.count} data-amount={m.amount}>
              <td>{m.name}<div class="mono small">{m.mchid}</div></td>
              <td class="num">{m.count}</td>
              <td class="num">{formatFen(m.amount)}</td>
              <td class="num">{formatFen(m.refund_amount)}</td>
              <td class="num">{formatFen(m.net)}</td>
              {p.withBill && 'bill_status' in m && (
                <td><span class={`bill-status bill-${m.bill_status}`} data-testid="bill-status" data-status={m.bill_status}>{tc(`bill.${m.bill_status}`)}</span></td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
