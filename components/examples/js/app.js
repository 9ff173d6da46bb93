// slugify-js: turn text into a URL slug, dropping the stop words of its
// `stop-words` configuration, and count its calls in kv.
//
// Input {"text": "..."}; output {"slug": "...", "calls": n}. Words are runs
// of ASCII letters and digits and of non-ASCII characters (kept as they
// are); ASCII letters are lower-cased; words are joined with "-". No word
// left: the tool error `empty-slug`. A refused capability: the tool error
// named after the refusal (`denied`, ...).
//
// Build: `arw build` (runs componentize-js against ./wit, world tool).

import { get as configGet } from 'arw:host/config@0.2.0';
import { get as kvGet, set as kvSet } from 'arw:host/kv@0.2.0';

const NAME = 'slugify-js';
const INPUT_SCHEMA = '{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false}';
const OUTPUT_SCHEMA = '{"type":"object","properties":{"slug":{"type":"string"},"calls":{"type":"integer"}},"required":["slug","calls"]}';

// An err result is returned by throwing its payload.
function fail(code, message) {
  return { code, message };
}

// A capability error (thrown by an import, with `payload` = {tag, val}) as
// the tool error named after its case.
function capability(error) {
  const payload = error && error.payload ? error.payload : error;
  if (payload && typeof payload.tag === 'string') {
    return fail(payload.tag, String(payload.val));
  }
  return fail('unavailable', String(error));
}

// Lower-case ASCII letters only, as every language's version does.
const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

const isWordChar = (c) => /[A-Za-z0-9]/.test(c) || c.codePointAt(0) > 0x7f;

function slugify(text, stop) {
  const words = [];
  let word = '';
  for (const c of text + ' ') {
    if (isWordChar(c)) {
      word += c.codePointAt(0) < 0x80 ? c.toLowerCase() : c;
    } else if (word) {
      if (!stop.includes(word)) words.push(word);
      word = '';
    }
  }
  return words.join('-');
}

export const toolHandler = {
  describe() {
    return {
      name: NAME,
      version: '0.1.0',
      summary: 'Turn text into a URL slug, without the configured stop words',
      inputSchema: INPUT_SCHEMA,
      outputSchema: OUTPUT_SCHEMA,
    };
  },

  invoke(input) {
    let text;
    try {
      text = JSON.parse(input).text;
    } catch (e) {
      throw fail('invalid-input', String(e));
    }
    if (typeof text !== 'string') throw fail('invalid-input', '`text` must be a string');
    let stop, calls;
    try {
      stop = (configGet('stop-words') ?? '')
        .split(',')
        .map((w) => asciiLower(w.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '')))
        .filter((w) => w.length > 0);
      const stored = kvGet(NAME, 'calls');
      calls = (stored ? parseInt(new TextDecoder().decode(stored), 10) || 0 : 0) + 1;
      kvSet(NAME, 'calls', new TextEncoder().encode(String(calls)));
    } catch (e) {
      throw capability(e);
    }
    const slug = slugify(text, stop);
    if (!slug) throw fail('empty-slug', 'nothing to slugify: no letters or digits outside the stop words');
    return JSON.stringify({ slug, calls });
  },
};
