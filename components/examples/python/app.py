"""slugify-python: turn text into a URL slug, dropping the stop words of its
`stop-words` configuration, and count its calls in kv.

Input {"text": "..."}; output {"slug": "...", "calls": n}. Words are runs
of ASCII letters and digits and of non-ASCII characters (kept as they are);
ASCII letters are lower-cased; words are joined with "-". No word left: the
tool error `empty-slug`. A refused capability: the tool error named after
the refusal (`denied`, ...).

Build: `arw build` (runs componentize-py against ./wit, world arw:host/tool).
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.tool_handler import Descriptor, ToolError
from wit_world.imports import config, kv
from wit_world.imports.types import (
    CapabilityError_Denied,
    CapabilityError_Invalid,
    CapabilityError_TooLarge,
)

NAME = "slugify-python"

INPUT_SCHEMA = '{"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false}'
OUTPUT_SCHEMA = '{"type":"object","properties":{"slug":{"type":"string"},"calls":{"type":"integer"}},"required":["slug","calls"]}'


def fail(code: str, message: str) -> Err:
    return Err(ToolError(code=code, message=message))


def capability(error: Err) -> Err:
    """A capability error as the tool error named after its case."""
    value = error.value
    if isinstance(value, CapabilityError_Denied):
        code = "denied"
    elif isinstance(value, CapabilityError_Invalid):
        code = "invalid"
    elif isinstance(value, CapabilityError_TooLarge):
        code = "too-large"
    else:
        code = "unavailable"
    return fail(code, str(value.value))


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only, as every language's version does."""
    return "".join(c.lower() if c.isascii() else c for c in text)


def slugify(text: str, stop: list[str]) -> str:
    words, word = [], []
    for c in text + " ":
        if (c.isascii() and c.isalnum()) or not c.isascii():
            word.append(c.lower() if c.isascii() else c)
        elif word:
            w = "".join(word)
            if w not in stop:
                words.append(w)
            word = []
    return "-".join(words)


class ToolHandler(exports.ToolHandler):
    def describe(self) -> Descriptor:
        return Descriptor(
            name=NAME,
            version="0.1.0",
            summary="Turn text into a URL slug, without the configured stop words",
            input_schema=INPUT_SCHEMA,
            output_schema=OUTPUT_SCHEMA,
        )

    def invoke(self, input: str) -> str:
        try:
            text = json.loads(input)["text"]
        except (ValueError, KeyError, TypeError) as e:
            raise fail("invalid-input", str(e))
        try:
            words = config.get("stop-words") or ""
            stop = [ascii_lower(w.strip(" \t\r\n")) for w in words.split(",") if w.strip(" \t\r\n")]
            stored = kv.get(NAME, "calls")
            calls = (int(stored.decode()) if stored else 0) + 1
            kv.set(NAME, "calls", str(calls).encode())
        except Err as e:
            raise capability(e)
        slug = slugify(text, stop)
        if not slug:
            raise fail("empty-slug", "nothing to slugify: no letters or digits outside the stop words")
        return json.dumps({"slug": slug, "calls": calls})
