/**
 * A confirmation over the screen (large amount, closing an order): two large buttons, the safe one
 * focused-looking on the right. Keys are handled by the screen that opened it (Enter / Esc).
 */
export function ConfirmDialog(p: {
  testid: string;
  title: string;
  body: string;
  yes: string;
  no: string;
  danger?: boolean;
  onYes(): void;
  onNo(): void;
}) {
  return (
    <div class="dialog-backdrop" data-testid={p.testid} role="dialog" aria-modal="true" aria-label={p.title}>
      <div class="dialog">
        <div class="dialog-title">{p.title}</div>
        <div class="dialog-body">{p.body}</div>
        <div class="dialog-buttons">
          <button class="btn" data-testid={`${p.testid}-no`} onClick={p.onNo}>{p.no}</button>
          <button class={`btn ${p.danger ? 'danger-solid' : 'primary'}`} data-testid={`${p.testid}-yes`} onClick={p.onYes}>{p.yes}</button>
        </div>
      </div>
    </div>
  );
}
