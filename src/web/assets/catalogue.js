// The catalogue page's behaviour: search as you type, filters, sorting, copy buttons, the product
// view (#product=KEY) with its download chart. The product list itself is in the HTML (web/page.ts); this
// only shows, hides and orders its rows. Text from the server goes into the DOM as text, never as HTML,
// and into a copied command as quoted words, never as shell syntax.

import { shellQuote } from './shell-quote.js';

const rows = [...document.querySelectorAll('#products [role=row]')];
const list = document.getElementById('products');
const search = document.getElementById('search');
const filters = [...document.querySelectorAll('select[data-filter]')];
const sort = document.getElementById('sort');
const shown = document.getElementById('shown');
const dialog = document.getElementById('product');
const dialogBody = document.getElementById('product-body');
const fingerprint = document.getElementById('certificate-fingerprint')?.textContent;

const url = `https://${location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname}:${location.port || '443'}`;
// A remote name from the host name ("images" for images.example.org); an address gets a plain one.
const firstLabel = location.hostname.split('.')[0];
const remote = /^[a-z][a-z0-9-]*$/i.test(firstLabel) && !/^(localhost)$/i.test(firstLabel) ? firstLabel.toLowerCase() : 'wharf';
let client = 'incus';
let downloads = { products: {}, images: {}, days: [] };

function remoteCommand() {
  const add = `${client} remote add ${shellQuote(remote)} ${shellQuote(url)}`;
  if (fingerprint) return `${add} --public${client === 'incus' ? ' --protocol=incus' : ''}`;
  return `${add} --protocol=simplestreams`;
}

/**
 * `vmFingerprint`: the product's newest VM, where it has a container too. Over the LXD API (the
 * remote added with --public, for a self-signed server) an alias names one image, the container,
 * as with incusd, so `launch ALIAS --vm` fails there: the VM is named by its fingerprint instead.
 * A simplestreams remote finds the VM by the alias and --vm.
 */
function launchCommand(alias, vm, vmFingerprint) {
  const target = vm && fingerprint && vmFingerprint ? vmFingerprint : alias;
  return `${client} launch ${shellQuote(`${remote}:${target}`)}${vm ? ' --vm' : ''}`;
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (an old browser, or not allowed): copy from a selected text field.
    const field = Object.assign(document.createElement('textarea'), { value: text });
    document.body.append(field);
    field.select();
    document.execCommand('copy');
    field.remove();
  }
  const label = button.textContent;
  button.textContent = 'Copied';
  setTimeout(() => (button.textContent = label), 1500);
}

function showCommands() {
  document.getElementById('remote-command').textContent = remoteCommand();
}

// What filtering reads of each row, read from the DOM once: attribute reads per keystroke and
// per row cost more than the matching itself on a 1,000-row page.
const facts = rows.map((row) => ({
  row,
  search: row.dataset.search,
  os: row.dataset.os,
  release: row.dataset.release,
  arch: row.dataset.arch,
  types: row.dataset.types.split(' '),
  hidden: false,
}));
let order = 'name';

function apply() {
  const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
  const wanted = filters.map((f) => [f.dataset.filter, f.value]).filter(([, v]) => v);
  let count = 0;
  for (const fact of facts) {
    const match = words.every((w) => fact.search.includes(w)) && wanted.every(([key, value]) => (key === 'types' ? fact.types.includes(value) : fact[key] === value));
    // Only rows whose state changes are touched: each change is layout work.
    if (fact.hidden === match) fact.row.hidden = fact.hidden = !match;
    if (match) count++;
  }
  shown.textContent = `${count} shown`;
  if (sort.value !== order) reorder(sort.value);
}

function reorder(by) {
  order = by;
  const value = (row) =>
    by === 'date' ? row.dataset.date : by === 'size' ? Number(row.dataset.size) : by === 'downloads' ? (downloads.products[row.dataset.key]?.last_30_days ?? []).reduce((a, b) => a + b, 0) : 0;
  const ordered = by === 'name' ? rows : [...rows].sort((a, b) => (value(a) < value(b) ? 1 : value(a) > value(b) ? -1 : 0));
  list.append(...ordered);
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

const svg = (tag, attributes = {}, ...children) => {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  node.append(...children);
  return node;
};

function humanSize(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) (value /= 1024), unit++;
  return unit === 0 ? `${bytes}B` : `${value.toFixed(2)}${units[unit]}`;
}

/** Bars of the last 30 days, with the numbers for screen readers and on hover. */
function chart(counts, days) {
  const total = counts.reduce((a, b) => a + b, 0);
  const max = Math.max(1, ...counts);
  const width = 300;
  const height = 60;
  const bar = width / counts.length;
  const figure = svg('svg', { viewBox: `0 0 ${width} ${height + 2}`, role: 'img', 'aria-label': `${total} downloads in the last 30 days`, class: 'chart' });
  counts.forEach((count, i) => {
    const h = Math.max(count ? 2 : 0, Math.round((count / max) * height));
    figure.append(svg('rect', { x: i * bar + 1, y: height - h, width: bar - 2, height: h }, svg('title', {}, `${days[i]}: ${count}`)));
  });
  figure.append(svg('line', { x1: 0, x2: width, y1: height + 1, y2: height + 1 }));
  return element('figure', {}, figure, element('figcaption', {}, `${total} downloads in the last 30 days`));
}

let catalogue;
const loadCatalogue = () => (catalogue ??= fetch('/catalogue/v1/products.json').then((r) => r.json()));

function commandLine(text) {
  const code = element('code', {}, text);
  const button = element('button', { type: 'button', class: 'copy' }, 'Copy');
  button.addEventListener('click', () => copy(text, button));
  return element('div', { class: 'command' }, code, button);
}

/** The newest VM image of a product (its versions come newest first). */
const newestVm = (product) => product.versions.flatMap((v) => v.images).find((i) => i.type === 'virtual-machine');

async function openProduct(key) {
  const product = (await loadCatalogue()).products.find((p) => p.key === key);
  if (!product) return;
  const alias = product.aliases[0] ?? product.versions[0].images[0].fingerprint.slice(0, 12);
  const stats = downloads.products[key];
  const title = [product.os, product.release, product.variant, product.arch].filter(Boolean).join(' ') || product.description;
  const history = element('section', { class: 'history', 'aria-live': 'polite' });
  const versions = element('table', { class: 'versions' },
    element('caption', {}, 'Versions'),
    element('thead', {}, element('tr', {}, ...['Version', 'Type', 'Fingerprint', 'Channels', 'Tests', 'Size', 'Downloads', 'Files'].map((h) => element('th', { scope: 'col' }, h)))),
    element('tbody', {}, ...product.versions.flatMap((version) =>
      version.images.map((image) =>
        element('tr', {},
          element('td', { 'data-label': 'Version' }, version.serial),
          element('td', { 'data-label': 'Type' }, image.type === 'container' ? 'container' : 'VM'),
          element('td', { 'data-label': 'Fingerprint' }, element('code', { class: 'fingerprint' }, image.fingerprint)),
          element('td', { 'data-label': 'Channels' }, image.channels.join(', ')),
          // Published through the pipeline: passed its tests, or promoted without (an operator's call).
          element('td', { 'data-label': 'Tests' }, image.tested === null ? '' : image.tested ? 'passed' : 'not tested'),
          element('td', { 'data-label': 'Size' }, humanSize(image.size)),
          element('td', { 'data-label': 'Downloads' }, String(downloads.images[image.fingerprint] ?? 0)),
          element('td', { 'data-label': 'Files' }, element('ul', { class: 'files' }, ...image.files.map((f) =>
            element('li', {}, element('a', { href: `/${f.path}` }, f.role), ` ${f.format}, ${humanSize(f.size)} `, element('code', { class: 'sha', title: 'sha256' }, f.sha256))))),
        ),
      ),
    )),
  );
  dialogBody.replaceChildren(
    element('h2', { id: 'product-title' }, title),
    element('p', {}, product.description),
    element('p', {}, `Aliases: ${product.aliases.join(', ') || 'none (use the fingerprint)'}`),
    ...product.types.map((t) => commandLine(launchCommand(alias, t === 'virtual-machine', product.types.includes('container') ? newestVm(product)?.fingerprint : undefined))),
    chart(stats?.last_30_days ?? downloads.days.map(() => 0), downloads.days),
    versions,
    history,
  );
  if (!dialog.open) dialog.showModal();
  showHistory(product, history);
}

/** Each move of the product's versions between channels (promoted, demoted), loaded when shown. */
async function showHistory(product, section) {
  let answer;
  try {
    answer = await (await fetch(`/catalogue/v1/history.json?product=${encodeURIComponent(product.key)}`)).json();
  } catch {
    section.replaceChildren();
    return;
  }
  const serialOf = new Map(product.versions.flatMap((v) => v.images.map((i) => [i.fingerprint, `${v.serial} (${i.type === 'container' ? 'container' : 'VM'})`])));
  const moves = answer.history.map((change) => {
    const added = change.to.filter((c) => !change.from.includes(c));
    const removed = change.from.filter((c) => !change.to.includes(c));
    const what = [...added.map((c) => `into ${c}`), ...removed.map((c) => `out of ${c}`)].join(', ');
    return element('li', {}, element('time', { datetime: change.at }, `${change.at.slice(0, 10)} ${change.at.slice(11, 16)} UTC`), ` ${serialOf.get(change.fingerprint) ?? change.fingerprint.slice(0, 12)}: ${what}`);
  });
  section.replaceChildren(element('h3', {}, 'Channel history'), moves.length ? element('ul', { class: 'history' }, ...moves) : element('p', {}, 'No moves between channels.'));
}

function route() {
  const match = /^#product=(.+)$/.exec(location.hash);
  if (match) openProduct(decodeURIComponent(match[1]));
  else if (dialog.open) dialog.close();
}

async function loadDownloads() {
  try {
    downloads = await (await fetch('/catalogue/v1/downloads.json')).json();
  } catch {
    return;
  }
  for (const row of rows) {
    const counts = downloads.products[row.dataset.key]?.last_30_days;
    row.querySelector('.downloads').textContent = String(counts ? counts.reduce((a, b) => a + b, 0) : 0);
  }
  if (sort.value === 'downloads') reorder('downloads');
}

/** The registry's public repositories and tags, if it has any (the section stays hidden otherwise). */
async function loadRegistry() {
  let answer;
  try {
    answer = await (await fetch('/catalogue/v1/registry.json')).json();
  } catch {
    return;
  }
  const rows = answer.repositories.flatMap((repository) =>
    repository.tags.flatMap((tag) =>
      (tag.platforms ?? [{ platform: '', fingerprint: tag.fingerprint }]).map((p) =>
        element('tr', {},
          element('td', {}, repository.name),
          element('td', {}, tag.tag),
          element('td', {}, p.platform),
          element('td', {}, p.fingerprint ? element('code', { class: 'fingerprint' }, p.fingerprint.slice(0, 12)) : '(not cached yet)'),
        ),
      ),
    ),
  );
  if (!rows.length) return;
  document.getElementById('registry-rows').replaceChildren(...rows);
  document.getElementById('registry').hidden = false;
}

for (const button of document.querySelectorAll('[hidden].copy, [hidden].copy-launch')) button.hidden = false;
for (const radio of document.querySelectorAll('input[name=client]')) {
  radio.addEventListener('change', () => {
    client = radio.value;
    showCommands();
    if (dialog.open) route();
  });
}
document.querySelector('.add .copy').addEventListener('click', (event) => copy(remoteCommand(), event.currentTarget));
list.addEventListener('click', (event) => {
  const button = event.target.closest('.copy-launch');
  if (!button) return;
  const row = button.closest('[role=row]');
  copy(launchCommand(row.dataset.alias, !row.dataset.types.includes('container')), button);
});
search.addEventListener('input', apply);
for (const select of [...filters, sort]) select.addEventListener('change', apply);
dialog.addEventListener('close', () => {
  if (location.hash) history.pushState(null, '', location.pathname + location.search);
});
window.addEventListener('hashchange', route);
showCommands();
route();
loadDownloads();
loadRegistry();
