"""The staff app's outer wall: which requests, from which pages and for which host, reach the app.

`WebGuard` is an ASGI middleware around everything the server answers (Gradio's routes and the
source viewer). It

- answers only the host names the app is known by (`allowed_hosts`), so a web page cannot reach a
  loopback-only app through DNS rebinding, and refuses requests that repeat a header the app's
  decisions rest on (``Host``, ``Cookie``, ``Origin``, the sign-on headers...): a proxy and the app
  must never read two different values;
- refuses requests made by pages of another origin: any request whose ``Origin`` is not the app's
  own (CORS preflights included), any but GET/HEAD that the browser marks ``Sec-Fetch-Site:
  cross-site`` or ``same-site``, such foreign subresource loads (fetch, images, scripts, frames) of
  anything, and foreign navigations to anything but the start page (a link from elsewhere opens the
  app; it cannot sign the user out or open a source on their behalf) and the OpenID provider's return
  to ``/login/oidc/callback`` (which only completes a sign-in this browser started);
- forbids framing (``X-Frame-Options: DENY``, ``frame-ancestors 'none'``), gives the main page a
  Content-Security-Policy (scripts only from the app and its own inline scripts, by hash; images,
  connections and forms to the app only), sends CORS headers for the app's own origins only
  (Gradio's reflect-any-origin headers are removed);
- lets through only the routes the app's pages use (an allow-list: GET pages, assets, the event
  stream, the source viewer and the API's reads; POST sign-in, the question queue, cancel, reset, the
  API's calls and MCP (keys only), and uploads for
  administrators only). Everything else Gradio offers (its API description, deep links, file and
  proxy routes, run history, monitoring, ``/token``) answers 404;
- caps request bodies (``[web] max_request_kb``; uploads are capped per file by Gradio), and hands
  each queue request, event stream and upload to `workbench_web.gate.EventGate`, which admits
  only values the server handed out; refusals of signed-in users are audited.

Leaves out: who is signed in (the server passes ``user_of(headers)``/``is_admin``) and sign-in itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

from starlette.requests import cookie_parser

from workbench.config import WebSettings
from workbench.net import is_loopback
from workbench_web.gate import EventGate, Refusal

SAFE_METHODS = {"GET", "HEAD"}
FOREIGN_SITES = {"cross-site", "same-site"}
JOIN, CANCEL, UPLOAD = "/gradio_api/queue/join", "/gradio_api/cancel", "/gradio_api/upload"
API_POST = {"/api/v1/search", "/api/v1/ask", "/mcp"}  # programs with a key (`workbench_web.api`, `.mcp`)
POST_PATHS = {"/login", JOIN, CANCEL, "/gradio_api/reset", UPLOAD, *API_POST}
EVENT_STREAM, HEARTBEAT = "/gradio_api/queue/data", "/gradio_api/heartbeat/"
OIDC_START, OIDC_CALLBACK = "/login/oidc", "/login/oidc/callback"  # the provider sends the browser back here
# what the app's pages GET (exact paths, then prefixes); every other route of Gradio answers 404
GET_PATHS = {"/", "/config", "/logout", "/favicon.ico", "/robots.txt", "/theme.css", "/gradio_api/theme.css",
             EVENT_STREAM, "/gradio_api/startup-events", "/gradio_api/upload_progress", "/manifest.json",
             OIDC_START, OIDC_CALLBACK, "/api/v1/openapi.json",
             "/.well-known/oauth-protected-resource/mcp"}  # MCP clients' sign-in (`workbench_web.mcp`)
GET_PREFIXES = ("/assets/", "/static/", "/svelte/", HEARTBEAT, "/source/", "/gradio_api/file=", "/api/v1/passages/")
ADMIN_GET = ("/gradio_api/file=", "/gradio_api/upload_progress")  # the admin's own uploads only
# headers whose value decides something here or in the app: a request repeating one is refused
SINGLE_HEADERS = {"host", "origin", "cookie", "authorization", "content-length", "content-type", "transfer-encoding", "x-forwarded-user",
                  "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "sec-fetch-site",
                  "sec-fetch-mode", "sec-fetch-dest", "x-workbench-proxy-secret"}
FRAME_DESTS = {"iframe", "frame", "embed", "object", "fencedframe"}
# sent with every answer of the workbench's own routes (sign-in, source viewer, their error pages)
SECURE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                  "Cache-Control": "private, no-store"}
ADMIN_ONLY = "only administrators can upload files"  # the refusal that is audited (a signed-in user tried)
PAGE_CSP = ("default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:; "
            "connect-src 'self'; form-action 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'")
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
MAX_PAGE = 16 * 2**20  # a main page larger than this is not given script hashes (it never is)


def origin_of(url: str) -> str:
    """'https://host[:port]' of a URL (default ports dropped), lower-case, IPv6 in brackets."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def public_origins(web: WebSettings, host: str, port: int) -> frozenset[str]:
    """The origins whose pages may use the app: ``[web] public_url``, plus http://HOST:PORT under its
    loopback names when the app listens on loopback (a local browser). Empty when the app listens
    on every interface without a ``public_url`` (then only same-host requests pass: see README)."""
    origins = {origin_of(web.public_url)} if web.public_url else set()
    if is_loopback(host):
        origins |= {origin_of(_url(n, port)) for n in {host, "127.0.0.1", "localhost"}}
    elif host not in ("0.0.0.0", "::") and not web.public_url:
        origins.add(origin_of(_url(host, port)))
    return frozenset(origins)


def allowed_hosts(origins: frozenset[str]) -> frozenset[str] | None:
    """Host header values the app answers (host[:port] of its origins); None = any (no origin known)."""
    return frozenset(urlsplit(o).netloc for o in origins) or None


def cookies_of(headers: dict[str, str]) -> dict[str, str]:
    """The cookies of a request's headers (lower-case names), parsed as leniently as Starlette does."""
    return cookie_parser(headers.get("cookie", ""))


def script_hashes(page: bytes) -> str:
    """The CSP sources ('sha256-...') of every inline script of an HTML page."""
    digests = {base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() for m in _INLINE_SCRIPT.finditer(page)}
    return " ".join(f"'sha256-{d}'" for d in sorted(digests))


def headers_of(scope) -> dict[str, str]:
    """A request's headers, names in lower case (a repeated one: its last value; `WebGuard` refuses those)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


def _allowed_get(path: str) -> bool:
    return path in GET_PATHS or path.rstrip("/") in GET_PATHS or path.startswith(GET_PREFIXES)


async def read_body(receive, cap: int) -> bytes | None:
    """The whole request body, or None as soon as it grows past ``cap`` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def replay(body: bytes, receive):
    """A ``receive`` that gives ``body`` once, then waits on the real one (for the disconnect)."""
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return again


class WebGuard:
    """ASGI middleware; see the module docstring for what it refuses."""

    def __init__(self, app, origins: frozenset[str], user_of: Callable[[dict[str, str]], str | None],
                 is_admin: Callable[[str], bool], gate: EventGate | None = None, max_body: int = 64 * 1024,
                 on_refused: Callable[[str, str], Awaitable[None]] | None = None,
                 single_headers: tuple[str, ...] = ()) -> None:
        self.app, self.origins, self.user_of, self.is_admin = app, origins, user_of, is_admin
        self.hosts = allowed_hosts(origins)
        self.gate, self.max_body, self.on_refused = gate, max_body, on_refused
        self.single = SINGLE_HEADERS | {h.lower() for h in single_headers}

    def _own_origin(self, origin: str, host: str) -> bool:
        if self.hosts is not None:
            return origin_of(origin) in self.origins if origin != "null" else False
        return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()

    def refusal(self, scope) -> tuple[int, str, str | None] | None:
        """(status, reason, redirect location or None) when the request must not reach the app."""
        names = [k.decode("latin-1").lower() for k, _ in scope.get("headers") or []]
        repeated = sorted({n for n in names if n in self.single and names.count(n) > 1})
        if repeated:
            return 400, f"header {repeated[0]} sent more than once", None
        headers = headers_of(scope)
        method, path = scope.get("method", "GET"), scope.get("path", "")
        origin = headers.get("origin") or None
        site = headers.get("sec-fetch-site", "").lower()
        mode = headers.get("sec-fetch-mode", "").lower()
        dest = headers.get("sec-fetch-dest", "").lower()
        host = headers.get("host", "").lower()
        if self.hosts is not None and host not in self.hosts:
            return 421, f"this app is not served as {host!r}: open it at its own address ([web] public_url)", None
        foreign_origin = origin is not None and not self._own_origin(origin, host)
        foreign = site in FOREIGN_SITES or foreign_origin
        if scope["type"] == "http" and method != "OPTIONS" and not (
                _allowed_get(path) if method in SAFE_METHODS else path.rstrip("/") in POST_PATHS):
            return 404, "Not Found", None
        if foreign_origin or (foreign and (method not in SAFE_METHODS or scope["type"] == "websocket"
                                           or mode not in ("navigate", "") or dest in FRAME_DESTS)):
            return 403, "cross-site request refused: open the app itself to use it", None
        if foreign and path not in ("/", "", OIDC_CALLBACK):  # the callback is bound to its browser (state cookie)
            return 303, "opened from another site: start at the app's own page", "/"
        if path in ("/", "") and {"deep_link", "page"} & parse_qs(scope.get("query_string", b"").decode("latin-1")).keys():
            return 303, "shared links to a page's state are not offered here", "/"
        needs_admin = (method == "POST" and path.rstrip("/") == UPLOAD) or path.startswith(ADMIN_GET)
        if needs_admin:
            user = self.user_of(headers)
            if user is None or not self.is_admin(user):
                return 403, ADMIN_ONLY, None
        return None

    async def _refuse(self, send, status: int, reason: str, location: str | None = None) -> None:
        body = reason.encode()
        extra = [(b"location", location.encode())] if location else []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()),
                                (b"x-content-type-options", b"nosniff"), *extra]})
        await send({"type": "http.response.body", "body": body})

    async def _refuse_audited(self, send, user: str | None, what: str, refused: Refusal) -> None:
        """Refuse, and record in the audit log that ``user`` (when signed in) was refused ``what``."""
        if self.on_refused is not None and user is not None:
            await self.on_refused(user, f"{what}: {refused.reason}")
        await self._refuse(send, refused.status, refused.reason)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is not None:
            status, reason, location = refused
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            if reason == ADMIN_ONLY:
                await self._refuse_audited(send, self.user_of(headers_of(scope)), scope.get("path", ""),
                                           Refusal(status, reason))
            else:
                await self._refuse(send, status, reason, location)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # the app's pages use none
            return
        origin = dict(scope.get("headers") or []).get(b"origin", b"").decode("latin-1")
        page = {"start": None, "body": []} if scope["path"] in ("/", "") and scope["method"] == "GET" else None

        async def send_guarded(message) -> None:
            nonlocal page
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", [])
                        if not k.lower().startswith(b"access-control-") and k.lower() != b"x-frame-options"]
                kept += [(b"x-frame-options", b"DENY")]
                if origin and origin_of(origin) in self.origins:
                    kept += [(b"access-control-allow-origin", origin.encode()),
                             (b"access-control-allow-credentials", b"true"), (b"vary", b"Origin")]
                message = {**message, "headers": kept}
                if page is not None:  # held until the page is read: its CSP names its inline scripts
                    page["start"] = message
                    return
                message["headers"].append((b"content-security-policy", b"frame-ancestors 'none'"))
            elif page is not None and message["type"] == "http.response.body":
                page["body"].append(message.get("body", b""))
                if message.get("more_body") and sum(map(len, page["body"])) <= MAX_PAGE:
                    return
                body = b"".join(page["body"])
                csp = PAGE_CSP.format(hashes=script_hashes(body)).encode()
                start = page["start"]
                await send({**start, "headers": [*start["headers"], (b"content-security-policy", csp)]})
                message = {"type": "http.response.body", "body": body, "more_body": message.get("more_body", False)}
                page = None  # the rest (if any) passes through
            await send(message)

        if self.gate is not None and scope["type"] == "http":
            await self._gated(scope, receive, send_guarded)
        else:
            await self.app(scope, receive, send_guarded)

    async def _gated(self, scope, receive, send) -> None:
        """Body cap and `EventGate` checks for the queue, event stream, cancel and upload routes."""
        headers = headers_of(scope)
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        user = None
        if path in (JOIN, CANCEL, EVENT_STREAM, UPLOAD) or path.startswith(HEARTBEAT.rstrip("/")):
            user = self.user_of(headers)
            if user is None:
                await self._refuse(send, 401, "sign in first")
                return
        if method == "POST" and path != UPLOAD:
            body = await read_body(receive, self.max_body)
            if body is None:
                await self._refuse(send, 413, f"request body over {self.max_body // 1024} KB ([web] max_request_kb)")
                return
            receive = replay(body, receive)
            if path in (JOIN, CANCEL):
                try:
                    data = json.loads(body)
                except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
                    await self._refuse(send, 400, "the body is not JSON (or is nested too deeply)")
                    return
                if path == JOIN:
                    refused = self.gate.check_join(user, self.is_admin(user), data)
                else:
                    refused = self.gate.claim(user, data.get("session_hash") if isinstance(data, dict) else None)
                if refused is not None:
                    await self._refuse_audited(send, user, path, refused)
                    return
                if path == JOIN and self.gate.is_capped(data):
                    self.gate.joining(user, +1)
                    try:
                        await self.app(scope, receive, send)
                    finally:
                        self.gate.joining(user, -1)
                    return
        elif path == EVENT_STREAM or path.startswith(HEARTBEAT):
            session = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash") or [None])[0] \
                if path == EVENT_STREAM else path[len(HEARTBEAT):]
            refused = self.gate.claim(user, session)
            if refused is not None:
                await self._refuse_audited(send, user, path, refused)
                return
        elif path.startswith("/gradio_api/file="):  # an admin (see refusal); only their own uploads
            if not self.gate.was_handed(self.user_of(headers), path[len("/gradio_api/file="):]):
                await self._refuse(send, 404, "Not Found")
                return
        elif path == UPLOAD:
            await self.app(scope, receive, self._recording_uploads(user, send))
            return
        await self.app(scope, receive, send)

    def _recording_uploads(self, user: str, send):
        """A ``send`` that tells the gate which paths the upload route returned to ``user``."""
        state = {"status": 0, "body": []}

        async def recording(message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                state["body"].append(message.get("body", b""))
                if not message.get("more_body") and state["status"] == 200:
                    try:
                        paths = json.loads(b"".join(state["body"]))
                    except ValueError:
                        paths = []
                    if isinstance(paths, list):
                        self.gate.handed_out(user, [p for p in paths if isinstance(p, str)])
            await send(message)
        return recording
