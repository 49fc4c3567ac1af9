/**
 * Preconditions. If-None-Match (RFC 9110 13.1.2), for every route that answers 304: `*`, or a comma-separated
 * list of entity tags compared weakly (`W/"x"` and `"x"` name the same representation, as a
 * cache revalidating a weak copy sends it). A header that does not parse names nothing, so the
 * answer is the full one, which is never wrong.
 */

/** The opaque tag of an entity tag: `W/"x"` and `"x"` give `x`; undefined if it is not one. */
function opaqueTag(etag: string): string | undefined {
  const m = /^(?:W\/)?"([^"]*)"$/.exec(etag);
  return m?.[1];
}

/** The entity tags of a list, in order; undefined when the list does not parse. */
function entityTags(list: string): { tag: string; weak: boolean }[] | undefined {
  const tags: { tag: string; weak: boolean }[] = [];
  const element = /[\t ]*(W\/)?"([^"]*)"[\t ]*(?:,|$)|[\t ]*,/y;
  element.lastIndex = 0;
  while (element.lastIndex < list.length) {
    const m = element.exec(list);
    if (!m) return undefined;
    if (m[2] !== undefined) tags.push({ tag: m[2], weak: m[1] !== undefined });
  }
  return tags;
}

/** A header given several times, as the one list of its values it stands for (RFC 9110 5.3). */
export function joinedHeader(value: string | string[]): string;
export function joinedHeader(value: string | string[] | undefined): string | undefined;
export function joinedHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Does an If-None-Match header name the representation tagged `etag` (answer 304)? */
export function noneMatch(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const value = joinedHeader(header);
  if (value === etag) return true;
  if (value.trim() === '*') return true;
  const own = opaqueTag(etag);
  return own !== undefined && (entityTags(value)?.some((t) => t.tag === own) ?? false);
}

/**
 * Does an If-Match header (RFC 9110 13.1.1) let an edit change the representation tagged
 * `etag`? Absent or `*`: yes; else one of its tags must match strongly (a weak `W/` tag never
 * does). A bare unquoted tag is also taken, as incusd strips the quotes it finds.
 */
export function ifMatchAllows(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return true;
  const value = joinedHeader(header).trim();
  const own = opaqueTag(etag);
  if (value === '*' || value === etag || value === own) return true;
  return own !== undefined && (entityTags(value)?.some((t) => !t.weak && t.tag === own) ?? false);
}
