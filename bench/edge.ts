/**
 * Benchmark 9: the distribution network (issue 10). A caching mirror (`serve --mirror-of`) in
 * front of an origin tree served by nginx, against nginx itself:
 *
 * - Coalescing: N clients (default 100, each a curl process) ask a cold mirror for one file at once; the origin link
 *   is rate-limited by nginx (`limit_rate`, default 8 MB/s: a WAN link, so that the origin and not
 *   this machine's loopback is the bottleneck, as in the field). Figures: upstream fetches of the
 *   file (from nginx's access log; target exactly 1) and the wall time of all N against one client
 *   alone on a cold mirror (target <= 1.3x), with the mirror's CPU meanwhile. The mirror's peak RSS while filling and serving 20
 *   clients (target < 200 MB; with N clients as context).
 * - First byte of a miss: the mirror's time to first byte on a cold file against the origin's
 *   own (the same rate-limited link), median of 3; target within 100 ms.
 * - Hit throughput: `curl` of the cached file from the mirror against nginx `proxy_cache` hits
 *   (proxy_cache_path ... inactive=3d, proxy_cache_lock on: a usual caching-mirror setup), over
 *   HTTP and HTTPS (the same certificate), median of 3; target >= 0.9x.
 * - Redirect decisions: `wrk` (keep-alive, 2 threads, 20 connections) against an origin
 *   wharf steering every download of a 2 MiB file to a site (GeoIP database built here: loopback
 *   is "DE"), over plain HTTP as clients try first, against nginx answering a fixed 302, 5 s each,
 *   alternated, medians of 3; targets >= 10,000 req/s and >= 0.5x nginx.
 *
 * Sizes: WHARF_BENCH_EDGE_MIB (the file, default 256), WHARF_BENCH_EDGE_CLIENTS (default 100),
 * WHARF_BENCH_EDGE_RATE (nginx limit_rate, default 8m). WHARF_BENCH_EDGE_PARTS: `mirror`, `redirects` or
 * both (the default), comma-separated.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { buildMetadataTarball, buildSquashfs } from '../test/fixtures/images.ts';
import { buildGeoipDb } from '../test/fixtures/geoip.ts';
import { availableParallelism } from 'node:os';
import { cpuSeconds, freePort, median, MiB, portOpen, removeDir, report, requireCommands, runNginx, runOk, sleep, startChild, startWharf, stopChild, tempDir, wharfBin, wrk, type Row } from './lib.ts';

const fileMiB = Number(process.env.WHARF_BENCH_EDGE_MIB ?? 256);
const clients = Number(process.env.WHARF_BENCH_EDGE_CLIENTS ?? 100);
const rate = process.env.WHARF_BENCH_EDGE_RATE ?? '8m';
const parts = new Set((process.env.WHARF_BENCH_EDGE_PARTS ?? 'mirror,redirects').split(','));
requireCommands('nginx', 'curl', 'wrk', 'openssl', 'perl');

const work = await tempDir('edge');
const stops: (() => Promise<void>)[] = [];
const rows: Row[] = [];
try {
  // The origin tree: one big file and a small one, listed by a hand-written index.
  const tree = join(work, 'tree');
  const filePath = 'images/bench/1/amd64/default/20261123_00:00/rootfs.squashfs';
  await mkdir(join(tree, 'images/bench/1/amd64/default/20261123_00:00'), { recursive: true });
  await mkdir(join(tree, 'streams/v1'), { recursive: true });
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    const out = createWriteStream(join(tree, filePath));
    out.on('error', reject);
    let left = fileMiB;
    const more = () => {
      while (left > 0) {
        const chunk = randomBytes(MiB);
        hash.update(chunk);
        left--;
        if (!out.write(chunk)) return void out.once('drain', more);
      }
      out.end(resolve);
    };
    more();
  });
  const sha256 = hash.digest('hex');
  const item = { ftype: 'squashfs', path: filePath, sha256, size: fileMiB * MiB };
  await writeFile(join(tree, 'streams/v1/images.json'), JSON.stringify({ format: 'products:1.0', content_id: 'images', datatype: 'image-downloads', products: { 'bench:1:amd64:default': { arch: 'amd64', os: 'Bench', release: '1', versions: { '20261123_00:00': { items: { 'root.squashfs': item } } } } } }));
  await writeFile(join(tree, 'streams/v1/index.json'), JSON.stringify({ format: 'index:1.0', index: { images: { datatype: 'image-downloads', path: 'streams/v1/images.json', format: 'products:1.0', products: ['bench:1:amd64:default'] } } }));

  const cert = join(work, 'cert.pem');
  const key = join(work, 'key.pem');
  await runOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);

  // nginx: the origin (fast and rate-limited), a proxy_cache mirror of it, a fixed 302.
  const port = { fast: await freePort(), slowTls: await freePort(), slow: await freePort(), cacheHttp: await freePort(), cacheHttps: await freePort(), redirect: await freePort() };
  const ngx = join(work, 'nginx');
  await mkdir(join(ngx, 'cache'), { recursive: true });
  const accessLog = join(ngx, 'origin-access.log');
  stops.push(
    await runNginx(
      ngx,
      `  proxy_cache_path ${join(ngx, 'cache')} levels=1:2 keys_zone=images:10m max_size=50g inactive=3d use_temp_path=off;
  ssl_protocols TLSv1.3;
  ssl_certificate ${cert};
  ssl_certificate_key ${key};
  server {
    listen 127.0.0.1:${port.fast};
    root ${tree};
    access_log ${accessLog};
  }
  server {
    listen 127.0.0.1:${port.slow};
    listen 127.0.0.1:${port.slowTls} ssl;
    root ${tree};
    access_log ${accessLog};
    location /images/ { limit_rate ${rate}; }
  }
  server {
    listen 127.0.0.1:${port.cacheHttp};
    listen 127.0.0.1:${port.cacheHttps} ssl;
    location / {
      proxy_pass http://127.0.0.1:${port.fast};
      proxy_cache images;
      proxy_cache_valid 200 3d;
      proxy_cache_lock on;
    }
  }
  server {
    listen 127.0.0.1:${port.redirect};
    location / { return 302 http://127.0.0.1:9/$uri; }
  }`,
      port.redirect,
    ),
  );
  const originFetches = () => readFileSync(accessLog, 'utf8').split('\n').filter((l) => l.includes(`GET /${filePath}`)).length;

  if (parts.has('mirror')) {
    // ---- coalescing, first byte, RSS: a fresh mirror of the rate-limited origin per run.
    const mirror = async (name: string) => {
      const server = await startWharf(join(work, name), wharfBin, {
        args: ['--mirror-of', `https://127.0.0.1:${port.slowTls}`, '--origin-certificate', cert],
        tls: { cert, key },
        // Every client here comes from one address: the per-address limit (64) would refuse most.
        env: { WHARF_MAX_CONNECTIONS_PER_ADDRESS: '0' },
      });
      stops.push(server.stop);
      return { child: server.child, https: server.httpsPort, http: server.httpPort, stop: server.stop };
    };
    const single = await mirror('m-single');
    const alone = await fetchWithCurl(`http://127.0.0.1:${single.http}/${filePath}`);
    await single.stop();
    const crowd = await mirror('m-crowd');
    const before = originFetches();
    let crowdRss = 0;
    const sampler = setInterval(() => (crowdRss = Math.max(crowdRss, rssOf(crowd.child.pid!))), 100);
    const started = performance.now();
    const cpuBefore = cpuSeconds(crowd.child.pid!);
    const all = await Promise.all(Array.from({ length: clients }, () => fetchWithCurl(`http://127.0.0.1:${crowd.http}/${filePath}`)));
    const crowdMs = performance.now() - started;
    const crowdCpu = cpuSeconds(crowd.child.pid!) - cpuBefore;
    clearInterval(sampler);
    const fetches = originFetches() - before;
    if (all.some((a) => a.bytes !== item.size)) throw new Error('a client got a short file');
    rows.push({ name: `upstream fetches for ${clients} concurrent clients`, wharf: fetches, unit: '', target: '= 1', pass: (v) => v === 1 });
    rows.push({ name: `${clients} clients, cold mirror, ${fileMiB} MiB, origin at ${rate}/s`, wharf: crowdMs / 1000, reference: alone.ms / 1000, referenceName: 'one client alone', unit: 's', target: '<= 1.3x', pass: (r) => r <= 1.3 });
    rows.push({ name: `mirror peak RSS, filling and serving ${clients} clients`, wharf: crowdRss / 1e6, unit: 'MB', target: '-', pass: () => true, context: true });
    rows.push({ name: `mirror CPU while serving ${clients} clients (cores)`, wharf: crowdCpu / (crowdMs / 1000), unit: '', target: '-', pass: () => true, context: true });
    // The target's own case: 20 clients on a cold mirror.
    const twenty = await mirror('m-twenty');
    let peakRss = 0;
    const sampler20 = setInterval(() => (peakRss = Math.max(peakRss, rssOf(twenty.child.pid!))), 100);
    await Promise.all(Array.from({ length: 20 }, () => download(`http://127.0.0.1:${twenty.http}/${filePath}`)));
    clearInterval(sampler20);
    await twenty.stop();
    rows.push({ name: 'mirror peak RSS, filling and serving 20 clients', wharf: peakRss / 1e6, unit: 'MB', target: '< 200 MB', pass: (v) => v < 200 });

    // First byte of a miss against the origin's own first byte (fresh mirrors, so every run misses).
    const firstBytes: number[] = [];
    const originFirst: number[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await mirror(`m-ttfb-${i}`);
      firstBytes.push((await download(`http://127.0.0.1:${m.http}/${filePath}`, true)).firstByteMs);
      originFirst.push((await download(`http://127.0.0.1:${port.slow}/${filePath}`, true)).firstByteMs);
      await m.stop();
    }
    rows.push({ name: 'first byte of a miss, minus the origin\'s own', wharf: median(firstBytes) - median(originFirst), unit: 'ms', target: '<= 100 ms', pass: (v) => v <= 100 });
    rows.push({ name: 'first byte of a miss (context)', wharf: median(firstBytes), reference: median(originFirst), referenceName: 'origin', unit: 'ms', target: '-', pass: () => true, context: true });

    // ---- hit throughput: the crowd's mirror holds the file; nginx's proxy_cache is warmed once.
    await curl(`http://127.0.0.1:${port.cacheHttp}/${filePath}`, cert);
    for (const scheme of ['http', 'https'] as const) {
      const ours: number[] = [];
      const theirs: number[] = [];
      for (let i = 0; i < 3; i++) {
        ours.push(await curl(`${scheme}://127.0.0.1:${scheme === 'http' ? crowd.http : crowd.https}/${filePath}`, cert));
        theirs.push(await curl(`${scheme}://127.0.0.1:${scheme === 'http' ? port.cacheHttp : port.cacheHttps}/${filePath}`, cert));
      }
      rows.push({ name: `cache hit download, ${scheme.toUpperCase()}`, wharf: median(ours) / MiB, reference: median(theirs) / MiB, referenceName: 'nginx proxy_cache hit', unit: 'MiB/s', target: '>= 0.9x', pass: (r) => r >= 0.9 });
    }
    await crowd.stop();
  }

  if (parts.has('redirects')) {
    // ---- redirect decisions: an origin wharf steering a 2 MiB file to a site, loopback = DE.
    const origin = join(work, 'origin');
    const meta = await buildMetadataTarball(work, { properties: { os: 'Bench', release: '1', architecture: 'amd64' } });
    const root = await buildSquashfs(work, { seed: 'steer', padMiB: 2 });
    await runOk(wharfBin, ['--data-dir', origin, 'image', 'import', meta.path, root.path]);
    const db = join(work, 'geo.mmdb');
    await buildGeoipDb(db, [{ cidr: '127.0.0.0/8', country: 'DE', continent: 'EU' }]);
    // The site is nginx serving the origin's own tree, so its check passes.
    await runOk(wharfBin, ['--data-dir', origin, 'tree', 'export', join(work, 'origin-tree')]);
    const siteTree = join(work, 'origin-tree');
    const sitePort = await freePort();
    stops.push(await runNginx(join(work, 'site'), `  server { listen 127.0.0.1:${sitePort}; root ${siteTree}; }`, sitePort));
    await runOk(wharfBin, ['--data-dir', origin, 'site', 'add', 'de', `http://127.0.0.1:${sitePort}`, '--country', 'DE']);
    const originServer = await startWharf(origin, wharfBin, { args: ['--geoip-db', db, '--site-check-interval', '1s'] });
    stops.push(originServer.stop);
    const originHttp = originServer.httpPort;
    const steered = `http://127.0.0.1:${originHttp}/files/${root.sha256}.squashfs`;
    for (let i = 0; (await status(steered)) !== 302; i++) {
      if (i > 100) throw new Error('the site never became healthy');
      await sleep(200);
    }
    await wrk(steered, '2s');
    await wrk(`http://127.0.0.1:${port.redirect}/x`, '2s');
    // Alternated, so that a noisy neighbour hurts both alike; medians of 3.
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let i = 0; i < 3; i++) {
      ours.push((await wrk(steered, '5s')).rps);
      theirs.push((await wrk(`http://127.0.0.1:${port.redirect}/x`, '5s')).rps);
    }
    rows.push({ name: 'redirect decisions, keep-alive HTTP', wharf: median(ours), unit: 'req/s', target: '>= 10,000', pass: (v) => v >= 10_000 });
    rows.push({ name: 'redirect decisions vs a fixed 302', wharf: median(ours), reference: median(theirs), referenceName: 'nginx return 302', unit: 'req/s', target: '>= 0.5x', pass: (r) => r >= 0.5 });
    // The runtime's own floor: bare node:http answering a fixed 302, as many processes as wharf.
    const barePort = await freePort();
    // A file, not -e: cluster workers run the primary's script again.
    const bareScript = join(work, 'bare-redirector.mjs');
    await writeFile(bareScript, bareRedirector(barePort));
    const bare = startChild(process.execPath, [bareScript]);
    stops.push(() => stopChild(bare));
    for (let i = 0; !(await portOpen(barePort)); i++) {
      if (i > 100) throw new Error('the bare Node redirector did not start');
      await sleep(50);
    }
    const floor: number[] = [];
    for (let i = 0; i < 3; i++) floor.push((await wrk(`http://127.0.0.1:${barePort}/x`, '5s')).rps);
    rows.push({ name: 'redirect decisions vs bare Node (context)', wharf: median(ours), reference: median(floor), referenceName: 'node:http fixed 302', unit: 'req/s', target: '-', pass: () => true, context: true });
  }
  report('edge (issue 10)', rows);
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await removeDir(work);
}

/** GET over plain HTTP, a new connection as LXD and Incus make them; the body is counted and dropped. */
function download(url: string, firstByteOnly = false): Promise<{ ms: number; firstByteMs: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let firstByteMs = -1;
    let bytes = 0;
    const req = httpRequest(url, { agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`${url}: HTTP ${res.statusCode}`));
      res.on('data', (c: Buffer) => {
        if (firstByteMs < 0) {
          firstByteMs = performance.now() - started;
          if (firstByteOnly) {
            req.destroy();
            resolve({ ms: firstByteMs, firstByteMs, bytes: c.length });
          }
        }
        bytes += c.length;
      });
      res.on('end', () => resolve({ ms: performance.now() - started, firstByteMs, bytes }));
      res.on('error', reject);
    });
    req.on('error', (err) => (firstByteOnly && firstByteMs >= 0 ? undefined : reject(err)));
    req.end();
  });
}

function status(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * One client of the crowd: a curl process (a new connection, body dropped). Not an http request
 * of this process: 100 of those in one Node process took its whole core to receive 800 MB/s and
 * were the bottleneck (measured: the client process at 1.0 core all along, the mirror at 0.8).
 */
async function fetchWithCurl(url: string): Promise<{ ms: number; bytes: number }> {
  const started = performance.now();
  const { stdout } = await runOk('curl', ['-s', '--fail', '-o', '/dev/null', '-w', '%{size_download}', url], { timeoutMs: 600_000 });
  return { ms: performance.now() - started, bytes: Number(stdout) };
}

/** Bytes per second of one curl download. */
async function curl(url: string, ca: string): Promise<number> {
  const { stdout } = await runOk('curl', ['-s', '--fail', '--cacert', ca, '-o', '/dev/null', '-w', '%{speed_download}', url], { timeoutMs: 300_000 });
  return Number(stdout);
}

function rssOf(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** A node:http server answering every request with a fixed 302, one process per core (cluster). */
function bareRedirector(port: number): string {
  return `import cluster from 'node:cluster';
import { createServer } from 'node:http';
if (cluster.isPrimary) for (let i = 0; i < ${availableParallelism()}; i++) cluster.fork();
else createServer((req, res) => { res.writeHead(302, { location: 'http://127.0.0.1:9' + req.url }); res.end(); }).listen(${port}, '127.0.0.1');`;
}
