/**
 * `npm run relay` serves; `npm run relay -- add-terminal NAME --role cashier|manager` prints a
 * new token as the last stdout line; `npm run relay -- migrate` brings the PostgreSQL database
 * named by RELAY_DATABASE_URL to this relay's schema (run it before serving from PostgreSQL, and
 * after upgrading the relay; serving refuses a database at another version). With
 * RELAY_DATABASE_URL, serving and add-terminal use PostgreSQL; otherwise SQLite at RELAY_DB.
 * A bad setting stops it with one line naming the setting.
 */
import { ConfigError } from '../wechatpay/errors';
import { addTerminal, loadRelayConfig, startRelay } from './index';
import { RelayError } from './errors';
import { parseDatabaseUrl } from './pg/url';

function die(message: string, code = 2): never {
  process.stderr.write(`relay: ${message.replace(/\s+/g, ' ')}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === 'migrate') {
    const url = process.env.RELAY_DATABASE_URL?.trim();
    if (!url) die('migrate needs RELAY_DATABASE_URL');
    // Loaded only here: serving from SQLite never opens the PostgreSQL driver.
    const { openPg, migratePg } = await import('./pg/index');
    const pool = openPg(url, { max: 1, applicationName: 'relay-migrate' });
    try {
      const r = await migratePg(pool);
      process.stdout.write(JSON.stringify({ event: 'migrated', from: r.from, to: r.to, applied: r.applied }) + '\n');
    } finally {
      await pool.end();
    }
    return;
  }
  if (cmd === 'add-terminal') {
    const name = rest[0];
    const ri = rest.indexOf('--role');
    const role = ri >= 0 ? rest[ri + 1] : undefined;
    if (!name || name.startsWith('--') || !role) die('usage: relay add-terminal NAME --role cashier|manager');
    // Contract §2: with RELAY_DATABASE_URL the token is written to PostgreSQL (every relay on it
    // accepts it), else to the SQLite file RELAY_DB.
    const url = process.env.RELAY_DATABASE_URL?.trim();
    if (url) parseDatabaseUrl(url);
    const token = await addTerminal(url
      ? { databaseUrl: url, databasePool: 1, dbPath: '', dbSynchronous: 'NORMAL' }
      : (process.env.RELAY_DB?.trim() || 'data/relay.db'), name, role);
    process.stdout.write(`terminal ${name} (${role}) added; its token (shown once):\n${token}\n`);
    return;
  }
  if (cmd !== undefined && cmd !== 'serve') die(`unknown command ${cmd} (serve | add-terminal NAME --role cashier|manager | migrate)`);
  const config = loadRelayConfig(process.env);
  const relay = await startRelay(config);
  process.stdout.write(JSON.stringify({ event: 'listening', url: relay.url }) + '\n');
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    relay.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main(process.argv.slice(2)).catch((err) => {
  if (err instanceof ConfigError) die(`config error: ${err.message}`);
  if (err instanceof RelayError) die(err.message, 1);
  if (err && typeof err === 'object' && (err as { name?: string }).name === 'PgSchemaError') die((err as Error).message, 1);
  die(`failed to start: ${(err as Error).message}`, 1);
});
