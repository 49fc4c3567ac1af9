/**
 * GeoIP steering of artifact downloads, answered before the framework: a redirect decision is
 * a lookup in memory, and at the thousands per second an origin answers, Fastify's routing,
 * hooks and reply machinery would cost several times the decision itself (bench/edge.ts). A
 * request this does not redirect goes on to the routes unchanged, which serve the file.
 */
import type { IncomingMessage } from 'node:http';
import { requestIdHeader, type Shortcut } from './access-log.ts';
import { artifactSha, type IndexPublisher } from '../core/publish.ts';
import type { Steering } from '../steering/steer.ts';
import type { BlobRef } from '../domain/image.ts';
import { joinedHeader } from './conditional.ts';
import { completesDownload, parseRange, recorded } from './send-blob.ts';
import type { DownloadCounter } from '../core/usage.ts';

/**
 * Redirects `req` and returns true when a site should serve it; false leaves it untouched.
 * Plain HTTP may ask for /files/ and /CHANNEL/files/ only (app.ts), which is all this answers,
 * so it needs no scheme check of its own. A redirected GET that would download the whole file counts as a
 * download (the site serves it; the origin never learns whether it completed).
 */
const channelFiles = /^\/[a-z][a-z0-9-]*\/files\//;

export function steeringShortcut(publisher: IndexPublisher, steering: Steering, downloads: DownloadCounter | undefined): Shortcut {
  return (req, res, id) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const url = req.url ?? '';
    // A channel's root lists its files under /CHANNEL/files/: the same files, which a site serves
    // at its own /files/.
    const files = url.startsWith('/files/') ? 0 : channelFiles.exec(url) ? url.indexOf('/files/') : -1;
    if (files < 0) return false;
    const query = url.indexOf('?');
    const path = (query < 0 ? url : url.slice(0, query)).slice(files + 1);
    const sha = artifactSha(path);
    // Only what the index lists now; a file in its grace period is served by the origin.
    const blob = sha && publisher.publishedArtifact(sha);
    if (!blob) return false;
    const site = steering.redirect(
      { peer: req.socket.remoteAddress, forwardedFor: joinedHeader(req.headers['x-forwarded-for']), noGeoIp: joinedHeader(req.headers['x-lxc-no-geoip']) },
      blob,
      path,
    );
    if (!site) return false;
    if (downloads && req.method === 'GET') countRedirect(req, blob, publisher, downloads);
    res.writeHead(302, { [requestIdHeader]: id, location: site, 'cache-control': 'no-store', 'content-length': '0' });
    res.end();
    return true;
  };
}

/** A redirected GET that would download the whole file counts as a download, served elsewhere. */
export function countRedirect(req: IncomingMessage, blob: BlobRef, publisher: IndexPublisher, downloads: DownloadCounter) {
  const counted = publisher.countedAs(blob.sha256);
  if (!counted) return;
  const header = req.headers.range;
  const range = parseRange(header, blob.size);
  if (range !== 'unsatisfiable' && completesDownload(header, range ?? recorded(blob), blob.size)) downloads.count(counted, 'redirect');
}
