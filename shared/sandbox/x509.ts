/**
 * Minimal X.509 v3 certificate writer (DER), so `init` needs no openssl binary: node:crypto
 * can parse certificates but not create them. Only what the sandbox needs: RSA keys,
 * SHA256withRSA, a subject/issuer of a few text attributes, an explicit serial and validity.
 */
import { createPublicKey, createSign, type KeyObject } from 'node:crypto';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), len(content.length), content]);
}

const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const NULL = Buffer.from([0x05, 0x00]);

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    const stack: number[] = [p & 0x7f];
    for (let v = p >> 7; v > 0; v >>= 7) stack.unshift((v & 0x7f) | 0x80);
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
}

/** Positive INTEGER from big-endian bytes (a leading 0x00 keeps the sign bit clear). */
function integer(bytes: Buffer): Buffer {
  let b = bytes;
  while (b.length > 1 && b[0] === 0 && b[1]! < 0x80) b = b.subarray(1);
  if (b[0]! >= 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

/** UTCTime up to 2049, GeneralizedTime after, as RFC 5280 requires. */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

const ATTRIBUTE_OIDS: Record<string, string> = { C: '2.5.4.6', ST: '2.5.4.8', L: '2.5.4.7', O: '2.5.4.10', OU: '2.5.4.11', CN: '2.5.4.3' };

function name(attrs: [keyof typeof ATTRIBUTE_OIDS, string][]): Buffer {
  // UTF8String throughout: merchant names are Chinese.
  return seq(...attrs.map(([k, v]) => set(seq(oid(ATTRIBUTE_OIDS[k]!), tlv(0x0c, Buffer.from(v, 'utf8'))))));
}

const SHA256_WITH_RSA = seq(oid('1.2.840.113549.1.1.11'), NULL);

export interface CertificateSpec {
  /** Upper-case hex, e.g. 40 characters. */
  serial: string;
  subject: [string, string][];
  issuer?: [string, string][];
  notBefore: Date;
  notAfter: Date;
  /** Key whose public half goes into the certificate. */
  publicKey: KeyObject;
  /** Key that signs it (the subject's own key for a self-signed certificate). */
  signingKey: KeyObject;
}

/** Returns the certificate as PEM. */
export function createCertificate(spec: CertificateSpec): string {
  if (!/^[0-9A-F]+$/i.test(spec.serial) || spec.serial.length % 2 !== 0) throw new Error(`serial must be an even number of hex digits: ${spec.serial}`);
  const pub = spec.publicKey.type === 'public' ? spec.publicKey : createPublicKey(spec.publicKey);
  const spki = pub.export({ type: 'spki', format: 'der' });
  const subject = name(spec.subject as [keyof typeof ATTRIBUTE_OIDS, string][]);
  const issuer = spec.issuer ? name(spec.issuer as [keyof typeof ATTRIBUTE_OIDS, string][]) : subject;
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // [0] EXPLICIT version v3
    integer(Buffer.from(spec.serial, 'hex')),
    SHA256_WITH_RSA,
    issuer,
    seq(time(spec.notBefore), time(spec.notAfter)),
    subject,
    spki,
  );
  const signature = createSign('RSA-SHA256').update(tbs).sign(spec.signingKey);
  const der = seq(tbs, SHA256_WITH_RSA, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
}
