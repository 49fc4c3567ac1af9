/** The sites an origin steers downloads to (`wharf site add|list|remove`). */
import { AppError, ErrorCodes } from '../errors.ts';
import { continentCodes, isCountryCode, type SiteRecord } from '../domain/steering.ts';
import type { SiteStore } from '../meta/store.ts';

export interface NewSite {
  name: string;
  url: string;
  countries: string[];
  continents: string[];
  weight: number;
}

/** Adds a site, or redefines the one with that name (its last check is kept). */
export async function putSite(store: { meta: SiteStore }, site: NewSite): Promise<Omit<SiteRecord, 'health'>> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(site.name)) throw new AppError(ErrorCodes.invalidArgument, `Invalid site name "${site.name}"`);
  let url: URL;
  try {
    url = new URL(site.url);
  } catch {
    throw new AppError(ErrorCodes.invalidArgument, `Invalid URL "${site.url}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username || url.password || url.search || url.hash) {
    throw new AppError(ErrorCodes.invalidArgument, `A site URL is http:// or https:// with no credentials, query or fragment: "${site.url}"`);
  }
  const countries = site.countries.map((c) => c.trim().toUpperCase());
  for (const c of countries) if (!isCountryCode(c)) throw new AppError(ErrorCodes.invalidArgument, `"${c}" is not an ISO 3166 country code (two letters)`);
  const continents = site.continents.map((c) => c.trim().toUpperCase());
  for (const c of continents) {
    if (!(continentCodes as readonly string[]).includes(c)) throw new AppError(ErrorCodes.invalidArgument, `"${c}" is not a continent code`, { hint: `Use ${continentCodes.join(', ')}.` });
  }
  if (countries.length === 0 && continents.length === 0) throw new AppError(ErrorCodes.invalidArgument, `Site "${site.name}" serves no region`, { hint: 'Give --country or --continent.' });
  if (!Number.isSafeInteger(site.weight) || site.weight < 1) throw new AppError(ErrorCodes.invalidArgument, 'A site weight is a whole number from 1');
  const record = { name: site.name, url: url.href.replace(/\/+$/, ''), countries: [...new Set(countries)], continents: [...new Set(continents)], weight: site.weight };
  await store.meta.putSite(record);
  return record;
}
