// Quoting for the commands the catalogue copies: aliases come from whoever named an image, and
// the address from the browser's location bar, so a word like `x;id` must reach the shell as
// one word, not as a second command. A module of its own so that the tests can import it too.

/** Characters no POSIX shell (nor bash or zsh) gives a meaning to anywhere in a word. */
const plain = /^[A-Za-z0-9_@%+:,./-]+$/;

/** `word` as one word of a shell command line: unchanged when that is safe, else single-quoted. */
export function shellQuote(word) {
  // Inside single quotes every character stands for itself; a quote closes, is escaped, reopens.
  return plain.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
