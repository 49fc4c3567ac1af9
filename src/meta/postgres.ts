/**
 * The metadata store on PostgreSQL (node-postgres), for replicas on several hosts sharing one
 * catalogue. The same contract as sqlite.ts, and the same columns (rows.ts maps them): text for
 * timestamps and JSON, 0/1 for booleans, `COLLATE "C"` wherever order or comparison is byte order,
 * whatever the database's collation.
 *
 * Every write is one SERIALIZABLE transaction (postgres-db.ts), as if the writes of every replica
 * took turns, which is what the contract's atomic decisions (claims against collection,
 * compare-and-set edits, all-or-nothing deletes) rely on; each also moves the change counter
 * (`wharf_changes`) in the same transaction, but for those that change nothing a replica renders
 * (test results, lazy-cache touches, the OCI registry's writes).
 */
import { AppError, ErrorCodes, changedMeanwhile, notFound } from '../errors.ts';
import { PostgresDatabase, pgCode, type Query } from './postgres-db.ts';
import type { Alias, BlobRef, Delta, Image } from '../domain/image.ts';
import { abandonedCollectionMs, ociOwners, type OciManifest, type BlobOwner, type BlobRecord, type BlobSource, type MetaStore, type MirrorRecord, type RemoteRecord, type SiteHealth, type SiteRecord, type TrustedCertificate, type TrustToken } from './store.ts';
import { historyInsert, historySelect, historyValues, toChannelChange, type HistoryRow } from './rows.ts';
import { channelChange, type ChannelChange, type ChannelSetting } from '../domain/channel.ts';
import { viewErrors, type View, type ViewToken } from '../domain/view.ts';
import { certificateInsert, certificateSelect, certificateValues, withinGrace, type CertificateRow } from './rows.ts';
import { testResultInsert, testResultSelect, testResultValues, toTestResult, type TestResultRow } from './rows.ts';
import { channelSettingPut, channelSettingSelect, ownedBlobsSelect, toChannelSetting } from './rows.ts';
import { eventInsert, eventSelect, eventValues, toEvent, type EventRow } from './rows.ts';
import { imageEvents, type NewEvent, type PipelineEvent } from '../domain/pipeline.ts';
import type { TestResult } from '../domain/test-hooks.ts';
import { pushTokenErrors, type PushToken } from '../domain/push-token.ts';
import { pushTokenInsert, pushTokenSelect, pushTokenValues, toPushToken, type PushTokenRow } from './rows.ts';
import { toView, toViewToken, viewInsert, viewSelect, viewTokenInsert, viewTokenOrder, viewTokenSelect, viewTokenValues, viewValues, type ViewRow, type ViewTokenRow } from './rows.ts';
import { ociHeldSelect, ociHeldValues, ociManifestInsert, ociManifestSelect, ociManifestUnknown, ociManifestValues, ociMissing, ociNamedByIndex, ociTagPut, ociRepositoriesSelect, ociTagUnknown, toOciManifest, type OciManifestRow } from './rows.ts';
import { blobSelect, deltaOrder, deltaSelect, imageInsert, imageInsertValues, imageSelect, imageUpdate, imageUpdateValues, toAlias, toBlob, toCertificate, toImage, toMirror, toRemote, toSite, usedBlob, type BlobRow, type DeltaRow, type ImageRow, type MirrorRow, type RemoteRow, type SiteRow } from './rows.ts';

const text = 'text COLLATE "C"';

/** The channel every write of the catalogue notifies at commit (LISTEN/NOTIFY). */
const changesChannel = 'wharf_changes';

const migrations: string[] = [
  `CREATE TABLE wharf_changes (only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row), version bigint NOT NULL);
   INSERT INTO wharf_changes (version) VALUES (0);
   CREATE TABLE blobs (
     sha256 ${text} PRIMARY KEY,
     size bigint NOT NULL,
     format text NOT NULL,
     created_at ${text} NOT NULL,
     unpublished_at ${text},
     source_url text,
     source_certificate text,
     last_access ${text}
   );
   CREATE TABLE images (
     fingerprint ${text} PRIMARY KEY,
     type text NOT NULL CHECK (type IN ('container', 'virtual-machine')),
     architecture text NOT NULL,
     filename text NOT NULL,
     size bigint NOT NULL,
     public integer NOT NULL,
     created_at ${text} NOT NULL,
     uploaded_at ${text} NOT NULL,
     expires_at ${text},
     last_used_at ${text},
     properties text NOT NULL,
     templates text NOT NULL,
     metadata_sha256 ${text} NOT NULL REFERENCES blobs (sha256),
     rootfs_sha256 ${text} REFERENCES blobs (sha256),
     auto_update integer NOT NULL DEFAULT 0,
     cached integer NOT NULL DEFAULT 0,
     update_source text,
     product_aliases text NOT NULL DEFAULT '[]',
     mirror text,
     revision integer NOT NULL DEFAULT 1
   );
   CREATE INDEX images_metadata ON images (metadata_sha256);
   CREATE INDEX images_rootfs ON images (rootfs_sha256);
   CREATE INDEX images_mirror ON images (mirror);
   CREATE TABLE aliases (
     name ${text} PRIMARY KEY,
     fingerprint ${text} NOT NULL REFERENCES images (fingerprint) ON DELETE CASCADE,
     description text NOT NULL DEFAULT '',
     type text NOT NULL
   );
   CREATE INDEX aliases_fingerprint ON aliases (fingerprint);
   CREATE TABLE image_deltas (
     fingerprint ${text} NOT NULL REFERENCES images (fingerprint) ON DELETE CASCADE,
     sha256 ${text} NOT NULL REFERENCES blobs (sha256),
     ftype ${text} NOT NULL,
     base ${text} NOT NULL,
     PRIMARY KEY (fingerprint, sha256)
   );
   CREATE INDEX image_deltas_sha256 ON image_deltas (sha256);
   CREATE TABLE blob_claims (
     claim ${text} NOT NULL,
     sha256 ${text} NOT NULL,
     expires_at ${text} NOT NULL,
     PRIMARY KEY (claim, sha256)
   );
   CREATE INDEX blob_claims_sha256 ON blob_claims (sha256);
   CREATE TABLE blob_collections (sha256 ${text} PRIMARY KEY, started_at ${text} NOT NULL);
   CREATE TABLE certificates (fingerprint ${text} PRIMARY KEY, name ${text} NOT NULL, certificate text NOT NULL, created_at ${text} NOT NULL);
   CREATE TABLE trust_tokens (secret ${text} PRIMARY KEY, name text NOT NULL, created_at ${text} NOT NULL, expires_at ${text} NOT NULL);
   CREATE TABLE remotes (name ${text} PRIMARY KEY, url text NOT NULL, protocol text NOT NULL, public integer NOT NULL, certificate text NOT NULL DEFAULT '', gpg_key text NOT NULL DEFAULT '');
   CREATE TABLE mirrors (
     name ${text} PRIMARY KEY,
     remote text NOT NULL,
     filters text NOT NULL,
     types text NOT NULL,
     keep integer NOT NULL,
     interval_seconds integer NOT NULL,
     lazy integer NOT NULL DEFAULT 0,
     last_sync ${text},
     last_error text
   );
   CREATE TABLE sites (name ${text} PRIMARY KEY, url text NOT NULL, countries text NOT NULL, continents text NOT NULL, weight integer NOT NULL, health text);`,
  `CREATE TABLE blob_owners (
     sha256 ${text} NOT NULL REFERENCES blobs (sha256),
     kind ${text} NOT NULL,
     id ${text} NOT NULL,
     PRIMARY KEY (sha256, kind, id)
   );
   CREATE INDEX blob_owners_owner ON blob_owners (kind, id);`,
  // Every image stored before channels existed was in the one index there was.
  `ALTER TABLE images ADD COLUMN channels text NOT NULL DEFAULT '["default"]'`,
  `CREATE TABLE channel_history (
     fingerprint ${text} NOT NULL,
     revision integer NOT NULL,
     from_channels text NOT NULL,
     to_channels text NOT NULL,
     actor text NOT NULL,
     at ${text} NOT NULL,
     PRIMARY KEY (fingerprint, revision)
   );`,
  `ALTER TABLE images ADD COLUMN pinned text NOT NULL DEFAULT '[]';
   CREATE TABLE channel_settings (name ${text} PRIMARY KEY, keep integer);`,
  `CREATE TABLE views (name ${text} PRIMARY KEY, channel ${text} NOT NULL, filters text NOT NULL, created_at ${text} NOT NULL);
   CREATE TABLE view_tokens (
     id ${text} PRIMARY KEY,
     view ${text} NOT NULL REFERENCES views (name) ON DELETE CASCADE,
     hash ${text} NOT NULL,
     description text NOT NULL,
     created_at ${text} NOT NULL,
     expires_at ${text},
     revoked_at ${text}
   );`,
  // NULL: a certificate trusted with every channel, as every one was before.
  `ALTER TABLE certificates ADD COLUMN channels text`,
  // When the last image using it was deleted, public or private: collection waits the grace period.
  `ALTER TABLE blobs ADD COLUMN released_at ${text}`,
  `CREATE TABLE test_results (
     fingerprint ${text} NOT NULL,
     hook ${text} NOT NULL,
     attempt integer NOT NULL,
     outcome ${text} NOT NULL,
     exit_code integer,
     started_at ${text} NOT NULL,
     duration_ms bigint NOT NULL,
     log text NOT NULL,
     PRIMARY KEY (fingerprint, hook, started_at, attempt)
   );`,
  `CREATE TABLE push_tokens (id ${text} PRIMARY KEY, name text NOT NULL, globs text NOT NULL, hash ${text} NOT NULL, created_at ${text} NOT NULL, expires_at ${text}, revoked_at ${text});`,
  `ALTER TABLE images ADD COLUMN stage text;
   CREATE TABLE events (seq bigint PRIMARY KEY, type ${text} NOT NULL, at ${text} NOT NULL, actor text NOT NULL, channel ${text}, image text NOT NULL);
   ALTER TABLE channel_settings ADD COLUMN gate ${text};`,
  // The OCI registry (OciStore). Its holds are blob_owners rows, written in the same transactions.
  `CREATE TABLE oci_blobs (
     repository ${text} NOT NULL,
     sha256 ${text} NOT NULL REFERENCES blobs (sha256),
     PRIMARY KEY (repository, sha256)
   );
   CREATE TABLE oci_manifests (
     repository ${text} NOT NULL,
     sha256 ${text} NOT NULL REFERENCES blobs (sha256),
     media_type text NOT NULL,
     size bigint NOT NULL,
     blobs text NOT NULL,
     manifests text NOT NULL,
     subject ${text},
     artifact_type text,
     annotations text NOT NULL,
     created_at ${text} NOT NULL,
     PRIMARY KEY (repository, sha256)
   );
   CREATE INDEX oci_manifests_subject ON oci_manifests (repository, subject);
   CREATE TABLE oci_tags (
     repository ${text} NOT NULL,
     tag ${text} NOT NULL,
     sha256 ${text} NOT NULL,
     PRIMARY KEY (repository, tag),
     FOREIGN KEY (repository, sha256) REFERENCES oci_manifests (repository, sha256) ON DELETE CASCADE
   );
   CREATE INDEX oci_tags_manifest ON oci_tags (repository, sha256);`,
];

export class PostgresMetaStore implements MetaStore {
  private readonly db: PostgresDatabase;

  private constructor(db: PostgresDatabase) {
    this.db = db;
  }

  /** Connects to `url` (postgres://...) and brings its schema up to date. */
  static async open(url: string): Promise<PostgresMetaStore> {
    return new PostgresMetaStore(await PostgresDatabase.open(url, 'catalogue', migrations));
  }

  private rows<R extends object>(sql: string, params: unknown[] = []): Promise<R[]> {
    return this.db.rows<R>(sql, params);
  }

  /** One write, which also moves the change counter (and tells the listeners, at commit) unless `counts` is false. */
  private write<T>(fn: (q: Query) => Promise<T>, counts = true): Promise<T> {
    return this.db.write(fn, counts ? async (q) => (await q('UPDATE wharf_changes SET version = version + 1'), await q(`NOTIFY ${changesChannel}`)) : undefined);
  }

  watch(onChange: () => void): () => void {
    return this.db.listen(changesChannel, onChange);
  }

  // Images and aliases

  async getImage(fingerprint: string): Promise<Image | undefined> {
    const [row] = await this.rows<ImageRow>(`${imageSelect} WHERE i.fingerprint = ?`, [fingerprint]);
    return row && toImage(row, await this.rows<DeltaRow>(`${deltaSelect} WHERE d.fingerprint = ? ${deltaOrder}`, [fingerprint]));
  }

  async findImages(prefix: string): Promise<Image[]> {
    const rows = await this.rows<ImageRow>(`${imageSelect} WHERE i.fingerprint >= ? AND i.fingerprint < ? ORDER BY i.fingerprint`, [prefix, prefix + 'g']);
    return this.withDeltas(rows);
  }

  async listImages(): Promise<Image[]> {
    return this.withDeltas(await this.rows<ImageRow>(`${imageSelect} ORDER BY i.uploaded_at, i.fingerprint`));
  }

  private async withDeltas(rows: ImageRow[]): Promise<Image[]> {
    if (rows.length === 0) return [];
    const deltas = Map.groupBy(await this.rows<DeltaRow>(`${deltaSelect} ${deltaOrder}`), (d) => d.fingerprint);
    return rows.map((row) => toImage(row, deltas.get(row.fingerprint)));
  }

  async insertImage(image: Image, aliases: Alias[], sources: Record<string, BlobSource> = {}, actor = ''): Promise<void> {
    await this.write(async (q) => {
      if ((await q('SELECT 1 FROM images WHERE fingerprint = ?', [image.fingerprint])).rowCount) {
        throw new AppError(ErrorCodes.conflict, `An image with fingerprint ${image.fingerprint} already exists`);
      }
      for (const blob of [image.metadata, image.rootfs]) if (blob) await upsertBlob(q, blob, image.uploadedAt);
      await q(imageInsert, imageInsertValues(image));
      const named = new Set<string>();
      for (const alias of aliases) {
        if (named.has(alias.name)) throw aliasExists(alias);
        named.add(alias.name);
        await insertAlias(q, alias);
      }
      await insertDeltas(q, image.fingerprint, image.deltas, image.uploadedAt);
      for (const [sha, source] of Object.entries(sources)) {
        await q('UPDATE blobs SET source_url = ?, source_certificate = ? WHERE sha256 = ?', [source.url, source.certificate, sha]);
      }
      await appendEvents(q, imageEvents(undefined, image, actor, await storeNow(q)));
    });
  }

  async events(after: number, limit: number): Promise<PipelineEvent[]> {
    return (await this.rows<EventRow>(eventSelect, [after, limit])).map(toEvent);
  }

  async lastEvent(): Promise<number> {
    const [row] = await this.rows<{ last: string }>('SELECT COALESCE(MAX(seq), 0) AS last FROM events');
    return Number(row!.last);
  }

  async addDeltas(fingerprint: string, deltas: Delta[]): Promise<void> {
    await this.write(async (q) => {
      if (!(await q('SELECT 1 FROM images WHERE fingerprint = ?', [fingerprint])).rowCount) throw notFound(`Image "${fingerprint}" not found`);
      await insertDeltas(q, fingerprint, deltas, await storeNow(q));
    });
  }

  async updateImage(image: Image, actor = ''): Promise<void> {
    await this.write(async (q) => {
      const stored = await imageIn(q, image.fingerprint);
      if (!stored) throw notFound(`Image "${image.fingerprint}" not found`);
      if (stored.revision !== image.revision) throw changedMeanwhile(`Image ${image.fingerprint}`);
      await q(imageUpdate, imageUpdateValues(image));
      const now = await storeNow(q);
      const change = channelChange(stored.channels, image, actor, now);
      if (change) await q(historyInsert, historyValues(change));
      await appendEvents(q, imageEvents(stored, image, actor, now));
    });
  }

  async channelHistory(fingerprint: string): Promise<ChannelChange[]> {
    return (await this.rows<HistoryRow>(`${historySelect} ORDER BY revision`, [fingerprint])).map(toChannelChange);
  }

  async deleteImages(fingerprints: string[], actor = ''): Promise<void> {
    if (fingerprints.length === 0) return;
    await this.write(async (q) => {
      for (const fingerprint of new Set(fingerprints)) {
        const image = await imageIn(q, fingerprint);
        // Thrown inside the transaction: the deletes before it are rolled back.
        if (!image) throw notFound(`Image "${fingerprint}" not found`);
        // A deleted image's files are kept through the grace period; a public image's keep being
        // served until the clients' index caches expire.
        const now = await storeNow(q);
        for (const blob of [image.metadata, image.rootfs, ...image.deltas]) {
          if (!blob) continue;
          await q('UPDATE blobs SET released_at = ? WHERE sha256 = ?', [now, blob.sha256]);
          if (image.public) await q('UPDATE blobs SET unpublished_at = ? WHERE sha256 = ?', [now, blob.sha256]);
        }
        await q('DELETE FROM images WHERE fingerprint = ?', [fingerprint]);
        await appendEvents(q, imageEvents(image, undefined, actor, now));
      }
    });
  }

  async publishImages(fingerprints: string[]): Promise<void> {
    if (fingerprints.length === 0) return;
    await this.write(async (q) => {
      for (const fp of fingerprints) await q('UPDATE images SET public = 1, revision = revision + 1 WHERE fingerprint = ? AND public = 0', [fp]);
    });
  }

  async getAlias(name: string): Promise<Alias | undefined> {
    const [row] = await this.rows<Alias>('SELECT name, fingerprint, description, type FROM aliases WHERE name = ?', [name]);
    return row && toAlias(row);
  }

  async listAliases(): Promise<Alias[]> {
    return (await this.rows<Alias>('SELECT name, fingerprint, description, type FROM aliases ORDER BY name')).map(toAlias);
  }

  async createAlias(alias: Alias): Promise<void> {
    await this.write((q) => insertAlias(q, alias));
  }

  async deleteAlias(name: string): Promise<void> {
    await this.write(async (q) => {
      if (!(await q('DELETE FROM aliases WHERE name = ?', [name])).rowCount) throw notFound(`Alias "${name}" not found`);
    });
  }

  async renameAlias(from: string, to: string): Promise<void> {
    await this.write(async (q) => {
      const { rows } = await q<Alias>('SELECT name, fingerprint, description, type FROM aliases WHERE name = ?', [from]);
      if (!rows[0]) throw notFound(`Alias "${from}" not found`);
      await q('DELETE FROM aliases WHERE name = ?', [from]);
      await insertAlias(q, { ...toAlias(rows[0]), name: to });
    });
  }

  async moveAliases(from: string, to: string): Promise<void> {
    await this.write(async (q) => {
      if (!(await q('SELECT 1 FROM images WHERE fingerprint = ?', [to])).rowCount) throw notFound(`Image "${to}" not found`);
      await q('UPDATE aliases SET fingerprint = ?, type = (SELECT type FROM images WHERE fingerprint = ?) WHERE fingerprint = ?', [to, to, from]);
    });
  }

  // The blob ledger

  async clock(): Promise<Date> {
    const [row] = await this.rows<{ ms: number }>('SELECT (extract(epoch from clock_timestamp()) * 1000)::float8 AS ms');
    return new Date(row!.ms);
  }

  async getBlob(sha256: string): Promise<BlobRecord | undefined> {
    const [row] = await this.rows<BlobRow>(`${blobSelect} WHERE b.sha256 = ?`, [sha256]);
    return row && toBlob(row);
  }

  async collectableBlobs(unpublishedBefore: string): Promise<string[]> {
    const rows = await this.rows<{ sha256: string }>(
      `SELECT sha256 FROM blobs b WHERE (unpublished_at IS NULL OR unpublished_at <= ?) AND (released_at IS NULL OR released_at <= ?) AND NOT ${usedBlob('b.sha256')} ORDER BY sha256`,
      [unpublishedBefore, unpublishedBefore],
    );
    return rows.map((r) => r.sha256);
  }

  async touchBlob(sha256: string, now: string): Promise<void> {
    // Not a change anyone needs to re-render for: the change counter stays.
    await this.write((q) => q('UPDATE blobs SET last_access = ? WHERE sha256 = ? AND source_url IS NOT NULL', [now, sha256]), false);
  }

  async idleLazyBlobs(before: string): Promise<string[]> {
    const rows = await this.rows<{ sha256: string }>('SELECT sha256 FROM blobs WHERE source_url IS NOT NULL AND coalesce(last_access, created_at) < ? ORDER BY sha256', [before]);
    return rows.map((r) => r.sha256);
  }

  async claimBlobs(claim: string, sha256s: string[], expiresAt: string): Promise<void> {
    await this.write(async (q) => {
      for (const sha of sha256s) {
        await refuseCollecting(q, sha);
        await q('INSERT INTO blob_claims (claim, sha256, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [claim, sha, expiresAt]);
      }
    });
  }

  async holdBlobs(owner: BlobOwner, blobs: BlobRef[]): Promise<void> {
    await this.write(async (q) => {
      const now = await storeNow(q);
      for (const blob of blobs) {
        await refuseCollecting(q, blob.sha256);
        await upsertBlob(q, blob, now);
        await hold(q, owner, blob.sha256);
      }
    });
  }

  async releaseBlobs(owner: BlobOwner, options: { sha256s?: string[]; published?: boolean } = {}): Promise<void> {
    await this.write(async (q) => {
      const { rows } = await q<{ sha256: string }>('DELETE FROM blob_owners WHERE kind = ? AND id = ? AND (?::text[] IS NULL OR sha256 = ANY (?::text[])) RETURNING sha256', [
        owner.kind,
        owner.id,
        options.sha256s ?? null,
        options.sha256s ?? null,
      ]);
      if (!options.published) return;
      const now = await storeNow(q);
      for (const { sha256 } of rows) await q(`UPDATE blobs SET unpublished_at = ? WHERE sha256 = ? AND NOT ${usedBlob('blobs.sha256')}`, [now, sha256]);
    });
  }

  async ownedBlobs(): Promise<{ sha256: string; size: number }[]> {
    return (await this.rows<{ sha256: string; size: string | number }>(ownedBlobsSelect)).map(({ sha256, size }) => ({ sha256, size: Number(size) }));
  }

  async blobOwners(sha256: string): Promise<BlobOwner[]> {
    return this.rows<BlobOwner>('SELECT kind, id FROM blob_owners WHERE sha256 = ? ORDER BY kind, id', [sha256]);
  }

  async releaseClaim(claim: string): Promise<void> {
    await this.write((q) => q('DELETE FROM blob_claims WHERE claim = ?', [claim]));
  }

  async beginCollect(sha256: string, unpublishedBefore: string, now: string): Promise<boolean> {
    return this.write(async (q) => {
      await q('DELETE FROM blob_claims WHERE expires_at <= ?', [now]);
      if ((await q('SELECT 1 FROM blob_claims WHERE sha256 = ?', [sha256])).rowCount) return false;
      const { rows } = await q<{ unpublished_at: string | null; released_at: string | null; used: boolean }>(`SELECT unpublished_at, released_at, ${usedBlob('b.sha256')} AS used FROM blobs b WHERE sha256 = ?`, [sha256]);
      const row = rows[0];
      if (row && (row.used || withinGrace(row, unpublishedBefore))) return false;
      const staleBefore = new Date(Date.parse(now) - abandonedCollectionMs).toISOString();
      const started = await q(
        `INSERT INTO blob_collections (sha256, started_at) VALUES (?, ?)
         ON CONFLICT (sha256) DO UPDATE SET started_at = excluded.started_at WHERE blob_collections.started_at <= ?`,
        [sha256, now, staleBefore],
      );
      return (started.rowCount ?? 0) > 0;
    });
  }

  async finishCollect(sha256: string): Promise<void> {
    await this.write(async (q) => {
      await q(`DELETE FROM blobs WHERE sha256 = ? AND NOT ${usedBlob('blobs.sha256')}`, [sha256]);
      await q('DELETE FROM blob_collections WHERE sha256 = ?', [sha256]);
    });
  }

  // Trust

  async listCertificates(): Promise<TrustedCertificate[]> {
    return (await this.rows<CertificateRow>(`${certificateSelect} ORDER BY name, fingerprint`)).map(toCertificate);
  }

  async getCertificate(fingerprint: string): Promise<TrustedCertificate | undefined> {
    const [row] = await this.rows<CertificateRow>(`${certificateSelect} WHERE fingerprint = ?`, [fingerprint]);
    return row && toCertificate(row);
  }

  async addCertificate(cert: TrustedCertificate): Promise<void> {
    await this.write((q) =>
      insertUnique(q, certificateInsert, certificateValues(cert), () => new AppError(ErrorCodes.conflict, `Certificate ${cert.fingerprint.slice(0, 12)} is already trusted`)),
    );
  }

  async removeCertificate(fingerprint: string): Promise<void> {
    await this.write(async (q) => {
      if (!(await q('DELETE FROM certificates WHERE fingerprint = ?', [fingerprint])).rowCount) throw notFound(`Certificate ${fingerprint} is not trusted`);
    });
  }

  async addToken(token: TrustToken): Promise<void> {
    await this.write((q) =>
      insertUnique(q, 'INSERT INTO trust_tokens (secret, name, created_at, expires_at) VALUES (?, ?, ?, ?)', [token.secret, token.name, token.createdAt, token.expiresAt], () => new AppError(ErrorCodes.conflict, 'A token with this secret exists')),
    );
  }

  async consumeToken(secret: string, now: string): Promise<TrustToken | undefined> {
    return this.write(async (q) => {
      await q('DELETE FROM trust_tokens WHERE expires_at <= ?', [now]);
      const { rows } = await q<TrustToken>('DELETE FROM trust_tokens WHERE secret = ? RETURNING secret, name, created_at AS "createdAt", expires_at AS "expiresAt"', [secret]);
      const token = rows[0];
      return token && { secret: token.secret, name: token.name, createdAt: token.createdAt, expiresAt: token.expiresAt };
    });
  }

  // Remotes, mirrors, sites

  async listRemotes(): Promise<RemoteRecord[]> {
    return (await this.rows<RemoteRow>('SELECT name, url, protocol, public, certificate, gpg_key FROM remotes ORDER BY name')).map(toRemote);
  }

  async putRemote(remote: RemoteRecord): Promise<void> {
    await this.write((q) =>
      q(
        `INSERT INTO remotes (name, url, protocol, public, certificate, gpg_key) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, protocol = excluded.protocol, public = excluded.public, certificate = excluded.certificate, gpg_key = excluded.gpg_key`,
        [remote.name, remote.url, remote.protocol, remote.public ? 1 : 0, remote.certificate, remote.gpgKey],
      ),
    );
  }

  async removeRemote(name: string): Promise<void> {
    await this.write(async (q) => {
      if (!(await q('DELETE FROM remotes WHERE name = ?', [name])).rowCount) throw notFound(`Remote "${name}" not found`);
    });
  }

  async listMirrors(): Promise<MirrorRecord[]> {
    return (await this.rows<MirrorRow>('SELECT * FROM mirrors ORDER BY name')).map(toMirror);
  }

  async putMirror(m: MirrorRecord): Promise<void> {
    await this.write((q) =>
      q(
        `INSERT INTO mirrors (name, remote, filters, types, keep, interval_seconds, lazy, last_sync, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET remote = excluded.remote, filters = excluded.filters, types = excluded.types, keep = excluded.keep,
           interval_seconds = excluded.interval_seconds, lazy = excluded.lazy, last_sync = excluded.last_sync, last_error = excluded.last_error`,
        [m.name, m.remote, JSON.stringify(m.filters), JSON.stringify(m.types), m.keep, m.intervalSeconds, m.lazy ? 1 : 0, m.lastSync, m.lastError],
      ),
    );
  }

  async removeMirror(name: string): Promise<void> {
    await this.write(async (q) => {
      if (!(await q('DELETE FROM mirrors WHERE name = ?', [name])).rowCount) throw notFound(`Mirror "${name}" not found`);
    });
  }

  async listChannels(): Promise<ChannelSetting[]> {
    return (await this.rows<ChannelSetting>(channelSettingSelect)).map(toChannelSetting);
  }

  async putChannel(setting: ChannelSetting): Promise<void> {
    await this.write((q) => q(channelSettingPut, [setting.name, setting.keep, setting.gate]));
  }

  async addPushToken(token: PushToken): Promise<void> {
    await this.write((q) => insertUnique(q, pushTokenInsert, pushTokenValues(token), () => pushTokenErrors.exists(token.id)));
  }

  async listPushTokens(): Promise<PushToken[]> {
    return (await this.rows<PushTokenRow>(pushTokenSelect)).map(toPushToken);
  }

  async revokePushToken(id: string): Promise<boolean> {
    return this.write(async (q) => {
      if (!(await q('SELECT 1 FROM push_tokens WHERE id = ?', [id])).rowCount) throw pushTokenErrors.missing(id);
      return (await q('UPDATE push_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [await storeNow(q), id])).rowCount === 1;
    });
  }

  async addTestResult(result: TestResult): Promise<void> {
    // Not a change anything published shows: the publisher need not render again.
    await this.write((q) => q(testResultInsert, testResultValues(result)), false);
  }

  async testResults(fingerprint: string): Promise<TestResult[]> {
    return (await this.rows<TestResultRow>(testResultSelect, [fingerprint])).map(toTestResult);
  }

  async listViews(): Promise<View[]> {
    return (await this.rows<ViewRow>(`${viewSelect} ORDER BY name`)).map(toView);
  }

  async addView(view: View): Promise<void> {
    await this.write((q) => insertUnique(q, viewInsert, viewValues(view), () => viewErrors.exists(view.name)));
  }

  async removeView(name: string): Promise<void> {
    await this.write(async (q) => {
      await q('DELETE FROM view_tokens WHERE view = ?', [name]);
      if (!(await q('DELETE FROM views WHERE name = ?', [name])).rowCount) throw viewErrors.missing(name);
    });
  }

  async addViewToken(token: ViewToken): Promise<void> {
    await this.write(async (q) => {
      if (!(await q('SELECT 1 FROM views WHERE name = ?', [token.view])).rowCount) throw viewErrors.missing(token.view);
      await insertUnique(q, viewTokenInsert, viewTokenValues(token), () => viewErrors.tokenExists(token.id));
    });
  }

  async listViewTokens(): Promise<ViewToken[]> {
    return (await this.rows<ViewTokenRow>(`${viewTokenSelect} ${viewTokenOrder}`)).map(toViewToken);
  }

  async revokeViewTokens(view: string, id: string | undefined): Promise<number> {
    return this.write(async (q) => {
      if (!(await q('SELECT 1 FROM views WHERE name = ?', [view])).rowCount) throw viewErrors.missing(view);
      if (id !== undefined && !(await q('SELECT 1 FROM view_tokens WHERE view = ? AND id = ?', [view, id])).rowCount) throw viewErrors.tokenMissing(view, id);
      const now = await storeNow(q);
      const revoked = id === undefined ? await q('UPDATE view_tokens SET revoked_at = ? WHERE view = ? AND revoked_at IS NULL', [now, view]) : await q('UPDATE view_tokens SET revoked_at = ? WHERE view = ? AND id = ? AND revoked_at IS NULL', [now, view, id]);
      return revoked.rowCount ?? 0;
    });
  }

  async listSites(): Promise<SiteRecord[]> {
    return (await this.rows<SiteRow>('SELECT name, url, countries, continents, weight, health FROM sites ORDER BY name')).map(toSite);
  }

  async putSite(site: Omit<SiteRecord, 'health'>): Promise<void> {
    await this.write((q) =>
      q(
        `INSERT INTO sites (name, url, countries, continents, weight) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, countries = excluded.countries, continents = excluded.continents, weight = excluded.weight`,
        [site.name, site.url, JSON.stringify(site.countries), JSON.stringify(site.continents), site.weight],
      ),
    );
  }

  async removeSite(name: string): Promise<void> {
    await this.write(async (q) => {
      if (!(await q('DELETE FROM sites WHERE name = ?', [name])).rowCount) throw notFound(`Site "${name}" not found`);
    });
  }

  async recordSiteHealth(results: { name: string; health: SiteHealth }[]): Promise<void> {
    await this.write(async (q) => {
      for (const { name, health } of results) await q('UPDATE sites SET health = ? WHERE name = ?', [JSON.stringify(health), name]);
    });
  }

  // The OCI registry. Its writes do not move the change counter (`write(..., false)`): nothing the
  // simplestreams index shows changes, so no replica renders again. SERIALIZABLE all the same: a
  // push's check of its blobs and an unlink, or an index's push and its child's deletion, take turns.

  async linkOciBlob(repository: string, blob: BlobRef): Promise<void> {
    await this.write(async (q) => {
      await refuseCollecting(q, blob.sha256);
      await upsertBlob(q, blob, await storeNow(q));
      await q('INSERT INTO oci_blobs (repository, sha256) VALUES (?, ?) ON CONFLICT DO NOTHING', [repository, blob.sha256]);
      await hold(q, ociOwners.blob(repository, blob.sha256), blob.sha256);
    }, false);
  }

  async ociBlobLinked(repository: string, sha256: string): Promise<boolean> {
    return (await this.rows(ociHeldSelect, ociHeldValues(repository, sha256))).length > 0;
  }

  async unlinkOciBlob(repository: string, sha256: string): Promise<boolean> {
    return this.write(async (q) => {
      if (!(await q('DELETE FROM oci_blobs WHERE repository = ? AND sha256 = ?', [repository, sha256])).rowCount) return false;
      const owner = ociOwners.blob(repository, sha256);
      await q('DELETE FROM blob_owners WHERE sha256 = ? AND kind = ? AND id = ?', [sha256, owner.kind, owner.id]);
      return true;
    }, false);
  }

  async putOciManifest(manifest: OciManifest, bytes: BlobRef, tag?: string, options: { cached?: boolean } = {}): Promise<void> {
    const { repository, sha256 } = manifest;
    await this.write(async (q) => {
      const exists = async (sha: string) => Boolean((await q('SELECT 1 FROM oci_manifests WHERE repository = ? AND sha256 = ?', [repository, sha])).rowCount);
      // Pushed before: its record and its holds are there already; only the tag moves.
      if (!(await exists(sha256))) {
        // Checked in the write that holds them: an unlink that commits meanwhile makes one of the two retry.
        if (!options.cached) {
          for (const blob of manifest.blobs) if (!(await q(ociHeldSelect, ociHeldValues(repository, blob))).rowCount) throw ociMissing('blob', blob, repository);
          for (const child of manifest.manifests) if (!(await exists(child))) throw ociMissing('manifest', child, repository);
        }
        const held = options.cached ? [sha256] : [...new Set([sha256, ...manifest.blobs])];
        for (const sha of held) await refuseCollecting(q, sha);
        const now = await storeNow(q);
        await upsertBlob(q, bytes, now);
        await q(ociManifestInsert, ociManifestValues(manifest, now));
        // Its children are held by their own records (which it keeps from deletion).
        for (const sha of held) await hold(q, ociOwners.manifest(repository, sha256), sha);
      }
      if (tag !== undefined) await q(ociTagPut, [repository, tag, sha256]);
    }, false);
  }

  async getOciManifest(repository: string, reference: { tag: string } | { sha256: string }): Promise<OciManifest | undefined> {
    const [row] =
      'tag' in reference
        ? await this.rows<OciManifestRow>(`${ociManifestSelect} JOIN oci_tags t ON t.repository = m.repository AND t.sha256 = m.sha256 WHERE t.repository = ? AND t.tag = ?`, [repository, reference.tag])
        : await this.rows<OciManifestRow>(`${ociManifestSelect} WHERE m.repository = ? AND m.sha256 = ?`, [repository, reference.sha256]);
    return row && toOciManifest(row);
  }

  async ociTags(repository: string): Promise<string[]> {
    return (await this.ociTagTargets(repository)).map((t) => t.tag);
  }

  async ociTagTargets(repository: string): Promise<{ tag: string; sha256: string }[]> {
    const rows = await this.rows<{ tag: string; sha256: string }>('SELECT tag, sha256 FROM oci_tags WHERE repository = ? ORDER BY tag', [repository]);
    return rows.map(({ tag, sha256 }) => ({ tag, sha256 }));
  }

  async ociReferrers(repository: string, sha256: string): Promise<OciManifest[]> {
    return (await this.rows<OciManifestRow>(`${ociManifestSelect} WHERE m.repository = ? AND m.subject = ? ORDER BY m.sha256`, [repository, sha256])).map(toOciManifest);
  }

  async deleteOciManifest(repository: string, sha256: string): Promise<void> {
    await this.write(async (q) => {
      if (!(await q('SELECT 1 FROM oci_manifests WHERE repository = ? AND sha256 = ?', [repository, sha256])).rowCount) throw ociManifestUnknown(repository, sha256);
      const { rows } = await q<{ sha256: string }>('SELECT sha256 FROM oci_manifests WHERE repository = ? AND manifests::jsonb @> jsonb_build_array(?::text) ORDER BY sha256 LIMIT 1', [repository, sha256]);
      if (rows[0]) throw ociNamedByIndex(repository, sha256, rows[0].sha256);
      await q('DELETE FROM oci_tags WHERE repository = ? AND sha256 = ?', [repository, sha256]);
      await q('DELETE FROM oci_manifests WHERE repository = ? AND sha256 = ?', [repository, sha256]);
      const owner = ociOwners.manifest(repository, sha256);
      await q('DELETE FROM blob_owners WHERE kind = ? AND id = ?', [owner.kind, owner.id]);
    }, false);
  }

  async deleteOciTag(repository: string, tag: string): Promise<void> {
    await this.write(async (q) => {
      if (!(await q('DELETE FROM oci_tags WHERE repository = ? AND tag = ?', [repository, tag])).rowCount) throw ociTagUnknown(repository, tag);
    }, false);
  }

  async ociRepositories(): Promise<string[]> {
    return (await this.rows<{ repository: string }>(ociRepositoriesSelect)).map((r) => r.repository);
  }

  async changeVersion(): Promise<number> {
    const [row] = await this.rows<{ version: number }>('SELECT version FROM wharf_changes');
    return row!.version;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/**
 * The database server's clock as wharf writes times (ISO 8601, UTC, milliseconds): the one
 * clock of every replica, whatever their hosts' clocks say.
 */
async function storeNow(q: Query): Promise<string> {
  const { rows } = await q<{ now: string }>(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS now`);
  return rows[0]!.now;
}

/** `busy` while the blob is being collected; a collection its collector abandoned is dropped. */
async function refuseCollecting(q: Query, sha256: string) {
  const staleBefore = new Date(Date.parse(await storeNow(q)) - abandonedCollectionMs).toISOString();
  const { rows } = await q<{ started_at: string }>('SELECT started_at FROM blob_collections WHERE sha256 = ?', [sha256]);
  if (rows[0] && rows[0].started_at > staleBefore) throw new AppError(ErrorCodes.busy, `The file ${sha256.slice(0, 12)} is being collected; try again`);
  // The collector died mid-way: its file may be gone, which the writer's commit repairs.
  if (rows[0]) await q('DELETE FROM blob_collections WHERE sha256 = ?', [sha256]);
}

async function hold(q: Query, owner: BlobOwner, sha256: string) {
  await q('INSERT INTO blob_owners (sha256, kind, id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [sha256, owner.kind, owner.id]);
}

async function upsertBlob(q: Query, blob: BlobRef, now: string) {
  await q('INSERT INTO blobs (sha256, size, format, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING', [blob.sha256, blob.size, JSON.stringify(blob.format), now]);
}

async function insertDeltas(q: Query, fingerprint: string, deltas: Delta[], now: string) {
  for (const delta of deltas) {
    await upsertBlob(q, delta, now);
    await q('INSERT INTO image_deltas (fingerprint, sha256, ftype, base) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING', [fingerprint, delta.sha256, delta.ftype, delta.base]);
  }
}

/** A primary-key clash as the caller's conflict error; a missing parent row as its not-found error. */
async function insertUnique(q: Query, sql: string, values: unknown[], conflict: () => AppError, missing?: () => AppError): Promise<void> {
  try {
    await q(sql, values);
  } catch (err) {
    if (pgCode(err) === '23505') throw conflict();
    if (pgCode(err) === '23503' && missing) throw missing();
    throw err;
  }
}

const aliasExists = (alias: Alias) => new AppError(ErrorCodes.conflict, `Alias "${alias.name}" already exists`, { hint: 'Delete it first (image alias delete) or choose another name.' });

function insertAlias(q: Query, alias: Alias): Promise<void> {
  return insertUnique(
    q,
    'INSERT INTO aliases (name, fingerprint, description, type) VALUES (?, ?, ?, ?)',
    [alias.name, alias.fingerprint, alias.description, alias.type],
    () => aliasExists(alias),
    () => notFound(`Image "${alias.fingerprint}" not found`),
  );
}

/** An image as the transaction sees it. */
async function imageIn(q: Query, fingerprint: string): Promise<Image | undefined> {
  const { rows } = await q<ImageRow>(`${imageSelect} WHERE i.fingerprint = ?`, [fingerprint]);
  if (!rows[0]) return undefined;
  return toImage(rows[0], (await q<DeltaRow>(`${deltaSelect} WHERE d.fingerprint = ? ${deltaOrder}`, [fingerprint])).rows);
}

/**
 * Numbers the events after the last committed: every catalogue write updates the one row of
 * wharf_changes, so writes commit one after another, and a later write's events come after.
 */
async function appendEvents(q: Query, events: NewEvent[]) {
  if (!events.length) return;
  let seq = Number((await q<{ last: string }>('SELECT COALESCE(MAX(seq), 0) AS last FROM events')).rows[0]!.last);
  for (const event of events) await q(eventInsert, eventValues(++seq, event));
}
