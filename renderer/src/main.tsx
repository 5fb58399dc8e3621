/** Entry: connect to the terminal API (Electron preload or the web host) and mount the app. */
import { render } from 'preact';
import { connectApi } from './api';
import { App } from './App';
import { t } from './i18n';

const root = document.getElementById('app')!;
const pos = connectApi();
if (pos) render(<App pos={pos} />, root);
else {
  // Opened without the per-launch secret: nothing can be called, say so plainly.
  root.textContent = t('err.unauthorized');
}
