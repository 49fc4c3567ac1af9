/**
 * Benchmark 20 (issue 27): the OCI registry.
 * - Push of a 1 GiB layer (`curl -X POST -T layer .../blobs/uploads/?digest=` with a registry
 *   user's bearer token, HTTPS) against the import floor in the same run and runtime (read once,
 *   sha256 on threads, a durable copy flushed as it goes); 3 alternating runs, medians (<= 1.3x).
 * - Download of that layer (`curl`, HTTPS, wharf's certificate) against nginx serving the same
 *   file (a hard link to wharf's blob); one unmeasured download each, then 3 alternating, medians
 *   (>= 0.9x).
 * - A manifest by tag: `wrk -t2 -c20` with a new TLS connection per request (as Incus's skopeo
 *   makes them) against a bare `node:https` server answering the same bytes and headers with the
 *   same certificate on every core; 2 s warm-up each, 3 alternating rounds of 6 s, medians (>= 0.9x).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { blobFile, GiB, importFloorMs, median, MiB, removeDir, report, requireCommands, runOk, startBareHttps, startNginx, startWharf, tempDir, warm, wharfBin, wrk } from './lib.ts';

const runs = 3;
requireCommands('curl', 'nginx', 'wrk');


const sha256Of = async (path: string) => {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
};

const work = await tempDir('registry');
const stops: Array<() => Promise<void>> = [];
try {
  const layer = join(work, 'layer.bin');
  await runOk('sh', ['-c', `head -c ${GiB} /dev/urandom > "$1"`, 'sh', layer]);
  const layerSha = await sha256Of(layer);
  await warm(layer);

  // Pushes: a fresh server and data directory each, against the floor.
  const pushes: number[] = [];
  const floors: number[] = [];
  let data = '';
  let token = '';
  let wharf: Awaited<ReturnType<typeof startWharf>> | undefined;
  for (let i = 0; i < runs; i++) {
    const floorDir = join(work, `floor-${i}`);
    await mkdir(floorDir);
    floors.push(await importFloorMs([layer], floorDir));
    await removeDir(floorDir);
    if (wharf) await wharf.stop();
    if (data) await removeDir(data);
    data = join(work, `data-${i}`);
    const password = (await runOk(wharfBin, ['--data-dir', data, 'oci', 'user', 'add', 'bench', '--push', 'bench/*'])).stdout.trim();
    wharf = await startWharf(data);
    const ca = join(data, 'server.crt');
    token = JSON.parse((await runOk('curl', ['-sS', '--cacert', ca, '-u', `bench:${password}`, `${wharf.base}/v2/token?service=wharf&scope=repository:bench/app:pull,push`])).stdout).token as string;
    const pushed = await runOk('curl', ['-sS', '--fail-with-body', '--cacert', ca, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/octet-stream', '-X', 'POST', '-T', layer, '-o', '/dev/null', '-w', '%{time_total}', `${wharf.base}/v2/bench/app/blobs/uploads?digest=sha256:${layerSha}`], { timeoutMs: 600_000 });
    pushes.push(Number(pushed.stdout) * 1000);
    console.log(`push ${i + 1}: wharf ${pushes[i]!.toFixed(0)} ms, floor ${floors[i]!.toFixed(0)} ms`);
  }
  stops.push(() => wharf!.stop());
  const ca = join(data, 'server.crt');

  // Downloads: the same file (one inode) from wharf and from nginx.
  const root = join(work, 'www');
  await mkdir(root);
  await link(blobFile(data, layerSha), join(root, 'layer'));
  const nginx = await startNginx(join(work, 'nginx'), root, { cert: ca, key: join(data, 'server.key') });
  stops.push(nginx.stop);
  await warm(blobFile(data, layerSha));
  const curl = async (url: string) => {
    const out = await runOk('curl', ['-s', '-f', '--cacert', ca, '-o', '/dev/null', '-w', '%{speed_download} %{size_download}', url], { timeoutMs: 310_000 });
    const [speed, size] = out.stdout.trim().split(' ').map(Number) as [number, number];
    if (size !== GiB) throw new Error(`short download from ${url}: ${size}`);
    return speed / MiB;
  };
  const blobUrl = `${wharf!.base}/v2/bench/app/blobs/sha256:${layerSha}`;
  const nginxUrl = `https://127.0.0.1:${nginx.httpsPort}/layer`;
  await curl(blobUrl);
  await curl(nginxUrl);
  const mine: number[] = [];
  const theirs: number[] = [];
  for (let i = 0; i < runs; i++) {
    mine.push(await curl(blobUrl));
    theirs.push(await curl(nginxUrl));
    console.log(`download ${i + 1}: wharf ${mine[i]!.toFixed(0)} MiB/s, nginx ${theirs[i]!.toFixed(0)} MiB/s`);
  }

  // A manifest by tag, and its floor answering the same bytes and headers.
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const configSha = createHash('sha256').update(config).digest('hex');
  await writeFile(join(work, 'config.json'), config);
  await runOk('curl', ['-sS', '--fail-with-body', '--cacert', ca, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${join(work, 'config.json')}`, `${wharf!.base}/v2/bench/app/blobs/uploads/?digest=sha256:${configSha}`]);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configSha}`, size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${layerSha}`, size: GiB }] }));
  await writeFile(join(work, 'manifest.json'), manifest);
  await runOk('curl', ['-sS', '--fail-with-body', '--cacert', ca, '-H', `Authorization: Bearer ${token}`, '-H', 'Content-Type: application/vnd.oci.image.manifest.v1+json', '-X', 'PUT', '--data-binary', `@${join(work, 'manifest.json')}`, `${wharf!.base}/v2/bench/app/manifests/latest`]);
  const head = (await runOk('curl', ['-sS', '-D', '-', '-o', '/dev/null', '--cacert', ca, `${wharf!.base}/v2/bench/app/manifests/latest`])).stdout;
  const headers = Object.fromEntries(
    head
      .split('\r\n')
      .slice(1)
      .map((line) => line.split(/:\s*/, 2) as [string, string])
      .filter(([name, value]) => value !== undefined && !['content-length', 'date', 'connection', 'keep-alive', 'x-request-id'].includes(name.toLowerCase())),
  );
  const bare = await startBareHttps(work, { cert: ca, key: join(data, 'server.key') }, join(work, 'manifest.json'), headers);
  stops.push(bare.stop);
  const manifestUrl = `${wharf!.base}/v2/bench/app/manifests/latest`;
  const bareUrl = `https://127.0.0.1:${bare.port}/v2/bench/app/manifests/latest`;
  const close = ['Connection: close', 'Accept: application/vnd.oci.image.manifest.v1+json'];
  await wrk(manifestUrl, '2s', close);
  await wrk(bareUrl, '2s', close);
  const wharfRps: number[] = [];
  const bareRps: number[] = [];
  for (let i = 0; i < runs; i++) {
    wharfRps.push((await wrk(manifestUrl, '6s', close)).rps);
    bareRps.push((await wrk(bareUrl, '6s', close)).rps);
    console.log(`manifests ${i + 1}: wharf ${wharfRps[i]!.toFixed(0)} req/s, bare node:https ${bareRps[i]!.toFixed(0)} req/s`);
  }

  report('20 the OCI registry', [
    { name: 'push of a 1 GiB layer, median of 3', wharf: median(pushes) / 1000, reference: median(floors) / 1000, referenceName: 'import floor', unit: 's', target: '<= 1.3x', pass: (r) => r <= 1.3 },
    { name: 'layer download over HTTPS, median of 3', wharf: median(mine), reference: median(theirs), referenceName: 'nginx', unit: 'MiB/s', target: '>= 0.9x', pass: (r) => r >= 0.9 },
    { name: 'manifest by tag, new TLS connection each', wharf: median(wharfRps), reference: median(bareRps), referenceName: 'bare node:https, every core', unit: 'req/s', target: '>= 0.9x', pass: (r) => r >= 0.9 },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await removeDir(work);
}
