/** Output formats shared by every listing command: table, csv, json, yaml. */
import { AppError, ErrorCodes } from '../errors.ts';
export { humanSize } from '../domain/size.ts';

export type Format = 'table' | 'csv' | 'json' | 'yaml';
export const formats: Format[] = ['table', 'csv', 'json', 'yaml'];

export function checkFormat(value: string): Format {
  if (!(formats as string[]).includes(value)) {
    throw new AppError(ErrorCodes.invalidArgument, `Invalid format "${value}"`, { hint: `Use one of ${formats.join(', ')}.` });
  }
  return value as Format;
}

/**
 * Renders rows: `columns` for table/csv, `data` (the full objects) for json/yaml. The YAML
 * library is loaded only for yaml: it is a good part of a listing's start-up time.
 */
export async function render(format: Format, columns: string[], rows: string[][], data: unknown): Promise<string> {
  switch (format) {
    case 'json':
      return JSON.stringify(data) + '\n';
    case 'yaml':
      return (await import('yaml')).stringify(data);
    case 'csv':
      return rows.map((r) => r.map(csvCell).join(',')).join('\n') + (rows.length ? '\n' : '');
    case 'table':
      return table(columns, rows);
  }
}

function csvCell(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * What a terminal acts on instead of showing: C0 and C1 controls and DEL (escape sequences
 * recolour, move the cursor, rewrite what was printed, retitle the window), and the bidirectional
 * formatting characters, which reorder what is shown around them.
 */
const terminalControls = /[\p{Cc}\p{Bidi_Control}]/gu;

/**
 * `text` for a terminal: each control written as an escape that shows (`\x1b`, `\u202e`).
 * Listings print what other servers and image builders wrote (paths, properties, names).
 */
export function escapeTerminalControls(text: string): string {
  return text.replace(terminalControls, (c) => {
    const code = c.codePointAt(0)!;
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * The boxed table lxc prints. Cells may hold several lines; within a line, controls are escaped
 * (escapeTerminalControls): a table is for people at a terminal, while csv, json and yaml hand
 * the data on exactly (json and yaml write ESC and the other C0 controls as escapes of their own).
 */
export function table(columns: string[], rows: string[][]): string {
  const split = [columns, ...rows].map((r) => columns.map((_, i) => (r[i] ?? '').split('\n').map(escapeTerminalControls)));
  const widths = columns.map((_, i) => Math.max(...split.map((r) => Math.max(...r[i]!.map((l) => l.length)))));
  const rule = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+\n';
  const line = (cells: string[][]) => {
    const height = Math.max(1, ...cells.map((c) => c.length));
    let out = '';
    for (let l = 0; l < height; l++) {
      out += '|' + cells.map((c, i) => ` ${(c[l] ?? '').padEnd(widths[i]!)} `).join('|') + '|\n';
    }
    return out;
  };
  return rule + split.map((r) => line(r) + rule).join('');
}


/** English month abbreviations, as Go's time format (and so lxc) writes them whatever the locale. */
const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * "Nov 22, 2026 at 7:42am (UTC)", as lxc shows dates. (Not toLocaleString: it costs ~0.1 ms a
 * call, most of the time `image list` took on 1,000 images.)
 */
export function humanDate(iso: string | null): string {
  if (!iso || iso.startsWith('0001-') || iso.startsWith('1970-01-01T00:00:00')) return 'never';
  const d = new Date(iso);
  const month = months[d.getUTCMonth()];
  const h = d.getUTCHours();
  return `${month} ${d.getUTCDate()}, ${d.getUTCFullYear()} at ${h % 12 || 12}:${String(d.getUTCMinutes()).padStart(2, '0')}${h < 12 ? 'am' : 'pm'} (UTC)`;
}

/** For repeatable options (--alias a --alias b): commander's argParser that gathers them. */
export const collect = (value: string, previous: string[]) => [...previous, value];
