"""Many MCP clients (the Python `mcp` SDK) at once against a fleet of
`weir serve --http` replicas behind a load balancer.

Used by tests/tests/fleet.rs and scripts/bench. Client i speaks MCP
2026-07-28 (stateless) when i is even and 2025-11-25 (a legacy session,
`Mcp-Session-Id`) when odd. Each calls the `testbed` plugin, which calls
the upstream test server's `echo`, with a message of its own, and checks
the answer is its own message back. With --hang each calls `hang`
instead, which never answers: a call in flight for as long as the test
wants, to see how it ends when its replica goes.

    fleet_client.py URL --clients 100 --calls 6
    fleet_client.py URL --clients 20 --until STOP_FILE
    fleet_client.py URL --clients 2 --calls 1 --hang

With --calls, each client makes that many calls; with --until, clients
call until the file exists. After a failed call a client reconnects (a
new session), as an agent would. Prints `calls N` lines as calls finish
(every --progress), then one JSON report: calls ok, wrong answers, errors
(message per failed call), the revision each mode settled on, the
completion times of the ok calls (seconds since start), and how many
legacy sessions made all their calls without reconnecting — behind a
load balancer that spreads requests round-robin, only possible when the
replicas share sessions.
"""

import argparse
import asyncio
import json
import os
import sys
import time

from mcp import Client


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--calls", type=int, default=0)
    p.add_argument("--until", help="call until this file exists")
    p.add_argument("--progress", type=int, default=50)
    p.add_argument("--only", choices=["legacy", "2026-07-28"], help="every client in this mode")
    p.add_argument("--hang", action="store_true", help="call the test server's `hang` (never answers)")
    return p.parse_args()


class Tally:
    def __init__(self, progress):
        self.ok = 0
        self.wrong = []
        self.errors = []
        self.times = []
        self.protocols = {}
        self.sessions_kept = 0
        self.start = time.monotonic()
        self.progress = progress

    def done(self):
        self.ok += 1
        self.times.append(round(time.monotonic() - self.start, 4))
        finished = self.ok + len(self.errors) + len(self.wrong)
        if finished % self.progress == 0:
            print(f"calls {finished}", flush=True)


def leaves(error):
    """The exceptions an exception group holds, however deep."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def describe(error):
    """An exception and, for an MCP error, the error the server sent."""
    text = f"{type(error).__name__}: {error}"
    data = getattr(error, "error", None)
    if data is not None:
        text += f" ({getattr(data, 'code', '?')}: {getattr(data, 'message', data)})"
    return text


def mode_of(args, i):
    if args.only:
        return args.only
    return "2026-07-28" if i % 2 == 0 else "legacy"


async def client(args, i, tally):
    mode = mode_of(args, i)
    made = 0

    def more():
        if args.until:
            return not os.path.exists(args.until)
        return made < args.calls

    while more():
        reconnected = False
        try:
            async with Client(args.url, mode=mode) as session:
                tally.protocols[mode] = session.protocol_version
                while more():
                    message = f"client {i} call {made}"
                    made += 1
                    tool = "hang:{}" if args.hang else "echo:" + json.dumps({"message": message})
                    result = await session.call_tool("testbed", {"input": "call:test:" + tool})
                    text = "".join(c.text for c in result.content if c.type == "text")
                    if result.is_error or text != f"ok:{message}":
                        tally.wrong.append({"client": i, "mode": mode, "expected": message, "got": text})
                        print(f"wrong {i} {text}", file=sys.stderr, flush=True)
                    else:
                        tally.done()
                if mode == "legacy" and not reconnected:
                    tally.sessions_kept += 1
        except Exception as e:  # a failed call, or the session lost with it
            reconnected = True
            made += 0 if args.until else 1
            what = "; ".join(describe(x) for x in leaves(e))
            tally.errors.append({"client": i, "mode": mode, "error": what[:400]})
            print(f"error {i} {what[:200]}", file=sys.stderr, flush=True)
            await asyncio.sleep(0.05)


async def main():
    args = parse_args()
    tally = Tally(args.progress)
    await asyncio.gather(*(client(args, i, tally) for i in range(args.clients)))
    print(
        json.dumps(
            {
                "ok": tally.ok,
                "wrong": tally.wrong,
                "errors": tally.errors,
                "protocols": tally.protocols,
                "times": tally.times,
                "legacy_sessions_kept": tally.sessions_kept,
                "seconds": round(time.monotonic() - tally.start, 3),
            }
        ),
        flush=True,
    )


asyncio.run(main())
