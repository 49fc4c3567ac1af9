/**
 * `wharf image edit`: the image as YAML, through $EDITOR or stdin. In its own module so that
 * only `image edit` loads the YAML library for it; what may change, and how, is
 * core/images.ts `imageEditFrom`, the same rules as a PUT over the LXD API.
 */
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { AppError, ErrorCodes } from '../errors.ts';
import type { ApiImage } from '../domain/lxd-api.ts';
import type { CliIo } from './io.ts';

/** The edited image, parsed: from $EDITOR when stdin is a terminal, else from stdin. */
export async function editedDocument(shown: ApiImage, io: CliIo): Promise<unknown> {
  const text = io.stdin.isTTY ? await editInEditor(stringify(shown), io.env) : await readAll(io.stdin);
  try {
    return parse(text) ?? {};
  } catch (err) {
    throw new AppError(ErrorCodes.invalidArgument, `Invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}

async function readAll(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function editInEditor(text: string, env: NodeJS.ProcessEnv): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-edit-'));
  const file = join(dir, 'image.yaml');
  try {
    await writeFile(file, text);
    const editor = env.VISUAL || env.EDITOR || 'vi';
    const result = spawnSync('sh', ['-c', `${editor} "$1"`, 'editor', file], { stdio: 'inherit', env });
    if (result.status !== 0) throw new AppError(ErrorCodes.invalidArgument, `The editor exited with status ${result.status}; nothing changed`);
    return await readFile(file, 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
