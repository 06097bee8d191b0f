"""`research-py`: answers a question from the documents an MCP filesystem
server can read — the field report's research agent, in Python, as a weir
plugin.

The report's agent made 20+ MCP connections per query. This one makes as
many tool calls, but none of them opens anything: every call goes over the
one session weir keeps per server, and the reads go out as one batch.

Input: a question, or JSON ``{"question": ..., "pattern": "**/*.md",
"max_files": 20, "max_findings": 5}``. It finds a server offering
``search_files`` and ``read_text_file`` (such as
@modelcontextprotocol/server-filesystem), searches every directory the
server allows for files matching ``pattern``, reads them all at once, and
returns the lines that best match the question's terms, with where they are:

    {"question": ..., "terms": [...], "files_read": N, "tool_calls": N,
     "findings": [{"file": ..., "line": N, "text": ..., "score": N}]}

If weir's built-in server is granted, the answer is also kept in its
key-value store under ``research:QUESTION``.
"""

import json
import re

from weir_guest import AgentError, Call, CallError, agent, call_tool, call_tools, list_tools

STOP_WORDS = {
    "about", "after", "also", "does", "from", "have", "into", "many", "more",
    "much", "only", "over", "than", "that", "them", "then", "there", "these",
    "they", "this", "what", "when", "where", "which", "while", "with", "would",
    "your", "each", "other", "could", "should", "how", "why", "who", "the",
    "and", "are", "for", "not", "can",
}  # fmt: skip


def terms_of(question: str) -> list:
    words = re.findall(r"[a-z0-9][a-z0-9_-]+", question.lower())
    seen = []
    for word in words:
        stem = word[:-1] if word.endswith("s") and len(word) > 4 else word
        if len(stem) >= 3 and stem not in STOP_WORDS and stem not in seen:
            seen.append(stem)
    return seen[:8]


def filesystem_server() -> str:
    offers = {}
    for tool in list_tools():
        offers.setdefault(tool.server, set()).add(tool.name)
    for server, names in sorted(offers.items()):
        if {"search_files", "read_text_file", "list_allowed_directories"} <= names:
            return server
    raise AgentError(
        "no server offers search_files, read_text_file and list_allowed_directories "
        "(configure @modelcontextprotocol/server-filesystem and grant them)"
    )


def score(line: str, terms: list) -> int:
    lower = line.lower()
    return sum(1 for term in terms if term in lower)


@agent
def run(input: str):
    try:
        job = json.loads(input)
    except ValueError:
        job = {"question": input}
    if not isinstance(job, dict) or not str(job.get("question", "")).strip():
        raise AgentError('give a question: text, or {"question": ...}')
    question = str(job["question"]).strip()
    pattern = job.get("pattern", "**/*.md")
    max_files = int(job.get("max_files", 20))
    max_findings = int(job.get("max_findings", 5))
    terms = terms_of(question)
    if not terms:
        raise AgentError(f"no terms to look for in {question!r}")

    fs = filesystem_server()
    calls = 1
    roots = [
        line.strip()
        for line in call_tool(fs, "list_allowed_directories").text.splitlines()
        if line.strip().startswith("/")
    ]
    # Every root searched at once, then every file read at once: the host
    # runs a batch in parallel on its one session.
    searches = call_tools([Call(fs, "search_files", {"path": r, "pattern": pattern}) for r in roots])
    calls += len(roots)
    files = []
    for result in searches:
        if isinstance(result, CallError) or result.is_error:
            continue
        files.extend(p.strip() for p in result.text.splitlines() if p.strip().startswith("/"))
    files = sorted(set(files))[:max_files]
    reads = call_tools([Call(fs, "read_text_file", {"path": f}) for f in files])
    calls += len(files)

    findings = []
    for path, result in zip(files, reads):
        if isinstance(result, CallError) or result.is_error:
            continue
        for number, line in enumerate(result.text.splitlines(), start=1):
            points = score(line, terms)
            if points and not line.lstrip().startswith("#"):
                findings.append({"file": path, "line": number, "text": line.strip(), "score": points})
    findings.sort(key=lambda f: (-f["score"], f["file"], f["line"]))
    answer = {
        "question": question,
        "terms": terms,
        "files_read": len(files),
        "tool_calls": calls,
        "findings": findings[:max_findings],
    }
    if any(t.server == "builtin" and t.name == "kv_set" for t in list_tools()):
        call_tool("builtin", "kv_set", key=f"research:{question}", value=json.dumps(answer))
        answer["tool_calls"] += 1
    return answer
