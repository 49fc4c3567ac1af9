/**
 * Listeners. The HTTPS port also speaks plain HTTP: clients fetch artifacts from
 * http://<same host:port> before trying https, so the first byte of each connection decides
 * (0x16 starts a TLS handshake) which server gets it.
 *
 * The http and https servers here never listen themselves, so Node's own enforcement of
 * headersTimeout (which runs only for listening servers) never applies: connections are bounded
 * here instead. A connection has `headersTimeoutMs` from being accepted (or from its last
 * response) to deliver a request's headers; that one deadline covers a silent client, a TLS
 * handshake that stalls, headers sent a byte at a time and an idle keep-alive connection. While a
 * request is in progress its length is not bounded: a large download or upload may take as long
 * as it needs; only a transfer that stops is cut: a request body whose client sends no byte for
 * `bodyTimeoutMs` (here, nginx's client_body_timeout) and a download whose client takes none
 * (`send_timeout`, in send-blob.ts).
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { createServer as createHttpServer } from '../builtins/http.ts';
import { createServer as createHttpsServer } from 'node:https';
import { once } from 'node:events';
import { DEFAULT_CIPHERS } from 'node:tls';
import type { RequestHandler } from './app.ts';
import { AppError, ErrorCodes } from '../errors.ts';
import { firstRecordSize, fromBrowser, handshakeRecord } from './client-hello.ts';
import { ConnectionBudget } from './connection-budget.ts';

export interface Listener {
  port: number;
  /** TLS handshakes completed so far (0 for a plain listener). */
  readonly handshakes: number;
  /**
   * Stops accepting connections and closes the idle ones; a connection busy with a response is
   * closed when it is over, or cut after `graceMs` (default 0: at once).
   */
  close(graceMs?: number): Promise<void>;
}

export interface TlsOptions {
  cert: string;
  key: string;
  /** Session ticket keys (48 bytes), the same in every serving process so any of them resumes a session. */
  ticketKeys?: Buffer;
}

export interface ListenOptions {
  /**
   * Time a connection has to deliver complete request headers, from its accept or from the end
   * of its previous response. LXD and Incus clients give up on a server after 30 s themselves.
   */
  headersTimeoutMs?: number;
  /** Idle time after a response before a keep-alive connection is closed (if sooner than the above). */
  keepAliveTimeoutMs?: number;
  /**
   * Time a request body may go without a byte arriving before the connection is cut (0: never).
   * A client that sends slowly is served; one that announced a body and stopped sending it does
   * not hold its connection forever.
   */
  bodyTimeoutMs?: number;
  /**
   * Connections the listener may hold open, per client address and in all; the next is closed
   * straight away. `listenLimits` gives one budget to all the listeners of a process; without
   * one, a listener has its own: 64 per address (the benchmarks drive at most 20 connections from
   * 127.0.0.1) and 10,000 in all (a flood from many addresses then stops short of the process's
   * file descriptor limit, so that the files downloads open and the databases still get theirs).
   */
  connections?: ConnectionBudget;
  /**
   * Several serving processes share the port (SO_REUSEPORT; the kernel spreads connections over
   * them). 'first': the port must be free (checked with an exclusive bind, so a foreign server is
   * never joined); 'join': bind beside the first process. Unset: an ordinary exclusive listener.
   */
  sharePort?: 'first' | 'join' | undefined;
}

type Limits = Required<Omit<ListenOptions, 'sharePort' | 'connections'>>;

const defaults: Limits = { headersTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, bodyTimeoutMs: 60_000 };

const defaultBudget = () => new ConnectionBudget({ perAddress: 64, total: 10_000 });

function tuned<T extends HttpServer>(server: T, options: Limits): T {
  server.keepAliveTimeout = options.keepAliveTimeoutMs;
  server.requestTimeout = 0;
  server.headersTimeout = options.headersTimeoutMs;
  return server;
}

/** A connection as the listener sees it; the key is the peer's address and port. */
interface Connection {
  socket: Socket;
  address: string;
  /** Requests received whose responses are not finished yet. */
  active: number;
  timer: NodeJS.Timeout | undefined;
}

const peerKey = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}`;

/** Whether a request announces a body (a length above 0, or chunks). */
const hasBody = (req: IncomingMessage) =>
  req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

/**
 * Admission and deadlines for the connections of one listener. The TLS socket a request arrives
 * on is another object than the TCP socket that was accepted, but both report the same peer
 * address and port, which identify the connection while it is open.
 */
class ConnectionGuard {
  private readonly byPeer = new Map<string, Connection>();
  private readonly budget: ConnectionBudget;
  private readonly options: Limits;
  private draining = false;
  private drained: (() => void) | undefined;

  constructor(options: Limits, budget: ConnectionBudget) {
    this.options = options;
    this.budget = budget;
  }

  /** Takes a freshly accepted socket; false (and the socket destroyed) when the budget has no place for it. */
  admit(socket: Socket): boolean {
    socket.on('error', () => socket.destroy());
    if (this.draining) {
      socket.destroy();
      return false;
    }
    const address = socket.remoteAddress ?? '';
    if (!this.budget.take(address)) {
      socket.destroy();
      return false;
    }
    const key = peerKey(socket);
    const connection: Connection = { socket, address, active: 0, timer: undefined };
    this.byPeer.set(key, connection);
    socket.once('close', () => {
      clearTimeout(connection.timer);
      if (this.byPeer.get(key) === connection) this.byPeer.delete(key);
      this.budget.give(address);
      if (this.byPeer.size === 0) this.drained?.();
    });
    this.arm(connection);
    return true;
  }

  /** Watches the requests of a server fed by this guard. */
  watch(server: HttpServer) {
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => this.started(req, res));
  }

  private started(req: IncomingMessage, res: ServerResponse) {
    const connection = this.byPeer.get(peerKey(req.socket as Socket));
    if (!connection) return;
    // The deadline keeps running during the request but does nothing while one is active (see
    // arm); its end restarts it. Cheaper than a new timer per request.
    connection.active++;
    if (this.draining) res.shouldKeepAlive = false;
    if (this.options.bodyTimeoutMs > 0 && hasBody(req)) this.boundBody(req, res);
    // A response emits 'close' once, after it finished or when its connection went away.
    res.once('close', () => {
      connection.active--;
      if (connection.active > 0 || connection.socket.destroyed) return;
      if (this.draining) connection.socket.destroy();
      else connection.timer?.refresh();
    });
  }

  /**
   * An inactivity timeout on the socket while the body comes in: node:http destroys a socket
   * whose timeout nobody handles. Lifted when the body is complete, unless the response has
   * started (a download sets its own, send_timeout).
   */
  private boundBody(req: IncomingMessage, res: ServerResponse) {
    const socket = req.socket;
    socket.setTimeout(this.options.bodyTimeoutMs);
    req.once('end', () => {
      if (!res.headersSent) socket.setTimeout(0);
    });
  }

  /** See Listener.close: idle connections close now, busy ones when done or after `graceMs`. */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    for (const connection of this.byPeer.values()) if (connection.active === 0) connection.socket.destroy();
    if (this.byPeer.size > 0 && graceMs > 0) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
        setTimeout(resolve, graceMs).unref();
      });
    }
    for (const connection of this.byPeer.values()) connection.socket.destroy();
  }

  private arm(connection: Connection) {
    connection.timer = setTimeout(() => {
      if (connection.active === 0) connection.socket.destroy();
    }, this.options.headersTimeoutMs);
    connection.timer.unref();
  }
}

/** The limits a serving process of `wharf serve` (or of a mirror) gives all its listeners, from its settings. */
export function listenLimits(config: { headersTimeout: number; bodyTimeout: number; maxConnectionsPerAddress: number; maxConnections: number }): ListenOptions {
  return {
    headersTimeoutMs: config.headersTimeout * 1000,
    bodyTimeoutMs: config.bodyTimeout * 1000,
    connections: new ConnectionBudget({ perAddress: config.maxConnectionsPerAddress, total: config.maxConnections }),
  };
}

export async function listenDual(host: string, port: number, handler: RequestHandler, tls: TlsOptions, options: ListenOptions = {}): Promise<Listener> {
  const settings = { ...defaults, ...options };
  const plain = tuned(createHttpServer(handler), settings);
  const secureServer = (requestCert: boolean) =>
    tuned(
      createHttpsServer(
        {
          cert: tls.cert,
          key: tls.key,
          minVersion: 'TLSv1.2',
          // AES-128-GCM first, as Go clients prefer: same security margin here, less CPU on both ends.
          ciphers: `TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:${DEFAULT_CIPHERS}`,
          // Asked for, never required: LXD and Incus clients present theirs to be trusted.
          requestCert,
          rejectUnauthorized: false,
          // Node refuses a handshake whose ALPN offer shares nothing with this list; HTTP/1.0 clients exist.
          ALPNProtocols: ['http/1.1', 'http/1.0'],
          handshakeTimeout: settings.headersTimeoutMs,
          ...(tls.ticketKeys ? { ticketKeys: tls.ticketKeys } : {}),
        },
        handler,
      ),
      settings,
    );
  const secure = secureServer(true);
  // Browsers (told apart by their ClientHello, client-hello.ts) are not asked for a
  // certificate: they never present one to wharf, and the request makes a browser show a
  // certificate picker to anyone who has one installed (and costs a Chrome visitor ~40 ms and a
  // second handshake).
  const secureForBrowsers = secureServer(false);
  const guard = new ConnectionGuard(settings, options.connections ?? defaultBudget());
  const stats = { handshakes: 0 };
  for (const server of [plain, secure, secureForBrowsers]) guard.watch(server);
  for (const server of [secure, secureForBrowsers]) server.on('secureConnection', () => stats.handshakes++);
  // No Nagle: a response's headers and body are separate writes, and the second would wait for
  // the client's delayed ACK of the first (40 ms) on a keep-alive connection. node:http sets this
  // on the sockets it accepts itself; these are accepted here.
  const front = createNetServer({ pauseOnConnect: false, noDelay: true }, (socket) => {
    if (guard.admit(socket)) route(socket, { plain, secure, secureForBrowsers });
  });
  return listenOn(front, host, port, guard, settings.sharePort, stats);
}

/**
 * Hands a connection to the server for its first bytes: plain HTTP, or TLS, with or without a
 * request for a client certificate. A TLS connection is held until its first record is in (a few
 * KiB at most, and under the guard's deadline); the bytes read are put back for the server.
 */
function route(socket: Socket, servers: { plain: HttpServer; secure: HttpServer; secureForBrowsers: HttpServer }) {
  let head: Buffer = Buffer.alloc(0);
  const onReadable = () => {
    for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) head = head.length ? Buffer.concat([head, chunk]) : chunk;
    if (head.length === 0) return void (socket.readableEnded && socket.end());
    let server = servers.plain;
    if (head[0] === handshakeRecord) {
      const size = firstRecordSize(head);
      if (size === undefined || head.length < size) return void (socket.readableEnded && socket.destroy());
      server = fromBrowser(head) ? servers.secureForBrowsers : servers.secure;
    }
    socket.off('readable', onReadable);
    socket.unshift(head);
    server.emit('connection', socket);
  };
  socket.on('readable', onReadable);
}

export async function listenPlain(host: string, port: number, handler: RequestHandler, options: ListenOptions = {}): Promise<Listener> {
  const settings = { ...defaults, ...options };
  const server = tuned(createHttpServer(handler), settings);
  const guard = new ConnectionGuard(settings, options.connections ?? defaultBudget());
  guard.watch(server);
  // Before the server's own connection handling: a refused socket is already destroyed there.
  server.prependListener('connection', (socket: Socket) => void guard.admit(socket));
  return listenOn(server, host, port, guard, settings.sharePort);
}

async function listenOn(server: NetServer, host: string, port: number, guard: ConnectionGuard, share: ListenOptions['sharePort'], stats = { handshakes: 0 }): Promise<Listener> {
  // SO_REUSEPORT would let this bind succeed beside any server of the same user: claim the port
  // exclusively first, so a port in use is still an error (and port 0 picks a free one).
  if (share === 'first') {
    const probe = await bindOnce(createNetServer(), host, port);
    port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
  }
  await bindOnce(server, host, port, share !== undefined);
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    get handshakes() {
      return stats.handshakes;
    },
    close: async (graceMs = 0) => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await guard.drain(graceMs);
      await closed;
    },
  };
}

async function bindOnce<T extends NetServer>(server: T, host: string, port: number, reusePort = false): Promise<T> {
  server.listen({ host, port, ipv6Only: false, reusePort });
  try {
    // `once` rejects with the server's 'error' event.
    await once(server, 'listening');
  } catch (err) {
    throw bindError(err as NodeJS.ErrnoException, host, port);
  }
  return server;
}

/** Why an address cannot be listened on, in words, as the catalogue's `config` error. */
const bindReasons: Record<string, [string, string]> = {
  EADDRINUSE: ['is in use by another program', 'Stop that program, or give wharf another address (--https, --http or config.yaml).'],
  EACCES: ['needs privileges this process does not have', 'Ports below 1024 need root or CAP_NET_BIND_SERVICE; or use a higher port.'],
  EADDRNOTAVAIL: ['is not an address of this machine', 'Give an address of one of its interfaces, or [::] for all of them.'],
  ENOTFOUND: ['does not resolve to an address', 'Give an IP address or a host name this machine can resolve.'],
  EAI_AGAIN: ['does not resolve to an address', 'Give an IP address or a host name this machine can resolve.'],
};

function bindError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  const reason = err.code ? bindReasons[err.code] : undefined;
  if (!reason) return err;
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new AppError(ErrorCodes.config, `Cannot listen on ${where}: it ${reason[0]}`, { hint: reason[1], cause: err });
}
