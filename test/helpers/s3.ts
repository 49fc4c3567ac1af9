/**
 * A real S3-compatible engine for tests: OpenStack Swift with s3api (scripts/s3-engine-start.sh),
 * the one `WHARF_TEST_S3` names (scripts/test.sh starts it for the whole run: its env file), or
 * else one started here and stopped when the process exits. Each caller gets a bucket of its own.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort, repoRoot } from './env.ts';

let engine: Promise<Record<string, string>> | undefined;

function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

async function start(): Promise<Record<string, string>> {
  if (process.env.WHARF_TEST_S3) return parseEnv(readFileSync(process.env.WHARF_TEST_S3, 'utf8'));
  const base = join('/tmp', `wharf-s3-${process.pid}`);
  const [s3, object, container, account, memcached] = await Promise.all([1, 2, 3, 4, 5].map(() => freePort()));
  const ports = { S3_PORT: String(s3), SWIFT_OBJECT_PORT: String(object), SWIFT_CONTAINER_PORT: String(container), SWIFT_ACCOUNT_PORT: String(account), MEMCACHED_PORT: String(memcached) };
  execFileSync('bash', [join(repoRoot, 'scripts', 's3-engine-start.sh')], { env: { ...process.env, S3_BASE: base, ...ports }, stdio: ['ignore', 'ignore', 'inherit'] });
  const stop = () => void spawnSync('bash', [join(repoRoot, 'scripts', 's3-engine-stop.sh')], { env: { ...process.env, S3_BASE: base, S3_WIPE: '1' } });
  process.once('exit', stop);
  // A test file the runner stops (its timeout) must not leave the engine running.
  process.once('SIGTERM', () => {
    stop();
    process.exit(143);
  });
  return parseEnv(readFileSync(join(base, 'env'), 'utf8'));
}

/** The AWS environment of the engine, and a blob_store URL of a new bucket (made by wharf). */
export async function s3Bucket(): Promise<{ env: Record<string, string>; url: string }> {
  const started = await (engine ??= start());
  return {
    env: {
      AWS_ENDPOINT_URL_S3: started.S3_ENDPOINT!,
      AWS_REGION: started.S3_REGION!,
      AWS_ACCESS_KEY_ID: started.S3_ACCESS_KEY_ID!,
      AWS_SECRET_ACCESS_KEY: started.S3_SECRET_ACCESS_KEY!,
    },
    url: `s3://wharf-${randomBytes(5).toString('hex')}/blobs`,
  };
}

/** Sets the engine's AWS environment in this process (in-process drivers read it, as the SDK does). */
export async function useS3(): Promise<string> {
  const { env, url } = await s3Bucket();
  Object.assign(process.env, env);
  return url;
}
