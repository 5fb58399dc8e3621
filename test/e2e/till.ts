/**
 * The usual end-to-end setup: an ESC/POS printer capture, the whole stack (its data in a temp
 * folder removed on close) printing to it, and the cashier app open in Chromium.
 */
import { startEscPosCapture, type EscPosCapture } from '../helpers/escpos-capture';
import { startStack, type Stack, type StackOptions } from '../helpers/stack';
import { closeBrowser, openApp, type Session } from './browser';

export interface Till {
  capture: EscPosCapture;
  stack: Stack;
  app: Session;
  /** Stops everything started, the browser included. */
  close(): Promise<void>;
}

export async function startTill(options: Omit<StackOptions, 'dir' | 'printer'> = {}): Promise<Till> {
  let capture: EscPosCapture | undefined;
  let stack: Stack | undefined;
  let app: Session | undefined;
  const close = async () => {
    await app?.close();
    await closeBrowser();
    await stack?.close();
    await capture?.close();
  };
  try {
    capture = await startEscPosCapture();
    stack = await startStack({ ...options, printer: capture.uri });
    app = await openApp(stack.webUrl);
  } catch (e) {
    await close(); // nothing left running when a part fails to start
    throw e;
  }
  return { capture, stack, app, close };
}
