/**
 * This server's address as a request reached it, for URLs sent back to the client (direct-import
 * headers, redirects to HTTPS). The Host header is taken only when it is a hostname or an IP
 * literal with an optional port; otherwise the address the connection arrived on is used, so
 * whatever a client puts in Host is never reflected.
 */
import { bareAddress } from '../addresses.ts';
import type { IncomingMessage } from 'node:http';
import { isIPv6 } from 'node:net';

export interface Authority {
  /** A hostname, an IPv4 address or a bracketed IPv6 address. */
  host: string;
  port: number | undefined;
}

const label = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const hostname = new RegExp(`^${label}(?:\\.${label})*\\.?$`);

/** A Host header value as an authority, or undefined when it is anything else. */
export function parseHost(value: string | undefined): Authority | undefined {
  if (!value) return undefined;
  const m = /^(\[[^\]]*\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(value);
  if (!m) return undefined;
  const [, host, portText] = m as unknown as [string, string, string | undefined];
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  if (host.startsWith('[')) {
    // No zone index ("%eth0"): it names an interface of the client's machine, not this server.
    const inner = host.slice(1, -1);
    return /^[0-9A-Fa-f:.]+$/.test(inner) && isIPv6(inner) ? { host: host.toLowerCase(), port } : undefined;
  }
  return host.length <= 253 && hostname.test(host) ? { host: host.toLowerCase(), port } : undefined;
}

/** The local end of the connection, for a request without a usable Host. */
function localAuthority(req: IncomingMessage): Authority {
  const socket = req.socket;
  const address = bareAddress(socket.localAddress) ?? '127.0.0.1';
  return { host: isIPv6(address) ? `[${address}]` : address, port: socket.localPort };
}

export function requestAuthority(req: IncomingMessage): Authority {
  return parseHost(req.headers.host) ?? localAuthority(req);
}

/** `https://host[:port]` for this request; `port` replaces the one the request came in on. */
export function httpsBase(req: IncomingMessage, port?: number): string {
  const authority = requestAuthority(req);
  const p = port ?? authority.port;
  return p === undefined || p === 443 ? `https://${authority.host}` : `https://${authority.host}:${p}`;
}

/**
 * A request target in absolute form (`GET http://host/path`, what clients send to a proxy) made
 * the origin form every route, redirect and log line expects (`/path`), its authority taking the
 * Host header's place: RFC 9112 (3.2.2) has an origin server accept it, use the target's host
 * and ignore Host. Built into a URL as it came, it made Locations like `https://x:8443http://...`.
 * Any other target is left as it is (the router refuses what it does not know).
 */
export function toOriginForm(req: IncomingMessage): void {
  const url = req.url;
  // Nearly every request: one character.
  if (url === undefined || url.charCodeAt(0) === 47) return;
  if (!/^https?:\/\//i.test(url) || !URL.canParse(url)) return;
  const target = new URL(url);
  req.url = target.pathname + target.search;
  req.headers.host = target.host;
}
