/** The types of shell-quote.js, a browser module that the tests import as well. */
export function shellQuote(word: string): string;
