"""A real MCP client (the official Python SDK) against ARW's /mcp.

Usage: mcp_client.py URL [TOKEN]

Lists the tools, calls text-stats and checks the answer, calls kv-counter
(which the default policies refuse to anonymous callers) and checks it
comes back as a tool error. Then prints READY and waits for
notifications/tools/list_changed (the test removes a component), lists the
tools again and prints them. Exits non-zero on any mismatch.
"""

import asyncio
import json
import sys

import anyio
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def fail(message: str) -> None:
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


async def main(url: str, token: str | None) -> None:
    changed = anyio.Event()

    async def on_message(message) -> None:
        if isinstance(message, Exception):
            print(f"transport error: {message!r}", flush=True)
            return
        root = getattr(message, "root", message)
        if getattr(root, "method", None) == "notifications/tools/list_changed":
            changed.set()

    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write, message_handler=on_message) as session:
                init = await session.initialize()
                print(f"server: {init.server_info.name} {init.server_info.version}, protocol {init.protocol_version}", flush=True)
                if not (init.capabilities.tools and init.capabilities.tools.list_changed):
                    fail("the server does not announce tools.listChanged")

                tools = await session.list_tools()
                names = sorted(t.name for t in tools.tools)
                print(f"tools: {names}", flush=True)
                if "text-stats" not in names:
                    fail(f"text-stats is not listed: {names}")
                text_stats = next(t for t in tools.tools if t.name == "text-stats")
                if text_stats.input_schema.get("type") != "object":
                    fail(f"text-stats has no object input schema: {text_stats.input_schema}")

                # The host's own tools: the feedback engine's, under Cedar.
                for name in ("feedback-evaluate", "feedback-apply"):
                    if name not in names:
                        fail(f"{name} is not listed: {names}")
                evaluate = await session.call_tool("feedback-evaluate", {})
                text = " ".join(getattr(c, "text", "") for c in evaluate.content)
                if not (evaluate.is_error and text.startswith("denied:")):
                    fail(f"feedback-evaluate as anonymous should be denied by Cedar: {evaluate}")
                apply = await session.call_tool("feedback-apply", {"suggestion": "raise-timeout:arw:text-stats"})
                text = " ".join(getattr(c, "text", "") for c in apply.content)
                if not (apply.is_error and text.startswith("unauthorized:")):
                    fail(f"feedback-apply as anonymous should need a token: {apply}")
                print("feedback tools: denied to anonymous", flush=True)

                result = await session.call_tool("text-stats", {"text": "hello MCP world\nsecond line"})
                if result.is_error:
                    fail(f"text-stats failed: {result.content}")
                answer = result.structured_content or json.loads(result.content[0].text)
                if answer != {"chars": 27, "words": 5, "lines": 2}:
                    fail(f"text-stats answered {answer}")
                print(f"text-stats: {answer}", flush=True)

                denied = await session.call_tool("kv-counter", {"name": "x"})
                text = denied.content[0].text if denied.content else ""
                if not denied.is_error or not text.startswith("denied"):
                    fail(f"kv-counter was not refused as a tool error: is_error={denied.is_error} {text!r}")
                print(f"kv-counter: tool error: {text}", flush=True)

                invalid = await session.call_tool("text-stats", {"text": 42})
                if not invalid.is_error or not invalid.content[0].text.startswith("schema-violation"):
                    fail(f"schema-invalid input was not a tool error: {invalid}")

                print("READY", flush=True)
                with anyio.fail_after(20):
                    await changed.wait()
                tools = await session.list_tools()
                print(f"changed: {sorted(t.name for t in tools.tools)}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
