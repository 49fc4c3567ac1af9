/**
 * Benchmark 8: import of the same root filesystem in each form real builders produce, against
 * one sha256 pass over the same files by Node's own crypto (the physical floor of "hash once"),
 * with `openssl dgst -sha256` as context. The tree is a real one: /usr/share of this machine
 * (set WHARF_BENCH_TREE to use another), files under 20 MB up to 300 MB in all. Forms: split squashfs (xz, as
 * distrobuilder makes it), split rootfs.tar.xz (multi-block, as `xz -T0` writes it), split
 * rootfs.tar.zst, split uncompressed rootfs.tar, unified .tar.gz. Each: 3 alternating runs after
 * a warm page cache, medians. Targets: <= 1.3x the hash pass where no decompression is needed
 * (the split forms); the unified form must decompress and parse in full (context). Where Incus is
 * installed, the Incus daemon importing the same files (`incus image import`, the client's upload
 * over its unix socket included) is the other reference: wharf must be no slower, for every form.
 * `dd conv=fsync` of the same bytes is context: a durable copy is part of any import.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { buildMetadataTarball } from '../test/fixtures/images.ts';
import { incusDaemon, incusImportMs, median, removeDir, report, requireCommands, runOk, tempDir, warm, wharfBin, type Row } from './lib.ts';

requireCommands('tar', 'xz', 'zstd', 'mksquashfs', 'openssl');
const runs = 3;
const tree = process.env.WHARF_BENCH_TREE ?? '/usr/share';

async function nodeHashMs(paths: string[]): Promise<number> {
  const started = performance.now();
  for (const path of paths) {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
    hash.digest('hex');
  }
  return performance.now() - started;
}

const incus = await incusDaemon();
if (!incus) console.log('Incus is not installed: no Incus daemon reference (bench/run.sh installs it as root)');
const work = await tempDir('import-kinds');
try {
  const files = join(work, 'files');
  await mkdir(files, { recursive: true });
  const { path: meta } = await buildMetadataTarball(files, { properties: { os: 'Debian', release: 'bookworm', variant: 'default', architecture: 'amd64', description: 'bench' } });
  // A rootfs/ tree of ~300 MB of real files, as one tarball: the source of every form.
  const rootfsTar = join(files, 'rootfs.tar');
  const pick = `find . -type f -size -20M -printf '%s %p\\n' | awk '{ s += $1; if (s > 300e6) exit; print substr($0, index($0, " ") + 1) }'`;
  await runOk('sh', ['-c', `cd "$1" && ${pick} | tar -cf "$2" --transform 's,^\\.,rootfs,' -T -`, 'sh', tree, rootfsTar], { timeoutMs: 600_000 });
  const unifiedSize = (await stat(rootfsTar)).size;
  console.log(`tree: ${tree}, rootfs.tar ${(unifiedSize / 2 ** 20).toFixed(0)} MiB`);
  const squashfsDir = join(work, 'sq');
  await mkdir(squashfsDir);
  await runOk('tar', ['-xf', rootfsTar, '-C', squashfsDir], { timeoutMs: 600_000 });
  const forms: { name: string; args: string[]; split: boolean }[] = [];
  const squashfs = join(files, 'rootfs.squashfs');
  await runOk('mksquashfs', [join(squashfsDir, 'rootfs'), squashfs, '-noappend', '-quiet', '-no-progress', '-comp', 'xz', '-all-root'], { timeoutMs: 900_000 });
  await removeDir(squashfsDir);
  forms.push({ name: 'split squashfs (xz)', args: [meta, squashfs], split: true });
  await runOk('sh', ['-c', 'xz -T0 -6 -c "$1" > "$1.xz"', 'sh', rootfsTar], { timeoutMs: 900_000 });
  forms.push({ name: 'split rootfs.tar.xz', args: [meta, `${rootfsTar}.xz`], split: true });
  await runOk('zstd', ['-q', '-T0', '-19', '--long=27', rootfsTar, '-o', `${rootfsTar}.zst`].filter((a) => a !== '-19'), { timeoutMs: 900_000 });
  forms.push({ name: 'split rootfs.tar.zst', args: [meta, `${rootfsTar}.zst`], split: true });
  forms.push({ name: 'split rootfs.tar (none)', args: [meta, rootfsTar], split: true });
  const unified = join(files, 'unified.tar.gz');
  await runOk('sh', ['-c', 'cd "$1" && mkdir u && cd u && tar -xf ../rootfs.tar && tar -xf "$2" && tar -czf ../unified.tar.gz metadata.yaml rootfs && cd .. && rm -rf u', 'sh', files, meta], { timeoutMs: 900_000 });
  forms.push({ name: 'unified .tar.gz', args: [unified], split: false });

  const rows: Row[] = [];
  for (const form of forms) {
    await warm(...form.args);
    const bytes = (await Promise.all(form.args.map((p) => stat(p)))).reduce((n, s) => n + s.size, 0);
    const wharf: number[] = [];
    const node: number[] = [];
    const openssl: number[] = [];
    const durable: number[] = [];
    const incusMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      if (incus) incusMs.push(await incusImportMs(form.args));
      node.push(await nodeHashMs(form.args));
      openssl.push((await runOk('openssl', ['dgst', '-sha256', ...form.args])).ms);
      // Storing the bytes durably is the other floor: the same files copied and fsynced.
      const copy = join(work, 'copy');
      durable.push((await runOk('sh', ['-c', 'for f in "$@"; do dd if="$f" of="$0" bs=1M conv=fsync status=none; done; rm -f "$0"', copy, ...form.args])).ms);
      const data = join(work, `data-${i}`);
      wharf.push((await runOk(wharfBin, ['--data-dir', data, 'image', 'import', ...form.args], { timeoutMs: 600_000 })).ms);
      await removeDir(data);
    }
    console.log(`${form.name} (${(bytes / 2 ** 20).toFixed(0)} MiB): wharf ${wharf.map((m) => m.toFixed(0)).join('/')} ms, node sha256 ${node.map((m) => m.toFixed(0)).join('/')} ms, dd+fsync ${durable.map((m) => m.toFixed(0)).join('/')} ms,${incus ? ` incus ${incusMs.map((m) => m.toFixed(0)).join('/')} ms,` : ''} openssl ${openssl.map((m) => m.toFixed(0)).join('/')} ms`);
    rows.push({
      name: `${form.name}, ${(bytes / 2 ** 20).toFixed(0)} MiB`,
      wharf: median(wharf) / 1000,
      reference: median(node) / 1000,
      referenceName: 'Node sha256 pass',
      unit: 's',
      target: form.split ? '<= 1.3x' : '-',
      pass: form.split ? (r) => r <= 1.3 : () => true,
      ...(form.split ? {} : { context: true }),
    });
    if (incus) rows.push({ name: `${form.name}`, wharf: median(wharf) / 1000, reference: median(incusMs) / 1000, referenceName: 'Incus daemon import', unit: 's', target: '<= 1.0x', pass: (r) => r <= 1.0 });
    rows.push({ name: `${form.name}`, wharf: median(wharf) / 1000, reference: median(openssl) / 1000, referenceName: 'openssl dgst -sha256', unit: 's', target: '-', pass: () => true, context: true });
    rows.push({ name: `${form.name}`, wharf: median(wharf) / 1000, reference: median(durable) / 1000, referenceName: 'dd conv=fsync (durable copy)', unit: 's', target: '-', pass: () => true, context: true });
  }
  report('8 import per rootfs form (wall time of the CLI, medians of 3)', rows);
} finally {
  await removeDir(work);
}
