/**
 * Benchmark 7: the simplestreams index on a new TLS connection per request, as LXD and Incus
 * fetch it (they disable keep-alive), wharf against nginx serving the same bytes with the same
 * certificate; keep-alive as context. `wrk -t2 -c20 -H 'Connection: close'` (and without),
 * 2 s warm-up, then 3 alternating 6 s rounds per server; medians compared.
 * wharf runs as `wharf serve` does by default: one serving process per core; nginx with
 * `worker_processes auto`. Two certificates: wharf's own (ECDSA P-256) and an operator's RSA
 * 2048 one. Target: wharf >= 1.0x nginx on new connections.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildStore, tinySquashfs } from './store.ts';
import { httpsClient, median, removeDir, report, requireCommands, startNginx, startWharf, tempDir, wrk, type Row } from './lib.ts';

requireCommands('wrk', 'nginx', 'mksquashfs', 'openssl');
const rounds = 3;
const seconds = '6s';

const work = await tempDir('handshakes');
const stops: Array<() => Promise<void>> = [];
try {
  const data = join(work, 'data');
  const store = await buildStore(data, 20, await tinySquashfs(work));
  await store.meta.close();
  // An operator's certificate: RSA 2048, the common kind a CA issues.
  const rsa = { cert: join(work, 'rsa.crt'), key: join(work, 'rsa.key') };
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', rsa.key, '-out', rsa.cert], { stdio: 'ignore' });

  const rows: Row[] = [];
  for (const kind of ['ECDSA P-256 (wharf own)', 'RSA 2048'] as const) {
    if (kind === 'RSA 2048') Object.assign(process.env, { WHARF_TLS_CERT: rsa.cert, WHARF_TLS_KEY: rsa.key });
    const wharf = await startWharf(data);
    stops.push(wharf.stop);
    const cert = kind === 'RSA 2048' ? rsa : { cert: join(data, 'server.crt'), key: join(data, 'server.key') };
    const client = httpsClient(kind === 'RSA 2048' ? execFileSync('cat', [rsa.cert], { encoding: 'utf8' }) : wharf.ca);
    const url = `${wharf.base}/streams/v1/index.json`;
    const body = (await client.get(url)).body;
    client.close();
    const root = join(work, `www-${rows.length}`);
    await mkdir(join(root, 'streams', 'v1'), { recursive: true });
    await writeFile(join(root, 'streams', 'v1', 'index.json'), body);
    const nginx = await startNginx(join(work, `nginx-${rows.length}`), root, cert);
    stops.push(nginx.stop);
    const nginxUrl = `https://127.0.0.1:${nginx.httpsPort}/streams/v1/index.json`;

    for (const [mode, headers] of [
      ['new connection per request', ['Connection: close']],
      ['keep-alive', []],
    ] as const) {
      const results = { wharf: [] as number[], nginx: [] as number[] };
      await wrk(url, '2s', [...headers]);
      await wrk(nginxUrl, '2s', [...headers]);
      for (let round = 0; round < rounds; round++) {
        results.wharf.push((await wrk(url, seconds, [...headers])).rps);
        results.nginx.push((await wrk(nginxUrl, seconds, [...headers])).rps);
        console.log(`${kind}, ${mode}, round ${round + 1}: wharf ${results.wharf[round]!.toFixed(0)} req/s, nginx ${results.nginx[round]!.toFixed(0)} req/s`);
      }
      const main = mode === 'new connection per request';
      rows.push({
        name: `${kind}, ${mode}`,
        wharf: median(results.wharf),
        reference: median(results.nginx),
        referenceName: 'nginx',
        unit: 'req/s',
        target: main ? '>= 1.0x' : '-',
        pass: main ? (r) => r >= 1.0 : () => true,
        ...(main ? {} : { context: true }),
      });
    }
    await nginx.stop();
    await wharf.stop();
    stops.length = 0;
    delete process.env['WHARF_TLS_CERT'];
    delete process.env['WHARF_TLS_KEY'];
  }
  report(`7 index.json on new TLS connections (wrk -t2 -c20, medians of ${rounds} x ${seconds})`, rows);
} finally {
  for (const stop of stops.reverse()) await stop();
  await removeDir(work);
}
