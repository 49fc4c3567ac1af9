/** A small HTTPS client for tests that trusts the server's own certificate. */
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export function fetchRaw(
  url: string,
  options: { ca?: string | undefined; insecure?: boolean; method?: string; headers?: Record<string, string>; cert?: string; key?: string; body?: Buffer | string; localAddress?: string } = {},
): Promise<Response> {
  const u = new URL(url);
  const request = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      u,
      {
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        // Another loopback address (127.0.0.2...): a client of its own, as far as the server can tell.
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        ...(u.protocol === 'https:'
          ? { ca: options.ca, cert: options.cert, key: options.key, servername: 'localhost', ...(options.insecure ? { rejectUnauthorized: false } : {}) }
          : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** An LXD API caller for one server: as `who` (a client certificate) or anonymous, JSON bodies. */
export function apiCaller(server: { base: string; tls: { cert: string } }) {
  return (who: { cert: string; private: string } | undefined, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<Response> =>
    fetchRaw(server.base + path, {
      ca: server.tls.cert,
      method,
      ...(who ? { cert: who.cert, key: who.private } : {}),
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body } : {}),
    });
}
