"""A real MCP client (the Python `mcp` SDK) driving `weir serve`.

Used by tests/tests/serve.rs. Connects over stdio (spawning the command
after `--`) or streamable HTTP (a URL), lists the tools, then calls the
`fanout` tool CALLS times from CONCURRENCY tasks, every call on the same
client session, and prints one JSON object describing what it saw.
With --metrics URL it also fetches that page after the load and parses it
with the reference Prometheus/OpenMetrics parser.

    serve_client.py --server test --calls 200 --concurrency 50 stdio -- weir serve ...
    serve_client.py --server test http http://127.0.0.1:PORT/mcp --metrics URL
"""

import argparse
import asyncio
import json
import sys
import urllib.request

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True, help="upstream server fanout calls")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--per-call", type=int, default=3, help="fanout's count per call")
    p.add_argument("--metrics", help="URL of /metrics to read after the load")
    p.add_argument(
        "--cancel-after",
        metavar="FILE",
        help="instead of the load: call testbed to hang upstream, and cancel the "
        "call once FILE (the test server's event log) shows the upstream call",
    )
    p.add_argument(
        "--progress",
        type=int,
        metavar="MS",
        help="instead of the load: one testbed run sleeping MS upstream, with a "
        "progress callback; report the progress notifications received",
    )
    sub = p.add_subparsers(dest="mode", required=True)
    stdio = sub.add_parser("stdio")
    stdio.add_argument("command", nargs=argparse.REMAINDER)
    http = sub.add_parser("http")
    http.add_argument("url")
    return p.parse_args()


async def load(session, args):
    listed = await session.list_tools()
    tools = {t.name: t for t in listed.tools}
    queue = asyncio.Queue()
    for i in range(args.calls):
        queue.put_nowait(i)
    outcomes = []

    async def worker():
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            result = await session.call_tool(
                "fanout",
                {
                    "server": args.server,
                    "tool": "echo",
                    "arguments": {"message": f"call {i}"},
                    "count": args.per_call,
                },
            )
            text = "".join(c.text for c in result.content if c.type == "text")
            outcomes.append((bool(result.is_error), text))

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    expected = {"calls": args.per_call, "ok": args.per_call, "errors": 0}
    correct = 0
    wrong = []
    for is_error, text in outcomes:
        try:
            ok = not is_error and json.loads(text) == expected
        except ValueError:
            ok = False
        if ok:
            correct += 1
        elif len(wrong) < 5:
            wrong.append(text)
    return {
        "tools": sorted(tools),
        "fanout_schema": tools["fanout"].input_schema if "fanout" in tools else None,
        "calls": len(outcomes),
        "correct": correct,
        "wrong": wrong,
    }


def read_metrics(url):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=30) as response:
        content_type = response.headers.get("Content-Type", "")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}"] = s.value
    return {"content_type": content_type, "samples": samples}


async def cancel_hanging_call(session, events):
    """Starts a run whose upstream call never answers, then cancels it the
    way a client does: by cancelling the request (notifications/cancelled)."""
    call = asyncio.create_task(session.call_tool("testbed", {"input": "call:test:hang:"}))
    for _ in range(3000):
        await asyncio.sleep(0.01)
        try:
            with open(events) as f:
                if any(line.startswith("call hang") for line in f):
                    break
        except FileNotFoundError:
            pass
    else:
        return {"cancelled": False, "why": "the upstream call never started"}
    call.cancel()
    try:
        await call
    except asyncio.CancelledError:
        pass
    # The session still serves after a cancelled call.
    after = await session.call_tool("testbed", {"input": "call:test:echo:{\"message\":\"after\"}"})
    text = "".join(c.text for c in after.content if c.type == "text")
    return {"cancelled": True, "after": text}


async def progress_of_a_slow_run(session, ms):
    """Asks for progress on a slow run and records what arrives."""
    seen = []

    async def on_progress(progress, total, message):
        seen.append({"progress": progress, "message": message})

    result = await session.call_tool(
        "testbed", {"input": f"sleep:{ms}"}, progress_callback=on_progress
    )
    text = "".join(c.text for c in result.content if c.type == "text")
    return {"result": text, "progress": seen}


async def main():
    args = parse_args()
    if args.mode == "stdio":
        command = [c for c in args.command if c != "--"]
        params = StdioServerParameters(command=command[0], args=command[1:])
        transport = stdio_client(params)
    else:
        transport = streamable_http_client(args.url)
    async with transport as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            if args.progress:
                report = await progress_of_a_slow_run(session, args.progress)
            elif args.cancel_after:
                report = await cancel_hanging_call(session, args.cancel_after)
            else:
                report = await load(session, args)
            if args.metrics:
                report["metrics"] = read_metrics(args.metrics)
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    asyncio.run(main())
