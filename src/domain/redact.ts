/**
 * Secrets out of text that others read: a URL's user-info (`https://user:pass@host`, the way an
 * operator reaches a protected upstream, which Node sends as Basic auth) and the values of query
 * parameters that carry credentials (a one-time image `secret`, tokens, signed-URL signatures),
 * and the tokens of private views, which travel in a URL's path.
 *
 * Applied where text leaves the process (every log line, every HTTP error body, the CLI's error
 * messages) and where messages name a URL, so that no error answer, log line or listing shows
 * them, wherever the URL came from. Only the operator's own view of a remote shows it whole, and
 * only when asked (`remote list --show-secrets`).
 */

const hidden = 'REDACTED';

/** Query parameters whose value is a credential (compared case-insensitively). */
const secretParameters = [
  'secret',
  'token',
  'access_token',
  'auth',
  'password',
  'passwd',
  'key',
  'api_key',
  'apikey',
  'signature',
  'sig',
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'x-goog-signature',
  'x-goog-credential',
];

/**
 * `scheme://` then user-info up to the `@` that ends the authority: no `/`, `?`, `#` or
 * whitespace in between, nor what a URL never holds raw and ends one inside JSON (`"`, `\`, `<>`).
 */
const userInfo = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"<>\\]+@/gi;
const secretQuery = new RegExp(`([?&;](?:${secretParameters.map((p) => p.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')).join('|')})=)[^&#\\s"'<>\\\\]*`, 'gi');

/** A private view's or a push token (domain/view.ts, push-token.ts): its id stays, so a line still says which one. */
const viewToken = /(wvt|wpt)_([0-9a-f]{12})_[0-9a-f]{64}/g;

/** `text` with every URL's user-info, credential-carrying query value and view token replaced. */
export function redactSecrets(text: string): string {
  if (text.includes('wvt_') || text.includes('wpt_')) text = text.replace(viewToken, `$1_$2_${hidden}`);
  // Most text has neither: skip the replacements (a log line per request goes through here).
  if (!text.includes('@') && !text.includes('=')) return text;
  return text.replace(userInfo, `$1${hidden}@`).replace(secretQuery, `$1${hidden}`);
}

/** A URL without its user-info, for handing to someone else (a redirect's Location). */
export function withoutUserInfo(url: URL): URL {
  if (!url.username && !url.password) return url;
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy;
}
