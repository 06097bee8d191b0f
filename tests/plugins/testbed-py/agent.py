"""`testbed-py`: what the tests ask of a Python agent, by input.

- `errors`: calls that fail in each way the host reports, and what arrived
  (exception class and message, as JSON);
- `batch`: one `call_tools` batch mixing good and bad calls;
- `escape:PORT`: tries a socket to 127.0.0.1:PORT, reading /etc/passwd,
  the environment and the root directory; reports what each got;
- `hog`: allocates without end; `spin`: loops without end;
- `raise`: raises an exception of its own; `exit`: calls sys.exit;
  `json`: answers with a dict;
- `calls:N:SERVER`: calls SERVER's `echo` N times (for the benchmarks).
"""

import encodings.idna  # noqa: F401 - so create_connection gets as far as the sandbox
import os
import socket
import sys

from weir_guest import Call, CallError, agent, call_tool, call_tools


def attempt(probe):
    try:
        return f"got({probe()!r})"
    except Exception as error:  # noqa: BLE001 - reporting what failed is the point
        return f"error({type(error).__name__}: {error})"


def failure(call):
    try:
        call()
        return "no error"
    except CallError as error:
        return f"{type(error).__name__}: {error}"


def errors():
    return {
        "denied": failure(lambda: call_tool("builtin", "kv_set", key="k", value="v")),
        "not_found": failure(lambda: call_tool("builtin", "nosuch")),
        "no_server": failure(lambda: call_tool("nowhere", "echo", message="x")),
        "too_big": failure(lambda: call_tool("builtin", "echo", message="x" * 100_000)),
        "invalid_not_json": failure(lambda: call_tool("builtin", "echo", message={1, 2})),
        "tool_error": call_tool("builtin", "add", a="one", b=2).is_error,
        "ok": call_tool("builtin", "add", a=2, b=3).text,
    }


def batch():
    results = call_tools(
        [
            Call("builtin", "echo", {"message": "first"}),
            Call("builtin", "kv_set", {"key": "k", "value": "v"}),
            Call("builtin", "echo", {"message": "third"}),
        ]
    )
    return [r.text if not isinstance(r, CallError) else type(r).__name__ for r in results]


def escape(port):
    return {
        "create_connection": attempt(
            lambda: socket.create_connection(("127.0.0.1", port), timeout=2)
        ),
        "socket": attempt(lambda: socket.socket().connect(("127.0.0.1", port))),
        "passwd": attempt(lambda: open("/etc/passwd").read()[:20]),
        "environ": dict(os.environ),
        "listdir": attempt(lambda: os.listdir("/")),
    }


def hog():
    chunks = []
    while True:
        chunks.append(bytearray(1 << 20))


def spin():
    n = 0
    while True:
        n += 1


@agent
def run(input: str):
    mode, _, arg = input.partition(":")
    if mode == "errors":
        return errors()
    if mode == "batch":
        return batch()
    if mode == "escape":
        return escape(int(arg))
    if mode == "hog":
        return hog()
    if mode == "spin":
        return spin()
    if mode == "raise":
        raise ValueError("raised on request")
    if mode == "exit":
        sys.exit(3)
    if mode == "calls":
        count, _, server = arg.partition(":")
        ok = sum(not call_tool(server, "echo", message="hi").is_error for _ in range(int(count)))
        return {"calls": int(count), "ok": ok}
    if mode == "json":
        return {"input": arg, "n": 3}
    return f"unknown mode {mode!r}"
