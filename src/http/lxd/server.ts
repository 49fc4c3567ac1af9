/** The server resource: `GET /` and `GET /1.0`, what a client reads first (trust, extensions). */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hostname } from 'node:os';
import type { Store } from '../../core/context.ts';
import { knownArchitectures } from '../../domain/architecture.ts';
import type { TlsIdentity } from '../../tls.ts';
import { viewerOf } from './caller.ts';
import { sync } from './envelope.ts';
import { wantsPage } from '../catalogue.ts';

export type PageHandler = (request: FastifyRequest, reply: FastifyReply) => FastifyReply;

/** What wharf implements of the API extensions the clients check. */
export const apiExtensions = ['etag', 'patch', 'image_create_aliases', 'image_types', 'images_expiry', 'image_profiles', 'api_filtering', 'certificate_token'];

export function serverRoutes(app: FastifyInstance, deps: { store: Store; tls: TlsIdentity; version: string; page?: PageHandler | undefined }) {
  // A browser gets the catalogue page; the clients, which never ask for HTML, the API root.
  app.get('/', async (request, reply) => (deps.page && wantsPage(request) ? deps.page(request, reply) : sync(reply, ['/1.0'])));

  app.get('/1.0', async (request, reply) => {
    const viewer = await viewerOf(deps.store, request);
    const base = { api_extensions: apiExtensions, api_status: 'stable', api_version: '1.0', auth_methods: ['tls'] };
    if (!viewer.trusted) return sync(reply, { ...base, auth: 'untrusted', public: false });
    return sync(reply, {
      ...base,
      auth: 'trusted',
      public: false,
      config: {},
      environment: {
        architectures: ['x86_64', 'i686'].filter((a) => knownArchitectures.includes(a)),
        certificate: deps.tls.cert,
        certificate_fingerprint: deps.tls.fingerprint,
        driver: '',
        driver_version: '',
        firewall: '',
        kernel: process.platform,
        kernel_architecture: process.arch === 'x64' ? 'x86_64' : process.arch,
        kernel_version: '',
        server: 'wharf',
        server_pid: process.pid,
        server_version: deps.version,
        server_clustered: false,
        server_name: hostname(),
        project: 'default',
        storage: '',
        storage_version: '',
      },
    });
  });
}
