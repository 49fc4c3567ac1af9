/**
 * The catalogue's script and stylesheet, read once at start and served under names that carry
 * their hash, so browsers may keep them for good and a new version is a new URL.
 */
import { readFile } from 'node:fs/promises';
import { renderBytes, type RenderedDocument } from './rendered.ts';

export interface CatalogueAssets {
  /** By URL path. */
  files: Map<string, RenderedDocument>;
  script: string;
  style: string;
  /** The modules the script imports, for the page to preload. */
  modules: string[];
}

// The same depth under the project root from src/web/ and dist/web/: both find the sources' copy.
const assetDirectory = new URL('../../src/web/assets/', import.meta.url);

const javascript = 'text/javascript; charset=utf-8';

/** What catalogue.js imports (`from './NAME'`). */
const scriptModules = ['shell-quote.js'];

async function asset(name: string, contentType: string, edit = (text: string) => text): Promise<[string, RenderedDocument]> {
  const rendered = renderBytes(Buffer.from(edit(await readFile(new URL(name, assetDirectory), 'utf8'))), contentType);
  const dot = name.lastIndexOf('.');
  return [`/catalogue/assets/${name.slice(0, dot)}.${rendered.etag.slice(1, 13)}${name.slice(dot)}`, rendered];
}

/**
 * The script's imports pointed at the modules' hashed names: a new version of a module then
 * changes the script's own name too, and a browser never pairs an old copy with a new one.
 */
function linkImports(source: string, modules: { name: string; url: string }[]): string {
  return modules.reduce((text, { name, url }) => {
    const specifier = `from './${name}'`;
    if (!text.includes(specifier)) throw new Error(`catalogue.js does not import ./${name}`);
    return text.replaceAll(specifier, `from '${url}'`);
  }, source);
}

export async function loadCatalogueAssets(): Promise<CatalogueAssets> {
  const modules = await Promise.all(scriptModules.map(async (name) => ({ name, served: await asset(name, javascript) })));
  const urls = modules.map(({ name, served: [url] }) => ({ name, url }));
  const script = await asset('catalogue.js', javascript, (source) => linkImports(source, urls));
  const style = await asset('catalogue.css', 'text/css; charset=utf-8');
  return { files: new Map([script, style, ...modules.map((m) => m.served)]), script: script[0], style: style[0], modules: urls.map((m) => m.url) };
}
