/**
 * The rows of the SQL drivers (sqlite.ts, postgres.ts) and the records they make: both keep the
 * same columns (booleans as 0/1, JSON as text, timestamps as ISO text), so one mapping serves
 * both, and the queries that need no dialect of their own are written once here.
 */
import type { Alias, Image, ImageType } from '../domain/image.ts';
import type { ChannelChange, ChannelSetting } from '../domain/channel.ts';
import type { NewEvent, PipelineEvent, Stage } from '../domain/pipeline.ts';
import type { View, ViewToken } from '../domain/view.ts';
import type { TestResult } from '../domain/test-hooks.ts';
import type { PushToken } from '../domain/push-token.ts';
import type { FileFormat } from '../domain/formats.ts';
import { ociOwners, type BlobRecord, type MirrorRecord, type OciManifest, type RemoteRecord, type SiteRecord, type TrustedCertificate } from './store.ts';
import { OciError } from '../domain/oci.ts';
import { AppError, ErrorCodes } from '../errors.ts';

export interface ImageRow {
  fingerprint: string;
  type: string;
  architecture: string;
  filename: string;
  size: number;
  public: number;
  created_at: string;
  uploaded_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  properties: string;
  templates: string;
  auto_update: number;
  cached: number;
  update_source: string | null;
  product_aliases: string;
  channels: string;
  pinned: string;
  stage: string | null;
  revision: number;
  mirror: string | null;
  m_sha256: string;
  m_size: number;
  m_format: string;
  r_sha256: string | null;
  r_size: number | null;
  r_format: string | null;
}

export const imageSelect = `SELECT i.*, m.sha256 AS m_sha256, m.size AS m_size, m.format AS m_format,
  r.sha256 AS r_sha256, r.size AS r_size, r.format AS r_format
  FROM images i JOIN blobs m ON m.sha256 = i.metadata_sha256 LEFT JOIN blobs r ON r.sha256 = i.rootfs_sha256`;

/** Whether anything uses blob `b` (an image as metadata, rootfs or delta; an owner): SQL shared by the GC queries. */
export const usedBlob = (b: string) =>
  `(EXISTS (SELECT 1 FROM images WHERE metadata_sha256 = ${b} OR rootfs_sha256 = ${b}) OR EXISTS (SELECT 1 FROM image_deltas WHERE sha256 = ${b}) OR EXISTS (SELECT 1 FROM blob_owners WHERE sha256 = ${b}))`;

export interface DeltaRow {
  fingerprint: string;
  sha256: string;
  ftype: string;
  base: string;
  size: number;
  format: string;
}

export const deltaSelect = 'SELECT d.fingerprint, d.sha256, d.ftype, d.base, b.size, b.format FROM image_deltas d JOIN blobs b ON b.sha256 = d.sha256';
/** The order of an image's deltas (the contract's, not whichever index the planner picks). */
export const deltaOrder = 'ORDER BY d.base, d.ftype, d.sha256';

export function toImage(row: ImageRow, deltas: DeltaRow[] = []): Image {
  return {
    fingerprint: row.fingerprint,
    type: row.type as ImageType,
    architecture: row.architecture,
    filename: row.filename,
    size: row.size,
    public: row.public === 1,
    createdAt: row.created_at,
    uploadedAt: row.uploaded_at,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
    properties: JSON.parse(row.properties),
    templates: JSON.parse(row.templates),
    metadata: { sha256: row.m_sha256, size: row.m_size, format: JSON.parse(row.m_format) as FileFormat },
    rootfs:
      row.r_sha256 === null ? null : { sha256: row.r_sha256, size: row.r_size!, format: JSON.parse(row.r_format!) as FileFormat },
    autoUpdate: row.auto_update === 1,
    cached: row.cached === 1,
    updateSource: row.update_source === null ? null : JSON.parse(row.update_source),
    productAliases: JSON.parse(row.product_aliases),
    channels: JSON.parse(row.channels),
    pinned: JSON.parse(row.pinned),
    stage: row.stage === null ? null : (JSON.parse(row.stage) as Stage),
    mirror: row.mirror,
    deltas: deltas.map((d) => ({ sha256: d.sha256, size: d.size, format: JSON.parse(d.format) as FileFormat, ftype: d.ftype, base: d.base })),
    revision: row.revision,
  };
}

// Rows come back as objects without a prototype: records leave the driver as plain objects.
export const toAlias = (row: Alias): Alias => ({ name: row.name, fingerprint: row.fingerprint, description: row.description, type: row.type });
export type CertificateRow = Omit<TrustedCertificate, 'channels'> & { channels: string | null };
export const certificateSelect = 'SELECT fingerprint, name, certificate, created_at AS "createdAt", channels FROM certificates';
export const certificateInsert = 'INSERT INTO certificates (fingerprint, name, certificate, created_at, channels) VALUES (?, ?, ?, ?, ?)';
export const certificateValues = (c: TrustedCertificate): (string | null)[] => [c.fingerprint, c.name, c.certificate, c.createdAt, c.channels === null ? null : JSON.stringify(c.channels)];
export const toCertificate = (row: CertificateRow): TrustedCertificate => ({
  fingerprint: row.fingerprint,
  name: row.name,
  certificate: row.certificate,
  createdAt: row.createdAt,
  channels: row.channels === null ? null : (JSON.parse(row.channels) as string[]),
});

export interface BlobRow {
  sha256: string;
  size: number;
  format: string;
  unpublished_at: string | null;
  referenced: number;
  source_url: string | null;
  source_certificate: string | null;
}

export const blobSelect = `SELECT b.sha256, b.size, b.format, b.unpublished_at, b.source_url, b.source_certificate, CASE WHEN ${usedBlob('b.sha256')} THEN 1 ELSE 0 END AS referenced FROM blobs b`;

export const toBlob = (row: BlobRow): BlobRecord => ({
  sha256: row.sha256,
  size: row.size,
  format: JSON.parse(row.format),
  unpublishedAt: row.unpublished_at,
  referenced: row.referenced === 1,
  sourceUrl: row.source_url,
  sourceCertificate: row.source_certificate,
});

export interface RemoteRow {
  name: string;
  url: string;
  protocol: RemoteRecord['protocol'];
  public: number;
  certificate: string;
  gpg_key: string;
}

export const toRemote = (r: RemoteRow): RemoteRecord => ({ name: r.name, url: r.url, protocol: r.protocol, public: r.public === 1, certificate: r.certificate, gpgKey: r.gpg_key });

export interface SiteRow {
  name: string;
  url: string;
  countries: string;
  continents: string;
  weight: number;
  health: string | null;
}

export const toSite = (r: SiteRow): SiteRecord => ({ name: r.name, url: r.url, countries: JSON.parse(r.countries), continents: JSON.parse(r.continents), weight: r.weight, health: r.health === null ? null : JSON.parse(r.health) });

export interface MirrorRow {
  name: string;
  remote: string;
  filters: string;
  types: string;
  keep: number;
  interval_seconds: number;
  lazy: number;
  last_sync: string | null;
  last_error: string | null;
}

export const toMirror = (r: MirrorRow): MirrorRecord => ({
  name: r.name,
  remote: r.remote,
  filters: JSON.parse(r.filters),
  types: JSON.parse(r.types),
  keep: r.keep,
  intervalSeconds: r.interval_seconds,
  lazy: r.lazy === 1,
  lastSync: r.last_sync,
  lastError: r.last_error,
});

/** An image's row as both SQL drivers insert it (`?` placeholders), revision left at its default 1. */
export const imageInsert = `INSERT INTO images (fingerprint, type, architecture, filename, size, public, created_at, uploaded_at,
   expires_at, last_used_at, properties, templates, metadata_sha256, rootfs_sha256, auto_update, cached, update_source,
   product_aliases, mirror, channels, pinned, stage)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

export const imageInsertValues = (image: Image): (string | number | null)[] => [
  image.fingerprint,
  image.type,
  image.architecture,
  image.filename,
  image.size,
  image.public ? 1 : 0,
  image.createdAt,
  image.uploadedAt,
  image.expiresAt,
  image.lastUsedAt,
  JSON.stringify(image.properties),
  JSON.stringify(image.templates),
  image.metadata.sha256,
  image.rootfs?.sha256 ?? null,
  image.autoUpdate ? 1 : 0,
  image.cached ? 1 : 0,
  image.updateSource === null ? null : JSON.stringify(image.updateSource),
  JSON.stringify(image.productAliases),
  image.mirror,
  JSON.stringify(image.channels),
  JSON.stringify(image.pinned),
  stageText(image),
];

const stageText = (image: Image) => (image.stage === null ? null : JSON.stringify(image.stage));

/** The editable fields of an image's row (`updateImage`), with the compare-and-set revision moved on. */
export const imageUpdate = `UPDATE images SET public = ?, properties = ?, expires_at = ?, last_used_at = ?, auto_update = ?, cached = ?,
   update_source = ?, channels = ?, pinned = ?, stage = ?, revision = revision + 1 WHERE fingerprint = ?`;

export const imageUpdateValues = (image: Image): (string | number | null)[] => [
  image.public ? 1 : 0,
  JSON.stringify(image.properties),
  image.expiresAt,
  image.lastUsedAt,
  image.autoUpdate ? 1 : 0,
  image.cached ? 1 : 0,
  image.updateSource === null ? null : JSON.stringify(image.updateSource),
  JSON.stringify(image.channels),
  JSON.stringify(image.pinned),
  stageText(image),
  image.fingerprint,
];

/** A channel history row: the sets as JSON text. */
export interface HistoryRow {
  fingerprint: string;
  revision: number;
  from_channels: string;
  to_channels: string;
  actor: string;
  at: string;
}

export const historyInsert = 'INSERT INTO channel_history (fingerprint, revision, from_channels, to_channels, actor, at) VALUES (?, ?, ?, ?, ?, ?)';
export const historySelect = 'SELECT fingerprint, revision, from_channels, to_channels, actor, at FROM channel_history WHERE fingerprint = ?';

export const historyValues = (change: ChannelChange): (string | number)[] => [change.fingerprint, change.revision, JSON.stringify(change.from), JSON.stringify(change.to), change.actor, change.at];

export const toChannelChange = (row: HistoryRow): ChannelChange => ({
  fingerprint: row.fingerprint,
  revision: Number(row.revision),
  from: JSON.parse(row.from_channels),
  to: JSON.parse(row.to_channels),
  actor: row.actor,
  at: row.at,
});

/** Every blob an owner holds, once, by sha256 (`ownedBlobs`). */
export const ownedBlobsSelect = 'SELECT b.sha256, b.size FROM blobs b WHERE EXISTS (SELECT 1 FROM blob_owners o WHERE o.sha256 = b.sha256) ORDER BY b.sha256';

export const channelSettingSelect = 'SELECT name, keep, gate FROM channel_settings ORDER BY name';
export const channelSettingPut = 'INSERT INTO channel_settings (name, keep, gate) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET keep = excluded.keep, gate = excluded.gate';
export const toChannelSetting = (row: ChannelSetting): ChannelSetting => ({ name: row.name, keep: row.keep === null ? null : Number(row.keep), gate: row.gate ?? null });

/** The event log (`EventLog`): an event's row, its image as JSON text; `seq` is the driver's to give. */
export interface EventRow {
  seq: number | string;
  type: string;
  at: string;
  actor: string;
  channel: string | null;
  image: string;
}

export const eventInsert = 'INSERT INTO events (seq, type, at, actor, channel, image) VALUES (?, ?, ?, ?, ?, ?)';
export const eventSelect = 'SELECT seq, type, at, actor, channel, image FROM events WHERE seq > ? ORDER BY seq LIMIT ?';
export const eventValues = (seq: number, e: NewEvent): (string | number | null)[] => [seq, e.type, e.at, e.actor, e.channel, JSON.stringify(e.image)];
export const toEvent = (row: EventRow): PipelineEvent => ({
  seq: Number(row.seq),
  type: row.type as PipelineEvent['type'],
  at: row.at,
  actor: row.actor,
  channel: row.channel,
  image: JSON.parse(row.image),
});

/** A blob whose grace period (from its unpublishing or its release, by the store's clock) runs past `cutoff`. */
export const withinGrace = (row: { unpublished_at: string | null; released_at: string | null }, cutoff: string) =>
  (row.unpublished_at !== null && row.unpublished_at > cutoff) || (row.released_at !== null && row.released_at > cutoff);

export interface PushTokenRow {
  id: string;
  name: string;
  globs: string;
  hash: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}
export const pushTokenInsert = 'INSERT INTO push_tokens (id, name, globs, hash, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)';
export const pushTokenSelect = 'SELECT id, name, globs, hash, created_at, expires_at, revoked_at FROM push_tokens ORDER BY created_at, id';
export const pushTokenValues = (t: PushToken): (string | null)[] => [t.id, t.name, JSON.stringify(t.globs), t.hash, t.createdAt, t.expiresAt, t.revokedAt];
export const toPushToken = (r: PushTokenRow): PushToken => ({ id: r.id, name: r.name, globs: JSON.parse(r.globs), hash: r.hash, createdAt: r.created_at, expiresAt: r.expires_at, revokedAt: r.revoked_at });

export interface TestResultRow {
  fingerprint: string;
  hook: string;
  attempt: number;
  outcome: string;
  exit_code: number | null;
  started_at: string;
  duration_ms: number;
  log: string;
}
export const testResultInsert = 'INSERT INTO test_results (fingerprint, hook, attempt, outcome, exit_code, started_at, duration_ms, log) VALUES (?, ?, ?, ?, ?, ?, ?, ?)';
export const testResultSelect = 'SELECT fingerprint, hook, attempt, outcome, exit_code, started_at, duration_ms, log FROM test_results WHERE fingerprint = ? ORDER BY started_at, hook, attempt';
export const testResultValues = (r: TestResult): (string | number | null)[] => [r.fingerprint, r.hook, r.attempt, r.outcome, r.exitCode, r.startedAt, r.durationMs, r.log];
export const toTestResult = (r: TestResultRow): TestResult => ({
  fingerprint: r.fingerprint,
  hook: r.hook,
  attempt: Number(r.attempt),
  outcome: r.outcome as TestResult['outcome'],
  exitCode: r.exit_code === null ? null : Number(r.exit_code),
  startedAt: r.started_at,
  durationMs: Number(r.duration_ms),
  log: r.log,
});

export interface ViewRow {
  name: string;
  channel: string;
  filters: string;
  created_at: string;
}
export const viewSelect = 'SELECT name, channel, filters, created_at FROM views';
export const toView = (r: ViewRow): View => ({ name: r.name, channel: r.channel, filters: JSON.parse(r.filters), createdAt: r.created_at });
export const viewInsert = 'INSERT INTO views (name, channel, filters, created_at) VALUES (?, ?, ?, ?)';
export const viewValues = (v: View): string[] => [v.name, v.channel, JSON.stringify(v.filters), v.createdAt];

export interface ViewTokenRow {
  id: string;
  view: string;
  hash: string;
  description: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}
export const viewTokenSelect = 'SELECT id, view, hash, description, created_at, expires_at, revoked_at FROM view_tokens';
export const viewTokenOrder = 'ORDER BY view, created_at, id';
export const toViewToken = (r: ViewTokenRow): ViewToken => ({
  id: r.id,
  view: r.view,
  hash: r.hash,
  description: r.description,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
});
export const viewTokenInsert = 'INSERT INTO view_tokens (id, view, hash, description, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)';
export const viewTokenValues = (t: ViewToken): (string | null)[] => [t.id, t.view, t.hash, t.description, t.createdAt, t.expiresAt, t.revokedAt];

/** A manifest of the OCI registry (`OciStore`): what it names as JSON text. */
export interface OciManifestRow {
  repository: string;
  sha256: string;
  media_type: string;
  size: number;
  blobs: string;
  manifests: string;
  subject: string | null;
  artifact_type: string | null;
  annotations: string;
  created_at: string;
}
export const ociManifestSelect = 'SELECT m.repository, m.sha256, m.media_type, m.size, m.blobs, m.manifests, m.subject, m.artifact_type, m.annotations, m.created_at FROM oci_manifests m';
/** A manifest pushed again keeps its first row (its createdAt with it). */
export const ociManifestInsert = `INSERT INTO oci_manifests (repository, sha256, media_type, size, blobs, manifests, subject, artifact_type, annotations, created_at)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repository, sha256) DO NOTHING`;
export const ociManifestValues = (m: OciManifest, createdAt: string): (string | number | null)[] => [
  m.repository,
  m.sha256,
  m.mediaType,
  m.size,
  JSON.stringify(m.blobs),
  JSON.stringify(m.manifests),
  m.subject,
  m.artifactType,
  JSON.stringify(m.annotations),
  createdAt,
];
export const toOciManifest = (r: OciManifestRow): OciManifest => ({
  repository: r.repository,
  sha256: r.sha256,
  mediaType: r.media_type,
  size: Number(r.size),
  blobs: JSON.parse(r.blobs),
  manifests: JSON.parse(r.manifests),
  subject: r.subject,
  artifactType: r.artifact_type,
  annotations: JSON.parse(r.annotations),
  createdAt: r.created_at,
});

/**
 * Whether blob `?` is in a repository (`ociBlobLinked`), from the holds alone: its link's owner,
 * or the owner of any manifest of the repository (which holds its own bytes and what it names).
 * The manifests' ids are the range [`REPOSITORY@`, `REPOSITORYA`): '@' and 'A' are neighbours
 * in code point order, and names never contain '@'. One lookup in blob_owners' primary key.
 */
export const ociHeldSelect = `SELECT 1 FROM blob_owners WHERE sha256 = ? AND ((kind = 'oci-blob' AND id = ?) OR (kind = 'oci-manifest' AND id >= ? AND id < ?))`;
export const ociHeldValues = (repository: string, sha256: string): string[] => [sha256, ociOwners.blob(repository, sha256).id, `${repository}@`, `${repository}A`];
/** Points a tag at a manifest, moving it if it pointed at another. */
export const ociTagPut = 'INSERT INTO oci_tags (repository, tag, sha256) VALUES (?, ?, ?) ON CONFLICT (repository, tag) DO UPDATE SET sha256 = excluded.sha256';
export const ociRepositoriesSelect = 'SELECT repository FROM oci_blobs UNION SELECT repository FROM oci_manifests ORDER BY repository';

// The registry's errors, alike from every driver (memory.ts too).

/** What a refused manifest says: the first thing it names that the repository lacks. */
export const ociMissing = (what: 'blob' | 'manifest', sha256: string, repository: string) => new OciError('MANIFEST_BLOB_UNKNOWN', `${what} sha256:${sha256} is not in ${repository}`);
export const ociManifestUnknown = (repository: string, sha256: string) => new OciError('MANIFEST_UNKNOWN', `manifest sha256:${sha256} is not in ${repository}`);
export const ociTagUnknown = (repository: string, tag: string) => new OciError('MANIFEST_UNKNOWN', `tag ${tag} is not in ${repository}`);
export const ociNamedByIndex = (repository: string, sha256: string, index: string) =>
  new AppError(ErrorCodes.conflict, `manifest sha256:${sha256} of ${repository} is listed by index sha256:${index}`, { hint: 'Delete the index first.' });
