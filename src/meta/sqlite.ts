/**
 * The embedded metadata store on node:sqlite. WAL mode lets the CLI write while `wharf serve`
 * reads; PRAGMA data_version tells the server that another process committed.
 */
import { inTransaction, migrator, openSqlite, storageError } from './sqlite-open.ts';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { AppError, ErrorCodes, changedMeanwhile, notFound } from '../errors.ts';
import type { Alias, BlobRef, Delta, Image } from '../domain/image.ts';
import { abandonedCollectionMs, ociOwners, type OciManifest, type BlobOwner, type BlobRecord, type BlobSource, type MetaStore, type MirrorRecord, type RemoteRecord, type SiteHealth, type SiteRecord, type TrustedCertificate, type TrustToken } from './store.ts';
import { historyInsert, historySelect, historyValues, toChannelChange, type HistoryRow } from './rows.ts';
import { certificateInsert, certificateSelect, certificateValues, withinGrace, type CertificateRow } from './rows.ts';
import { testResultInsert, testResultSelect, testResultValues, toTestResult, type TestResultRow } from './rows.ts';
import { channelSettingPut, channelSettingSelect, ownedBlobsSelect, toChannelSetting } from './rows.ts';
import { eventInsert, eventSelect, eventValues, toEvent, type EventRow } from './rows.ts';
import { imageEvents, type NewEvent, type PipelineEvent } from '../domain/pipeline.ts';
import type { TestResult } from '../domain/test-hooks.ts';
import { pushTokenErrors, type PushToken } from '../domain/push-token.ts';
import { pushTokenInsert, pushTokenSelect, pushTokenValues, toPushToken, type PushTokenRow } from './rows.ts';
import { toView, toViewToken, viewInsert, viewSelect, viewTokenInsert, viewTokenOrder, viewTokenSelect, viewTokenValues, viewValues, type ViewRow, type ViewTokenRow } from './rows.ts';
import { viewErrors, type View, type ViewToken } from '../domain/view.ts';
import { channelChange, type ChannelChange, type ChannelSetting } from '../domain/channel.ts';
import { ociHeldSelect, ociHeldValues, ociManifestInsert, ociManifestSelect, ociManifestUnknown, ociManifestValues, ociMissing, ociNamedByIndex, ociTagPut, ociRepositoriesSelect, ociTagUnknown, toOciManifest, type OciManifestRow } from './rows.ts';
import { blobSelect, deltaOrder, deltaSelect, imageInsert, imageInsertValues, imageSelect, imageUpdate, imageUpdateValues, toAlias, toBlob, toCertificate, toImage, toMirror, toRemote, toSite, usedBlob, type BlobRow, type DeltaRow, type ImageRow, type MirrorRow, type RemoteRow, type SiteRow } from './rows.ts';

const migrations: string[] = [
  `CREATE TABLE blobs (
     sha256 TEXT PRIMARY KEY,
     size INTEGER NOT NULL,
     format TEXT NOT NULL,
     created_at TEXT NOT NULL,
     unpublished_at TEXT
   );
   CREATE TABLE images (
     fingerprint TEXT PRIMARY KEY,
     type TEXT NOT NULL CHECK (type IN ('container', 'virtual-machine')),
     architecture TEXT NOT NULL,
     filename TEXT NOT NULL,
     size INTEGER NOT NULL,
     public INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     uploaded_at TEXT NOT NULL,
     expires_at TEXT,
     last_used_at TEXT,
     properties TEXT NOT NULL,
     templates TEXT NOT NULL,
     metadata_sha256 TEXT NOT NULL REFERENCES blobs (sha256),
     rootfs_sha256 TEXT REFERENCES blobs (sha256),
     auto_update INTEGER NOT NULL DEFAULT 0,
     cached INTEGER NOT NULL DEFAULT 0,
     update_source TEXT
   );
   CREATE INDEX images_metadata ON images (metadata_sha256);
   CREATE INDEX images_rootfs ON images (rootfs_sha256);
   CREATE TABLE aliases (
     name TEXT PRIMARY KEY,
     fingerprint TEXT NOT NULL REFERENCES images (fingerprint) ON DELETE CASCADE,
     description TEXT NOT NULL DEFAULT '',
     type TEXT NOT NULL
   );
   CREATE INDEX aliases_fingerprint ON aliases (fingerprint);`,
  `CREATE TABLE certificates (
     fingerprint TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     certificate TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE remotes (
     name TEXT PRIMARY KEY,
     url TEXT NOT NULL,
     protocol TEXT NOT NULL,
     public INTEGER NOT NULL,
     certificate TEXT NOT NULL DEFAULT ''
   );
   CREATE TABLE trust_tokens (
     secret TEXT PRIMARY KEY,
     name TEXT NOT NULL,
     created_at TEXT NOT NULL,
     expires_at TEXT NOT NULL
   );`,
  `ALTER TABLE images ADD COLUMN product_aliases TEXT NOT NULL DEFAULT '[]';
   ALTER TABLE images ADD COLUMN mirror TEXT;
   CREATE INDEX images_mirror ON images (mirror);
   CREATE TABLE mirrors (
     name TEXT PRIMARY KEY,
     remote TEXT NOT NULL,
     filters TEXT NOT NULL,
     types TEXT NOT NULL,
     keep INTEGER NOT NULL,
     interval_seconds INTEGER NOT NULL,
     lazy INTEGER NOT NULL DEFAULT 0,
     last_sync TEXT,
     last_error TEXT
   );`,
  `ALTER TABLE blobs ADD COLUMN source_url TEXT;
   ALTER TABLE blobs ADD COLUMN source_certificate TEXT;
   ALTER TABLE blobs ADD COLUMN last_access TEXT;`,
  `CREATE TABLE image_deltas (
     fingerprint TEXT NOT NULL REFERENCES images (fingerprint) ON DELETE CASCADE,
     sha256 TEXT NOT NULL REFERENCES blobs (sha256),
     ftype TEXT NOT NULL,
     base TEXT NOT NULL,
     PRIMARY KEY (fingerprint, sha256)
   );
   CREATE INDEX image_deltas_sha256 ON image_deltas (sha256);`,
  `CREATE TABLE blob_claims (
     claim TEXT NOT NULL,
     sha256 TEXT NOT NULL,
     expires_at TEXT NOT NULL,
     PRIMARY KEY (claim, sha256)
   );
   CREATE INDEX blob_claims_sha256 ON blob_claims (sha256);
   CREATE TABLE blob_collections (
     sha256 TEXT PRIMARY KEY,
     started_at TEXT NOT NULL
   );`,
  `ALTER TABLE remotes ADD COLUMN gpg_key TEXT NOT NULL DEFAULT ''`,
  `CREATE TABLE sites (
     name TEXT PRIMARY KEY,
     url TEXT NOT NULL,
     countries TEXT NOT NULL,
     continents TEXT NOT NULL,
     weight INTEGER NOT NULL,
     health TEXT
   );`,
  `ALTER TABLE images ADD COLUMN revision INTEGER NOT NULL DEFAULT 1`,
  `CREATE TABLE blob_owners (
     sha256 TEXT NOT NULL REFERENCES blobs (sha256),
     kind TEXT NOT NULL,
     id TEXT NOT NULL,
     PRIMARY KEY (sha256, kind, id)
   );
   CREATE INDEX blob_owners_owner ON blob_owners (kind, id);`,
  // Every image stored before channels existed was in the one index there was.
  `ALTER TABLE images ADD COLUMN channels TEXT NOT NULL DEFAULT '["default"]'`,
  `CREATE TABLE channel_history (
     fingerprint TEXT NOT NULL,
     revision INTEGER NOT NULL,
     from_channels TEXT NOT NULL,
     to_channels TEXT NOT NULL,
     actor TEXT NOT NULL,
     at TEXT NOT NULL,
     PRIMARY KEY (fingerprint, revision)
   );`,
  `ALTER TABLE images ADD COLUMN pinned TEXT NOT NULL DEFAULT '[]';
   CREATE TABLE channel_settings (name TEXT PRIMARY KEY, keep integer);`,
  `CREATE TABLE views (name TEXT PRIMARY KEY, channel TEXT NOT NULL, filters TEXT NOT NULL, created_at TEXT NOT NULL);
   CREATE TABLE view_tokens (
     id TEXT PRIMARY KEY,
     view TEXT NOT NULL REFERENCES views (name) ON DELETE CASCADE,
     hash TEXT NOT NULL,
     description TEXT NOT NULL,
     created_at TEXT NOT NULL,
     expires_at TEXT,
     revoked_at TEXT
   );`,
  // NULL: a certificate trusted with every channel, as every one was before.
  `ALTER TABLE certificates ADD COLUMN channels TEXT`,
  // When the last image using it was deleted, public or private: collection waits the grace period.
  `ALTER TABLE blobs ADD COLUMN released_at TEXT`,
  `CREATE TABLE test_results (
     fingerprint TEXT NOT NULL,
     hook TEXT NOT NULL,
     attempt INTEGER NOT NULL,
     outcome TEXT NOT NULL,
     exit_code INTEGER,
     started_at TEXT NOT NULL,
     duration_ms INTEGER NOT NULL,
     log TEXT NOT NULL,
     PRIMARY KEY (fingerprint, hook, started_at, attempt)
   );`,
  `CREATE TABLE push_tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, globs TEXT NOT NULL, hash TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT);`,
  `ALTER TABLE images ADD COLUMN stage TEXT;
   CREATE TABLE events (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, channel TEXT, image TEXT NOT NULL);
   ALTER TABLE channel_settings ADD COLUMN gate TEXT;`,
  // The OCI registry (OciStore). Its holds are blob_owners rows, written in the same transactions.
  `CREATE TABLE oci_blobs (
     repository TEXT NOT NULL,
     sha256 TEXT NOT NULL REFERENCES blobs (sha256),
     PRIMARY KEY (repository, sha256)
   );
   CREATE TABLE oci_manifests (
     repository TEXT NOT NULL,
     sha256 TEXT NOT NULL REFERENCES blobs (sha256),
     media_type TEXT NOT NULL,
     size INTEGER NOT NULL,
     blobs TEXT NOT NULL,
     manifests TEXT NOT NULL,
     subject TEXT,
     artifact_type TEXT,
     annotations TEXT NOT NULL,
     created_at TEXT NOT NULL,
     PRIMARY KEY (repository, sha256)
   );
   CREATE INDEX oci_manifests_subject ON oci_manifests (repository, subject);
   CREATE TABLE oci_tags (
     repository TEXT NOT NULL,
     tag TEXT NOT NULL,
     sha256 TEXT NOT NULL,
     PRIMARY KEY (repository, tag),
     FOREIGN KEY (repository, sha256) REFERENCES oci_manifests (repository, sha256) ON DELETE CASCADE
   );
   CREATE INDEX oci_tags_manifest ON oci_tags (repository, sha256);`,
];

const migrate = migrator(migrations);

export class SqliteMetaStore implements MetaStore {
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();
  private localWrites = 0;

  constructor(path: string) {
    this.db = openSqlite(path, { synchronous: 'FULL', foreignKeys: true }, migrate);
  }

  private sql(text: string): StatementSync {
    let stmt = this.statements.get(text);
    if (!stmt) {
      stmt = this.db.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

  /**
   * One write. `counts` false: not a change the serving processes render (this handle's version
   * stays; the others' data_version moves all the same, as it does for any commit).
   */
  private transaction<T>(fn: () => T, counts = true): T {
    let result: T;
    try {
      result = inTransaction(this.db, fn);
    } catch (err) {
      throw storageError(err);
    }
    if (counts) this.localWrites++;
    return result;
  }

  async getImage(fingerprint: string): Promise<Image | undefined> {
    return this.imageAt(fingerprint);
  }

  /** The image with its deltas (callers inside a transaction see the transaction's view). */
  private imageAt(fingerprint: string): Image | undefined {
    const row = this.sql(`${imageSelect} WHERE i.fingerprint = ?`).get(fingerprint) as ImageRow | undefined;
    return row && toImage(row, this.deltasOf(fingerprint));
  }

  private deltasOf(fingerprint: string): DeltaRow[] {
    return this.sql(`${deltaSelect} WHERE d.fingerprint = ? ${deltaOrder}`).all(fingerprint) as unknown as DeltaRow[];
  }

  async findImages(prefix: string): Promise<Image[]> {
    // Fingerprints are lowercase hex, so a range scan is an exact prefix match without LIKE's wildcards.
    const rows = this.sql(`${imageSelect} WHERE i.fingerprint >= ? AND i.fingerprint < ? ORDER BY i.fingerprint`).all(
      prefix,
      prefix + 'g',
    ) as unknown as ImageRow[];
    return rows.map((row) => toImage(row, this.deltasOf(row.fingerprint)));
  }

  async listImages(): Promise<Image[]> {
    const deltas = new Map<string, DeltaRow[]>();
    for (const d of this.sql(`${deltaSelect} ${deltaOrder}`).all() as unknown as DeltaRow[]) deltas.set(d.fingerprint, [...(deltas.get(d.fingerprint) ?? []), d]);
    return (this.sql(`${imageSelect} ORDER BY i.uploaded_at, i.fingerprint`).all() as unknown as ImageRow[]).map((row) => toImage(row, deltas.get(row.fingerprint)));
  }

  async insertImage(image: Image, aliases: Alias[], sources: Record<string, BlobSource> = {}, actor = ''): Promise<void> {
    this.transaction(() => {
      if (this.sql('SELECT 1 FROM images WHERE fingerprint = ?').get(image.fingerprint)) {
        throw new AppError(ErrorCodes.conflict, `An image with fingerprint ${image.fingerprint} already exists`);
      }
      for (const blob of [image.metadata, image.rootfs]) if (blob) this.upsertBlob(blob, image.uploadedAt);
      this.sql(imageInsert).run(...imageInsertValues(image));
      for (const alias of aliases) this.insertAlias(alias);
      this.insertDeltas(image.fingerprint, image.deltas, image.uploadedAt);
      for (const [sha, source] of Object.entries(sources)) {
        this.sql('UPDATE blobs SET source_url = ?, source_certificate = ? WHERE sha256 = ?').run(source.url, source.certificate, sha);
      }
      this.appendEvents(imageEvents(undefined, image, actor, new Date().toISOString()));
    });
  }

  /** Inside a write transaction, which SQLite runs one at a time: the numbers after the last are free. */
  private appendEvents(events: NewEvent[]) {
    if (!events.length) return;
    let seq = (this.sql('SELECT COALESCE(MAX(seq), 0) AS last FROM events').get() as { last: number }).last;
    for (const event of events) this.sql(eventInsert).run(...eventValues(++seq, event));
  }

  async events(after: number, limit: number): Promise<PipelineEvent[]> {
    return (this.sql(eventSelect).all(after, limit) as unknown as EventRow[]).map(toEvent);
  }

  async lastEvent(): Promise<number> {
    return (this.sql('SELECT COALESCE(MAX(seq), 0) AS last FROM events').get() as { last: number }).last;
  }

  private insertDeltas(fingerprint: string, deltas: Delta[], now: string) {
    for (const delta of deltas) {
      this.upsertBlob(delta, now);
      this.sql('INSERT INTO image_deltas (fingerprint, sha256, ftype, base) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING').run(fingerprint, delta.sha256, delta.ftype, delta.base);
    }
  }

  async addDeltas(fingerprint: string, deltas: Delta[]): Promise<void> {
    this.transaction(() => {
      if (!this.sql('SELECT 1 FROM images WHERE fingerprint = ?').get(fingerprint)) throw notFound(`Image "${fingerprint}" not found`);
      this.insertDeltas(fingerprint, deltas, new Date().toISOString());
    });
  }

  private upsertBlob(blob: BlobRef, now: string) {
    this.sql(
      `INSERT INTO blobs (sha256, size, format, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (sha256) DO NOTHING`,
    ).run(blob.sha256, blob.size, JSON.stringify(blob.format), now);
  }

  /**
   * A deleted image's blobs are kept through the grace period; a public image's keep being served
   * until the clients' index caches expire (with its deltas: they were published with it, and
   * cached indexes still list them).
   */
  private markReleased(image: Image) {
    const now = new Date().toISOString();
    for (const blob of [image.metadata, image.rootfs, ...image.deltas]) {
      if (!blob) continue;
      this.sql('UPDATE blobs SET released_at = ? WHERE sha256 = ?').run(now, blob.sha256);
      if (image.public) this.sql('UPDATE blobs SET unpublished_at = ? WHERE sha256 = ?').run(now, blob.sha256);
    }
  }

  async updateImage(image: Image, actor = ''): Promise<void> {
    this.transaction(() => {
      const stored = this.imageAt(image.fingerprint);
      if (!stored) throw notFound(`Image "${image.fingerprint}" not found`);
      if (stored.revision !== image.revision) throw changedMeanwhile(`Image ${image.fingerprint}`);
      this.sql(imageUpdate).run(...imageUpdateValues(image));
      const now = new Date().toISOString();
      const change = channelChange(stored.channels, image, actor, now);
      if (change) this.sql(historyInsert).run(...historyValues(change));
      this.appendEvents(imageEvents(stored, image, actor, now));
    });
  }

  async channelHistory(fingerprint: string): Promise<ChannelChange[]> {
    return (this.sql(`${historySelect} ORDER BY revision`).all(fingerprint) as unknown as HistoryRow[]).map(toChannelChange);
  }

  async deleteImages(fingerprints: string[], actor = ''): Promise<void> {
    if (fingerprints.length === 0) return;
    this.transaction(() => {
      for (const fingerprint of new Set(fingerprints)) {
        const image = this.imageAt(fingerprint);
        // Thrown inside the transaction: the deletes before it are rolled back.
        if (!image) throw notFound(`Image "${fingerprint}" not found`);
        this.markReleased(image);
        this.sql('DELETE FROM images WHERE fingerprint = ?').run(fingerprint);
        this.appendEvents(imageEvents(image, undefined, actor, new Date().toISOString()));
      }
    });
  }

  async getAlias(name: string): Promise<Alias | undefined> {
    const row = this.sql('SELECT name, fingerprint, description, type FROM aliases WHERE name = ?').get(name) as Alias | undefined;
    return row && toAlias(row);
  }

  async listAliases(): Promise<Alias[]> {
    return (this.sql('SELECT name, fingerprint, description, type FROM aliases ORDER BY name').all() as unknown as Alias[]).map(toAlias);
  }

  /**
   * Runs an INSERT; a primary-key clash becomes the caller's conflict error, and a row that names
   * a missing one (a foreign key) its not-found error.
   */
  private insertUnique(sql: string, values: (string | number | null)[], conflict: () => AppError, missing?: () => AppError) {
    try {
      this.sql(sql).run(...values);
    } catch (err) {
      // 19 is SQLITE_CONSTRAINT; the extended code says which constraint in its upper bits.
      const code = (err as { errcode?: number }).errcode ?? 0;
      if (code === sqliteConstraintForeignKey && missing) throw missing();
      if (code % 256 === 19 && code !== sqliteConstraintForeignKey) throw conflict();
      throw err;
    }
  }

  private insertAlias(alias: Alias) {
    this.insertUnique(
      'INSERT INTO aliases (name, fingerprint, description, type) VALUES (?, ?, ?, ?)',
      [alias.name, alias.fingerprint, alias.description, alias.type],
      () => new AppError(ErrorCodes.conflict, `Alias "${alias.name}" already exists`, { hint: 'Delete it first (image alias delete) or choose another name.' }),
      () => notFound(`Image "${alias.fingerprint}" not found`),
    );
  }

  async createAlias(alias: Alias): Promise<void> {
    this.transaction(() => this.insertAlias(alias));
  }

  async deleteAlias(name: string): Promise<void> {
    this.transaction(() => {
      const { changes } = this.sql('DELETE FROM aliases WHERE name = ?').run(name);
      if (changes === 0) throw notFound(`Alias "${name}" not found`);
    });
  }

  async renameAlias(from: string, to: string): Promise<void> {
    this.transaction(() => {
      const alias = this.sql('SELECT name, fingerprint, description, type FROM aliases WHERE name = ?').get(from) as Alias | undefined;
      if (!alias) throw notFound(`Alias "${from}" not found`);
      this.sql('DELETE FROM aliases WHERE name = ?').run(from);
      this.insertAlias({ ...alias, name: to });
    });
  }

  async moveAliases(from: string, to: string): Promise<void> {
    this.transaction(() => {
      if (!this.sql('SELECT 1 FROM images WHERE fingerprint = ?').get(to)) throw notFound(`Image "${to}" not found`);
      this.sql('UPDATE aliases SET fingerprint = ?, type = (SELECT type FROM images WHERE fingerprint = ?) WHERE fingerprint = ?').run(to, to, from);
    });
  }

  /** One process or one host's file: the host's clock is the store's. */
  async clock(): Promise<Date> {
    return new Date();
  }

  async getBlob(sha256: string): Promise<BlobRecord | undefined> {
    const row = this.sql(`${blobSelect} WHERE b.sha256 = ?`).get(sha256) as BlobRow | undefined;
    return row && toBlob(row);
  }

  async collectableBlobs(unpublishedBefore: string): Promise<string[]> {
    const rows = this.sql(
      `SELECT sha256 FROM blobs b
       WHERE (unpublished_at IS NULL OR unpublished_at <= ?) AND (released_at IS NULL OR released_at <= ?)
         AND NOT ${usedBlob('b.sha256')}
       ORDER BY sha256`,
    ).all(unpublishedBefore, unpublishedBefore) as { sha256: string }[];
    return rows.map((r) => r.sha256);
  }

  async touchBlob(sha256: string, now: string): Promise<void> {
    // Not a change anyone needs to re-render for, so it does not count as one. Only lazy blobs
    // keep it: for the others the statement changes nothing, so it writes (and syncs) nothing.
    this.sql('UPDATE blobs SET last_access = ? WHERE sha256 = ? AND source_url IS NOT NULL').run(now, sha256);
  }

  async idleLazyBlobs(before: string): Promise<string[]> {
    const rows = this.sql('SELECT sha256 FROM blobs WHERE source_url IS NOT NULL AND coalesce(last_access, created_at) < ? ORDER BY sha256').all(before) as { sha256: string }[];
    return rows.map((r) => r.sha256);
  }

  /** `busy` while the blob is being collected; a collection its collector abandoned is dropped. */
  private refuseCollecting(sha256: string) {
    const staleBefore = new Date(Date.now() - abandonedCollectionMs).toISOString();
    const collecting = this.sql('SELECT started_at FROM blob_collections WHERE sha256 = ?').get(sha256) as { started_at: string } | undefined;
    if (collecting && collecting.started_at > staleBefore) throw new AppError(ErrorCodes.busy, `The file ${sha256.slice(0, 12)} is being collected; try again`);
    // The collector died mid-way: its file may be gone, which the writer's commit repairs.
    if (collecting) this.sql('DELETE FROM blob_collections WHERE sha256 = ?').run(sha256);
  }

  async claimBlobs(claim: string, sha256s: string[], expiresAt: string): Promise<void> {
    this.transaction(() => {
      for (const sha of sha256s) {
        this.refuseCollecting(sha);
        this.sql('INSERT INTO blob_claims (claim, sha256, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(claim, sha, expiresAt);
      }
    });
  }

  async holdBlobs(owner: BlobOwner, blobs: BlobRef[]): Promise<void> {
    this.transaction(() => {
      const now = new Date().toISOString();
      for (const blob of blobs) {
        this.refuseCollecting(blob.sha256);
        this.upsertBlob(blob, now);
        this.hold(owner, blob.sha256);
      }
    });
  }

  async releaseBlobs(owner: BlobOwner, options: { sha256s?: string[]; published?: boolean } = {}): Promise<void> {
    this.transaction(() => {
      const held = (this.sql('SELECT sha256 FROM blob_owners WHERE kind = ? AND id = ?').all(owner.kind, owner.id) as { sha256: string }[]).map((r) => r.sha256);
      const released = options.sha256s ? held.filter((sha) => options.sha256s!.includes(sha)) : held;
      const now = new Date().toISOString();
      for (const sha of released) {
        this.sql('DELETE FROM blob_owners WHERE sha256 = ? AND kind = ? AND id = ?').run(sha, owner.kind, owner.id);
        if (options.published) this.sql(`UPDATE blobs SET unpublished_at = ? WHERE sha256 = ? AND NOT ${usedBlob('blobs.sha256')}`).run(now, sha);
      }
    });
  }

  async ownedBlobs(): Promise<{ sha256: string; size: number }[]> {
    return (this.sql(ownedBlobsSelect).all() as { sha256: string; size: number }[]).map(({ sha256, size }) => ({ sha256, size }));
  }

  async blobOwners(sha256: string): Promise<BlobOwner[]> {
    const rows = this.sql('SELECT kind, id FROM blob_owners WHERE sha256 = ? ORDER BY kind, id').all(sha256) as unknown as BlobOwner[];
    return rows.map(({ kind, id }) => ({ kind, id }));
  }

  async releaseClaim(claim: string): Promise<void> {
    this.transaction(() => this.sql('DELETE FROM blob_claims WHERE claim = ?').run(claim));
  }

  async beginCollect(sha256: string, unpublishedBefore: string, now: string): Promise<boolean> {
    return this.transaction(() => {
      this.sql('DELETE FROM blob_claims WHERE expires_at <= ?').run(now);
      if (this.sql('SELECT 1 FROM blob_claims WHERE sha256 = ?').get(sha256)) return false;
      const row = this.sql(`SELECT unpublished_at, released_at, ${usedBlob('b.sha256')} AS used FROM blobs b WHERE sha256 = ?`).get(sha256) as
        | { unpublished_at: string | null; released_at: string | null; used: number }
        | undefined;
      if (row && (row.used === 1 || withinGrace(row, unpublishedBefore))) return false;
      const staleBefore = new Date(Date.parse(now) - abandonedCollectionMs).toISOString();
      const { changes } = this.sql(
        `INSERT INTO blob_collections (sha256, started_at) VALUES (?, ?)
         ON CONFLICT (sha256) DO UPDATE SET started_at = excluded.started_at WHERE blob_collections.started_at <= ?`,
      ).run(sha256, now, staleBefore);
      return changes > 0;
    });
  }

  async finishCollect(sha256: string): Promise<void> {
    this.transaction(() => {
      this.sql(`DELETE FROM blobs WHERE sha256 = ? AND NOT ${usedBlob('blobs.sha256')}`).run(sha256);
      this.sql('DELETE FROM blob_collections WHERE sha256 = ?').run(sha256);
    });
  }

  async listCertificates(): Promise<TrustedCertificate[]> {
    const rows = this.sql(`${certificateSelect} ORDER BY name, fingerprint`).all() as unknown as CertificateRow[];
    return rows.map(toCertificate);
  }

  async getCertificate(fingerprint: string): Promise<TrustedCertificate | undefined> {
    const row = this.sql(`${certificateSelect} WHERE fingerprint = ?`).get(fingerprint) as CertificateRow | undefined;
    return row && toCertificate(row);
  }

  async addCertificate(cert: TrustedCertificate): Promise<void> {
    this.transaction(() =>
      this.insertUnique(
        certificateInsert,
        certificateValues(cert),
        () => new AppError(ErrorCodes.conflict, `Certificate ${cert.fingerprint.slice(0, 12)} is already trusted`),
      ),
    );
  }

  async removeCertificate(fingerprint: string): Promise<void> {
    this.transaction(() => {
      const { changes } = this.sql('DELETE FROM certificates WHERE fingerprint = ?').run(fingerprint);
      if (changes === 0) throw notFound(`Certificate ${fingerprint} is not trusted`);
    });
  }

  async addToken(token: TrustToken): Promise<void> {
    this.transaction(() =>
      this.insertUnique(
        'INSERT INTO trust_tokens (secret, name, created_at, expires_at) VALUES (?, ?, ?, ?)',
        [token.secret, token.name, token.createdAt, token.expiresAt],
        () => new AppError(ErrorCodes.conflict, 'A token with this secret exists'),
      ),
    );
  }

  async consumeToken(secret: string, now: string): Promise<TrustToken | undefined> {
    return this.transaction(() => {
      this.sql('DELETE FROM trust_tokens WHERE expires_at <= ?').run(now);
      const token = this.sql('SELECT secret, name, created_at AS createdAt, expires_at AS expiresAt FROM trust_tokens WHERE secret = ?').get(secret) as
        | TrustToken
        | undefined;
      if (!token) return undefined;
      this.sql('DELETE FROM trust_tokens WHERE secret = ?').run(secret);
      return { secret: token.secret, name: token.name, createdAt: token.createdAt, expiresAt: token.expiresAt };
    });
  }

  async listRemotes(): Promise<RemoteRecord[]> {
    return (this.sql('SELECT name, url, protocol, public, certificate, gpg_key FROM remotes ORDER BY name').all() as unknown as RemoteRow[]).map(toRemote);
  }

  async putRemote(remote: RemoteRecord): Promise<void> {
    this.transaction(() => {
      this.sql(
        `INSERT INTO remotes (name, url, protocol, public, certificate, gpg_key) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, protocol = excluded.protocol, public = excluded.public, certificate = excluded.certificate, gpg_key = excluded.gpg_key`,
      ).run(remote.name, remote.url, remote.protocol, remote.public ? 1 : 0, remote.certificate, remote.gpgKey);
    });
  }

  async removeRemote(name: string): Promise<void> {
    this.transaction(() => {
      const { changes } = this.sql('DELETE FROM remotes WHERE name = ?').run(name);
      if (changes === 0) throw notFound(`Remote "${name}" not found`);
    });
  }

  async listChannels(): Promise<ChannelSetting[]> {
    return (this.sql(channelSettingSelect).all() as unknown as ChannelSetting[]).map(toChannelSetting);
  }

  async putChannel(setting: ChannelSetting): Promise<void> {
    this.transaction(() => this.sql(channelSettingPut).run(setting.name, setting.keep, setting.gate));
  }

  async addPushToken(token: PushToken): Promise<void> {
    this.transaction(() => this.insertUnique(pushTokenInsert, pushTokenValues(token), () => pushTokenErrors.exists(token.id)));
  }

  async listPushTokens(): Promise<PushToken[]> {
    return (this.sql(pushTokenSelect).all() as unknown as PushTokenRow[]).map(toPushToken);
  }

  async revokePushToken(id: string): Promise<boolean> {
    return this.transaction(() => {
      if (!this.sql('SELECT 1 FROM push_tokens WHERE id = ?').get(id)) throw pushTokenErrors.missing(id);
      return Number(this.sql('UPDATE push_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id).changes) === 1;
    });
  }

  async addTestResult(result: TestResult): Promise<void> {
    this.transaction(() => this.sql(testResultInsert).run(...testResultValues(result)));
  }

  async testResults(fingerprint: string): Promise<TestResult[]> {
    return (this.sql(testResultSelect).all(fingerprint) as unknown as TestResultRow[]).map(toTestResult);
  }

  async listViews(): Promise<View[]> {
    return (this.sql(`${viewSelect} ORDER BY name`).all() as unknown as ViewRow[]).map(toView);
  }

  async addView(view: View): Promise<void> {
    this.transaction(() => this.insertUnique(viewInsert, viewValues(view), () => viewErrors.exists(view.name)));
  }

  async removeView(name: string): Promise<void> {
    this.transaction(() => {
      this.sql('DELETE FROM view_tokens WHERE view = ?').run(name);
      if (this.sql('DELETE FROM views WHERE name = ?').run(name).changes === 0) throw viewErrors.missing(name);
    });
  }

  async addViewToken(token: ViewToken): Promise<void> {
    this.transaction(() => {
      if (!this.sql('SELECT 1 FROM views WHERE name = ?').get(token.view)) throw viewErrors.missing(token.view);
      this.insertUnique(viewTokenInsert, viewTokenValues(token), () => viewErrors.tokenExists(token.id));
    });
  }

  async listViewTokens(): Promise<ViewToken[]> {
    return (this.sql(`${viewTokenSelect} ${viewTokenOrder}`).all() as unknown as ViewTokenRow[]).map(toViewToken);
  }

  async revokeViewTokens(view: string, id: string | undefined): Promise<number> {
    return this.transaction(() => {
      if (!this.sql('SELECT 1 FROM views WHERE name = ?').get(view)) throw viewErrors.missing(view);
      if (id !== undefined && !this.sql('SELECT 1 FROM view_tokens WHERE view = ? AND id = ?').get(view, id)) throw viewErrors.tokenMissing(view, id);
      const now = new Date().toISOString();
      return Number(this.sql('UPDATE view_tokens SET revoked_at = ? WHERE view = ? AND (? IS NULL OR id = ?) AND revoked_at IS NULL').run(now, view, id ?? null, id ?? null).changes);
    });
  }

  async listSites(): Promise<SiteRecord[]> {
    return (this.sql('SELECT name, url, countries, continents, weight, health FROM sites ORDER BY name').all() as unknown as SiteRow[]).map(toSite);
  }

  async putSite(site: Omit<SiteRecord, 'health'>): Promise<void> {
    this.transaction(() => {
      this.sql(
        `INSERT INTO sites (name, url, countries, continents, weight) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, countries = excluded.countries, continents = excluded.continents, weight = excluded.weight`,
      ).run(site.name, site.url, JSON.stringify(site.countries), JSON.stringify(site.continents), site.weight);
    });
  }

  async removeSite(name: string): Promise<void> {
    this.transaction(() => {
      const { changes } = this.sql('DELETE FROM sites WHERE name = ?').run(name);
      if (changes === 0) throw notFound(`Site "${name}" not found`);
    });
  }

  async recordSiteHealth(results: { name: string; health: SiteHealth }[]): Promise<void> {
    this.transaction(() => {
      for (const { name, health } of results) this.sql('UPDATE sites SET health = ? WHERE name = ?').run(JSON.stringify(health), name);
    });
  }

  async listMirrors(): Promise<MirrorRecord[]> {
    return (this.sql('SELECT * FROM mirrors ORDER BY name').all() as unknown as MirrorRow[]).map(toMirror);
  }

  async putMirror(m: MirrorRecord): Promise<void> {
    this.transaction(() => {
      this.sql(
        `INSERT INTO mirrors (name, remote, filters, types, keep, interval_seconds, lazy, last_sync, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET remote = excluded.remote, filters = excluded.filters, types = excluded.types, keep = excluded.keep,
           interval_seconds = excluded.interval_seconds, lazy = excluded.lazy, last_sync = excluded.last_sync, last_error = excluded.last_error`,
      ).run(m.name, m.remote, JSON.stringify(m.filters), JSON.stringify(m.types), m.keep, m.intervalSeconds, m.lazy ? 1 : 0, m.lastSync, m.lastError);
    });
  }

  async removeMirror(name: string): Promise<void> {
    this.transaction(() => {
      const { changes } = this.sql('DELETE FROM mirrors WHERE name = ?').run(name);
      if (changes === 0) throw notFound(`Mirror "${name}" not found`);
    });
  }

  async publishImages(fingerprints: string[]): Promise<void> {
    if (fingerprints.length === 0) return;
    this.transaction(() => {
      for (const fp of fingerprints) this.sql('UPDATE images SET public = 1, revision = revision + 1 WHERE fingerprint = ? AND public = 0').run(fp);
    });
  }

  // The OCI registry. Its writes do not count as changes (`transaction(..., false)`): nothing the
  // simplestreams index shows moves.

  async linkOciBlob(repository: string, blob: BlobRef): Promise<void> {
    this.transaction(() => {
      this.refuseCollecting(blob.sha256);
      this.upsertBlob(blob, new Date().toISOString());
      this.sql('INSERT INTO oci_blobs (repository, sha256) VALUES (?, ?) ON CONFLICT DO NOTHING').run(repository, blob.sha256);
      this.hold(ociOwners.blob(repository, blob.sha256), blob.sha256);
    }, false);
  }

  private hold(owner: BlobOwner, sha256: string) {
    this.sql('INSERT INTO blob_owners (sha256, kind, id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(sha256, owner.kind, owner.id);
  }

  private ociHeld(repository: string, sha256: string): boolean {
    return this.sql(ociHeldSelect).get(...ociHeldValues(repository, sha256)) !== undefined;
  }

  async ociBlobLinked(repository: string, sha256: string): Promise<boolean> {
    return this.ociHeld(repository, sha256);
  }

  async unlinkOciBlob(repository: string, sha256: string): Promise<boolean> {
    return this.transaction(() => {
      if (this.sql('DELETE FROM oci_blobs WHERE repository = ? AND sha256 = ?').run(repository, sha256).changes === 0) return false;
      const owner = ociOwners.blob(repository, sha256);
      this.sql('DELETE FROM blob_owners WHERE sha256 = ? AND kind = ? AND id = ?').run(sha256, owner.kind, owner.id);
      return true;
    }, false);
  }

  async putOciManifest(manifest: OciManifest, bytes: BlobRef, tag?: string, options: { cached?: boolean } = {}): Promise<void> {
    const { repository, sha256 } = manifest;
    this.transaction(() => {
      // Pushed before: its record and its holds are there already; only the tag moves.
      if (!this.sql('SELECT 1 FROM oci_manifests WHERE repository = ? AND sha256 = ?').get(repository, sha256)) {
        // Checked in the write that holds them: an unlink cannot slip in between.
        if (!options.cached) {
          for (const blob of manifest.blobs) if (!this.ociHeld(repository, blob)) throw ociMissing('blob', blob, repository);
          for (const child of manifest.manifests) {
            if (!this.sql('SELECT 1 FROM oci_manifests WHERE repository = ? AND sha256 = ?').get(repository, child)) throw ociMissing('manifest', child, repository);
          }
        }
        const held = options.cached ? [sha256] : [...new Set([sha256, ...manifest.blobs])];
        for (const sha of held) this.refuseCollecting(sha);
        const now = new Date().toISOString();
        this.upsertBlob(bytes, now);
        this.sql(ociManifestInsert).run(...ociManifestValues(manifest, now));
        // Its children are held by their own records (which it keeps from deletion).
        for (const sha of held) this.hold(ociOwners.manifest(repository, sha256), sha);
      }
      if (tag !== undefined) this.sql(ociTagPut).run(repository, tag, sha256);
    }, false);
  }

  async getOciManifest(repository: string, reference: { tag: string } | { sha256: string }): Promise<OciManifest | undefined> {
    const row = (
      'tag' in reference
        ? this.sql(`${ociManifestSelect} JOIN oci_tags t ON t.repository = m.repository AND t.sha256 = m.sha256 WHERE t.repository = ? AND t.tag = ?`).get(repository, reference.tag)
        : this.sql(`${ociManifestSelect} WHERE m.repository = ? AND m.sha256 = ?`).get(repository, reference.sha256)
    ) as OciManifestRow | undefined;
    return row && toOciManifest(row);
  }

  async ociTags(repository: string): Promise<string[]> {
    return (await this.ociTagTargets(repository)).map((t) => t.tag);
  }

  async ociTagTargets(repository: string): Promise<{ tag: string; sha256: string }[]> {
    const rows = this.sql('SELECT tag, sha256 FROM oci_tags WHERE repository = ? ORDER BY tag').all(repository) as { tag: string; sha256: string }[];
    return rows.map(({ tag, sha256 }) => ({ tag, sha256 }));
  }

  async ociReferrers(repository: string, sha256: string): Promise<OciManifest[]> {
    return (this.sql(`${ociManifestSelect} WHERE m.repository = ? AND m.subject = ? ORDER BY m.sha256`).all(repository, sha256) as unknown as OciManifestRow[]).map(toOciManifest);
  }

  async deleteOciManifest(repository: string, sha256: string): Promise<void> {
    this.transaction(() => {
      if (!this.sql('SELECT 1 FROM oci_manifests WHERE repository = ? AND sha256 = ?').get(repository, sha256)) throw ociManifestUnknown(repository, sha256);
      const index = this.sql('SELECT sha256 FROM oci_manifests m WHERE repository = ? AND EXISTS (SELECT 1 FROM json_each(m.manifests) WHERE value = ?) ORDER BY sha256').get(repository, sha256) as
        | { sha256: string }
        | undefined;
      if (index) throw ociNamedByIndex(repository, sha256, index.sha256);
      this.sql('DELETE FROM oci_tags WHERE repository = ? AND sha256 = ?').run(repository, sha256);
      this.sql('DELETE FROM oci_manifests WHERE repository = ? AND sha256 = ?').run(repository, sha256);
      const owner = ociOwners.manifest(repository, sha256);
      this.sql('DELETE FROM blob_owners WHERE kind = ? AND id = ?').run(owner.kind, owner.id);
    }, false);
  }

  async deleteOciTag(repository: string, tag: string): Promise<void> {
    this.transaction(() => {
      if (this.sql('DELETE FROM oci_tags WHERE repository = ? AND tag = ?').run(repository, tag).changes === 0) throw ociTagUnknown(repository, tag);
    }, false);
  }

  async ociRepositories(): Promise<string[]> {
    return (this.sql(ociRepositoriesSelect).all() as { repository: string }[]).map((r) => r.repository);
  }

  async changeVersion(): Promise<number> {
    const { data_version } = this.sql('PRAGMA data_version').get() as { data_version: number };
    return data_version * 1_000_000 + this.localWrites;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** SQLITE_CONSTRAINT_FOREIGNKEY: the row names a parent that does not exist. */
const sqliteConstraintForeignKey = 787;

