/**
 * Browser side of the end-to-end tests: Debian Chromium through playwright-core at the counter
 * screen's size, screenshots saved as artifacts, and the on-screen QR read back from pixels.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
// @ts-ignore -- pngjs ships no type declarations (and @types/pngjs is not installed)
import { PNG as PNGUntyped } from 'pngjs';
import jsQR from 'jsqr';

const PNG = PNGUntyped as { sync: { read(buf: Buffer): { width: number; height: number; data: Buffer } } };

const RENDERER_INDEX = fileURLToPath(new URL('../../dist/renderer/index.html', import.meta.url));

export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/e2e', import.meta.url));

const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
];

export interface Session {
  context: BrowserContext;
  page: Page;
  /** Browser console errors and page exceptions seen so far (a CSP violation shows up here). */
  errors: string[];
  close(): Promise<void>;
}

let browser: Browser | null = null;

/** One Chromium per test file (launching is the slow part); playwright gives it a fresh temp profile. */
async function getBrowser(): Promise<Browser> {
  if (!browser || !browser.isConnected()) {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      headless: true,
      args: ARGS,
    });
  }
  return browser;
}

export async function closeBrowser(): Promise<void> {
  await browser?.close();
  browser = null;
}

/** A fresh browser context (its own storage, like a newly started app window) on the web host. */
export async function openApp(webUrl: string): Promise<Session> {
  if (!existsSync(RENDERER_INDEX)) throw new Error(`${RENDERER_INDEX} is missing: run \`npm run build:renderer\` (npm test does it first)`);
  const context = await (await getBrowser()).newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(webUrl);
  await page.waitForSelector('[data-testid=connection][data-state=online]', { timeout: 20_000 });
  return { context, page, errors, close: () => context.close() };
}

/** A fresh context on any address, without waiting for the app to come online (refusal tests). */
export async function openPage(url: string): Promise<Session> {
  const context = await (await getBrowser()).newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  return { context, page, errors, close: () => context.close() };
}

export async function shot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** Decodes the QR shown on screen from a screenshot of its element (not from any attribute). */
export async function readScreenQr(page: Page): Promise<string | null> {
  const el = page.locator('[data-testid=qr][data-ready="1"]');
  const png = PNG.sync.read(await el.screenshot());
  const code = jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.length), png.width, png.height);
  return code?.data ?? null;
}

export type { Browser, Page };
