/**
 * The server's TLS identity: the operator's certificate, or a self-signed one created in the data
 * dir on first start. Its subject is unique per install, because Go clients get confused by two
 * trusted certificates with the same name.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { readFile, writeFile, rename } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AppError, ErrorCodes } from './errors.ts';
import { certificateFingerprint } from './domain/fingerprint.ts';

export interface TlsIdentity {
  cert: string;
  key: string;
  certPath: string;
  /** SHA-256 of the DER certificate, lowercase hex, as lxc prints it. */
  fingerprint: string;
  created: boolean;
}

export async function loadTlsIdentity(options: { dataDir: string; certPath?: string | undefined; keyPath?: string | undefined }): Promise<TlsIdentity> {
  const certPath = options.certPath ?? join(options.dataDir, 'server.crt');
  const keyPath = options.keyPath ?? join(options.dataDir, 'server.key');
  const existing = await readPair(certPath, keyPath);
  if (!existing && options.certPath) {
    throw new AppError(ErrorCodes.config, `cannot read the TLS certificate ${certPath} or key ${keyPath}`);
  }
  const created = !existing;
  const pair: { cert: string; key: string } = existing ?? (await createSelfSigned(certPath, keyPath));
  let fingerprint: string;
  try {
    fingerprint = certificateFingerprint(new X509Certificate(pair.cert));
  } catch (err) {
    throw new AppError(ErrorCodes.config, `${certPath} is not a PEM certificate: ${(err as Error).message}`);
  }
  return { ...pair, certPath, fingerprint, created };
}

async function readPair(certPath: string, keyPath: string) {
  try {
    return { cert: await readFile(certPath, 'utf8'), key: await readFile(keyPath, 'utf8') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function createSelfSigned(certPath: string, keyPath: string) {
  const host = hostname();
  const name = `wharf@${host} ${randomBytes(4).toString('hex')}`;
  const notBeforeDate = new Date(Date.now() - 60_000);
  // Loaded only when needed: the X.509 toolkit behind it costs ~20 MB of memory for the server's life.
  const { default: selfsigned } = await import('selfsigned');
  const pems = await selfsigned.generate([{ name: 'commonName', value: name }, { name: 'organizationName', value: 'wharf' }], {
    // P-256, not LXD's own P-384: every connection of an LXD or Incus client is a new full
    // handshake, and a P-384 signature costs ~47x a P-256 one (OpenSSL here: 834 against 39,531
    // signs/s per core), which capped a 2-core server near 800 handshakes/s.
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 10 * 365 * 86400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          // A DNS name first: clients that pin this certificate use the first DNS SAN as server name.
          { type: 2, value: 'localhost' },
          ...(host !== 'localhost' ? [{ type: 2 as const, value: host }] : []),
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  await writeAtomic(keyPath, pems.private, 0o600);
  await writeAtomic(certPath, pems.cert, 0o644);
  return { cert: pems.cert, key: pems.private };
}

async function writeAtomic(path: string, content: string, mode: number) {
  await writeFile(`${path}.tmp`, content, { mode });
  await rename(`${path}.tmp`, path);
}

/** Where the serving process records the certificate it serves (see tokenFingerprint). */
const servedRecord = (dataDir: string) => join(dataDir, 'served.crt');

/** Called by the server once its identity is loaded: `trust add-token` then pins what is served. */
export async function recordServedCertificate(dataDir: string, certPem: string): Promise<void> {
  await writeAtomic(servedRecord(dataDir), certPem, 0o644);
}

/**
 * The fingerprint a join token pins: the certificate named here, else the one the server last
 * started with recorded (it may come from `serve --tls-cert`, which no other command sees), else
 * the configured or self-signed one. A token pinning another certificate than the served one is
 * refused by the client ("Certificate fingerprint mismatch").
 */
export async function tokenFingerprint(options: { dataDir: string; certPath?: string | undefined; configuredCert?: string | undefined; configuredKey?: string | undefined }): Promise<string> {
  const path = options.certPath ?? servedRecord(options.dataDir);
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // No server has started yet: the certificate it will serve.
    if (!options.certPath && code === 'ENOENT') {
      return (await loadTlsIdentity({ dataDir: options.dataDir, certPath: options.configuredCert, keyPath: options.configuredKey })).fingerprint;
    }
    throw new AppError(ErrorCodes.config, `cannot read the TLS certificate ${path}: ${code ?? (err as Error).message}`);
  }
  try {
    return certificateFingerprint(new X509Certificate(pem));
  } catch (err) {
    throw new AppError(ErrorCodes.config, `${path} is not a PEM certificate: ${(err as Error).message}`);
  }
}

/**
 * Whether the served certificate signed itself (wharf's own, made on first start, is): clients
 * must then pin it, and the catalogue tells people its fingerprint. One an authority signed,
 * public or the operator's own, is taken as trusted by the clients it serves. (Not checked
 * against the system's CA list: Node reads that once per process, and reading it at start would
 * hide CAs added later from the remote fetches that read it when they first need it.)
 */
export function selfSigned(certPem: string): boolean {
  const leaf = new X509Certificate(certPem);
  return leaf.issuer === leaf.subject && leaf.verify(leaf.publicKey);
}
