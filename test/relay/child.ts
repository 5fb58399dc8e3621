import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** The relay CLI, run as a real process by the crash tests. */
export const RELAY_CLI = join(process.cwd(), 'shared/relay/cli.ts');

/**
 * Starts the relay CLI with `env` added to this process's environment and resolves with the URL
 * from its "listening" line; rejects (with its stderr) if it exits first. `spawned` gets the
 * process at once, so a caller can kill it even if it never starts listening.
 */
export function startRelayChild(env: Record<string, string>, spawned?: (proc: ChildProcess) => void): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', RELAY_CLI], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  spawned?.(proc);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stderr!.on('data', (d) => { err += d; });
    proc.stdout!.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve({ proc, url: JSON.parse(line).url });
    });
    proc.once('exit', (code) => reject(new Error(`relay exited ${code}: ${err}`)));
  });
}
