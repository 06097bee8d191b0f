"""Sits on the stdio pipes between weir and an MCP server it does not own
(server-filesystem, say), passes every line through unchanged, and counts
how many `tools/call` requests the server had been sent and not yet
answered. Each time that count reaches a new high it appends
`in-flight N` to LOG, so a test can see calls overlap *at the server*
without timing anything.

    wire_tap.py LOG -- node server-filesystem/dist/index.js DIR
"""

import json
import subprocess
import sys
import threading


def main():
    log_path = sys.argv[1]
    command = sys.argv[3:] if sys.argv[2:3] == ["--"] else sys.argv[2:]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lock = threading.Lock()
    waiting = set()
    peak = [0]

    def note(line, outgoing):
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict) or "id" not in message:
            return
        with lock:
            if outgoing and message.get("method") == "tools/call":
                waiting.add(json.dumps(message["id"]))
                if len(waiting) > peak[0]:
                    peak[0] = len(waiting)
                    with open(log_path, "a") as log:
                        log.write(f"in-flight {peak[0]}\n")
            elif not outgoing and "method" not in message:
                waiting.discard(json.dumps(message["id"]))

    def to_server():
        for line in sys.stdin.buffer:
            # Counted before it is passed on, so the answer cannot come first.
            note(line, outgoing=True)
            server.stdin.write(line)
            server.stdin.flush()
        server.stdin.close()

    threading.Thread(target=to_server, daemon=True).start()
    for line in server.stdout:
        note(line, outgoing=False)
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
    sys.exit(server.wait())


if __name__ == "__main__":
    main()
