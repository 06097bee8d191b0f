"""The Python side of weir's benchmarks: the `mcp` SDK and langchain-mcp-adapters
calling server-everything's `echo` over stdio, the same server weir is measured
against. Prints one JSON object. Usage: python_bench.py SERVER_BIN quick|full"""

import asyncio
import json
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools

SERVER, MODE = sys.argv[1], sys.argv[2]
QUICK = MODE == "quick"


def figure(calls, seconds):
    return {"calls": calls, "calls_per_s": calls / seconds, "ms_per_call": seconds * 1e3 / calls}


async def mcp_sdk(n):
    params = StdioServerParameters(command=SERVER, args=["stdio"])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for _ in range(200):  # warm-up
                await session.call_tool("echo", {"message": "hi"})
            start = time.perf_counter()
            for _ in range(n):
                await session.call_tool("echo", {"message": "hi"})
            return figure(n, time.perf_counter() - start)


def client():
    return MultiServerMCPClient(
        {"everything": {"transport": "stdio", "command": SERVER, "args": ["stdio"]}}
    )


async def langchain_session(n):
    async with client().session("everything") as session:
        tools = {t.name: t for t in await load_mcp_tools(session)}
        echo = tools["echo"]
        for _ in range(100):  # warm-up
            await echo.ainvoke({"message": "hi"})
        start = time.perf_counter()
        for _ in range(n):
            await echo.ainvoke({"message": "hi"})
        return figure(n, time.perf_counter() - start)


async def langchain_get_tools(n):
    tools = {t.name: t for t in await client().get_tools()}
    echo = tools["echo"]
    start = time.perf_counter()
    for _ in range(n):
        await echo.ainvoke({"message": "hi"})  # a new session per call
    return figure(n, time.perf_counter() - start)


async def main():
    results = {
        "mcp_sdk": await mcp_sdk(500 if QUICK else 2000),
        "langchain_session": await langchain_session(200 if QUICK else 1000),
        "langchain_get_tools": await langchain_get_tools(3 if QUICK else 10),
    }
    print(json.dumps(results))


asyncio.run(main())
