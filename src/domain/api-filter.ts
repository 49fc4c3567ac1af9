/**
 * The `filter=` language of the LXD API (doc/rest-api.md "Filtering"), the subset clients send:
 * `FIELD eq|ne VALUE` terms joined with `and`/`or`, each optionally preceded by `not`. FIELD is a
 * top-level field of the JSON object or `properties.KEY`. `and` binds tighter than `or`.
 */
import { AppError, ErrorCodes } from '../errors.ts';

type Term = { field: string; op: 'eq' | 'ne'; value: string; negate: boolean };
export type Filter = Term[][]; // OR of ANDs

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const re = /\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|(\S+))/g;
  for (let m = re.exec(text); m; m = re.exec(text)) tokens.push(m[1] ?? m[2] ?? m[3]!);
  return tokens;
}

export function parseFilter(text: string): Filter {
  const tokens = tokenize(text.trim());
  const bad = (why: string) => new AppError(ErrorCodes.invalidArgument, `Invalid filter "${text}": ${why}`);
  const groups: Filter = [[]];
  let i = 0;
  while (i < tokens.length) {
    let negate = false;
    while (tokens[i]?.toLowerCase() === 'not') {
      negate = !negate;
      i++;
    }
    const [field, op, value] = [tokens[i], tokens[i + 1]?.toLowerCase(), tokens[i + 2]];
    if (field === undefined || value === undefined || (op !== 'eq' && op !== 'ne')) throw bad('expected FIELD eq|ne VALUE');
    groups[groups.length - 1]!.push({ field, op, value, negate });
    i += 3;
    const joiner = tokens[i]?.toLowerCase();
    if (joiner === undefined) break;
    if (joiner === 'or') groups.push([]);
    else if (joiner !== 'and') throw bad(`unexpected "${tokens[i]}"`);
    i++;
    if (i >= tokens.length) throw bad('dangling operator');
  }
  return groups.filter((g) => g.length > 0);
}

function fieldValue(object: Record<string, unknown>, field: string): string | undefined {
  let value: unknown = object;
  for (const part of field.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  if (value === undefined || value === null) return undefined;
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

export function matchesApiFilter(filter: Filter, object: object): boolean {
  if (filter.length === 0) return true;
  return filter.some((group) =>
    group.every((term) => {
      const actual = fieldValue(object as Record<string, unknown>, term.field);
      const equal = actual !== undefined && actual.toLowerCase() === term.value.toLowerCase();
      return (term.op === 'eq' ? equal : !equal) !== term.negate;
    }),
  );
}
