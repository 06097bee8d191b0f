"""A real MCP client (the Python `mcp` SDK) using `weir serve --code-mode`
the way a model does: search the tools, read the declarations of the ones
it needs, then run one script that calls them.

Used by tests/tests/code_mode.rs. Prints one JSON object: the tools listed
(and the bytes of that listing), what search_tools found for "read a file",
the declarations describe_tools gave for the filesystem tools, and what the
script returned.

    code_mode_client.py URL DOCS_DIR
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

# The model's script: list the directory, read every file in it at once,
# ask the time server for the time, and return the sizes.
SCRIPT = """
const listing = await tools.fs.list_directory({ path: DOCS });
const names = listing.content.split("\\n")
  .filter((line) => line.startsWith("[FILE] "))
  .map((line) => line.slice("[FILE] ".length));
const texts = await Promise.all(
  names.map((name) => tools.fs.read_text_file({ path: DOCS + "/" + name })),
);
const now = await tools.time.get_current_time({ timezone: "UTC" });
console.log("read", names.length, "files");
const sizes = {};
names.forEach((name, i) => { sizes[name] = texts[i].content.length; });
return { sizes, timezone: now.timezone };
"""


def texts(result):
    return [c.text for c in result.content if c.type == "text"]


async def main():
    url, docs = sys.argv[1], sys.argv[2]
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            listing = json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True))
            search = await session.call_tool("search_tools", {"query": "read a file", "limit": 5})
            describe = await session.call_tool(
                "describe_tools",
                {"names": ["fs.read_text_file", "fs.list_directory", "time.get_current_time"]},
            )
            script = f"const DOCS = {json.dumps(docs)};\n{SCRIPT}"
            executed = await session.call_tool("execute_code", {"code": script})
    report = {
        "tools": sorted(t.name for t in listed.tools),
        "list_bytes": len(listing.encode()),
        "search": {"is_error": bool(search.is_error), "texts": texts(search)},
        "describe": {"is_error": bool(describe.is_error), "texts": texts(describe)},
        "execute": {"is_error": bool(executed.is_error), "texts": texts(executed)},
    }
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    asyncio.run(main())
