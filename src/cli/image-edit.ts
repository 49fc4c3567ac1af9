/**
 * `wharf image edit`: the image as YAML, through $EDITOR or stdin, checked against what was
 * shown. In its own module so that only `image edit` loads the YAML library for it.
 */
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { AppError, ErrorCodes } from '../errors.ts';
import type { toApiImage } from '../domain/lxd-api.ts';

/** The edited YAML: from $EDITOR on a terminal, else from stdin. */
export async function editedText(shown: ReturnType<typeof toApiImage>): Promise<string> {
  return process.stdin.isTTY ? await editInEditor(stringify(shown)) : await readStdin();
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function editInEditor(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-edit-'));
  const file = join(dir, 'image.yaml');
  try {
    await writeFile(file, text);
    const editor = process.env.VISUAL || process.env.EDITOR || 'vi';
    const result = spawnSync('sh', ['-c', `${editor} "$1"`, 'editor', file], { stdio: 'inherit' });
    if (result.status !== 0) throw new AppError(ErrorCodes.invalidArgument, `The editor exited with status ${result.status}; nothing changed`);
    return await readFile(file, 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const readOnly = ['fingerprint', 'architecture', 'created_at', 'type', 'size', 'filename', 'uploaded_at'] as const;

/** Checks an edited YAML against what was shown: only the editable fields may differ. */
export function parseEdit(text: string, shown: ReturnType<typeof toApiImage>) {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) ?? {};
  } catch (err) {
    throw new AppError(ErrorCodes.invalidArgument, `Invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new AppError(ErrorCodes.invalidArgument, 'The image must be a YAML mapping');
  for (const key of readOnly) {
    if (key in doc && String(doc[key]) !== String(shown[key])) {
      throw new AppError(ErrorCodes.invalidArgument, `${key} cannot be changed`, { hint: 'Editable: properties, public, expires_at, auto_update.' });
    }
  }
  const edit: { properties?: Record<string, string>; public?: boolean; expiresAt?: string | null; autoUpdate?: boolean } = {};
  if ('properties' in doc) {
    const props = doc.properties ?? {};
    if (typeof props !== 'object' || Array.isArray(props)) throw new AppError(ErrorCodes.invalidArgument, 'properties must be a mapping');
    edit.properties = Object.fromEntries(Object.entries(props as object).map(([k, v]) => [k, String(v)]));
  }
  if ('public' in doc) {
    if (typeof doc.public !== 'boolean') throw new AppError(ErrorCodes.invalidArgument, 'public must be true or false');
    edit.public = doc.public;
  }
  if ('auto_update' in doc) {
    if (typeof doc.auto_update !== 'boolean') throw new AppError(ErrorCodes.invalidArgument, 'auto_update must be true or false');
    edit.autoUpdate = doc.auto_update;
  }
  if ('expires_at' in doc) {
    const raw = doc.expires_at instanceof Date ? doc.expires_at.toISOString() : String(doc.expires_at ?? '');
    if (!raw || raw.startsWith('0001-01-01')) edit.expiresAt = null;
    else if (Number.isNaN(Date.parse(raw))) throw new AppError(ErrorCodes.invalidArgument, `expires_at: "${raw}" is not a date`);
    else edit.expiresAt = new Date(raw).toISOString();
  }
  return edit;
}
