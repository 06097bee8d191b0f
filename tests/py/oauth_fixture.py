"""A stand-in OAuth authorization server's keys, and a real MCP client
holding its tokens, for tests/tests/serve_auth.rs (loopback only).

    oauth_fixture.py issuer DIR
        Makes two RSA keys: `good` (published in the JWKS as kid `k1`) and
        `rogue` (never published), writes their PEMs to DIR, serves the
        JWKS at http://127.0.0.1:PORT/jwks and prints that URL, then serves
        until killed.

    oauth_fixture.py client DIR URL --issuer ISS --resource RES
        Against weir serve at URL (an MCP endpoint behind `weir.auth`),
        prints one JSON object: for tokens that are valid (scopes `all` and
        `read`), expired, for another audience, signed with the rogue key,
        and none, what happened — the Python SDK's Client listing tools and
        calling `hello` with a good token; the HTTP status and
        WWW-Authenticate of a raw request with a bad one (also one signed
        HS256 with a made-up secret, the algorithm-confusion try); and the
        protected-resource metadata the challenge points to.
"""

import argparse
import asyncio
import http.server
import json
import pathlib
import re
import time

import httpx2
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def issuer(directory):
    directory = pathlib.Path(directory)
    keys = {}
    for name in ("good", "rogue"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        keys[name] = key
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (directory / f"{name}.pem").write_bytes(pem)
    public = json.loads(RSAAlgorithm.to_jwk(keys["good"].public_key()))
    public.update({"kid": "k1", "alg": "RS256", "use": "sig"})
    jwks = json.dumps({"keys": [public]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/jwks":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}/jwks", flush=True)
    server.serve_forever()


def token(directory, key, issuer, audience, scope, expires_in):
    pem = (pathlib.Path(directory) / f"{key}.pem").read_bytes()
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": "tester",
        "scope": scope,
        "iat": now,
        "exp": now + expires_in,
    }
    return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": "k1"})


async def with_client(url, bearer):
    http_client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"})
    async with Client(streamable_http_client(url, http_client=http_client)) as client:
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        result = await client.call_tool("hello", {"input": "auth"})
        text = "".join(c.text for c in result.content if c.type == "text")
        hidden = None
        if "test.echo" not in tools:
            try:
                denied = await client.call_tool("test.echo", {"message": "x"})
                hidden = "".join(c.text for c in denied.content if c.type == "text")
            except Exception as e:  # an MCP error: what weir said
                hidden = str(e)
        return {
            "protocol": client.protocol_version,
            "tools": tools,
            "hello": text,
            "hidden_call": hidden,
        }


def raw(url, bearer):
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/list",
    }
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "fixture", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}}}}
    response = httpx2.post(url, json=body, headers=headers)
    return {
        "status": response.status_code,
        "www_authenticate": response.headers.get("www-authenticate"),
        "body": response.text,
    }


def client(args):
    mint = lambda key, audience, scope, expires_in: token(
        args.dir, key, args.issuer, audience, scope, expires_in
    )
    report = {
        "all": asyncio.run(with_client(args.url, mint("good", args.resource, "all", 300))),
        "read": asyncio.run(with_client(args.url, mint("good", args.resource, "read", 300))),
        "expired": raw(args.url, mint("good", args.resource, "all", -120)),
        "wrong_audience": raw(args.url, mint("good", "http://127.0.0.1:1/other", "all", 300)),
        "rogue_key": raw(args.url, mint("rogue", args.resource, "all", 300)),
        "none": raw(args.url, None),
        "symmetric": raw(args.url, jwt.encode(
            {"iss": args.issuer, "aud": args.resource, "exp": int(time.time()) + 300},
            "a-shared-secret-anyone-could-guess", algorithm="HS256", headers={"kid": "k1"})),
    }
    challenge = report["none"]["www_authenticate"] or ""
    found = re.search(r'resource_metadata="([^"]+)"', challenge)
    if found:
        report["metadata"] = httpx2.get(found.group(1)).json()
    print(json.dumps(report), flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("issuer")
    i.add_argument("dir")
    c = sub.add_parser("client")
    c.add_argument("dir")
    c.add_argument("url")
    c.add_argument("--issuer", required=True)
    c.add_argument("--resource", required=True)
    args = p.parse_args()
    if args.command == "issuer":
        issuer(args.dir)
    else:
        client(args)


main()
