/**
 * A plain-HTTP upstream serving a directory tree, with faults to inject per path: the failures a
 * mirror must survive (errors, cut-off and corrupt bodies, stalls, missing files).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { brotliCompressSync, gzipSync } from 'node:zlib';

/**
 * `slow`: the whole body, 64 KiB every 20 ms (a fill that lasts; many readers join it).
 * `trickle`: one byte every 300 ms, forever (defeats an idle timeout; only a deadline ends it).
 * Encodings: `gzip` (the body gzipped when the client accepts it, as nginx's `gzip on`),
 * `gzipCorrupt` (a gzip body with a flipped byte), `gzipTruncated` (half of it, then the
 * connection dropped), `gzipBomb` (a small gzip of 100 MiB of
 * spaces), `brotli` (encoded in an encoding the client never asked for).
 */
export type Fault = 'trickle' | 'status500' | 'truncate' | 'corrupt' | 'stall' | 'missing' | 'slow' | 'endless' | 'gzip' | 'gzipCorrupt' | 'gzipTruncated' | 'gzipBomb' | 'brotli';

export interface FaultServer {
  base: string;
  faults: Map<string, Fault>;
  /** Paths answered with a 302 to the given URL. */
  redirects: Map<string, string>;
  /** Paths requested, in order. */
  requests: string[];
  /** The Accept-Encoding of the latest request of each path. */
  acceptEncoding: Map<string, string | undefined>;
  /** Runs before each request is answered: a way to change the upstream mid-sync. */
  beforeEach: ((path: string) => Promise<void>) | undefined;
  /** "user:password" every request must carry as Basic auth (else 401), as a protected upstream. */
  basicAuth: string | undefined;
  /**
   * Answer `Range: bytes=A-B` with a 206 of those bytes (of the file as served, `corrupt`
   * applied), as static servers do; off (the default), the whole file comes as a 200.
   */
  ranges: boolean;
  close(): Promise<void>;
}

/** Over HTTPS with `tls` (a certificate and its key), else plain HTTP. */
export async function startFaultServer(root: string, tls?: { cert: string; key: string }): Promise<FaultServer> {
  const faults = new Map<string, Fault>();
  const redirects = new Map<string, string>();
  const requests: string[] = [];
  const acceptEncoding = new Map<string, string | undefined>();
  let handle: FaultServer;
  const answer = async (req: IncomingMessage, res: ServerResponse) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^\/+/, '');
    requests.push(path);
    acceptEncoding.set(path, req.headers['accept-encoding']);
    await handle.beforeEach?.(path);
    if (handle.basicAuth !== undefined && req.headers.authorization !== `Basic ${Buffer.from(handle.basicAuth).toString('base64')}`) {
      return void res.writeHead(401, { 'www-authenticate': 'Basic realm="upstream"' }).end('who are you?');
    }
    const target = redirects.get(path);
    if (target) return void res.writeHead(302, { location: target }).end();
    const fault = faults.get(path);
    if (fault === 'status500') return void res.writeHead(500).end('upstream broke');
    if (fault === 'missing') return void res.writeHead(404).end('no such file');
    if (fault === 'endless') {
      // A JSON array that never closes, sent as fast as the client takes it, with no length.
      res.writeHead(200, { 'content-type': 'application/json' });
      const piece = Buffer.from('"' + 'x'.repeat(65_530) + '",');
      res.write('[');
      const more = () => {
        while (!res.destroyed && res.write(piece));
        if (!res.destroyed) res.once('drain', more);
      };
      return void more();
    }
    let body: Buffer;
    try {
      body = await readFile(join(root, path));
    } catch {
      return void res.writeHead(404).end('no such file');
    }
    if (fault === 'trickle') {
      // Never idle long enough for an idle timeout: a byte every 300 ms, for as long as it is read.
      res.writeHead(200, { 'content-length': body.length });
      const drip = setInterval(() => res.write(body.subarray(0, 1)), 300);
      res.on('close', () => clearInterval(drip));
      return;
    }
    if (fault === 'stall') {
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 100));
      return; // and never another byte
    }
    if (fault === 'gzip' || fault === 'gzipCorrupt' || fault === 'gzipTruncated' || fault === 'gzipBomb' || fault === 'brotli') {
      const encoded =
        fault === 'brotli' ? brotliCompressSync(body)
        : fault === 'gzipBomb' ? gzipSync(Buffer.alloc(100 * 1024 * 1024, 0x20))
        : gzipSync(body);
      if (fault === 'gzipCorrupt') encoded[encoded.length >> 1] = encoded[encoded.length >> 1]! ^ 0xff;
      if (fault === 'gzip' && !/\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) return void res.writeHead(200, { 'content-length': body.length }).end(body);
      res.writeHead(200, { 'content-length': encoded.length, 'content-encoding': fault === 'brotli' ? 'br' : 'gzip' });
      if (fault === 'gzipTruncated') return void res.write(encoded.subarray(0, encoded.length >> 1), () => res.destroy());
      return void res.end(encoded);
    }
    if (fault === 'corrupt') {
      body = Buffer.from(body);
      body[body.length >> 1] = body[body.length >> 1]! ^ 0xff;
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (handle.ranges && range && (fault === undefined || fault === 'corrupt')) {
      const start = Number(range[1]);
      const end = Math.min(Number(range[2]), body.length - 1);
      if (start > end) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      return void res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${body.length}` }).end(body.subarray(start, end + 1));
    }
    res.writeHead(200, { 'content-length': body.length });
    if (fault === 'truncate') {
      res.write(body.subarray(0, body.length >> 1), () => res.destroy());
      return;
    }
    if (fault === 'slow') {
      for (let at = 0; at < body.length && !res.destroyed; at += 65536) {
        res.write(body.subarray(at, at + 65536));
        await sleep(20);
      }
    }
    res.end(body.subarray(fault === 'slow' ? body.length : 0));
  };
  const server: Server = tls ? createTlsServer(tls, answer) : createServer(answer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  handle = {
    base: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    faults,
    redirects,
    requests,
    acceptEncoding,
    beforeEach: undefined,
    basicAuth: undefined,
    ranges: false,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return handle;
}

/** A TCP port that accepts connections and never says a word (a black-holed origin). */
export async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<import('node:net').Socket>();
  const server = (await import('node:net')).createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
