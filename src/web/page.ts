/**
 * The catalogue page, rendered to bytes when the store changes (core/publish.ts), never per
 * request: the whole product table is in the HTML, so the first paint needs no script and no
 * second request. The script (web/catalogue.js) adds search, filters, sorting, the copy buttons,
 * the product view and the download charts. Everything an image says about itself (properties
 * come from whoever built or uploaded it) is escaped here.
 *
 * The product list is an ARIA table of grid rows rather than a <table>: a row outside the
 * viewport is then skipped by layout (content-visibility, catalogue.css), which a table row cannot
 * be, and a 1,000-product page paints in about half the time (bench/catalogue.ts).
 */
import type { CatalogueDocument, CatalogueProduct } from '../domain/catalogue.ts';
import { humanSize } from '../domain/size.ts';

const entities: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text for an HTML text node or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => entities[c]!);
}

export interface PageOptions {
  /** Hashed asset URLs (web/assets.ts); `modules`: those the script imports. */
  assets: { script: string; style: string; modules: string[] };
  /** The served certificate, when no public CA vouches for it: clients must be told its fingerprint. */
  selfSignedFingerprint: string | undefined;
  version: string;
  /** The channels other than the default one: roots of their own, which the page names. */
  channels?: string[];
}

const typeLabel = { container: 'container', 'virtual-machine': 'VM' } as const;

/** "2026-11-22 07:42 UTC" */
const shortDate = (iso: string) => `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;

function options(values: string[]): string {
  return values.map((v) => `<option value="${escapeHtml(v)}">${escapeHtml(v)}</option>`).join('');
}

const distinct = (values: string[]) => [...new Set(values)].sort(new Intl.Collator('en', { numeric: true }).compare);

function row(p: CatalogueProduct): string {
  const e = escapeHtml;
  const name = p.os || p.description || p.key;
  const search = [p.os, p.release, p.release_title, p.variant, p.arch, p.description, ...p.aliases].join(' ').toLowerCase();
  const release = p.release_title && p.release_title !== p.release ? `${e(p.release)} <span class="dim">(${e(p.release_title)})</span>` : e(p.release);
  const alias = p.aliases[0] ?? p.versions[0]!.images[0]!.fingerprint.slice(0, 12);
  return (
    `<div role="row" data-key="${e(p.key)}" data-os="${e(p.os)}" data-release="${e(p.release)}" data-arch="${e(p.arch)}" data-types="${p.types.join(' ')}" ` +
    `data-date="${e(p.newest.created_at)}" data-size="${p.newest.size}" data-search="${e(search)}" data-alias="${e(alias)}">` +
    `<div role="rowheader"><a href="#product=${encodeURIComponent(p.key)}">${e(name)}</a></div>` +
    `<div role="cell" data-label="Release">${release}</div>` +
    `<div role="cell" data-label="Variant">${e(p.variant)}</div>` +
    `<div role="cell" data-label="Architecture">${e(p.arch)}</div>` +
    `<div role="cell" data-label="Type">${p.types.map((t) => `<span class="badge ${t === 'container' ? 'ct' : 'vm'}">${typeLabel[t]}</span>`).join(' ')}</div>` +
    `<div role="cell" data-label="Newest build"><time datetime="${e(p.newest.created_at)}">${e(shortDate(p.newest.created_at))}</time><br><span class="dim serial">${e(p.newest.serial)}</span></div>` +
    `<div role="cell" data-label="Size">${humanSize(p.newest.size)}</div>` +
    `<div role="cell" data-label="Downloads (30 days)" class="downloads">–</div>` +
    `<div role="cell" class="actions"><button type="button" class="copy-launch" hidden>Copy launch command</button></div>` +
    `</div>`
  );
}

export function renderCataloguePage(doc: CatalogueDocument, page: PageOptions): string {
  const { products } = doc;
  const fingerprint = page.selfSignedFingerprint;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Image catalogue</title>
<link rel="stylesheet" href="${page.assets.style}">
<script type="module" src="${page.assets.script}"></script>
${page.assets.modules.map((url) => `<link rel="modulepreload" href="${url}">\n`).join('')}</head>
<body>
<a class="skip" href="#images">Skip to the images</a>
<header>
<h1>Image catalogue</h1>
<p>${products.length} ${products.length === 1 ? 'product' : 'products'} of container and virtual-machine images for Incus and LXD.</p>
</header>
<main>
<section aria-labelledby="add-title" class="add">
<h2 id="add-title">Use this server</h2>
<div class="client-choice" role="radiogroup" aria-label="Client">
<label><input type="radio" name="client" value="incus" checked> incus</label>
<label><input type="radio" name="client" value="lxc"> lxc</label>
</div>
<div class="command"><code id="remote-command">incus remote add NAME https://THIS-SERVER:PORT ${fingerprint ? '--public' : '--protocol=simplestreams'}</code><button type="button" class="copy" data-copy="remote-command" hidden>Copy</button></div>
${fingerprint ? `<p class="fingerprint">The server's certificate is self-signed: when the client asks, answer with its fingerprint <code id="certificate-fingerprint">${escapeHtml(fingerprint)}</code>.</p>` : ''}
${page.channels?.length ? `<p class="channels">The images below are the server's default channel. Other channels are simplestreams remotes of their own, at the server's address followed by the channel: ${page.channels.map((c) => `<code>/${escapeHtml(c)}</code>`).join(', ')}.</p>` : ''}
</section>
<section aria-labelledby="images-title" id="images">
<h2 id="images-title">Images</h2>
<form class="filters" role="search" onsubmit="return false">
<div><label for="search">Search</label><input id="search" type="search" placeholder="debian 12, alpine, cloud…" autocomplete="off"></div>
<div><label for="filter-os">Distribution</label><select id="filter-os" data-filter="os"><option value="">All</option>${options(distinct(products.map((p) => p.os).filter(Boolean)))}</select></div>
<div><label for="filter-release">Release</label><select id="filter-release" data-filter="release"><option value="">All</option>${options(distinct(products.map((p) => p.release).filter(Boolean)))}</select></div>
<div><label for="filter-arch">Architecture</label><select id="filter-arch" data-filter="arch"><option value="">All</option>${options(distinct(products.map((p) => p.arch)))}</select></div>
<div><label for="filter-type">Type</label><select id="filter-type" data-filter="types"><option value="">All</option><option value="container">container</option><option value="virtual-machine">VM</option></select></div>
<div><label for="sort">Sort by</label><select id="sort"><option value="name">Name</option><option value="date">Newest build</option><option value="size">Size</option><option value="downloads">Downloads</option></select></div>
</form>
<p id="shown" role="status" aria-live="polite">${products.length} shown</p>
<div role="table" class="products" aria-labelledby="images-title">
<div role="rowgroup" class="head"><div role="row"><div role="columnheader">Distribution</div><div role="columnheader">Release</div><div role="columnheader">Variant</div><div role="columnheader">Architecture</div><div role="columnheader">Type</div><div role="columnheader">Newest build</div><div role="columnheader">Size</div><div role="columnheader">Downloads (30 days)</div><div role="columnheader"><span class="visually-hidden">Actions</span></div></div></div>
<div role="rowgroup" id="products">
${products.map(row).join('\n')}
</div>
</div>
${products.length ? '' : '<p class="empty">No public images yet.</p>'}
</section>
<section aria-labelledby="registry-title" id="registry" hidden>
<h2 id="registry-title">OCI registry</h2>
<p>Application containers for Incus 6.3 and later: <code>incus remote add NAME https://THIS-SERVER:PORT/PREFIX --protocol=oci</code>, where PREFIX is the first part of a repository's name.</p>
<table class="registry"><caption class="visually-hidden">Repositories and tags</caption>
<thead><tr><th scope="col">Repository</th><th scope="col">Tag</th><th scope="col">Platform</th><th scope="col">Fingerprint (as Incus shows it)</th></tr></thead>
<tbody id="registry-rows"></tbody></table>
</section>
</main>
<dialog id="product" aria-labelledby="product-title"><div id="product-body"></div><form method="dialog"><button class="close">Close</button></form></dialog>
<footer><p>Served by wharf ${escapeHtml(page.version)}. The same list for tools: <a href="/catalogue/v1/products.json">products.json</a>, <a href="/catalogue/v1/downloads.json">downloads.json</a>, <a href="/catalogue/v1/registry.json">registry.json</a>.</p></footer>
</body>
</html>
`;
}
