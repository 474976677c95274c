"""MCP clients signing in through the organization's OpenID provider (the MCP authorization flow).

The official MCP SDK's own OAuth client (`mcp.client.auth.OAuthClientProvider`) is driven against a
real `workbench serve` and a real OpenID provider (oidc-provider-mock, see `oidcbed`): it reads the
server's protected-resource metadata from the 401, discovers the provider, registers itself there,
signs a person in (the provider's login form, chosen by subject as a person would) and calls the
tools with the provider's access token. Rights follow the provider: another person sees less, a
group taken away at the provider or a revoked token takes effect at the next check, and tokens the
provider never issued are refused.
"""

from __future__ import annotations

import os
import sqlite3
import time
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from oidcbed import TABLE, OidcProvider, PEOPLE
from signinkit import docs_site
from webkit import Server, free_port

CANARY = "CANARY-FIN-5521"


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    # the SDK's client sends no nonce (an OAuth client, not an OpenID relying party): the provider must not demand one
    with OidcProvider(tmp_path_factory.mktemp("mcp-oidc") / "provider.log", require_nonce=False) as p:
        yield p


@pytest.fixture(scope="module")
def site(provider, tmp_path_factory, embedder):
    port = free_port()
    client_id, secret = provider.register(f"http://127.0.0.1:{port}/login/oidc/callback")
    auth = {"refresh_s": 1, "groups": TABLE,
            "oidc": {"issuer": provider.issuer, "client_id": client_id, "client_secret_env": "WB_TEST_OIDC_SECRET",
                     "mcp_sign_in": True}}
    info = docs_site(tmp_path_factory.mktemp("mcp-oidc-site"), embedder, auth)
    server = Server(info["cfg"], env={**os.environ, "WB_TEST_OIDC_SECRET": secret}, port=port)
    yield {**info, "server": server, "url": server.url}
    server.stop()
    for sub, claims in PEOPLE.items():  # the module's provider is its own, but leave the people as they were
        provider.set_claims(sub, claims)


class Memory:
    """The SDK's token storage, in memory (a desktop client keeps it in its settings)."""

    def __init__(self):
        self.tokens = self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info):
        self.client = info


def signed_in_calls(url: str, sub: str, chunk_id: int, store: Memory | None = None) -> dict:
    """List the tools and call each one as the person ``sub`` chooses at the provider's login form."""
    import httpx2
    from mcp import Client
    from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import OAuthClientMetadata

    store = store or Memory()
    seen: dict = {}

    async def to_provider(authorize_url: str) -> None:
        seen["authorize"] = authorize_url
        seen["back"] = await anyio.to_thread.run_sync(OidcProvider.approve, authorize_url, sub)

    async def come_back() -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(seen["back"]).query)
        return AuthorizationCodeResult(code=query["code"][0], state=query["state"][0],
                                       iss=query.get("iss", [None])[0])

    oauth = OAuthClientProvider(
        url + "mcp", OAuthClientMetadata(client_name="test desktop client", redirect_uris=["http://127.0.0.1:1/callback"],
                                         grant_types=["authorization_code", "refresh_token"], response_types=["code"]),
        store, redirect_handler=to_provider, callback_handler=come_back)

    async def go():
        async with httpx2.AsyncClient(auth=oauth, timeout=300) as http, \
                Client(streamable_http_client(url + "mcp", http_client=http)) as client:
            tools = await client.list_tools()
            found = await client.call_tool("search", {"query": "bonus pool 2027", "k": 3})
            read = await client.call_tool("read_passage", {"chunk_id": chunk_id})
            asked = await client.call_tool("ask", {"question": "How big is the bonus pool for 2027?"})
        return {"tools": {t.name for t in tools.tools}, "search": found, "read": read, "ask": asked,
                "authorize": seen.get("authorize", ""), "store": store}
    return anyio.run(go)


def audit(site, action: str) -> list[tuple]:
    with sqlite3.connect(site["index"] / "audit.sqlite") as db:
        return db.execute("SELECT user, source, groups, outcome FROM audit WHERE action=?", (action,)).fetchall()


def test_an_mcp_client_signs_in_through_the_provider_with_its_users_rights(site, provider):
    fin = site["chunks"]["finance"]
    frank = signed_in_calls(site["url"], "sub-frank", fin)
    assert frank["authorize"].startswith(provider.issuer)  # the client found the provider from the server's metadata
    query = parse_qs(urlsplit(frank["authorize"]).query)
    assert query["resource"] == [site["url"] + "mcp"] and query["code_challenge_method"] == ["S256"]
    assert "openid" in query["scope"][0].split()
    assert frank["tools"] == {"search", "ask", "read_passage"}
    hits = frank["search"].structured_content["hits"]
    assert not frank["search"].is_error and CANARY in hits[0]["text"]
    assert not frank["read"].is_error and CANARY in frank["read"].structured_content["text"]
    assert not frank["ask"].is_error and "citations" in frank["ask"].structured_content

    erin = signed_in_calls(site["url"], "sub-erin", fin)  # staff only: the finance memo stays out of every tool
    seen = str(erin["search"].structured_content) + str(erin["ask"].structured_content) + str(erin["read"].content)
    assert CANARY not in seen and "4.2 million" not in seen
    assert erin["read"].is_error and "no source" in erin["read"].content[0].text

    logins = audit(site, "login")
    assert ("frank", "openid (mcp)") in {(u, s) for u, s, _, _ in logins}
    assert any(u == "frank" and s == "openid (mcp)" and "finance" in g for u, s, g, _ in audit(site, "search"))
    assert any(u == "erin" and s == "openid (mcp)" and "finance" not in g for u, s, g, _ in audit(site, "search"))


def test_the_provider_decides_each_tokens_rights_and_its_end(site, provider):
    url = site["url"] + "mcp"
    bare = httpx.post(url, json={}, timeout=30)
    assert bare.status_code == 401
    challenge = bare.headers["www-authenticate"]
    assert f'resource_metadata="{site["url"]}.well-known/oauth-protected-resource/mcp"' in challenge
    meta = httpx.get(site["url"] + ".well-known/oauth-protected-resource/mcp", timeout=30).json()
    assert meta["resource"] == url and meta["authorization_servers"] == [provider.issuer]
    assert "openid" in meta["scopes_supported"]
    for forged in (b"not-a-token", b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdWItZnJhbmsifQ.", b"x" * 5000, "t\u00f6ken-\u00e9t\u00e9".encode()):
        r = httpx.post(url, json={}, timeout=30, headers={"Authorization": b"Bearer " + forged})
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"], forged[:20]

    # someone whose provider account says "frank" (another subject) does not become frank, and cannot tell why
    provider.set_claims("sub-mallory", {"preferred_username": "frank", "groups": ["Finance-Team"]})
    with pytest.raises(Exception):  # the SDK's client gives up after the token it got is refused
        signed_in_calls(site["url"], "sub-mallory", site["chunks"]["finance"])
    refused = [r for r in audit(site, "refused") if r[0] == "frank"]
    assert refused and refused[-1][1] == "openid (mcp)"

    # frank's groups change at the provider: once the server's word on his token is stale (refresh_s = 1), it asks again
    store = Memory()
    fin = site["chunks"]["finance"]
    first = signed_in_calls(site["url"], "sub-frank", fin, store)
    assert CANARY in first["search"].structured_content["hits"][0]["text"]
    token = store.tokens.access_token
    provider.set_claims("sub-frank", {**PEOPLE["sub-frank"], "groups": ["Staff"]})
    time.sleep(1.5)
    later = signed_in_calls(site["url"], "sub-frank", fin, store)  # the same token: no new sign-in
    assert store.tokens.access_token == token and later["authorize"] == ""
    assert CANARY not in str(later["search"].structured_content) and later["read"].is_error

    # the provider revokes his tokens (he left): the token stops working at the next check
    provider.revoke("sub-frank")
    time.sleep(1.5)
    gone = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30,
                      headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"})
    assert gone.status_code == 401 and "does not accept this token" in gone.text
