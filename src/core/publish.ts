/**
 * The published simplestreams index, rendered when the store changes rather than per request:
 * the HTTP layer only copies these bytes. A poll of the store's change counter (a cheap PRAGMA)
 * picks up changes made by other processes, such as the CLI, within a fraction of a second.
 */
import { channelRoot, defaultChannel } from '../domain/channel.ts';
import { buildIndex, buildProducts, clientViews, indexPath, productsPath, visibleIn, type ArtifactPath, type ClientView } from '../domain/simplestreams.ts';
import { formatExtension } from '../domain/formats.ts';
import { renderBytes, renderJson, type RenderedDocument, type Renderings } from '../web/rendered.ts';
import { signedDocuments, signedIndexOf, type IndexSigner, type SignatureCache } from './signed-documents.ts';
import { ViewIndex } from './view-index.ts';
import type { ViewToken } from '../domain/view.ts';
import { renderCataloguePage, type PageOptions } from '../web/page.ts';
import { buildCatalogue, publicHistory, type CatalogueChange } from '../domain/catalogue.ts';
import type { Alias, BlobRef, Image } from '../domain/image.ts';
import { toApiImage } from '../domain/lxd-api.ts';
import { productOf } from '../domain/product.ts';
import type { Counted } from '../domain/usage.ts';
import type { CatalogueAudience } from './usage.ts';
import { isSha256 } from '../domain/fingerprint.ts';
import { graceCutoff, type Store } from './context.ts';
import { stageStates, type StageState } from '../domain/pipeline.ts';


export const catalogueProductsPath = '/catalogue/v1/products.json';

/** How often a store that announces its changes is polled anyway, in case an announcement was lost. */
const watchedPollMs = 2_000;

/** What the last rendering saw, and how much rendering cost so far (for /metrics). */
export interface PublisherSummary {
  images: { public: number; private: number };
  /** Images in the publishing pipeline, by stage (those that ever were staged). */
  stages: Record<StageState, number>;
  /** Distinct files of every image in the store, in bytes. */
  storedBytes: number;
  renders: number;
  renderSeconds: number;
}

interface Snapshot {
  version: number;
  /** Per client view, by path (a channel's under its root: `daily/streams/v1/index.json`). */
  documents: Map<ClientView, Map<string, RenderedDocument>>;
  /** The channels other than the default that have a root: those with a public image. */
  channels: Set<string>;
  /** GET /1.0/images bodies (the metadata part), per view: `public|all` x `urls|objects`. */
  apiLists: Map<string, Buffer>;
  artifacts: Map<string, BlobRef>;
  /** The catalogue page (`/`) and its JSON, by path. */
  catalogue: Map<string, RenderedDocument>;
  /** The image a download of each main file (rootfs, disk, unified tarball, delta) counts for. */
  downloads: Map<string, Counted & { createdAt: string }>;
  /** The public images of each product the catalogue shows, by product key. */
  catalogued: Map<string, string[]>;
  /** What the catalogue's download counts may name, and the store version it was taken at. */
  audience: CatalogueAudience;
  audienceVersion: number;
  /** The private views and their tokens. */
  views: ViewIndex;
}

const nobody: CatalogueAudience = { publicImages: new Set(), products: new Set(), hidden: new Map() };

/** Artifacts live at a path named by their sha256, so a URL never changes meaning. */
export const artifactPath: ArtifactPath = (blob) => `files/${blob.sha256}${formatExtension(blob.format)}`;

export function artifactSha(path: string): string | undefined {
  const name = /^files\/([^/.]*)(\.[a-z0-9.]+)?$/.exec(path)?.[1];
  return name !== undefined && isSha256(name) ? name : undefined;
}


function renderApiLists(images: Image[], aliases: Alias[]): Map<string, Buffer> {
  const lists = new Map<string, Buffer>();
  const render = (view: 'public' | 'all', visible: Image[]) => {
    lists.set(`${view}:objects`, Buffer.from(JSON.stringify(visible.map((i) => toApiImage(i, aliases)))));
    lists.set(`${view}:urls`, Buffer.from(JSON.stringify(visible.map((i) => `/1.0/images/${i.fingerprint}`))));
  };
  const publicImages = images.filter((i) => i.public);
  render('public', publicImages);
  // Every image public (the usual image server): both views are one list, kept once.
  if (publicImages.length === images.length) {
    lists.set('all:objects', lists.get('public:objects')!);
    lists.set('all:urls', lists.get('public:urls')!);
  } else render('all', images);
  return lists;
}

export class IndexPublisher {
  private readonly store: Store;
  private readonly signer: IndexSigner | undefined;
  private snapshot: Snapshot;
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private refreshing: Promise<void> | undefined;
  readonly summary: PublisherSummary = { images: { public: 0, private: 0 }, stages: countStages([]), storedBytes: 0, renders: 0, renderSeconds: 0 };

  private readonly page: PageOptions | undefined;

  /**
   * With a `signer`, every rendering of the index is signed before it is served; with `catalogue`,
   * the catalogue page and its JSON are rendered with it.
   */
  constructor(store: Store, options: { signer?: IndexSigner | undefined; catalogue?: PageOptions | undefined } = {}) {
    this.store = store;
    this.signer = options.signer;
    this.page = options.catalogue;
    const views = new ViewIndex([], [], [], [], { releaseNames: store.releaseNames, signer: this.signer, isPublic: () => false });
    this.snapshot = { version: -1, documents: new Map(), channels: new Set(), apiLists: new Map(), artifacts: new Map(), catalogue: new Map(), downloads: new Map(), audience: nobody, audienceVersion: -1, catalogued: new Map(), views };
  }

  /**
   * The catalogue shows the default channel's products, which the commands it offers reach (the
   * server's root remote), and names the other channels' roots.
   */
  private renderCatalogue(images: Image[], aliases: Alias[], channels: Set<string>): Map<string, RenderedDocument> {
    if (!this.page) return new Map();
    const catalogue = buildCatalogue(images.filter((i) => i.channels.includes(defaultChannel)), aliases, artifactPath, this.store.releaseNames);
    return new Map([
      ['/', renderBytes(Buffer.from(renderCataloguePage(catalogue, { ...this.page, channels: [...channels].sort() })), 'text/html; charset=utf-8')],
      [catalogueProductsPath, renderJson(catalogue)],
    ]);
  }

  /** Renders now if the store changed since the last render. */
  refresh(): Promise<void> {
    this.refreshing ??= this.rebuildIfChanged().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async rebuildIfChanged() {
    const version = await this.store.meta.changeVersion();
    if (version === this.snapshot.version) return;
    const started = performance.now();
    const meta = this.store.meta;
    const [images, aliases, views, tokens] = await Promise.all([meta.listImages(), meta.listAliases(), meta.listViews(), meta.listViewTokens()]);
    const documents = new Map<ClientView, Map<string, RenderedDocument>>();
    const signed: SignatureCache = new Map();
    const seen: Renderings = new Map();
    // Every channel is a root of its own, listing its images only; the default one always is.
    const channels = new Set(images.filter((i) => i.public).flatMap((i) => i.channels));
    channels.delete(defaultChannel);
    for (const view of clientViews) documents.set(view, new Map());
    for (const channel of [defaultChannel, ...channels]) {
      const root = channelRoot(channel);
      const inChannel = images.filter((i) => i.channels.includes(channel));
      // Client views differ only by images some client cannot use: without any, one rendering
      // serves them all (the usual store; it halves the work of a large index).
      const alike = inChannel.every((i) => clientViews.every((v) => visibleIn(v, i)));
      let shared: [string, RenderedDocument][] | undefined;
      for (const view of clientViews) {
        if (!shared || !alike) {
          const products = buildProducts(inChannel, aliases, artifactPath, { view, releaseNames: this.store.releaseNames });
          const index = buildIndex(products);
          shared = (await Promise.all([signedDocuments(root + indexPath, index, this.signer, signed, seen, signedIndexOf(index)), signedDocuments(root + productsPath, products, this.signer, signed, seen)])).flat();
        }
        for (const [path, doc] of shared) documents.get(view)!.set(path, doc);
      }
    }
    // What serves files: the published blobs, and which image a download of each counts for.
    const artifacts = new Map<string, BlobRef>();
    const downloads: Snapshot['downloads'] = new Map();
    const productKeys = new Map(images.map((i) => [i.fingerprint, productOf(i, this.store.releaseNames).key]));
    for (const image of images) {
      if (!image.public) continue;
      for (const blob of [image.metadata, ...(image.rootfs ? [image.rootfs] : []), ...image.deltas]) artifacts.set(blob.sha256, blob);
      const counted = { fingerprint: image.fingerprint, product: productKeys.get(image.fingerprint)!, createdAt: image.createdAt };
      for (const main of [image.rootfs ?? image.metadata, ...image.deltas]) {
        // Two images sharing a rootfs cannot be told apart by its download: the newer one counts it.
        const other = downloads.get(main.sha256);
        if (!other || other.createdAt < counted.createdAt) downloads.set(main.sha256, counted);
      }
    }
    // What simplestreams clients read goes out first; the LXD API's lists, the catalogue and the
    // names the catalogue's download counts may show follow once requests waiting meanwhile were
    // answered.
    this.snapshot = {
      ...this.snapshot,
      version,
      documents,
      channels,
      artifacts,
      downloads,
      views: new ViewIndex(views, tokens, images, aliases, { releaseNames: this.store.releaseNames, signer: this.signer, isPublic: (sha) => artifacts.has(sha) }),
    };
    await new Promise((resolve) => setImmediate(resolve));
    const audience = { publicImages: new Set<string>(), products: new Set<string>(), hidden: new Map<string, string>() };
    for (const image of images) {
      const product = productKeys.get(image.fingerprint)!;
      if (!image.public) {
        audience.hidden.set(image.fingerprint, product);
        continue;
      }
      audience.publicImages.add(image.fingerprint);
      audience.products.add(product);
    }
    this.snapshot = {
      ...this.snapshot,
      apiLists: renderApiLists(images, aliases),
      catalogue: this.renderCatalogue(images, aliases, channels),
      catalogued: new Map(
        [...Map.groupBy(images.filter((i) => i.public && i.channels.includes(defaultChannel)), (i) => productKeys.get(i.fingerprint)!)].map(([key, members]) => [key, members.map((i) => i.fingerprint)]),
      ),
      audience,
      audienceVersion: version,
    };
    const files = new Map<string, number>();
    for (const image of images) for (const blob of [image.metadata, ...(image.rootfs ? [image.rootfs] : []), ...image.deltas]) files.set(blob.sha256, blob.size);
    const publicImages = images.filter((i) => i.public).length;
    this.summary.images = { public: publicImages, private: images.length - publicImages };
    this.summary.stages = countStages(images);
    this.summary.storedBytes = [...files.values()].reduce((a, b) => a + b, 0);
    const ms = performance.now() - started;
    this.summary.renders++;
    this.summary.renderSeconds += ms / 1000;
    this.store.log.debug('index published', { images: images.length, ms: Math.round(ms) });
  }

  /**
   * Renders again when the store changes. A store that announces its changes (PostgreSQL) is
   * listened to, with a slow poll as a safety net; another is polled, which is one cheap PRAGMA
   * for SQLite, so it can run often: changes show within ~50 ms + render either way.
   */
  start(intervalMs = 50): void {
    const refresh = () => void this.refresh().catch((err: unknown) => this.store.log.error('index refresh failed', { err }));
    this.unwatch = this.store.meta.watch?.(refresh);
    this.timer = setInterval(refresh, this.unwatch ? watchedPollMs : intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.unwatch?.();
  }

  /** The image list of the LXD API, rendered at the last store change (refreshed first if stale). */
  async apiImageList(view: 'public' | 'all', recursion: boolean): Promise<Buffer> {
    // A store that cannot be reached (a database gone) leaves the list as last rendered: what was
    // published is served meanwhile.
    await this.refresh().catch((err: unknown) => this.store.log.warn('the image list is served as last rendered', { err }));
    if (this.snapshot.version === -1) await this.refresh();
    return this.snapshot.apiLists.get(`${view}:${recursion ? 'objects' : 'urls'}`)!;
  }

  document(path: string, view: ClientView = 'full'): RenderedDocument | undefined {
    return this.snapshot.documents.get(view)?.get(path);
  }

  /** The token (the whole `wvt_...` string) if it opens private view `view` now. */
  viewOpener(view: string, token: string): ViewToken | undefined {
    return this.snapshot.views.opener(view, token, new Date());
  }

  /** A document of a private view's index for this token, if rendered already (no wait). */
  renderedViewDocument(token: ViewToken, path: string, clientView: ClientView = 'full'): RenderedDocument | undefined {
    return this.snapshot.views.renderedDocument(token, clientView, path);
  }

  /** A document of a private view's index for this token, rendered now if need be. */
  viewDocument(token: ViewToken, path: string, clientView: ClientView = 'full'): Promise<RenderedDocument | undefined> {
    return this.snapshot.views.document(token, clientView, path);
  }

  /**
   * The file a private view's capability URL opens: one of the view's files, or one that left
   * the view and is still stored (a client may hold an older index), while the token that handed
   * the URL out opens files (live, or closed within the grace period).
   */
  async viewArtifact(view: string, capability: string, sha256: string): Promise<BlobRef | undefined> {
    const { blob, opens } = this.snapshot.views.artifact(view, capability, sha256, new Date(), this.store.graceSeconds * 1000);
    if (!opens) return undefined;
    return blob ?? (await this.store.meta.getBlob(sha256));
  }

  /**
   * The channel history of a product the catalogue shows (its public images), as a page may show
   * it: changes among public roots only, newest first; undefined for a product it does not show.
   */
  async productHistory(key: string): Promise<CatalogueChange[] | undefined> {
    const fingerprints = this.snapshot.catalogued.get(key);
    if (!fingerprints) return undefined;
    const shown = new Set([defaultChannel, ...this.snapshot.channels]);
    const changes = await Promise.all(fingerprints.map((fp) => this.store.meta.channelHistory(fp)));
    return publicHistory(changes.flat(), shown);
  }

  /** The catalogue page (`/`) or its products JSON, as last rendered. */
  catalogueDocument(path: string): RenderedDocument | undefined {
    return this.snapshot.catalogue.get(path);
  }

  /** What the catalogue's download counts may name, and the rendering it was taken from. */
  catalogueAudience(): { version: number; audience: CatalogueAudience } {
    return { version: this.snapshot.audienceVersion, audience: this.snapshot.audience };
  }

  /** The smallest file the index lists (what sites are checked with), if any. */
  smallestArtifact(): { path: string; sha256: string; size: number } | undefined {
    let smallest: BlobRef | undefined;
    for (const blob of this.snapshot.artifacts.values()) if (!smallest || blob.size < smallest.size) smallest = blob;
    return smallest && { path: artifactPath(smallest), sha256: smallest.sha256, size: smallest.size };
  }

  /** A blob that the index lists now (from memory). */
  publishedArtifact(sha256: string): BlobRef | undefined {
    return this.snapshot.artifacts.get(sha256);
  }

  /** Every blob the index lists now (from memory): what sites are sampled from. */
  publishedArtifacts(): Iterable<BlobRef> {
    return this.snapshot.artifacts.values();
  }

  /** The image a whole download of this published file counts for; none for metadata tarballs. */
  countedAs(sha256: string): Counted | undefined {
    return this.snapshot.downloads.get(sha256);
  }

  /**
   * A blob that the index lists, or listed recently enough that cached indexes may still name it
   * (the image was deleted or replaced). A blob an image still uses is not served once unlisted:
   * that image is private, which takes effect at once.
   */
  async artifact(sha256: string, now?: Date): Promise<BlobRef | undefined> {
    const published = this.publishedArtifact(sha256);
    if (published) return published;
    const record = await this.store.meta.getBlob(sha256);
    if (!record?.unpublishedAt || record.referenced) return undefined;
    // By the store's clock, which stamped the deletion: this host's may differ (a replica).
    return record.unpublishedAt > graceCutoff(this.store, now ?? (await this.store.meta.clock())) ? record : undefined;
  }
}

function countStages(images: Image[]): Record<StageState, number> {
  const counts = Object.fromEntries(stageStates.map((s) => [s, 0])) as Record<StageState, number>;
  for (const image of images) if (image.stage) counts[image.stage.state]++;
  return counts;
}
