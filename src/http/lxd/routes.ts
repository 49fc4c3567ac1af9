/**
 * The LXD/Incus REST view of the store: the image endpoints a public remote answers, plus what
 * trusted clients use. Routes and envelopes follow what a real LXD 5.0 daemon answers. One
 * module per resource; routes throw AppError for every refusal, and the application's error
 * handler (`../errors.ts`) renders LXD's error envelope.
 */
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../core/context.ts';
import type { IndexPublisher } from '../../core/publish.ts';
import type { DownloadCounter } from '../../core/usage.ts';
import { PushGrants, type ImageSecrets } from '../../core/secrets.ts';
import { notFound } from '../../errors.ts';
import type { GrantStore } from '../../meta/grants.ts';
import type { TlsIdentity } from '../../tls.ts';
import { aliasRoutes } from './aliases.ts';
import type { Query } from './caller.ts';
import { certificateRoutes } from './certificates.ts';
import { imageCreateRoutes } from './image-create.ts';
import { imageExportRoutes } from './image-export.ts';
import { imageRoutes } from './images.ts';
import { Operations, operationRoutes } from './operations.ts';
import { serverRoutes, type PageHandler } from './server.ts';

export interface LxdDeps {
  store: Store;
  secrets: ImageSecrets;
  grants: GrantStore;
  tls: TlsIdentity;
  version: string;
  maxUploadSize: number;
  publisher: IndexPublisher;
  downloads: DownloadCounter | undefined;
  /** The catalogue page, for browsers asking for `/`. */
  page?: PageHandler | undefined;
}

export function lxdRoutes(app: FastifyInstance, deps: LxdDeps) {
  const { store, secrets } = deps;
  const operations = new Operations(deps.grants);

  // Only the default project exists; a client that asks for another gets what LXD says.
  app.addHook('preHandler', async (request) => {
    const project = (request.query as Query).project;
    if (request.url.startsWith('/1.0') && project && project !== 'default') throw notFound('Project not found');
  });

  serverRoutes(app, { store, tls: deps.tls, version: deps.version, page: deps.page });
  imageRoutes(app, { store, secrets, operations, publisher: deps.publisher });
  imageExportRoutes(app, { store, secrets, downloads: deps.downloads });
  imageCreateRoutes(app, { store, operations, pushGrants: new PushGrants(deps.grants), maxUploadSize: deps.maxUploadSize });
  aliasRoutes(app, { store });
  operationRoutes(app, { store, operations });
  certificateRoutes(app, { store });
}
