/**
 * Benchmark 21 (issue 27): a cold pull through the registry's pull-through cache against pulling
 * straight from the upstream. The upstream is Debian's docker-registry (the reference
 * implementation) on loopback, holding one image with a 256 MiB layer (random hex;
 * `WHARF_BENCH_LAYER_MIB`). `skopeo copy docker://... oci:DIR:latest` as Incus runs it, timed:
 * from the upstream directly, and from a fresh wharf data directory (nothing cached) whose OCI
 * remote is that upstream, over HTTPS with wharf's certificate trusted in certs.d. 3 alternating
 * runs, medians. Target: <= 1.2x. The warm pull (the same wharf again) is shown as context.
 */
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tarOf } from '../test/fixtures/oci.ts';
import { freePort, median, removeDir, report, requireCommands, runOk, sleep, startWharf, tempDir, wharfBin } from './lib.ts';

const runs = 3;
const layerMiB = Number(process.env.WHARF_BENCH_LAYER_MIB ?? 256);
requireCommands('skopeo', 'docker-registry');

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

const work = await tempDir('registry-cache');
const stops: Array<() => Promise<void>> = [];
try {
  // The image: one uncompressed layer (random hex: nothing on the way compresses it), as an OCI layout skopeo can push.
  const layout = join(work, 'layout');
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  const put = async (data: Buffer, mediaType: string) => {
    await writeFile(join(layout, 'blobs', 'sha256', sha(data)), data);
    return { mediaType, digest: `sha256:${sha(data)}`, size: data.length };
  };
  const layerBytes = tarOf({ 'payload.bin': randomBytes(layerMiB * 512 * 1024).toString('hex') });
  const layer = await put(layerBytes, 'application/vnd.oci.image.layer.v1.tar');
  const config = await put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } })), 'application/vnd.oci.image.config.v1+json');
  const manifest = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] })), 'application/vnd.oci.image.manifest.v1+json');
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));

  // The upstream.
  const port = await freePort();
  await writeFile(join(work, 'registry.yml'), `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(work, 'upstream')}\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const registry = spawn('docker-registry', ['serve', join(work, 'registry.yml')], { stdio: 'ignore' });
  stops.push(async () => void registry.kill('SIGKILL'));
  await sleep(1500);
  const upstream = `127.0.0.1:${port}`;
  await runOk('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${upstream}/bench/app:1`], { timeoutMs: 300_000 });

  const pull = async (source: string, extra: string[] = []) => {
    const into = join(work, `pulled-${Date.now()}`);
    await mkdir(into);
    const result = await runOk('skopeo', ['--insecure-policy', 'copy', ...extra, source, '--remove-signatures', `oci:${join(into, 'oci')}:latest`], { timeoutMs: 600_000 });
    await rm(into, { recursive: true, force: true });
    return result.ms;
  };

  const direct: number[] = [];
  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < runs; i++) {
    direct.push(await pull(`docker://${upstream}/bench/app:1`, ['--src-tls-verify=false']));
    const data = join(work, `data-${i}`);
    await runOk(wharfBin, ['--data-dir', data, 'oci', 'remote', 'add', 'up', `http://${upstream}`]);
    const wharf = await startWharf(data);
    const host = `127.0.0.1:${wharf.httpsPort}`;
    const certs = join('/etc/containers/certs.d', host);
    await mkdir(certs, { recursive: true });
    await writeFile(join(certs, 'ca.crt'), wharf.ca);
    try {
      cold.push(await pull(`docker://${host}/up/bench/app:1`));
      warm.push(await pull(`docker://${host}/up/bench/app:1`));
    } finally {
      await wharf.stop();
      await rm(certs, { recursive: true, force: true });
      await removeDir(data);
    }
    console.log(`run ${i + 1}: direct ${direct[i]!.toFixed(0)} ms, through the cache cold ${cold[i]!.toFixed(0)} ms, warm ${warm[i]!.toFixed(0)} ms`);
  }
  report(`21 a cold pull of a ${layerMiB} MiB layer through the registry's cache`, [
    { name: 'cold pull (skopeo copy), median of 3', wharf: median(cold) / 1000, reference: median(direct) / 1000, referenceName: 'straight from docker-registry', unit: 's', target: '<= 1.2x', pass: (r) => r <= 1.2 },
    { name: 'warm pull, median of 3', wharf: median(warm) / 1000, reference: median(direct) / 1000, referenceName: 'straight from docker-registry', unit: 's', target: '-', pass: () => true, context: true },
  ]);
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await removeDir(work);
}
