/**
 * metadata.yaml, the one file every LXD/Incus image carries (image_format.md): parsed and checked
 * with the same rules a daemon applies when it imports an image, so wharf never publishes an
 * image a client would later refuse.
 */
import { parse } from 'yaml';
import { invalidImage } from '../errors.ts';
import { canonicalArchitecture } from './architecture.ts';

export interface ImageTemplate {
  when: string[];
  template: string;
  create_only?: boolean;
  properties?: Record<string, string>;
  uid?: string;
  gid?: string;
  mode?: string;
}

export interface ImageMetadata {
  /** Canonical architecture (x86_64); the raw spelling stays in properties.architecture. */
  architecture: string;
  architectureRaw: string;
  /** Unix seconds. */
  creationDate: number;
  expiryDate: number | undefined;
  properties: Record<string, string>;
  templates: Record<string, ImageTemplate>;
}

/** LXD reads at most this much of metadata.yaml; so do we, to bound memory on hostile input. */
export const maxMetadataYamlBytes = 1024 * 1024;

export function parseMetadataYaml(text: string): ImageMetadata {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw invalidImage(`metadata.yaml is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!isRecord(doc)) throw invalidImage('metadata.yaml must be a mapping of keys to values');

  const rawArch = doc.architecture;
  if (rawArch === undefined || rawArch === null || rawArch === '') {
    throw invalidImage('metadata.yaml has no architecture', 'Add e.g. "architecture: x86_64" to metadata.yaml.');
  }
  if (typeof rawArch !== 'string') throw invalidImage('metadata.yaml: architecture must be a string');
  const architecture = canonicalArchitecture(rawArch);
  if (!architecture) {
    throw invalidImage(`metadata.yaml: unknown architecture "${rawArch}"`, 'Use a name LXD knows, such as x86_64, aarch64, armv7l, riscv64.');
  }

  const creationDate = epoch(doc.creation_date, 'creation_date');
  if (!creationDate) {
    throw invalidImage('metadata.yaml has no creation_date', 'Add "creation_date: <unix seconds>" to metadata.yaml.');
  }
  const expiryDate = epoch(doc.expiry_date, 'expiry_date') || undefined;

  return {
    architecture,
    architectureRaw: rawArch,
    creationDate,
    expiryDate,
    properties: stringMap(doc.properties, 'properties'),
    templates: templates(doc.templates),
  };
}

/** 9999-12-31T23:59:59Z: the last second every date format wharf writes can represent. */
export const maxEpochSeconds = 253402300799;

/** Unix seconds, or 0 when absent; anything a Date could not hold is refused here, not at commit. */
function epoch(value: unknown, key: string): number {
  if (value === undefined || value === null) return 0;
  let seconds: number | undefined;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) seconds = value;
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) seconds = Number(value.trim());
  if (seconds === undefined) throw invalidImage(`metadata.yaml: ${key} must be a Unix timestamp in seconds, got ${JSON.stringify(value)}`);
  if (seconds > maxEpochSeconds) {
    throw invalidImage(`metadata.yaml: ${key} ${JSON.stringify(value)} is after the year 9999`, `Use Unix seconds up to ${maxEpochSeconds}.`);
  }
  return seconds;
}

/** Go decodes properties into map[string]string: scalars become strings, nested values are errors. */
function stringMap(value: unknown, key: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) throw invalidImage(`metadata.yaml: ${key} must be a mapping`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === null || v === undefined) continue;
    if (typeof v === 'object') throw invalidImage(`metadata.yaml: ${key}.${k} must be a plain value`);
    out[k] = String(v);
  }
  return out;
}

function templates(value: unknown): Record<string, ImageTemplate> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) throw invalidImage('metadata.yaml: templates must be a mapping');
  const out: Record<string, ImageTemplate> = {};
  for (const [path, raw] of Object.entries(value)) {
    if (!isRecord(raw)) throw invalidImage(`metadata.yaml: template ${path} must be a mapping`);
    if (typeof raw.template !== 'string') throw invalidImage(`metadata.yaml: template ${path} names no template file`);
    const when = raw.when ?? [];
    if (!Array.isArray(when) || when.some((w) => typeof w !== 'string')) {
      throw invalidImage(`metadata.yaml: template ${path}: "when" must be a list of strings`);
    }
    out[path] = { ...(raw as unknown as ImageTemplate), when: when as string[] };
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
