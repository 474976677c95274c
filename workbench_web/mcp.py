"""The MCP server at ``/mcp`` (streamable HTTP), for programs holding a personal key.

`add_mcp_route(app, wb, calls)` serves `workbench.services.mcp.mcp_server` through the official
SDK's streamable HTTP transport, stateless and POST only (each request stands alone: there is no MCP
session a stolen session id could join, and no standing stream or subscription to hold open). In front of it, `KeyDoor` lets through only requests whose
``Authorization: Bearer wbk_...`` is a live key of a user who still exists, within the key's rate
(`workbench.services.apicalls.KeyCalls`); anything else gets 401/429 with the reason, and never
reaches the SDK. Each tool then checks the key holds its scope and acts as the key's user. The
guard (`workbench_web.guard`) still applies first: hosts, foreign origins, body size. Links in
results point at the source viewer under ``[web] public_url`` (else the address the request used).

With ``[auth.oidc] mcp_sign_in``, MCP clients may instead sign in through the organization's OpenID
provider, as the MCP authorization specification describes: a refusal's ``WWW-Authenticate`` names
this server's protected-resource metadata (RFC 9728, at ``/.well-known/oauth-protected-resource/mcp``),
which names the provider; the client signs its user in there and sends the provider's access token,
which `KeyDoor` checks with the provider (`workbench.services.apicalls.KeyCalls.act_as_token`).
Leaves out: checking the token's audience (the provider's userinfo endpoint, which checks it, accepts
any token it issued), and this sign-in for the REST API (keys only).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

from workbench.errors import CallRefused
from workbench.services.apicalls import Caller, KeyCalls
from workbench.services.mcp import mcp_server
from workbench.stores.keys import PREFIX as KEY_PREFIX
from workbench_web.api import bearer, refusal_headers
from workbench_web.guard import headers_of

PATH = "/mcp"
METADATA = "/.well-known/oauth-protected-resource" + PATH  # RFC 9728, path-inserted
CALLER = "workbench.caller"  # where KeyDoor leaves the checked `Caller` in the request's scope


def base_url(scope, public: str) -> str:
    """This server's address as clients reach it: ``[web] public_url``, else the request's own."""
    from starlette.requests import Request

    return public or str(Request(scope).base_url).rstrip("/")


class KeyDoor:
    """ASGI app: checks the request's key (or, with ``oidc``, the provider's access token), then hands
    it to ``app`` with the `Caller` in its scope."""

    def __init__(self, app, calls: KeyCalls, oidc=None, public: str = "") -> None:
        self.app, self.calls, self.oidc, self.public = app, calls, oidc, public

    async def __call__(self, scope, receive, send) -> None:
        token = bearer(headers_of(scope))
        try:
            if self.oidc is not None and token and not token.startswith(KEY_PREFIX):
                client = (scope.get("client") or ("?",))[0]
                caller = await asyncio.to_thread(self.calls.act_as_token, token, self.oidc, client)
            else:
                caller = await asyncio.to_thread(self.calls.act_as, token, None)
        except CallRefused as exc:
            headers = refusal_headers(exc)
            if exc.status == 401 and self.oidc is not None:
                error = ', error="invalid_token"' if token else ""
                headers["WWW-Authenticate"] = (f'Bearer realm="workbench"{error}, resource_metadata='
                                               f'"{base_url(scope, self.public)}{METADATA}"')
            extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
            body = json.dumps({"error": str(exc)}).encode()
            await send({"type": "http.response.start", "status": exc.status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                    (b"cache-control", b"no-store"), *extra]})
            await send({"type": "http.response.body", "body": body})
            return
        scope[CALLER] = caller
        await self.app(scope, receive, send)


def add_mcp_route(app, wb, calls: KeyCalls, oidc=None) -> None:
    """``/mcp`` on ``app`` (a FastAPI app), with the SDK's session manager run by the app's lifespan;
    with ``oidc`` (the provider's `workbench.identity.oidc.OidcClient`) and ``[auth.oidc]
    mcp_sign_in``, also the provider's access tokens and the protected-resource metadata."""
    from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
    from mcp.server.transport_security import TransportSecuritySettings

    public = (wb.config.web.public_url or "").rstrip("/")

    def who(ctx, scope: str):
        request = ctx.request_context.request
        caller: Caller | None = request.scope.get(CALLER) if request is not None else None
        if caller is None:  # never: KeyDoor is the only way in
            raise CallRefused(401, "send your key: Authorization: Bearer wbk_...")
        caller.may(scope)
        return caller.principal

    def link(ctx, chunk_id: int) -> str:
        request = ctx.request_context.request
        base = public or (str(request.base_url).rstrip("/") if request is not None else "")
        return f"{base}/source/{chunk_id}"

    server = mcp_server(wb, who, link, asking=calls.asking)
    # the guard answers hosts and origins for the whole app (its DNS-rebinding defence is the SDK's too)
    server.streamable_http_app(streamable_http_path=PATH, stateless_http=True,
                               transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    manager = server.session_manager
    # POST only: no standing event stream (GET) to hold open, no session to end (DELETE): 405
    oidc = oidc if wb.config.auth.oidc.mcp_sign_in else None
    app.add_route(PATH, KeyDoor(StreamableHTTPASGIApp(manager), calls, oidc, public), methods=["POST"])
    if oidc is not None:
        scopes = list(dict.fromkeys(("openid", *wb.config.auth.oidc.scopes)))

        def metadata(request):
            from starlette.responses import JSONResponse

            from workbench.errors import WorkbenchError

            base = base_url(request.scope, public)
            try:
                issuer = oidc.expected_issuer  # as the provider spells it: clients compare it with its metadata
            except WorkbenchError:
                issuer = oidc.issuer
            return JSONResponse({"resource": base + PATH, "authorization_servers": [issuer],
                                 "scopes_supported": scopes, "bearer_methods_supported": ["header"],
                                 "resource_name": "workbench documents"}, headers={"cache-control": "no-store"})
        app.add_route(METADATA, metadata, methods=["GET"])
    before = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        async with before(a), manager.run():
            yield
    app.router.lifespan_context = lifespan
