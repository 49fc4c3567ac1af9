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
}

// The same depth under the project root from src/web/ and dist/web/: both find the sources' copy.
const assetDirectory = new URL('../../src/web/assets/', import.meta.url);

async function asset(name: string, contentType: string): Promise<[string, RenderedDocument]> {
  const rendered = renderBytes(await readFile(new URL(name, assetDirectory)), contentType);
  const dot = name.lastIndexOf('.');
  return [`/catalogue/assets/${name.slice(0, dot)}.${rendered.etag.slice(1, 13)}${name.slice(dot)}`, rendered];
}

export async function loadCatalogueAssets(): Promise<CatalogueAssets> {
  const [script, style] = await Promise.all([asset('catalogue.js', 'text/javascript; charset=utf-8'), asset('catalogue.css', 'text/css; charset=utf-8')]);
  return { files: new Map([script, style]), script: script[0], style: style[0] };
}
