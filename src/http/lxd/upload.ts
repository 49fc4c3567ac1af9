/** The X-LXD-* / X-Incus-* headers of an image upload (POST /1.0/images). */
import type { FastifyRequest } from 'fastify';

export interface UploadHeaders {
  public: boolean;
  filename: string | undefined;
  properties: Record<string, string>;
  aliases: string[];
  fingerprint: string | undefined;
  secret: string | undefined;
}

/** LXD sends X-LXD-*, Incus X-Incus-*: accept both. */
export function uploadHeaders(request: FastifyRequest): UploadHeaders {
  const header = (name: string) => {
    const v = request.headers[`x-lxd-${name}`] ?? request.headers[`x-incus-${name}`];
    return Array.isArray(v) ? v[0] : v;
  };
  const form = (value: string | undefined) => new URLSearchParams(value ?? '');
  const aliases = form(header('aliases'));
  // Every X-*-properties header counts, the first value of a key wins (as incusd reads them);
  // Node would join repeated headers with ", ", which is not form encoding.
  const properties: Record<string, string> = {};
  const raw = request.raw.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!/^x-(lxd|incus)-properties$/i.test(raw[i]!)) continue;
    for (const [k, v] of form(raw[i + 1])) if (!(k in properties)) properties[k] = v;
  }
  return {
    public: /^(true|1|yes|on)$/i.test(header('public') ?? ''),
    filename: header('filename'),
    properties,
    // Incus sends alias=a&alias=b, and accepts a bare single name.
    aliases: aliases.getAll('alias').length ? aliases.getAll('alias') : [...aliases.keys()].filter((k) => k && !aliases.get(k)),
    fingerprint: header('fingerprint'),
    secret: header('secret'),
  };
}

