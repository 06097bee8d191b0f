"""A server on the Python `mcp` SDK's `MCPServer`, for weir to be the
client of (tests/tests/interop.rs): one tool, `greet`.

    mcpserver.py stdio
    mcpserver.py http PORT      (streamable HTTP on 127.0.0.1:PORT/mcp)
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("weir-interop-py")


@server.tool()
def greet(name: str) -> str:
    """Greets NAME."""
    return f"Hello from Python, {name}!"


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
