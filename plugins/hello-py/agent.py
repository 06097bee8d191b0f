"""`hello-py`: greets through an MCP `echo` tool — `hello`, in Python.

Input: a name (empty means "world"). It finds a server offering `echo`
(weir's built-in one first), sends the greeting through it and returns what
came back.
"""

from weir_guest import AgentError, agent, call_tool, list_tools


@agent
def run(input: str) -> str:
    name = input.strip() or "world"
    servers = sorted(
        (t.server for t in list_tools() if t.name == "echo"),
        key=lambda server: server != "builtin",
    )
    if not servers:
        raise AgentError("no server offers an `echo` tool")
    reply = call_tool(servers[0], "echo", message=f"Hello, {name}!")
    if reply.is_error:
        raise AgentError(f"echo failed: {reply.text}")
    return reply.text
