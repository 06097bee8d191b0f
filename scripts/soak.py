#!/usr/bin/env python3
"""Soak test of `weir serve --http`: a mixed load for a while, watching weir's
resources. Run it through `scripts/soak [MINUTES]`, which builds what it needs.

Python 3.11 standard library only. It speaks MCP's streamable HTTP itself
(initialize, notifications/initialized, tools/call with Mcp-Session-Id, DELETE),
and the 2026-07-28 stateless style (a tools/call with no session, its protocol
version in `_meta`) when weir answers it.

The load, for MINUTES, from concurrent workers:
  good      plugins that call upstream tools and must answer right: `hello`
            (via the built-in server), `fanout` and `testbed` echo / tolerant /
            batch / add (via the rmcp test server). A run that failed because
            the test server was just killed (`unavailable`) is tolerated; a
            wrong answer is not.
  stateless the same good runs in the 2026-07-28 stateless style.
  hostile   `testbed` looping forever, allocating without bound, panicking,
            overflowing its stack, flooding calls past its budget, answering
            17 MiB, waiting forever on a hanging tool, printing 20 MB: each must
            come back as an error result (printing: as `printed`, its output
            capped) while weir keeps serving.
  hang-up   a slow run (`hangup`, a copy of testbed: upstream sleep 1.5 s)
            called on a raw socket closed after ~0.2 s.
  kill      every --kill-secs, SIGKILL to the test server (a child of weir);
            weir's supervision must start a new one on the next call.

Output: one line per sample (every --sample-secs):
  t        seconds since the load started
  rss/fds  weir's VmRSS and open file descriptors; thr its threads; kids its
           child processes (the test server and the built-in server: 2)
  good     runs answered right / tolerated (`unavailable` after a kill) /
           failed otherwise / WRONG answers
  hostile  runs stopped as expected / unexpected outcomes
  hangups, kills   done so far
  inflight runs in flight now, per weir's /metrics; sess upstream sessions
           opened since start (test server); cancels: upstream calls the test
           server saw cancelled
Then a summary: first/last/max of RSS and FDs and whether each levelled off
(mean of the last third of the samples against the middle third; the first
third is warm-up), good-run latency, weir's own outcome counts (from
/metrics: `hangup` runs `cancelled` means the hang-up stopped the run),
weir's WARN/ERROR log lines by kind, runs still in flight once the load
stopped, one last run, and the first few answers of each kind that were not
simply right. Then weir gets SIGTERM: it must exit 0 leaving no child.
Exit status 1 if a good run got a wrong answer, weir died, stopped answering
or left a child behind; 2 on a setup error. `good failed` (e.g. a good run
stopped by the 2 s deadline under load) is reported but not fatal.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PROTOCOL = "2025-11-25"
STATELESS_PROTOCOL = "2026-07-28"
CLIENT_INFO = {"name": "weir-soak", "version": "0"}
# A reply slower than this is a stuck call (the run deadline is 2 s).
CLIENT_TIMEOUT = 30.0


# ---------------------------------------------------------------- MCP client


class McpError(Exception):
    """The HTTP exchange itself failed (status, transport, JSON-RPC error)."""


def parse_sse(body: bytes) -> list[dict]:
    """The JSON messages of an SSE body (events with empty data are primers)."""
    messages = []
    for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"\n".join(
            line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
        )
        if data.strip():
            messages.append(json.loads(data))
    return messages


class Client:
    """One MCP client over one keep-alive HTTP connection to weir."""

    def __init__(self, port: int, stateless: bool = False):
        self.port = port
        self.stateless = stateless
        self.session: str | None = None
        self.conn: http.client.HTTPConnection | None = None
        self.next_id = 0

    def _post(self, message: dict, extra: dict | None = None) -> tuple[int, dict, bytes]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        if self.session:
            headers["Mcp-Session-Id"] = self.session
            headers["MCP-Protocol-Version"] = PROTOCOL
        headers.update(extra or {})
        body = json.dumps(message).encode()
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
            try:
                self.conn.request("POST", "/mcp", body, headers)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as e:
                # A keep-alive connection the server closed: one fresh try.
                self.close_connection()
                if attempt == 2:
                    raise McpError(f"transport: {e!r}") from e
            except (TimeoutError, socket.timeout) as e:
                self.close_connection()
                raise McpError(f"no answer in {CLIENT_TIMEOUT:.0f} s") from e
        raise AssertionError("unreachable")

    def request(self, method: str, params: dict) -> dict:
        """A JSON-RPC request; its `result`."""
        self.next_id += 1
        rid = self.next_id
        extra = None
        if self.stateless:
            params = dict(params)
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": STATELESS_PROTOCOL,
                "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
            # SEP-2243: the method and tool name repeated as headers.
            extra = {"MCP-Protocol-Version": STATELESS_PROTOCOL, "Mcp-Method": method}
            if "name" in params:
                extra["Mcp-Name"] = params["name"]
        status, headers, data = self._post(
            {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, extra
        )
        if status != 200:
            raise McpError(f"HTTP {status} to {method}: {data[:300]!r}")
        if headers.get("content-type", "").startswith("text/event-stream"):
            messages = parse_sse(data)
        else:
            messages = [json.loads(data)]
        for m in messages:
            if m.get("id") == rid:
                if "error" in m:
                    raise McpError(f"JSON-RPC error to {method}: {m['error']}")
                if method == "initialize":
                    self.session = headers.get("mcp-session-id")
                return m["result"]
        raise McpError(f"no answer to {method} in {data[:300]!r}")

    def open(self) -> None:
        """initialize + notifications/initialized (nothing in stateless style)."""
        if self.stateless:
            return
        self.session = None
        self.request(
            "initialize",
            {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": CLIENT_INFO},
        )
        if not self.session:
            raise McpError("initialize gave no Mcp-Session-Id")
        status, _, data = self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if status not in (200, 202, 204):
            raise McpError(f"HTTP {status} to notifications/initialized: {data[:200]!r}")

    def call(self, tool: str, arguments: dict) -> tuple[bool, str]:
        """tools/call: (is_error, the text of its content)."""
        result = self.request("tools/call", {"name": tool, "arguments": arguments})
        text = "".join(c.get("text", "") for c in result.get("content", []))
        return bool(result.get("isError")), text

    def delete(self) -> None:
        """Ends the session (DELETE /mcp)."""
        if self.session and self.conn is not None:
            try:
                self.conn.request("DELETE", "/mcp", headers={"Mcp-Session-Id": self.session})
                self.conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                self.close_connection()
        self.session = None

    def close_connection(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def raw_request(port: int, session: str, message: dict) -> bytes:
    """A POST /mcp of `message` on `session`, as bytes on the wire."""
    body = json.dumps(message).encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        f"Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: {PROTOCOL}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def get_metrics(port: int) -> dict[str, float]:
    """weir's /metrics as {'name{labels}': value}."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        try:
            out[key] = float(value)
        except ValueError:
            pass
    return out


def metric_sum(metrics: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


# ----------------------------------------------------------- what to run


@dataclass
class Job:
    """One tools/call and how to judge its answer."""

    tool: str
    arguments: dict
    # (is_error, text) -> "ok" | "tolerated" | "failed" | "wrong"
    judge: object
    label: str


def _unavailable(text: str) -> bool:
    return "unavailable" in text


def good_job(rng: random.Random) -> Job:
    tag = f"s{rng.randrange(1 << 30):x}"
    kind = rng.choice(["hello", "echo", "tolerant", "fanout", "batch", "add"])
    if kind == "hello":
        name = f"soak-{tag}"

        def judge(err, text):
            if err:
                return "failed"
            return "ok" if text == f"Hello, {name}!" else "wrong"

        return Job("hello", {"input": name}, judge, "hello")
    if kind == "echo":
        n = rng.randint(1, 20)

        def judge(err, text):
            if err:
                return "tolerated" if _unavailable(text) else "failed"
            return "ok" if text == f"{n} ok" else "wrong"

        return Job("testbed", {"input": f"echo:{tag}:{n}"}, judge, "testbed echo")
    if kind == "tolerant":
        n = rng.randint(1, 20)

        def judge(err, text):
            if err:
                return "failed"
            m = re.fullmatch(r"ok=(\d+) unavailable=(\d+)", text)
            if not m or int(m[1]) + int(m[2]) != n:
                return "wrong"
            return "ok" if m[2] == "0" else "tolerated"

        return Job("testbed", {"input": f"tolerant:{tag}:{n}"}, judge, "testbed tolerant")
    if kind == "fanout":
        n = rng.randint(1, 30)
        job = {"server": "test", "tool": "echo", "arguments": {"message": tag}, "count": n}

        def judge(err, text):
            if err:
                return "failed"
            try:
                r = json.loads(text)
            except ValueError:
                return "wrong"
            if r.get("calls") != n or r.get("ok", -1) + r.get("errors", -1) != n:
                return "wrong"
            if r["errors"] == 0:
                return "ok"
            return "tolerated" if _unavailable(r.get("first_error", "")) else "failed"

        return Job("fanout", job, judge, "fanout")
    if kind == "batch":
        n, ms = rng.randint(2, 6), rng.randint(1, 20)
        want = [f"ok:napped {ms + i}" for i in range(n)]

        def judge(err, text):
            if err:
                return "failed"
            got = text.split(",")
            if len(got) != n:
                return "wrong"
            if got == want:
                return "ok"
            bad = [g for g, w in zip(got, want) if g != w]
            return "tolerated" if all(g.startswith("unavailable:") for g in bad) else "wrong"

        return Job("testbed", {"input": f"batch:{n}:{ms}"}, judge, "testbed batch")
    a, b = rng.randint(-1000, 1000), rng.randint(0, 1000)

    def judge(err, text):
        if err:
            return "failed"
        return "ok" if text == f"ok:{a + b}" else "wrong"

    return Job("testbed", {"input": f'call:builtin:add:{{"a":{a},"b":{b}}}'}, judge, "testbed add")


# testbed input -> what its error text must contain (None: it must answer `printed`).
HOSTILE = {
    "loop": "passed its deadline",
    "alloc": "memory limit",
    "panic": "panicked",
    "recurse": "trapped",
    "flood:100000": "past its budget",
    "bigresult:17": "more than the",
    "call:test:hang:": "passed its deadline",
    "badutf8": "",  # any error result will do
    "print:20000000": None,
}


def hostile_job(rng: random.Random, modes: list[str] | None = None) -> Job:
    mode = rng.choice(modes or list(HOSTILE))
    marker = HOSTILE[mode]

    def judge(err, text):
        if marker is None:
            return "ok" if not err and text == "printed" else "unexpected"
        if err and marker in text:
            return "ok"
        # The hanging call's server was killed under it: not the plugin's doing.
        if mode.startswith("call:") and not err and text.startswith("unavailable:"):
            return "tolerated"
        return "unexpected"

    return Job("testbed", {"input": mode}, judge, f"hostile {mode.split(':')[0]}")


# ------------------------------------------------------------------ state


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter = field(default_factory=Counter)
    # (label, outcome) -> first few texts, for the summary.
    examples: dict = field(default_factory=dict)
    # "good" / "hostile" -> seconds each call took, client side.
    latencies: dict = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def note(self, key: str, label: str, text: str) -> None:
        with self.lock:
            self.counts[key] += 1
            seen = self.examples.setdefault((key, label), [])
            if len(seen) < 3:
                seen.append(text[:300])

    def latency(self, kind: str, secs: float) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(secs)

    def percentiles(self, kind: str) -> str:
        with self.lock:
            values = sorted(self.latencies.get(kind, []))
        if not values:
            return "none"
        at = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000
        return f"p50 {at(0.5):.1f} ms, p99 {at(0.99):.1f} ms, max {values[-1] * 1000:.0f} ms"

    def get(self, key: str) -> int:
        with self.lock:
            return self.counts[key]


class Weir:
    """The `weir serve --http` process under test."""

    def __init__(self, args, scratch: Path):
        self.log_path = scratch / "weir.log"
        cmd = [
            str(args.weir), "serve", "--config", str(scratch / "weir.json"),
            "--plugins", str(scratch / "plugins"), "--http", "127.0.0.1:0",
        ]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        env["NO_COLOR"] = "1"
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        self.pid = self.proc.pid
        self.port = self._read_start_line()

    def _read_start_line(self) -> int:
        log = open(self.log_path, "wb")
        stderr = self.proc.stderr
        deadline = time.monotonic() + 120
        port = None
        while time.monotonic() < deadline:
            line = stderr.readline()
            if not line:
                break
            log.write(line)
            log.flush()
            m = re.search(rb"MCP at http://127\.0\.0\.1:(\d+)/mcp", line)
            if m:
                port = int(m[1])
                break
        if port is None:
            log.close()
            self.proc.kill()
            self.proc.wait()
            raise SystemExit(f"soak: weir serve did not start; its log:\n{self.tail()}")

        def drain():
            for chunk in iter(lambda: stderr.readline(), b""):
                log.write(chunk)
                log.flush()
            log.close()

        threading.Thread(target=drain, daemon=True).start()
        return port

    def alive(self) -> bool:
        return self.proc.poll() is None

    def children(self) -> list[int]:
        pids = []
        try:
            for task in os.listdir(f"/proc/{self.pid}/task"):
                with open(f"/proc/{self.pid}/task/{task}/children") as f:
                    pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return pids

    def status(self) -> dict[str, int]:
        """VmRSS (KiB), threads, open fds, children."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(value.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{self.pid}/fd"))
        out["children"] = len(self.children())
        return out

    def log_digest(self, top: int = 6) -> tuple[Counter, list[tuple[str, int]]]:
        """WARN/ERROR lines of weir's log: counts by level, and the most
        common messages (timestamps, ids and numbers blanked)."""
        levels, messages = Counter(), Counter()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return levels, []
        for line in text.splitlines():
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            m = re.match(r"\S+\s+(WARN|ERROR)\s+(.*)", line)
            if not m:
                continue
            levels[m[1]] += 1
            messages[f"{m[1]} " + re.sub(r"\d+", "N", m[2])[:160]] += 1
        return levels, messages.most_common(top)

    def tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def stop(self) -> tuple[int | None, list[int]]:
        """SIGTERM (then SIGKILL); its exit code and the children it left alive."""
        kids = self.children()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.5)
        left = [p for p in kids if pid_alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        return self.proc.returncode, left


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(") ", 1)[1][0]
        return state not in "ZX"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------- workers


def run_clients(stop: threading.Event, weir: Weir, tally: Tally, seed: int, make_job,
                prefix: str, stateless: bool = False, recycle: int = 50, pause: float = 0.0):
    """Calls jobs in a loop on one session, a new session every `recycle` calls."""
    rng = random.Random(seed)
    client = Client(weir.port, stateless=stateless)
    calls = 0
    while not stop.is_set():
        try:
            if calls % recycle == 0:
                client.delete()
                client.open()
            job = make_job(rng)
            calls += 1
            began = time.monotonic()
            err, text = client.call(job.tool, job.arguments)
            took = time.monotonic() - began
            outcome = job.judge(err, text)
            tally.latency(prefix, took)
            if stateless:
                tally.add("stateless calls")
            if outcome == "ok":
                tally.add(f"{prefix} ok")
            else:
                tally.note(f"{prefix} {outcome}", job.label, f"({took:.2f} s) {text}")
        except McpError as e:
            calls = 0  # a new session next time
            tally.note(f"{prefix} protocol", "mcp", str(e))
            if not weir.alive():
                return
            time.sleep(0.2)
        if pause:
            stop.wait(pause)
    client.delete()
    client.close_connection()


def hangups(stop: threading.Event, weir: Weir, tally: Tally, interval: float):
    """Calls the slow `hangup` plugin and closes the socket after ~0.2 s.
    Its MCP session is ended (DELETE) and renewed every 20 hang-ups, which
    itself may cancel the run of the latest one."""
    client = Client(weir.port)
    n = 0
    while not stop.is_set():
        try:
            if n % 20 == 0:
                client.delete()
                client.open()
            n += 1
            message = {
                "jsonrpc": "2.0", "id": 1000 + n, "method": "tools/call",
                "params": {"name": "hangup", "arguments": {"input": "sleep:1500"}},
            }
            with socket.create_connection(("127.0.0.1", weir.port), timeout=5) as s:
                s.sendall(raw_request(weir.port, client.session, message))
                time.sleep(0.2)
            tally.add("hangups")
        except (McpError, OSError) as e:
            n = 0
            tally.note("hangup protocol", "mcp", str(e))
            if not weir.alive():
                return
        stop.wait(interval)
    client.delete()
    client.close_connection()


def killer(stop: threading.Event, weir: Weir, tally: Tally, interval: float, test_server: str):
    """SIGKILLs weir's test-server child every `interval` seconds."""
    while not stop.wait(interval):
        for pid in weir.children():
            if Path(test_server).name in cmdline(pid).split(" ")[0]:
                try:
                    os.kill(pid, signal.SIGKILL)
                    tally.add("kills")
                except OSError:
                    pass


# -------------------------------------------------------------- the soak


def write_setup(args, scratch: Path) -> None:
    plugins = scratch / "plugins"
    plugins.mkdir()
    for name in ("hello", "fanout", "testbed"):
        shutil.copy(args.plugins / f"{name}.wasm", plugins / f"{name}.wasm")
        manifest = args.plugins / f"{name}.toml"
        if manifest.exists():
            shutil.copy(manifest, plugins / f"{name}.toml")
    # The hang-up target, a plugin of its own so its runs are counted apart.
    shutil.copy(args.plugins / "testbed.wasm", plugins / "hangup.wasm")
    config = {
        "mcpServers": {
            "test": {
                "command": str(args.test_server),
                "env": {
                    "WEIR_TEST_SESSION_LOG": str(scratch / "sessions.log"),
                    "WEIR_TEST_EVENTS": str(scratch / "events.log"),
                },
            }
        },
        "weir": {
            "deadline_secs": 2,
            "memory_limit_mb": 48,
            "call_timeout_secs": 5,
            "backoff_base_secs": 0.1,
            "backoff_max_secs": 1,
            "cache_dir": str(scratch / "cache"),
            "default_policy": {"allow": ["*/*"], "max_calls_per_run": 1000},
        },
    }
    (scratch / "weir.json").write_text(json.dumps(config, indent=2))


def count_cancels(scratch: Path, tally: Tally) -> None:
    """Moves the test server's `cancelled` events into the tally; the events
    file (a line per call) is truncated so it does not grow for hours."""
    path = scratch / "events.log"
    try:
        with open(path, "r+") as f:
            lines = f.read().splitlines()
            f.seek(0)
            f.truncate()
    except OSError:
        return
    tally.add("cancels", sum(1 for line in lines if line.startswith("cancelled")))


def probe_stateless(port: int) -> str | None:
    """None if weir answers a 2026-07-28 stateless tools/call; else why not."""
    try:
        err, text = Client(port, stateless=True).call("hello", {"input": "stateless"})
    except McpError as e:
        return str(e)
    if err or text != "Hello, stateless!":
        return f"answered {text!r}"
    return None


def trend(values: list[float], slack: float) -> str:
    """`levelled off` unless the last third's mean is above the middle third's
    by more than 10% and `slack` (absolute)."""
    n = len(values)
    if n < 6:
        return "too few samples to tell"
    third = n // 3
    middle = values[third: 2 * third]
    last = values[n - third:]
    m, l = sum(middle) / len(middle), sum(last) / len(last)
    verdict = "still growing" if l - m > max(slack, 0.10 * m) else "levelled off"
    return f"{verdict} (mean of middle third {m:.1f}, last third {l:.1f})"


def soak(args) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="weir-soak-"))
    write_setup(args, scratch)
    weir = Weir(args, scratch)
    tally = Tally()
    stop = threading.Event()
    failed = False
    keep = args.keep
    try:
        print(f"soak: weir pid {weir.pid} at http://127.0.0.1:{weir.port}/mcp, scratch {scratch}")
        why_not = probe_stateless(weir.port)
        stateless = why_not is None
        print("soak: 2026-07-28 stateless calls: " + ("answered" if stateless else f"not used ({why_not})"))
        workers = []
        for i in range(args.good):
            workers.append(threading.Thread(target=run_clients, args=(
                stop, weir, tally, 100 + i, good_job, "good")))
        if stateless:
            workers.append(threading.Thread(target=run_clients, args=(
                stop, weir, tally, 200, good_job, "good"), kwargs={"stateless": True}))
        modes = [m for m in HOSTILE if m.split(":")[0] in args.hostile_modes.split(",")]
        pick_hostile = lambda rng: hostile_job(rng, modes)  # noqa: E731
        for i in range(args.hostile):
            workers.append(threading.Thread(target=run_clients, args=(
                stop, weir, tally, 300 + i, pick_hostile, "hostile"), kwargs={"pause": 0.1}))
        workers.append(threading.Thread(target=hangups, args=(stop, weir, tally, args.hangup_secs)))
        workers.append(threading.Thread(target=killer, args=(
            stop, weir, tally, args.kill_secs, str(args.test_server))))
        for w in workers:
            w.daemon = True
            w.start()

        samples = []
        start = time.monotonic()
        end = start + args.minutes * 60
        print(f"soak: {len(workers) - 2} client workers, a hang-up every {args.hangup_secs} s, "
              f"a kill every {args.kill_secs} s, for {args.minutes:g} min; a sample every {args.sample_secs:g} s")
        while True:
            now = time.monotonic()
            nxt = start + (len(samples) + 1) * args.sample_secs
            if nxt > end + 0.5:
                break
            time.sleep(max(0.0, nxt - now))
            if not weir.alive():
                print(f"soak: weir DIED (exit {weir.proc.returncode}); the end of its log:\n{weir.tail()}")
                failed = True
                break
            count_cancels(scratch, tally)
            try:
                st = weir.status()
            except OSError:
                continue  # weir just exited: the check above says so next time
            try:
                metrics = get_metrics(weir.port)
            except (OSError, http.client.HTTPException) as e:
                print(f"soak: /metrics failed: {e!r}")
                metrics = {}
            st["inflight"] = metric_sum(metrics, "weir_plugin_runs_in_flight")
            st["sessions"] = metric_sum(metrics, "weir_upstream_sessions_opened_total", server="test")
            st["t"] = time.monotonic() - start
            samples.append(st)
            c = tally.get
            print(
                f"t={st['t']:5.0f}s rss={st['VmRSS'] / 1024:6.1f}MiB fds={st['fds']:4d} "
                f"thr={st['Threads']:3d} kids={st['children']} | "
                f"good ok={c('good ok')} tol={c('good tolerated')} fail={c('good failed')} "
                f"WRONG={c('good wrong')} | hostile ok={c('hostile ok')} unexp={c('hostile unexpected')} | "
                f"hangups={c('hangups')} kills={c('kills')} | inflight={st['inflight']:.0f} "
                f"sess={st['sessions']:.0f} cancels={c('cancels')}",
                flush=True,
            )

        # Wind down: workers stop, the runs they left finish (or not).
        stop.set()
        for w in workers:
            w.join(timeout=CLIENT_TIMEOUT + 5)
        summary = {}
        try:
            wind_down(weir, scratch, tally, summary)
        except (OSError, http.client.HTTPException) as e:
            print(f"soak: weir stopped answering after the load: {e!r}")
            summary["final"] = f"FAILED: {e!r}"
        failed |= report(samples, tally, summary, weir)
    except KeyboardInterrupt:
        print("soak: interrupted")
        failed = True
    finally:
        stop.set()
        code, left = weir.stop()
        print(f"soak: weir stopped on SIGTERM with exit code {code}"
              + (f"; children LEFT ALIVE (killed now): {left}" if left else "; no child process left"))
        if left or (code not in (0, None) and not failed):
            failed = True
        if failed or keep:
            print(f"soak: kept {scratch} (weir.log, weir.json, sessions.log)")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


def wind_down(weir: Weir, scratch: Path, tally: Tally, summary: dict) -> None:
    """After the load: waits for runs in flight to end, checks weir still
    answers, and reads its last figures into `summary`."""
    if not weir.alive():
        return
    settle = time.monotonic()
    inflight = None
    while time.monotonic() - settle < 10:
        inflight = metric_sum(get_metrics(weir.port), "weir_plugin_runs_in_flight")
        if inflight == 0:
            break
        time.sleep(0.5)
    summary["inflight"] = (inflight, time.monotonic() - settle)
    # Still serving? One last good run on a new session.
    try:
        final = Client(weir.port)
        final.open()
        err, text = final.call("hello", {"input": "final"})
        final.delete()
        summary["final"] = "ok" if not err and text == "Hello, final!" else f"WRONG: {text!r}"
    except McpError as e:
        summary["final"] = f"FAILED: {e}"
    count_cancels(scratch, tally)
    summary["metrics"] = get_metrics(weir.port)
    summary["end_status"] = weir.status()


def report(samples, tally: Tally, summary: dict, weir: Weir) -> bool:
    """Prints the summary; True if the soak failed."""
    c = tally.get
    print("\n=== summary ===")
    failed = False
    if samples:
        rss = [s["VmRSS"] / 1024 for s in samples]
        fds = [s["fds"] for s in samples]
        print(f"RSS MiB: first {rss[0]:.1f}, last {rss[-1]:.1f}, max {max(rss):.1f} "
              f"(peak VmHWM {samples[-1]['VmHWM'] / 1024:.1f}) -> {trend(rss, 4.0)}")
        print(f"FDs:     first {fds[0]}, last {fds[-1]}, max {max(fds)} -> {trend(fds, 4)}")
        thr = [s["Threads"] for s in samples]
        print(f"threads: first {thr[0]}, last {thr[-1]}, max {max(thr)}; "
              f"children: {sorted(set(s['children'] for s in samples))}")
    print(f"good runs: {c('good ok')} right, {c('good tolerated')} tolerated (unavailable after a kill), "
          f"{c('good failed')} failed otherwise, {c('good wrong')} WRONG, {c('good protocol')} protocol errors")
    print(f"good-run latency (client side, a whole run): {tally.percentiles('good')}")
    print(f"hostile runs: {c('hostile ok')} stopped as expected, {c('hostile tolerated')} tolerated "
          f"(their hanging server was killed), {c('hostile unexpected')} unexpected, "
          f"{c('hostile protocol')} protocol errors")
    print(f"hang-ups: {c('hangups')} ({c('hangup protocol')} errors); kills of the test server: {c('kills')}; "
          f"upstream cancellations seen by the test server: {c('cancels')}")
    m = summary.get("metrics", {})
    if m:
        hung = {k.split('outcome="')[1].rstrip('"}'): int(v) for k, v in m.items()
                if k.startswith('weir_plugin_runs_total{plugin="hangup"')}
        print(f"hung-up runs by weir's outcome: {hung or 'none finished'} "
              "(cancelled = the hang-up stopped the run)")
        outcomes = Counter()
        for k, v in m.items():
            if k.startswith('weir_plugin_runs_total{plugin="testbed"'):
                outcomes[k.split('outcome="')[1].rstrip('"}')] += int(v)
        print(f"testbed runs by outcome: {dict(outcomes)}")
        print(f"test server sessions opened: {metric_sum(m, 'weir_upstream_sessions_opened_total', server='test'):.0f}, "
              f"restarts: {metric_sum(m, 'weir_upstream_restarts_total', server='test'):.0f}; "
              f"builtin sessions opened: {metric_sum(m, 'weir_upstream_sessions_opened_total', server='builtin'):.0f}")
        errors = {k.split("{", 1)[1].rstrip("}"): int(v) for k, v in m.items()
                  if k.startswith("weir_tool_errors_total")}
        print(f"upstream call errors: {errors or 'none'}")
    print(f"stateless (2026-07-28) calls among the good runs: {c('stateless calls')}")
    levels, common = weir.log_digest()
    print(f"weir's log: {levels.get('ERROR', 0)} ERROR, {levels.get('WARN', 0)} WARN lines"
          + ("; most common:" if common else ""))
    for message, n in common:
        print(f"  {n:6d} x {message}")
    if "inflight" in summary:
        n, secs = summary["inflight"]
        print(f"runs in flight after the load stopped: {n:.0f} (after {secs:.1f} s)")
    if "final" in summary:
        print(f"a last run after the load: {summary['final']}")
        failed |= summary["final"] != "ok"
    if tally.examples:
        print("examples (the first 3 of each kind of answer that was not simply right):")
        for (key, label), texts in sorted(tally.examples.items()):
            for t in texts:
                print(f"  [{key}] {label}: {t}")
    if not weir.alive():
        print("weir DIED during the soak")
        failed = True
    if c("good wrong"):
        failed = True
    print("RESULT: " + ("FAIL" if failed else "pass"))
    return failed


def main() -> int:
    p = argparse.ArgumentParser(description="Soak test of weir serve --http (see the header).")
    p.add_argument("--minutes", type=float, default=5)
    p.add_argument("--weir", type=Path, default=Path("target/release/weir"))
    p.add_argument("--test-server", type=Path, default=Path("target/release/weir-test-server"))
    p.add_argument("--plugins", type=Path, default=Path("target/wasm/wasm32-wasip2/release"),
                   help="where hello, fanout and testbed .wasm are")
    p.add_argument("--sample-secs", type=float, default=None,
                   help="default: 30, or less for short runs so there are at least 18 samples")
    p.add_argument("--good", type=int, default=3, help="good-run workers (plus one stateless)")
    p.add_argument("--hostile", type=int, default=2, help="hostile-run workers")
    p.add_argument("--hostile-modes", default=",".join(m.split(":")[0] for m in HOSTILE),
                   help="which hostile testbed modes to run (comma-separated)")
    p.add_argument("--hangup-secs", type=float, default=0.5, help="pause between hang-ups")
    p.add_argument("--kill-secs", type=float, default=20, help="time between test-server kills")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = p.parse_args()
    unknown = set(args.hostile_modes.split(",")) - {m.split(":")[0] for m in HOSTILE}
    if unknown:
        print(f"soak: unknown hostile modes {sorted(unknown)}", file=sys.stderr)
        return 2
    if args.sample_secs is None:
        args.sample_secs = max(5.0, min(30.0, args.minutes * 60 / 18))
    for path in (args.weir, args.test_server, *(args.plugins / f"{n}.wasm" for n in ("hello", "fanout", "testbed"))):
        if not path.exists():
            print(f"soak: {path} is missing (scripts/soak builds it)", file=sys.stderr)
            return 2
    args.weir, args.test_server, args.plugins = args.weir.resolve(), args.test_server.resolve(), args.plugins.resolve()
    signal.signal(signal.SIGTERM, on_sigterm)
    return soak(args)


def on_sigterm(_signum, _frame):
    """SIGTERM ends the soak like Ctrl-C: the finally block stops weir."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
