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
  return {
    public: header('public') === 'true' || header('public') === '1',
    filename: header('filename'),
    properties: Object.fromEntries(form(header('properties'))),
    // Incus sends alias=a&alias=b, and accepts a bare single name.
    aliases: aliases.getAll('alias').length ? aliases.getAll('alias') : [...aliases.keys()].filter((k) => k && !aliases.get(k)),
    fingerprint: header('fingerprint'),
    secret: header('secret'),
  };
}

