"""The Python `mcp` SDK's `Client` driving `weir serve` in each of its
connect modes, over stdio or streamable HTTP.

Used by tests/tests/interop.rs. For each MODE given, connects (auto probes
`server/discover` and falls back to `initialize`; legacy forces
`initialize`; a revision is adopted without a probe), lists the tools,
calls TOOL with ARGS, and prints one JSON line per mode: the revision the
pair settled on, the tool names, the call's text and whether it was an
error.

    interop_client.py --tool hello --args '{"input":"x"}' --mode auto --mode legacy http URL
    interop_client.py --tool hello --args '{}' --mode auto stdio -- weir serve ...

With `--elicit NAME` the client declares elicitation and answers every
request for input by accepting `{"name": NAME}` (as a person filling in
the form would); without it the client has no elicitation at all.
"""

import argparse
import asyncio
import json

import mcp_types
from mcp import Client, StdioServerParameters


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--tool", required=True)
    p.add_argument("--args", default="{}")
    p.add_argument("--mode", action="append", required=True)
    p.add_argument("--elicit", metavar="NAME")
    sub = p.add_subparsers(dest="transport", required=True)
    stdio = sub.add_parser("stdio")
    stdio.add_argument("command", nargs=argparse.REMAINDER)
    http = sub.add_parser("http")
    http.add_argument("url")
    return p.parse_args()


def server_of(args):
    if args.transport == "http":
        return args.url
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return StdioServerParameters(command=command[0], args=command[1:])


def answering(name):
    async def answer(context, params):
        return mcp_types.ElicitResult(action="accept", content={"name": name})

    return answer


async def one(args, mode):
    callback = answering(args.elicit) if args.elicit else None
    async with Client(server_of(args), mode=mode, elicitation_callback=callback) as client:
        tools = await client.list_tools()
        result = await client.call_tool(args.tool, json.loads(args.args))
        text = "".join(c.text for c in result.content if c.type == "text")
        return {
            "mode": mode,
            "protocol": client.protocol_version,
            "tools": sorted(t.name for t in tools.tools),
            "text": text,
            "is_error": bool(result.is_error),
        }


async def main():
    args = parse_args()
    for mode in args.mode:
        print(json.dumps(await one(args, mode)), flush=True)


asyncio.run(main())
