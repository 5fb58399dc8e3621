// Preloaded into tools that like to phone home (electronegativity fetches translations and
// Electron's release list): only loopback may be reached from tests.
const dns = require('node:dns');
const net = require('node:net');
const loopback = (h) => h === 'localhost' || h === '::1' || /^127\./.test(String(h));
const origLookup = dns.lookup;
dns.lookup = function (host, ...rest) {
  const cb = rest[rest.length - 1];
  if (!loopback(host)) {
    const err = Object.assign(new Error(`blocked non-loopback lookup of ${host}`), { code: 'ENOTFOUND' });
    return process.nextTick(() => cb(err));
  }
  return origLookup.call(this, host, ...rest);
};
const origConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const o = args[0];
  const host = o && typeof o === 'object' ? o.host : typeof args[1] === 'string' ? args[1] : undefined;
  if (host && net.isIP(host) && !loopback(host)) throw new Error(`blocked non-loopback connection to ${host}`);
  return origConnect.apply(this, args);
};
