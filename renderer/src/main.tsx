/** Entry: connect to the terminal API (Electron preload or the web host) and mount the app. */
import { render } from 'preact';
import { connectApi } from './api';
import { App } from './App';
import { t } from './i18n';

const root = document.getElementById('app')!;
const pos = connectApi(() => {
  // The web host refused this page (opened without a start link, or the app restarted since):
  // nothing can be called, say so plainly instead of a screen that never loads.
  render(null, root);
  root.innerHTML = '';
  const note = document.createElement('div');
  note.className = 'notice';
  note.setAttribute('data-testid', 'session-expired');
  note.textContent = t('err.sessionExpired');
  root.appendChild(note);
});
render(<App pos={pos} />, root);
