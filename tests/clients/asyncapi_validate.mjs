// Parse and validate an AsyncAPI document with the official parser
// (@asyncapi/parser). Usage: node asyncapi_validate.mjs FILE
// Exits 1 with the diagnostics if the document has any error.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.ARW_NODE_MODULES ? `${process.env.ARW_NODE_MODULES}/` : import.meta.url);
const { Parser } = require('@asyncapi/parser');

const text = readFileSync(process.argv[2], 'utf8');
const { document, diagnostics } = await new Parser().parse(text);
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  console.log(`${['error', 'warning', 'info', 'hint'][d.severity] ?? d.severity}: ${d.message} at ${JSON.stringify(d.path)}`);
}
if (!document || errors.length > 0) {
  console.log(`INVALID: ${errors.length} error(s)`);
  process.exit(1);
}
const messages = document.allMessages().all().map((m) => m.id());
console.log(`VALID: AsyncAPI ${document.version()}, ${document.channels().length} channel(s), ${messages.length} message(s): ${messages.join(', ')}`);
