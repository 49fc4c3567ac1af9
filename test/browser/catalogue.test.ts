/**
 * The web catalogue in a real headless Chromium (Debian package chromium, driven by
 * playwright-core; no browser download): it lists the public products, search and filters narrow
 * them, the copy buttons copy commands that the real incus and lxc clients accept, the product
 * view shows versions, fingerprints, files and the 30-day chart, private images never appear,
 * hostile image properties stay text, and axe-core finds no accessibility violation. Screenshots
 * at desktop and phone sizes go to test-artifacts/.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildMetadataTarball, buildQcow2, buildSquashfs, buildUnified } from '../fixtures/images.ts';
import { fingerprintFrom, runProcess, serve, tempDir, wharfOk } from '../helpers/env.ts';
import { fetchRaw } from '../helpers/http.ts';
import { SqliteUsageStore } from '../../src/meta/usage-sqlite.ts';
import { daysBefore } from '../../src/domain/usage.ts';

const chromiumPath = '/usr/bin/chromium';
const artifacts = join(import.meta.dirname, '..', '..', 'test-artifacts');

async function launch(t: TestContext): Promise<Browser> {
  assert.ok(existsSync(chromiumPath), 'Chromium is installed (Debian package chromium; scripts/test.sh installs it)');
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  t.after(() => browser.close());
  return browser;
}

/** Visible product rows, by their first cell. */
const visibleRows = (page: Page) => page.locator('#products [role=row]:not([hidden]) [role=rowheader]').allTextContents();

async function store(t: TestContext) {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const debianMeta = await buildMetadataTarball(work, { properties: { os: 'Debian', release: '12', release_title: 'bookworm', variant: 'default', architecture: 'amd64', description: 'Debian bookworm amd64' } });
  const debian = fingerprintFrom(await wharfOk(data, ['image', 'import', debianMeta.path, (await buildSquashfs(work, { seed: 'debian' })).path]));
  await wharfOk(data, ['image', 'promote', debian, '--channel', 'stable']);
  const vmMeta = await buildMetadataTarball(work, { name: 'vm-meta.tar.xz', properties: { os: 'Debian', release: '12', variant: 'default', architecture: 'amd64', description: 'Debian bookworm VM' } });
  const debianVm = fingerprintFrom(await wharfOk(data, ['image', 'import', vmMeta.path, (await buildQcow2(work, { seed: 'debian-vm' })).path]));
  const alpine = await buildUnified(work, { architecture: 'aarch64', properties: { os: 'Alpine', release: '3.20', variant: 'cloud', architecture: 'arm64', description: 'Alpine 3.20 arm64 (cloud)' } });
  await wharfOk(data, ['image', 'import', alpine.path]);
  const secret = await buildUnified(work, { name: 'secret.tar.gz', seed: 'secret', properties: { os: 'Secretos', release: '1', architecture: 'amd64', description: 'Secretos private' } });
  const secretFp = fingerprintFrom(await wharfOk(data, ['image', 'import', secret.path, '--private']));
  const hostile = await buildUnified(work, {
    name: 'hostile.tar.gz',
    seed: 'hostile',
    properties: { os: '<script>window.owned=1</script>', release: '"><img src=x onerror="window.owned=2">', architecture: 'amd64', description: '</td><b>bold</b>' },
  });
  await wharfOk(data, ['image', 'import', hostile.path]);

  // Downloads counted on earlier days (the serving processes write them the same way).
  const usage = new SqliteUsageStore(join(data, 'usage.db'));
  const now = new Date();
  await usage.add([
    { day: daysBefore(now, 0), fingerprint: debian, product: 'debian:12:amd64:default', via: 'file', count: 7 },
    { day: daysBefore(now, 3), fingerprint: debianVm, product: 'debian:12:amd64:default', via: 'export', count: 2 },
    { day: daysBefore(now, 40), fingerprint: debian, product: 'debian:12:amd64:default', via: 'file', count: 100 },
  ]);
  await usage.close();
  return { work, data, debian, debianVm, secretFp };
}

test('the catalogue lists, searches, filters, copies working commands and shows each product; nothing private, nothing injected', async (t) => {
  const { work, data, debian, debianVm, secretFp } = await store(t);
  const server = await serve(t, data);
  const browser = await launch(t);
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('dialog', (dialog) => problems.push(`a script opened a ${dialog.type()}`));

  await page.goto(server.base + '/');
  assert.equal(await page.title(), 'Image catalogue');
  assert.deepEqual(await visibleRows(page), ['<script>window.owned=1</script>', 'Alpine', 'Debian'].sort(new Intl.Collator('en', { numeric: true }).compare));
  assert.equal(await page.evaluate('window.owned'), undefined, 'hostile properties are text, not markup');
  assert.equal(await page.locator('#products b').count(), 0);
  const html = await page.content();
  assert.ok(!html.includes('Secretos') && !html.includes(secretFp), 'a private image never appears');
  const debianRow = page.locator('#products [role=row][data-key="debian:12:amd64:default"]');
  assert.match(await debianRow.innerText(), /bookworm/);
  assert.match(await debianRow.innerText(), /container\s+VM/);
  assert.match(await debianRow.innerText(), /2025-11-22 08:02 UTC\s+20251122_08:02/, 'the newest build: date and serial');
  await page.waitForFunction(`document.querySelector('#products [role=row][data-key="debian:12:amd64:default"] .downloads')?.textContent === '9'`);
  assert.equal(await page.locator('#registry').isVisible(), false, 'no registry section while the registry is empty');

  // The registry's section, once a repository is pushed: its tag and the fingerprint Incus shows.
  const password = (await wharfOk(data, ['oci', 'user', 'add', 'web', '--push', 'apps/*'])).trim();
  const auth = { authorization: `Basic ${Buffer.from(`web:${password}`).toString('base64')}` };
  const layer = Buffer.from('a layer');
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  for (const blob of [layer, config]) {
    await fetchRaw(`${server.base}/v2/apps/web/blobs/uploads/?digest=${sha(blob)}`, { ca: server.tls.cert, method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: blob });
  }
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }] });
  assert.equal((await fetchRaw(`${server.base}/v2/apps/web/manifests/2.0`, { ca: server.tls.cert, method: 'PUT', headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest })).status, 201);
  await page.reload();
  await page.locator('#registry').waitFor({ state: 'visible' });
  const incusFingerprint = createHash('sha256').update(sha(layer)).digest('hex');
  assert.match(await page.locator('#registry-rows').innerText(), new RegExp(`apps/web\\s+2\\.0\\s+${incusFingerprint.slice(0, 12)}`));

  // Search as you type, then the filters.
  await page.fill('#search', 'alp');
  assert.deepEqual(await visibleRows(page), ['Alpine']);
  assert.equal(await page.locator('#shown').textContent(), '1 shown');
  await page.fill('#search', 'bookworm');
  assert.deepEqual(await visibleRows(page), ['Debian']);
  await page.fill('#search', '');
  await page.selectOption('#filter-arch', 'arm64');
  assert.deepEqual(await visibleRows(page), ['Alpine']);
  await page.selectOption('#filter-arch', '');
  await page.selectOption('#filter-type', 'virtual-machine');
  assert.deepEqual(await visibleRows(page), ['Debian']);
  await page.selectOption('#filter-type', '');
  await page.selectOption('#sort', 'downloads');
  assert.equal((await visibleRows(page))[0], 'Debian', 'most downloaded first');

  // The commands, for incus and then lxc.
  const port = new URL(server.base).port;
  await page.click('.add .copy');
  const remoteAdd = await page.evaluate('navigator.clipboard.readText()');
  assert.equal(remoteAdd, `incus remote add wharf https://127.0.0.1:${port} --public --protocol=incus`);
  assert.equal(await page.locator('#certificate-fingerprint').textContent(), server.tls.fingerprint, 'a self-signed certificate: its fingerprint is shown');
  await debianRow.locator('.copy-launch').click();
  assert.equal(await page.evaluate('navigator.clipboard.readText()'), 'incus launch wharf:debian/12');
  await page.check('input[value=lxc]');
  await page.click('.add .copy');
  const lxcRemoteAdd = await page.evaluate('navigator.clipboard.readText()');
  assert.equal(lxcRemoteAdd, `lxc remote add wharf https://127.0.0.1:${port} --public`);
  await page.check('input[value=incus]');

  // The product view: versions, fingerprints, files, downloads and the chart.
  await debianRow.locator('[role=rowheader] a').click();
  const dialog = page.locator('dialog#product');
  await dialog.waitFor({ state: 'visible' });
  assert.equal(await dialog.locator('h2').textContent(), 'Debian 12 default amd64');
  const text = await dialog.innerText();
  assert.ok(text.includes(debian) && text.includes(debianVm), 'both images of the version, by fingerprint');
  assert.match(text, /incus launch wharf:debian\/12\n/);
  // The page's remote is the LXD API one (a self-signed server): there an alias names the
  // container of a product that has both, as with incusd, so the VM is named by its fingerprint.
  assert.ok(text.includes(`incus launch wharf:${debianVm} --vm`), text);
  assert.match(text, /rootfs squashfs/);
  assert.match(text, /disk qcow2/);
  assert.equal(await dialog.locator('svg.chart rect').count(), 30);
  assert.equal(await dialog.locator('svg.chart').getAttribute('aria-label'), '9 downloads in the last 30 days');
  assert.match(text, /\t107\t/, 'the image\'s downloads of all time');
  // Each image's channels, and the product's moves between them, loaded with the view.
  assert.match(text, /default, stable/);
  await dialog.locator('section.history h3').waitFor();
  assert.match(await dialog.locator('section.history').innerText(), /Channel history\n[\s\S]*UTC \S+ \(container\): into stable/);
  assert.ok(page.url().endsWith('#product=debian%3A12%3Aamd64%3Adefault'), 'the product view has its own URL');
  await mkdir(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'catalogue-product.png') });
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  await page.screenshot({ path: join(artifacts, 'catalogue-desktop.png'), fullPage: true });

  // A product URL opened directly shows that product.
  const direct = await context.newPage();
  await direct.goto(`${server.base}/#product=${encodeURIComponent('alpine:3.20:arm64:cloud')}`);
  await direct.locator('dialog#product h2').waitFor();
  assert.equal(await direct.locator('dialog#product h2').textContent(), 'Alpine 3.20 cloud arm64');

  // A phone: every product is a card, nothing wider than the screen.
  const phone = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const small = await phone.newPage();
  await small.goto(server.base + '/');
  const widest = await small.evaluate('[...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > 390).map((e) => e.tagName + (e.id ? "#" + e.id : "")).join(" ")');
  assert.equal(widest, '', 'nothing wider than the screen');
  await small.screenshot({ path: join(artifacts, 'catalogue-phone.png'), fullPage: true });
  await phone.close();

  // The JSON the page uses, for other tools.
  const products = JSON.parse((await fetchRaw(`${server.base}/catalogue/v1/products.json`, { ca: server.tls.cert })).body.toString()) as { format: string; products: { key: string }[] };
  assert.equal(products.format, 'wharf-catalogue:1.0');
  assert.ok(!JSON.stringify(products).includes(secretFp));
  // API clients asking for / still get the API root.
  const root = await fetchRaw(`${server.base}/`, { ca: server.tls.cert });
  assert.deepEqual(JSON.parse(root.body.toString()).metadata, ['/1.0']);
  assert.deepEqual(problems, []);

  // The copied commands work in the real clients: the remote is added once the fingerprint the
  // page shows is given as the answer, and the alias the launch command names resolves.
  const clients = [
    { command: 'incus', confVariable: 'INCUS_CONF', remoteAdd },
    { command: 'lxc', confVariable: 'LXD_CONF', remoteAdd: lxcRemoteAdd },
  ];
  for (const c of clients) {
    if (spawnSync('sh', ['-c', `command -v ${c.command}`]).status !== 0) assert.fail(`the ${c.command} client is not installed (scripts/test.sh installs it)`);
    const env = { ...process.env, [c.confVariable]: join(work, `${c.command}-conf`), HOME: work } as Record<string, string>;
    const added = await runProcess('sh', ['-c', c.remoteAdd], { env, stdin: `${server.tls.fingerprint}\n` });
    assert.equal(added.code, 0, added.stderr + added.stdout);
    const info = await runProcess(c.command, ['image', 'info', 'wharf:debian/12'], { env });
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, new RegExp(`Fingerprint: ${debian}`));
  }
});

test('a copied command keeps an alias with shell syntax in it one word: pasted, it runs only the client', async (t) => {
  const work = await tempDir(t);
  const data = join(work, 'data');
  const hostileAliases = ['x;id', "it's$(id)"];
  for (const [i, alias] of hostileAliases.entries()) {
    const image = await buildUnified(work, { name: `quoted-${i}.tar.gz`, seed: `quoted-${i}`, properties: { os: 'Quotedos', release: String(i + 1), architecture: 'amd64' } });
    await wharfOk(data, ['image', 'import', image.path, '--alias', alias]);
  }
  const server = await serve(t, data, { processes: 1 });
  const browser = await launch(t);
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  const page = await context.newPage();
  await page.goto(server.base + '/');

  // A client that only reports the words it was given, NUL after each.
  const bin = join(work, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'incus'), "#!/bin/sh\nprintf '%s\\0' \"$@\"\n", { mode: 0o755 });
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` } as Record<string, string>;
  for (const alias of hostileAliases) {
    await page.locator(`#products [role=row][data-alias="${alias}"] .copy-launch`).click();
    const copied = (await page.evaluate('navigator.clipboard.readText()')) as string;
    const pasted = await runProcess('sh', ['-c', copied], { env });
    assert.equal(pasted.code, 0, pasted.stderr);
    assert.deepEqual(pasted.stdout.split('\0'), ['launch', `wharf:${alias}`, ''], `${copied} runs the client with the alias, and nothing else`);
  }
  assert.equal(await page.evaluate('navigator.clipboard.readText()'), `incus launch 'wharf:it'\\''s$(id)'`, 'single-quoted');
  // The product view shows (and copies) the same quoted command.
  await page.locator('#products [role=row][data-alias="x;id"] [role=rowheader] a').click();
  await page.locator('dialog#product h2').waitFor();
  assert.match(await page.locator('dialog#product').innerText(), /incus launch 'wharf:x;id'\n/);
});

test('axe-core finds no accessibility violation on the list or the product view', async (t) => {
  const { data } = await store(t);
  const server = await serve(t, data, { processes: 1 });
  const browser = await launch(t);
  // Injecting axe needs an inline script, which the page's own policy forbids.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, bypassCSP: true });
  const page = await context.newPage();
  const axeSource = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  const audit = async () => {
    await page.addScriptTag({ content: axeSource });
    const result = (await page.evaluate('axe.run()')) as {
      violations: { id: string; help: string; nodes: { target: string[] }[] }[];
    };
    return result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  };
  await page.goto(server.base + '/');
  await page.waitForFunction(`document.querySelector('#products .downloads')?.textContent !== '–'`);
  assert.deepEqual(await audit(), []);
  await page.goto(`${server.base}/#product=${encodeURIComponent('debian:12:amd64:default')}`);
  await page.locator('dialog#product h2').waitFor();
  assert.deepEqual(await audit(), []);
  // Keyboard only: Tab reaches the search field, typing filters, Enter on a product link opens it.
  await page.keyboard.press('Escape');
  await page.goto(server.base + '/');
  await page.keyboard.press('Tab'); // skip link
  await page.keyboard.press('Tab');
  assert.ok(await page.evaluate(`document.activeElement?.matches('input[name=client]')`));
  await page.focus('#search');
  await page.keyboard.type('debian');
  await page.keyboard.press('Tab'); // distribution
  await page.locator('#products [role=row]:not([hidden]) [role=rowheader] a').focus();
  await page.keyboard.press('Enter');
  await page.locator('dialog#product h2').waitFor();
  assert.equal(await page.locator('dialog#product h2').textContent(), 'Debian 12 default amd64');
});

test('a browser is not asked for a client certificate (Chromium net log), which LXD and Incus clients still are asked for', async (t) => {
  const { data } = await store(t);
  const server = await serve(t, data, { processes: 1 });
  const netLog = join(await tempDir(t), 'netlog.json');
  assert.ok(existsSync(chromiumPath), 'Chromium is installed');
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', `--log-net-log=${netLog}`] });
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(server.base + '/');
    await page.locator('#products [role=row]').first().waitFor();
  } finally {
    await browser.close();
  }
  const log = JSON.parse(await readFile(netLog, 'utf8')) as { constants: { logEventTypes: Record<string, number> }; events: { type: number; params?: { url?: string } }[] };
  const type = (name: string) => log.constants.logEventTypes[name];
  assert.ok(log.events.some((e) => e.type === type('URL_REQUEST_START_JOB') && e.params?.url === server.base + '/'), 'the net log has the page request');
  assert.equal(log.events.filter((e) => e.type === type('URL_REQUEST_DELEGATE_CERTIFICATE_REQUESTED')).length, 0, 'no certificate request reached the browser');
  // The other side (LXD/Incus clients present their certificate and are trusted) is what the
  // interop tests and test/integration/lxd-api.test.ts drive.
});
