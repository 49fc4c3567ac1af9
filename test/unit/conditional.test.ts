/** If-None-Match as a list: weak comparison, `*`, and headers that do not parse. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { noneMatch } from '../../src/http/conditional.ts';

const etag = '"abc123"';

test('If-None-Match: the tag, in a list, weak or strong, or *', () => {
  const hits = ['"abc123"', 'W/"abc123"', '"x", "abc123"', '"x","abc123"', 'W/"x" , W/"abc123" ', '  "abc123"  ', ',"abc123",', '*', ' * ', '"a,b", "abc123"'];
  for (const header of hits) assert.equal(noneMatch(header, etag), true, header);
  assert.equal(noneMatch(['"x"', 'W/"abc123"'], etag), true, 'repeated headers');
  assert.equal(noneMatch('"abc123"', 'W/"abc123"'), true, 'a weak tag of ours compares weakly too');
  const misses = [undefined, '', '"x"', 'abc123', '"abc12"', '"abc1234"', '"x" "abc123"', 'w/"abc123"', 'W/ "abc123"', '"abc123', '*, "x"', '"x", *', '""', '"ABC123"'];
  for (const header of misses) assert.equal(noneMatch(header, etag), false, String(header));
});

test('If-None-Match: any header gives an answer, and a listed tag is always found', () => {
  const tag = fc.stringMatching(/^[!#-~]{0,12}$/).map((t) => `"${t}"`);
  const element = fc.tuple(fc.boolean(), tag).map(([weak, t]) => (weak ? `W/${t}` : t));
  const sep = fc.constantFrom(',', ', ', ' ,', ' , ', ',\t');
  fc.assert(
    fc.property(fc.array(element, { maxLength: 5 }), element, fc.nat({ max: 5 }), sep, (others, own, at, comma) => {
      const list = [...others];
      list.splice(Math.min(at, list.length), 0, own);
      const opaque = own.replace(/^W\//, '');
      assert.equal(noneMatch(list.join(comma), opaque), true, `${list.join(comma)} names ${opaque}`);
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.string(), (header) => {
      assert.equal(typeof noneMatch(header, etag), 'boolean');
    }),
    { numRuns: 300 },
  );
});
