import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('.', import.meta.url));

// Preact TSX through Oxc's automatic JSX runtime (Vite 8 transforms with Oxc; no preset plugin installed).
export default defineConfig({
  root,
  base: './',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/renderer', import.meta.url)),
    emptyOutDir: true,
    // No inline scripts or modulepreload polyfill: the CSP forbids inline script.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: 'es2022',
    // Two pages: the cashier app and the customer display (its own bundle: none of the cashier's screens).
    rolldownOptions: {
      input: { main: fileURLToPath(new URL('./index.html', import.meta.url)), customer: fileURLToPath(new URL('./customer.html', import.meta.url)) },
    },
  },
});
