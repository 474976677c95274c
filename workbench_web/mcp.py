"""The MCP server at ``/mcp`` (streamable HTTP), for programs holding a personal key.

`add_mcp_route(app, wb, calls)` serves `workbench.services.mcp.mcp_server` through the official
SDK's streamable HTTP transport, stateless and POST only (each request stands alone: there is no MCP
session a stolen session id could join, and no standing stream or subscription to hold open). In front of it, `KeyDoor` lets through only requests whose
``Authorization: Bearer wbk_...`` is a live key of a user who still exists, within the key's rate
(`workbench.services.apicalls.KeyCalls`); anything else gets 401/429 with the reason, and never
reaches the SDK. Each tool then checks the key holds its scope and acts as the key's user. The
guard (`workbench_web.guard`) still applies first: hosts, foreign origins, body size. Links in
results point at the source viewer under ``[web] public_url`` (else the address the request used).

Leaves out: sign-in through the organization's OpenID provider (MCP clients present keys only).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

from workbench.errors import CallRefused
from workbench.services.apicalls import Caller, KeyCalls
from workbench.services.mcp import mcp_server
from workbench_web.api import bearer, refusal_headers
from workbench_web.guard import headers_of

PATH = "/mcp"
CALLER = "workbench.caller"  # where KeyDoor leaves the checked `Caller` in the request's scope


class KeyDoor:
    """ASGI app: checks the request's key, then hands it to ``app`` with the `Caller` in its scope."""

    def __init__(self, app, calls: KeyCalls) -> None:
        self.app, self.calls = app, calls

    async def __call__(self, scope, receive, send) -> None:
        try:
            caller = await asyncio.to_thread(self.calls.act_as, bearer(headers_of(scope)), None)
        except CallRefused as exc:
            extra = [(k.lower().encode(), v.encode()) for k, v in refusal_headers(exc).items()]
            body = json.dumps({"error": str(exc)}).encode()
            await send({"type": "http.response.start", "status": exc.status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                    (b"cache-control", b"no-store"), *extra]})
            await send({"type": "http.response.body", "body": body})
            return
        scope[CALLER] = caller
        await self.app(scope, receive, send)


def add_mcp_route(app, wb, calls: KeyCalls) -> None:
    """``/mcp`` on ``app`` (a FastAPI app), with the SDK's session manager run by the app's lifespan."""
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
    app.add_route(PATH, KeyDoor(StreamableHTTPASGIApp(manager), calls), methods=["POST"])
    before = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        async with before(a), manager.run():
            yield
    app.router.lifespan_context = lifespan
