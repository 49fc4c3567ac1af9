/**
 * Firefox (Debian package firefox-esr, headless) visiting wharf's catalogue is not asked for a
 * client certificate: its ClientHello offers no GREASE, so wharf tells it apart by the
 * delegated_credentials extension (src/http/client-hello.ts). Seen in Firefox's own log of its
 * TLS layer (MOZ_LOG pipnss), which names each certificate request it gets; a server that asks is
 * seen asking by the same probe, so a quiet log is not a probe that saw nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer } from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { serve, tempDir } from '../helpers/env.ts';

const firefoxPath = '/usr/bin/firefox-esr';

/**
 * How many certificate requests Firefox met connecting to `url` (it need not trust the server).
 * NSS hands a request to Firefox before it verifies the server's certificate (both in one server
 * flight), so once a verification has started the log holds every request of that handshake.
 */
async function certificateRequestsSeen(t: { after(fn: () => Promise<void>): void }, url: string): Promise<number> {
  assert.ok(existsSync(firefoxPath), 'Firefox is installed (Debian package firefox-esr; scripts/test.sh installs it)');
  const home = await tempDir(t);
  const log = join(home, 'tls.log');
  // sync: written line by line, so that what is read below is all there is.
  const firefox = spawn(firefoxPath, ['--headless', '--screenshot', join(home, 'page.png'), url], {
    env: { ...process.env, HOME: home, MOZ_LOG: 'sync,pipnss:5', MOZ_LOG_FILE: log },
    stdio: 'ignore',
  });
  const exited = once(firefox, 'exit');
  try {
    // Firefox adds .moz_log to the name; the file is there once it has logged.
    const lines = async () => (await readFile(log + '.moz_log', 'utf8').catch(() => '')).split('\n');
    for (let waited = 0; !(await lines()).some((line) => line.includes('SSLServerCertVerificationJob::Run')); waited += 100) {
      assert.ok(waited < 60_000, 'Firefox verified no server certificate within 60 s');
      await sleep(100);
    }
    return (await lines()).filter((line) => line.includes('SSLGetClientAuthDataHook')).length;
  } finally {
    firefox.kill('SIGKILL');
    await exited;
  }
}

test('Firefox is not asked for a client certificate by wharf; a server that asks is seen asking', async (t) => {
  const server = await serve(t, await tempDir(t), { processes: 1 });
  assert.equal(await certificateRequestsSeen(t, server.base + '/'), 0, 'wharf asked Firefox for a certificate');

  const identity = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec' });
  const asking = createServer({ cert: identity.cert, key: identity.private, requestCert: true, rejectUnauthorized: false }, (_req, res) => res.end('ok'));
  asking.listen(0, '127.0.0.1');
  await once(asking, 'listening');
  t.after(() => new Promise<void>((resolve) => asking.close(() => resolve())));
  assert.ok((await certificateRequestsSeen(t, `https://127.0.0.1:${(asking.address() as AddressInfo).port}/`)) > 0, 'the probe sees a request');
});
