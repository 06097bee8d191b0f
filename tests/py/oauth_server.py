"""A remote MCP server behind OAuth, and its authorization server, for
weir to be the OAuth client of (tests/tests/oauth.rs). Loopback only.

    oauth_server.py DIR

Starts, on free 127.0.0.1 ports:
  * an authorization server (RFC 8414 metadata, dynamic registration,
    authorization-code + PKCE S256 — the authorize endpoint redirects at
    once, as if a person had approved — refresh tokens, `iss` in the
    redirect), and control endpoints for the test:
        POST /control/expire   every access token issued so far is refused
        POST /control/revoke   every refresh token is refused (invalid_grant)
        POST /control/lifetime?secs=N   tokens issued from now on last N s
                               (the resource server refuses them after)
        GET  /control/stats    counts, the scopes of each authorization, and
                               every token issued (to look for in logs)
  * the Python `mcp` SDK's MCPServer on streamable HTTP at /mcp, behind the
    SDK's bearer-token check (its protected-resource metadata and 401
    challenge), verifying tokens against the authorization server's table.
    Tools: `echo` (scope `read`), `expire_tokens` (as /control/expire),
    `write` (scope `write`: without it the request gets 403
    insufficient_scope, for a step-up).

Writes {"mcp": URL, "issuer": URL} to DIR/urls.json, then serves until
killed. Every token it issues starts with "tok-" or "ref-", so a test can
look for any of them in what weir wrote.
"""

import asyncio
import base64
import hashlib
import json
import pathlib
import secrets
import socket
import sys
import time
import urllib.parse

import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


AS_PORT, MCP_PORT = free_port(), free_port()
ISSUER = f"http://127.0.0.1:{AS_PORT}"
RESOURCE = f"http://127.0.0.1:{MCP_PORT}/mcp"

clients = {}  # client_id -> registration
codes = {}  # code -> (client_id, challenge, scopes, resource)
access = {}  # token -> {"scopes", "client_id", "live"}
refresh = {}  # token -> {"scopes", "client_id", "live"}
stats = {"registrations": 0, "authorizations": [], "token_requests": {}, "refused": 0}
lifetime = {"secs": 3600}  # expires_in of the tokens issued from now on


def grant_count(kind):
    stats["token_requests"][kind] = stats["token_requests"].get(kind, 0) + 1


async def metadata(_request):
    return JSONResponse({
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "registration_endpoint": f"{ISSUER}/register",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["read", "write", "offline_access"],
        "authorization_response_iss_parameter_supported": True,
    })


async def register(request: Request):
    body = await request.json()
    client_id = f"client-{secrets.token_hex(4)}"
    clients[client_id] = body
    stats["registrations"] += 1
    return JSONResponse({"client_id": client_id, "token_endpoint_auth_method": "none",
                         **body}, status_code=201)


async def authorize(request: Request):
    q = request.query_params
    if q.get("client_id") not in clients or q.get("code_challenge_method") != "S256":
        return JSONResponse({"error": "invalid_request"}, status_code=400)
    scopes = (q.get("scope") or "").split()
    stats["authorizations"].append(scopes)
    code = secrets.token_urlsafe(16)
    codes[code] = (q["client_id"], q["code_challenge"], scopes, q.get("resource"))
    target = q["redirect_uri"] + "?" + urllib.parse.urlencode(
        {"code": code, "state": q.get("state", ""), "iss": ISSUER})
    return RedirectResponse(target, status_code=302)


def issue(client_id, scopes):
    token = f"tok-{secrets.token_hex(16)}"
    access[token] = {"scopes": scopes, "client_id": client_id, "live": True,
                     "expires_at": time.time() + lifetime["secs"]}
    answer = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime["secs"],
              "scope": " ".join(scopes)}
    ref = f"ref-{secrets.token_hex(16)}"
    refresh[ref] = {"scopes": scopes, "client_id": client_id, "live": True}
    answer["refresh_token"] = ref
    return answer


async def token(request: Request):
    form = await request.form()
    kind = form.get("grant_type")
    grant_count(kind)
    if kind == "authorization_code":
        entry = codes.pop(form.get("code"), None)
        if entry is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        client_id, challenge, scopes, resource = entry
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        if digest.decode() != challenge or form.get("resource") != resource:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(issue(client_id, scopes))
    if kind == "refresh_token":
        entry = refresh.get(form.get("refresh_token"))
        if entry is None or not entry["live"]:
            return JSONResponse({"error": "invalid_grant",
                                 "error_description": "refresh token revoked"}, status_code=400)
        entry["live"] = False  # rotated
        return JSONResponse(issue(entry["client_id"], entry["scopes"]))
    return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)


async def expire(_request):
    for entry in access.values():
        entry["live"] = False
    return JSONResponse({"ok": True})


async def revoke(_request):
    for entry in refresh.values():
        entry["live"] = False
    return JSONResponse({"ok": True})


async def set_lifetime(request: Request):
    lifetime["secs"] = int(request.query_params["secs"])
    return JSONResponse({"ok": True})


async def show_stats(_request):
    return JSONResponse({**stats, "tokens": list(access) + list(refresh)})


authorization_server = Starlette(routes=[
    Route("/.well-known/oauth-authorization-server", metadata),
    Route("/register", register, methods=["POST"]),
    Route("/authorize", authorize),
    Route("/token", token, methods=["POST"]),
    Route("/control/expire", expire, methods=["POST"]),
    Route("/control/revoke", revoke, methods=["POST"]),
    Route("/control/lifetime", set_lifetime, methods=["POST"]),
    Route("/control/stats", show_stats),
])


class Verifier:
    async def verify_token(self, presented):
        entry = access.get(presented)
        if entry is None or not entry["live"] or time.time() > entry["expires_at"]:
            stats["refused"] += 1
            return None
        return AccessToken(token=presented, client_id=entry["client_id"],
                           scopes=entry["scopes"], expires_at=int(entry["expires_at"]),
                           resource=RESOURCE)


server = MCPServer(
    "oauth-fixture",
    token_verifier=Verifier(),
    auth=AuthSettings(issuer_url=ISSUER, resource_server_url=RESOURCE,
                      required_scopes=["read"], validate_token_resource=True),
)


@server.tool()
def echo(text: str) -> str:
    """Says TEXT back."""
    return text


@server.tool()
def expire_tokens() -> str:
    """Every access token issued so far is refused from now on (the
    client's next requests all meet a 401 at once)."""
    for entry in access.values():
        entry["live"] = False
    return "expired"


@server.tool()
def write(text: str) -> str:
    """Needs scope `write`."""
    return f"wrote {text}"


class StepUp:
    """403 insufficient_scope for `write` without the `write` scope: the
    SDK checks one scope set for the whole endpoint, a real server checks
    per operation."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = dict(scope["headers"])
        presented = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
        entry = access.get(presented)
        try:
            call = json.loads(body)
        except ValueError:
            call = {}
        wants_write = (isinstance(call, dict) and call.get("method") == "tools/call"
                       and call.get("params", {}).get("name") == "write")
        if wants_write and entry and entry["live"] and "write" not in entry["scopes"]:
            challenge = (f'Bearer error="insufficient_scope", scope="read write", '
                         f'resource_metadata="http://127.0.0.1:{MCP_PORT}/.well-known/'
                         f'oauth-protected-resource/mcp"')
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"www-authenticate", challenge.encode()),
                                    (b"content-type", b"application/json")]})
            await send({"type": "http.response.body",
                        "body": b'{"error":"insufficient_scope"}'})
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def main(directory):
    servers = [
        uvicorn.Server(uvicorn.Config(authorization_server, host="127.0.0.1", port=AS_PORT,
                                      log_level="warning")),
        uvicorn.Server(uvicorn.Config(StepUp(server.streamable_http_app()), host="127.0.0.1",
                                      port=MCP_PORT, log_level="warning")),
    ]
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    while not all(s.started for s in servers):
        await asyncio.sleep(0.05)
    (pathlib.Path(directory) / "urls.json").write_text(
        json.dumps({"mcp": RESOURCE, "issuer": ISSUER}))
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
