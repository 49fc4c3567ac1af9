/**
 * Listeners. The HTTPS port also speaks plain HTTP: clients fetch artifacts from
 * http://<same host:port> before trying https, so the first byte of each connection decides
 * (0x16 starts a TLS handshake) which server gets it.
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { once } from 'node:events';
import { DEFAULT_CIPHERS } from 'node:tls';
import type { RequestHandler } from './app.ts';

export interface Listener {
  port: number;
  close(): Promise<void>;
}

export interface TlsOptions {
  cert: string;
  key: string;
}

const tlsHandshake = 0x16;

function tuned<T extends HttpServer>(server: T): T {
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  return server;
}

export async function listenDual(host: string, port: number, handler: RequestHandler, tls: TlsOptions): Promise<Listener> {
  const plain = tuned(createHttpServer(handler));
  const secure = tuned(
    createHttpsServer(
      {
        cert: tls.cert,
        key: tls.key,
        minVersion: 'TLSv1.2',
        // AES-128-GCM first, as Go clients prefer: same security margin here, less CPU on both ends.
        ciphers: `TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:${DEFAULT_CIPHERS}`,
        // Ask for a client certificate without requiring one: LXD clients present theirs to be trusted.
        requestCert: true,
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
      },
      handler,
    ),
  );
  const sockets = new Set<Socket>();
  const front = createNetServer({ pauseOnConnect: false }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.once('readable', () => {
      const first = socket.read(1) as Buffer | null;
      if (first === null) return void socket.end();
      socket.unshift(first);
      (first[0] === tlsHandshake ? secure : plain).emit('connection', socket);
    });
  });
  return listenOn(front, host, port, sockets);
}

export async function listenPlain(host: string, port: number, handler: RequestHandler): Promise<Listener> {
  const server = tuned(createHttpServer(handler));
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return listenOn(server, host, port, sockets);
}

async function listenOn(server: NetServer, host: string, port: number, sockets: Set<Socket>): Promise<Listener> {
  server.listen({ host, port, ipv6Only: false });
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
