/**
 * Client locations from an mmdb database: MaxMind GeoLite2/GeoIP2 Country or City
 * (`country.iso_code`, `continent.code`), or the flat `country_code` layout of the ip-location-db
 * databases, whose continent is then taken from the country.
 */
import { readFile } from 'node:fs/promises';
import { AppError, ErrorCodes } from '../errors.ts';
import type { ClientLocation } from '../domain/steering.ts';

export interface GeoIp {
  locate(address: string): ClientLocation;
}

interface LocationRecord {
  country?: { iso_code?: string };
  registered_country?: { iso_code?: string };
  continent?: { code?: string };
  country_code?: string;
}

/**
 * Decoded records by their offset in the database: a country database has a few hundred, and
 * decoding one costs more than finding it. Bounded for city databases (cleared when full).
 */
function decodedRecords(max = 10_000) {
  const records = new Map<number, unknown>();
  return {
    get: (offset: number) => records.get(offset),
    set: (offset: number, record: unknown) => {
      if (records.size >= max) records.clear();
      records.set(offset, record);
    },
  };
}

export async function openGeoIp(path: string): Promise<GeoIp> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new AppError(ErrorCodes.config, `geoip_db: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const [{ Reader }, { countries }] = await Promise.all([import('maxmind'), import('countries-list')]);
  // The record shapes differ by database; each field is checked where it is read.
  let reader: { get(address: string): unknown };
  try {
    reader = new Reader(bytes, { cache: decodedRecords() });
  } catch (err) {
    throw new AppError(ErrorCodes.config, `geoip_db: ${path} is not an mmdb database: ${(err as Error).message}`);
  }
  const continentOf = (country: string) => (countries as { [code: string]: { continent: string } | undefined })[country]?.continent;
  return {
    locate(address) {
      let record: LocationRecord | null;
      try {
        record = reader.get(address) as LocationRecord | null;
      } catch {
        return {};
      }
      if (!record) return {};
      const country = (record.country?.iso_code ?? record.country_code ?? record.registered_country?.iso_code)?.toUpperCase();
      const continent = record.continent?.code?.toUpperCase() ?? (country ? continentOf(country) : undefined);
      return { country, continent };
    },
  };
}
