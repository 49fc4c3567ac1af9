/** The certificates resource: joining with a token (`POST /1.0/certificates`), and the list. */
import type { FastifyInstance } from 'fastify';
import type { Store } from '../../core/context.ts';
import { isTrusted, joinWithSecret } from '../../core/trust.ts';
import { certificateFingerprint } from '../../domain/fingerprint.ts';
import { clientCertificate, notAuthorized, requireTrusted } from './caller.ts';
import { sync } from './envelope.ts';
import { certificatesPostBody, validBody } from './schemas.ts';

export function certificateRoutes(app: FastifyInstance, deps: { store: Store }) {
  const { store } = deps;

  app.post('/1.0/certificates', { schema: { body: certificatesPostBody }, attachValidation: true }, async (request, reply) => {
    const cert = clientCertificate(request);
    if (cert && (await isTrusted(store, certificateFingerprint(cert)))) return sync(reply, {});
    const body = validBody<{ password?: string; trust_token?: string; name?: string }>(request);
    const presented = body.trust_token || body.password;
    if (!presented) throw notAuthorized();
    await joinWithSecret(store, presented, cert);
    return sync(reply, {});
  });

  app.get('/1.0/certificates', async (request, reply) => {
    await requireTrusted(store, request);
    const certs = await store.meta.listCertificates();
    return sync(reply, certs.map((c) => `/1.0/certificates/${c.fingerprint}`));
  });
}
