/**
 * The private views as one rendering of the store publishes them (core/publish.ts): each view's
 * selection, and every token, live or not (a closed token's file URLs stay open for the grace
 * period). A view's index differs per token, as its private files are capabilities of the token
 * (domain/view.ts), so a token's documents are rendered on its first request and kept until the
 * store changes; the HTTP layer only asks.
 */
import { buildIndex, buildProducts, indexPath, productsPath, type ClientView } from '../domain/simplestreams.ts';
import type { Alias, BlobRef, Image } from '../domain/image.ts';
import type { ReleaseNames } from '../domain/release-names.ts';
import { capabilityMatches, capabilityTokenId, parseToken, secretMatches, tokenOpensArtifacts, tokenOpensView, viewArtifactPath, viewSelects, type View, type ViewToken } from '../domain/view.ts';
import type { RenderedDocument, Renderings } from '../web/rendered.ts';
import { signedDocuments, signedIndexOf, type IndexSigner, type SignatureCache } from './signed-documents.ts';

interface PublishedView {
  view: View;
  images: Image[];
  /** The files of its images, by sha256. */
  files: Map<string, BlobRef>;
}

export interface ViewIndexOptions {
  releaseNames: ReleaseNames;
  signer: IndexSigner | undefined;
  /** Whether a file is public: served at the server's own /files/ (and steered). */
  isPublic: (sha256: string) => boolean;
}

export class ViewIndex {
  private readonly views = new Map<string, PublishedView>();
  private readonly tokens = new Map<string, ViewToken>();
  private readonly aliases: Alias[];
  private readonly options: ViewIndexOptions;
  /** `TOKEN-ID CLIENT-VIEW` -> path -> document; rendered on first use. */
  private readonly rendered = new Map<string, Map<string, RenderedDocument>>();
  private readonly rendering = new Map<string, Promise<Map<string, RenderedDocument>>>();

  constructor(views: View[], tokens: ViewToken[], images: Image[], aliases: Alias[], options: ViewIndexOptions) {
    this.aliases = aliases;
    this.options = options;
    for (const view of views) {
      const selected = images.filter((i) => viewSelects(view, i));
      const files = new Map<string, BlobRef>();
      for (const image of selected) for (const blob of [image.metadata, ...(image.rootfs ? [image.rootfs] : []), ...image.deltas]) files.set(blob.sha256, blob);
      this.views.set(view.name, { view, images: selected, files });
    }
    for (const token of tokens) this.tokens.set(token.id, token);
  }

  /** The token record `token` (the whole `wvt_...` string) is, if it opens `view` now. */
  opener(view: string, token: string, now: Date): ViewToken | undefined {
    const parsed = parseToken(token);
    const record = parsed && this.tokens.get(parsed.id);
    if (!parsed || !record || record.view !== view || !this.views.has(view)) return undefined;
    return secretMatches(record, parsed.secret) && tokenOpensView(record, now) ? record : undefined;
  }

  /** A document of the token's index (`streams/v1/images.json`...), if already rendered. */
  renderedDocument(token: ViewToken, clientView: ClientView, path: string): RenderedDocument | undefined {
    return this.rendered.get(`${token.id} ${clientView}`)?.get(path);
  }

  /** A document of the token's index, rendered now if it was not yet. */
  async document(token: ViewToken, clientView: ClientView, path: string): Promise<RenderedDocument | undefined> {
    const key = `${token.id} ${clientView}`;
    const known = this.rendered.get(key);
    if (known) return known.get(path);
    let pending = this.rendering.get(key);
    if (!pending) {
      pending = this.render(token, clientView);
      this.rendering.set(key, pending);
      pending.then((docs) => this.rendered.set(key, docs)).finally(() => this.rendering.delete(key)).catch(() => {});
    }
    return (await pending).get(path);
  }

  private async render(token: ViewToken, clientView: ClientView): Promise<Map<string, RenderedDocument>> {
    const published = this.views.get(token.view)!;
    const { releaseNames, signer, isPublic } = this.options;
    const products = buildProducts(published.images, this.aliases, viewArtifactPath(token, isPublic), { view: clientView, releaseNames, includePrivate: true });
    const index = buildIndex(products);
    const signed: SignatureCache = new Map();
    const seen: Renderings = new Map();
    const docs = await Promise.all([signedDocuments(indexPath, index, signer, signed, seen, signedIndexOf(index)), signedDocuments(productsPath, products, signer, signed, seen)]);
    return new Map(docs.flat());
  }

  /**
   * The file a capability URL (`/views/VIEW/files/CAPABILITY/SHA.EXT`) opens: one of the view's
   * files, by a token that is live or closed less than `graceMs` ago. A file that left the view is
   * `stillStored`'s to say (the caller asks the store), so a client holding an older index gets it
   * for as long as the token opens files.
   */
  artifact(view: string, capability: string, sha256: string, now: Date, graceMs: number): { blob: BlobRef | undefined; opens: boolean } {
    const id = capabilityTokenId(capability);
    const token = id === undefined ? undefined : this.tokens.get(id);
    const opens = token !== undefined && token.view === view && capabilityMatches(token, sha256, capability) && tokenOpensArtifacts(token, now, graceMs);
    return { blob: opens ? this.views.get(view)?.files.get(sha256) : undefined, opens };
  }
}
