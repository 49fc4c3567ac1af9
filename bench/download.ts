/**
 * Benchmark 2: one client downloading the 1 GiB squashfs artifact, wharf against nginx serving
 * the same file (a hard link to wharf's blob, so the same inode and page cache), measured with
 * `curl -s -o /dev/null -w '%{speed_download}'`. nginx: sendfile on, TLS 1.3 only with wharf's
 * own certificate and key. After one unmeasured download per case, median of 3 (runs alternate
 * between the servers).
 * Targets: wharf >= 0.5x nginx over plain HTTP, >= 0.9x over HTTPS.
 * Plain HTTP is measured on both of wharf's plain paths: the --http listener and the HTTPS port
 * (which answers plain HTTP too; LXD clients fetch artifacts from there).
 */
import { link, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  bigImage,
  blobFile,
  fingerprintFrom,
  httpsClient,
  median,
  MiB,
  removeDir,
  report,
  requireCommands,
  runOk,
  squashfsPath,
  startNginx,
  startWharf,
  tempDir,
  warm,
  wharfBin,
  servedBigImage,
} from './lib.ts';

const runs = 3;
requireCommands('curl', 'nginx', 'mksquashfs');
const work = await tempDir('download');
const stops: Array<() => Promise<void>> = [];
try {
  const { image, data, wharf, path, sha } = await servedBigImage(work);
  stops.push(wharf.stop);

  const root = join(work, 'www');
  await mkdir(join(root, 'files'), { recursive: true });
  await link(blobFile(data, sha), join(root, path));
  const nginx = await startNginx(join(work, 'nginx'), root, { cert: join(data, 'server.crt'), key: join(data, 'server.key') });
  stops.push(nginx.stop);
  await warm(blobFile(data, sha));

  const cacert = join(data, 'server.crt');
  const rootfsSize = (await stat(image.rootfs)).size;
  const curl = async (url: string): Promise<number> => {
    const out = await runOk('curl', ['-s', '-f', '--max-time', '300', '--cacert', cacert, '-o', '/dev/null', '-w', '%{speed_download} %{size_download}', url], { timeoutMs: 310_000 });
    const [speed, size] = out.stdout.trim().split(' ').map(Number) as [number, number];
    if (size !== rootfsSize) throw new Error(`short download from ${url}: ${size} bytes`);
    return speed / MiB;
  };

  // Which TLS 1.3 suite each server ends up with (same client, so they should agree).
  for (const [who, port] of [['wharf', wharf.httpsPort], ['nginx', nginx.httpsPort]] as const) {
    const v = await runOk('curl', ['-sv', '--cacert', cacert, '-o', '/dev/null', '-r', '0-0', `https://127.0.0.1:${port}/${path}`]);
    console.log(`${who}: ${/SSL connection using ([^\n]+)/.exec(v.stderr)?.[1] ?? 'TLS version unknown'}`);
  }

  const cases = {
    'wharf http (--http listener)': `http://127.0.0.1:${wharf.httpPort}/${path}`,
    'wharf http (HTTPS port)': `http://127.0.0.1:${wharf.httpsPort}/${path}`,
    'nginx http': `http://127.0.0.1:${nginx.httpPort}/${path}`,
    'wharf https': `https://127.0.0.1:${wharf.httpsPort}/${path}`,
    'nginx https': `https://127.0.0.1:${nginx.httpsPort}/${path}`,
  };
  // One unmeasured download per case first, applied alike to both servers (JIT, buffers, page cache).
  for (const url of Object.values(cases)) await curl(url);
  const speeds: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < runs; i++) {
    for (const [name, url] of Object.entries(cases)) speeds[name]!.push(await curl(url));
    console.log(`run ${i + 1}: ` + Object.entries(speeds).map(([k, v]) => `${k} ${v[i]!.toFixed(0)} MiB/s`).join(', '));
  }
  const m = (k: keyof typeof cases) => median(speeds[k]!);
  report('2 download of a 1 GiB artifact (curl, median of 3)', [
    { name: 'plain HTTP, --http listener', wharf: m('wharf http (--http listener)'), reference: m('nginx http'), referenceName: 'nginx', unit: 'MiB/s', target: '>= 0.5x', pass: (r) => r >= 0.5 },
    { name: 'plain HTTP, HTTPS port', wharf: m('wharf http (HTTPS port)'), reference: m('nginx http'), referenceName: 'nginx', unit: 'MiB/s', target: '>= 0.5x', pass: (r) => r >= 0.5 },
    { name: 'HTTPS (TLS 1.3)', wharf: m('wharf https'), reference: m('nginx https'), referenceName: 'nginx', unit: 'MiB/s', target: '>= 0.9x', pass: (r) => r >= 0.9 },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop();
  await removeDir(work);
}
