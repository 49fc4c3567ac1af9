/** Secrets out of messages and logs: URL user-info and credential query parameters. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { redactSecrets, withoutUserInfo } from '../../src/domain/redact.ts';

test('user-info and credential parameters are replaced wherever a URL sits in the text', () => {
  assert.equal(redactSecrets('Cannot fetch https://bob:hunter2@images.example.org/streams/v1/index.json: HTTP 404'), 'Cannot fetch https://REDACTED@images.example.org/streams/v1/index.json: HTTP 404');
  assert.equal(redactSecrets('{"url":"http://token@10.0.0.1:8080/x"}'), '{"url":"http://REDACTED@10.0.0.1:8080/x"}');
  assert.equal(redactSecrets('/1.0/images/x/export?project=default&secret=abc&b=1'), '/1.0/images/x/export?project=default&secret=REDACTED&b=1');
  assert.equal(redactSecrets('https://s3.example/b/k?X-Amz-Signature=f00&X-Amz-Credential=AK%2F1&partNumber=2'), 'https://s3.example/b/k?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&partNumber=2');
  // Not credentials: an address in prose, a path with an @, a parameter that merely ends in "key".
  for (const plain of ['mail root@example.org', 'https://example.org/users/@me', 'https://example.org/?monkey=1', 'no url here']) assert.equal(redactSecrets(plain), plain);
});

test('no password survives, whatever its characters (property)', () => {
  const part = fc.stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=%-]{1,24}$/);
  fc.assert(
    fc.property(part, part, fc.constantFrom('http', 'https', 'git+ssh'), (user, password, scheme) => {
      const url = new URL(`${scheme}://host.example/p`);
      url.username = user;
      url.password = password;
      const text = `failed: ${url.href} (and "${url.href}")`;
      const out = redactSecrets(text);
      assert.ok(!out.includes(`${url.username}:${url.password}@`), out);
      assert.equal(out, `failed: ${scheme}://REDACTED@host.example/p (and "${scheme}://REDACTED@host.example/p")`);
    }),
  );
});

test('a URL handed to someone else loses its user-info, and nothing else', () => {
  assert.equal(withoutUserInfo(new URL('https://a:b@origin.example/streams/v1/index.json?x=1')).href, 'https://origin.example/streams/v1/index.json?x=1');
  const plain = new URL('https://origin.example/');
  assert.equal(withoutUserInfo(plain), plain);
});
