/**
 * The dependency rules of the parts, as a test. Every import specifier of every source file
 * (static, dynamic, `export … from`, type-only too) is read with the TypeScript compiler's
 * pre-processor and resolved to a file of this repository or an npm package:
 * - renderer/ knows only renderer/ and the typed terminal API (shared/contracts/terminal-api.ts),
 *   plus browser packages (preact, qrcode); never Node, Electron or another part;
 * - electron/ holds no business logic: no relay, sandbox or APIv3 client;
 * - shared/relay and shared/sandbox both use shared/wechatpay and never import each other;
 * - shared/wechatpay imports neither (nor the terminal);
 * - shared/terminal imports no relay, sandbox or APIv3 client, except the embedded default
 *   (shared/terminal/embedded.ts, the composition root `npm start` and the tests use), which
 *   nothing else in the terminal or in electron/ may import;
 * - shared/contracts are pure types (contracts only); shared/util imports nothing of ours.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '..');
const SOURCE_DIRS = ['renderer', 'electron', 'shared', 'scripts'];
const NODE = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/** A repository path (`shared/relay/store.ts`) or `npm:<package>` / `node:<module>`. */
type Target = string;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|tsx|mts|cts)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const repoPath = (abs: string) => relative(ROOT, abs).split(sep).join('/');

function resolveSpecifier(fromAbs: string, spec: string): Target {
  if (spec.startsWith('.') || spec.startsWith('/')) {
    const base = resolve(dirname(fromAbs), spec);
    for (const c of [base, `${base}.ts`, `${base}.tsx`, join(base, 'index.ts'), base.replace(/\.js$/, '.ts')]) {
      if (existsSync(c) && statSync(c).isFile()) return repoPath(c);
    }
    return repoPath(base); // unresolved: judged by its folder all the same
  }
  if (NODE.has(spec) || NODE.has(spec.split('/')[0]!)) return `node:${spec.replace(/^node:/, '')}`;
  const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
  return `npm:${pkg}`;
}

const under = (p: string, dir: string) => p.startsWith(`${dir}/`);
const ours = (t: Target) => !t.startsWith('npm:') && !t.startsWith('node:');

/** Why `from` may not import `to`, or null when it may. */
export function ruleBroken(from: string, to: Target): string | null {
  if (under(from, 'renderer')) {
    if (/\.config\.ts$/.test(from)) return null; // build configuration, runs in Node
    if (to.startsWith('node:') || to === 'npm:electron') return 'the renderer runs in a sandboxed page: no Node, no Electron';
    if (to.startsWith('npm:')) return null;
    if (under(to, 'renderer') || to === 'shared/contracts/terminal-api.ts') return null;
    return 'the renderer knows only renderer/ and shared/contracts/terminal-api.ts';
  }
  if (under(from, 'electron')) {
    if (['shared/relay', 'shared/sandbox', 'shared/wechatpay'].some((d) => under(to, d))) return 'electron/ contains the terminal only';
    if (to === 'shared/terminal/embedded.ts') return 'electron/ must not start the embedded relay and sandbox';
    return null;
  }
  if (under(from, 'shared/relay')) {
    if (['shared/sandbox', 'shared/terminal', 'electron', 'renderer'].some((d) => under(to, d))) return 'the relay uses shared/wechatpay, never the sandbox or the terminal';
    return null;
  }
  if (under(from, 'shared/sandbox')) {
    if (['shared/relay', 'shared/terminal', 'electron', 'renderer'].some((d) => under(to, d))) return 'the sandbox uses shared/wechatpay, never the relay or the terminal';
    return null;
  }
  if (under(from, 'shared/wechatpay')) {
    if (['shared/relay', 'shared/sandbox', 'shared/terminal', 'electron', 'renderer'].some((d) => under(to, d))) return 'the APIv3 client imports no other part';
    return null;
  }
  if (under(from, 'shared/terminal')) {
    if (from === 'shared/terminal/embedded.ts') return null; // the composition root of the embedded default
    if (['shared/relay', 'shared/sandbox', 'shared/wechatpay', 'electron', 'renderer'].some((d) => under(to, d))) return 'the terminal services import no relay, sandbox or APIv3 client';
    if (to === 'shared/terminal/embedded.ts') return 'only npm start and tests start the embedded default';
    return null;
  }
  if (under(from, 'shared/contracts')) {
    if (ours(to) && !under(to, 'shared/contracts')) return 'contracts are pure types';
    if (!ours(to)) return 'contracts are pure types: no packages, no Node';
    return null;
  }
  if (under(from, 'shared/util')) {
    if (ours(to) && !under(to, 'shared/util')) return 'shared/util imports nothing of ours';
    return null;
  }
  return null;
}

function imports(): { from: string; to: Target; spec: string }[] {
  const all: { from: string; to: Target; spec: string }[] = [];
  for (const dir of SOURCE_DIRS) {
    for (const abs of sourceFiles(join(ROOT, dir))) {
      const info = ts.preProcessFile(readFileSync(abs, 'utf8'), true, true);
      for (const f of info.importedFiles) all.push({ from: repoPath(abs), to: resolveSpecifier(abs, f.fileName), spec: f.fileName });
    }
  }
  return all;
}

describe('dependency rules', () => {
  it('the rules themselves refuse what they should (so a pass means something)', () => {
    expect(ruleBroken('renderer/src/store.ts', 'shared/contracts/relay-api.ts')).not.toBeNull();
    expect(ruleBroken('renderer/src/store.ts', 'node:fs')).not.toBeNull();
    expect(ruleBroken('renderer/src/store.ts', 'shared/contracts/terminal-api.ts')).toBeNull();
    expect(ruleBroken('electron/main.ts', 'shared/terminal/embedded.ts')).not.toBeNull();
    expect(ruleBroken('electron/main.ts', 'shared/relay/index.ts')).not.toBeNull();
    expect(ruleBroken('shared/relay/server.ts', 'shared/sandbox/index.ts')).not.toBeNull();
    expect(ruleBroken('shared/sandbox/server.ts', 'shared/relay/store.ts')).not.toBeNull();
    expect(ruleBroken('shared/wechatpay/client.ts', 'shared/relay/store.ts')).not.toBeNull();
    expect(ruleBroken('shared/terminal/web-host.ts', 'shared/wechatpay/raw-body.ts')).not.toBeNull();
    expect(ruleBroken('shared/terminal/embedded.ts', 'shared/relay/index.ts')).toBeNull();
    expect(ruleBroken('shared/relay/server.ts', 'shared/wechatpay/index.ts')).toBeNull();
  });

  it('every import in renderer/, electron/, shared/ and scripts/ keeps them', () => {
    const all = imports();
    // The scan saw the code (an empty scan cannot pass).
    expect(all.some((i) => i.from === 'electron/main.ts' && i.to === 'shared/terminal/services.ts')).toBe(true);
    expect(all.some((i) => under(i.from, 'renderer') && i.to === 'shared/contracts/terminal-api.ts')).toBe(true);
    const broken = all
      .map((i) => ({ ...i, rule: ruleBroken(i.from, i.to) }))
      .filter((i) => i.rule)
      .map((i) => `${i.from} imports ${i.spec} (${i.to}): ${i.rule}`);
    expect(broken).toEqual([]);
  });
});
