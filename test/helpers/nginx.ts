/**
 * nginx serving a directory over plain HTTP on loopback: a foreign static upstream. JSON goes
 * out gzipped to clients that ask for it, as a public image server is commonly set up.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './env.ts';

export async function startNginx(t: { after(fn: () => Promise<void>): void }, root: string, work: string): Promise<string> {
  const port = await freePort();
  const prefix = join(work, 'nginx');
  await mkdir(join(prefix, 'logs'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  await writeFile(
    conf,
    `daemon off; worker_processes 1; ${process.getuid?.() === 0 ? "user root;" : ""} pid ${prefix}/nginx.pid; error_log ${prefix}/logs/error.log;
events { worker_connections 64; }
http { access_log off; sendfile on; types { application/json json; } gzip on; gzip_types application/json;
  default_type application/octet-stream;
  server { listen 127.0.0.1:${port}; root ${root}; } }\n`,
  );
  const nginx = spawn('nginx', ['-p', prefix, '-c', conf], { stdio: 'ignore' });
  t.after(async () => {
    nginx.kill('SIGQUIT');
    await new Promise((r) => nginx.once('close', r));
  });
  for (let i = 0; i < 100; i++) {
    if (spawnSync('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]).status === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return `http://127.0.0.1:${port}`;
}
