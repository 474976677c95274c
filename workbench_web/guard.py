"""The staff app's outer wall: which requests, from which pages and for which host, reach the app.

`WebGuard` is an ASGI middleware around everything the server answers (Gradio's routes and the
source viewer). It

- answers only the host names the app is known by (`allowed_hosts`), so a web page cannot reach a
  loopback-only app through DNS rebinding;
- refuses requests made by pages of another origin: any request whose ``Origin`` is not the app's
  own (CORS preflights included), any but GET/HEAD that the browser marks ``Sec-Fetch-Site:
  cross-site`` or ``same-site``, such foreign subresource loads (fetch, images, scripts, frames) of
  anything, and foreign navigations to anything but the start page (a link from elsewhere opens the
  app; it cannot sign the user out or open a source on their behalf);
- forbids framing (``X-Frame-Options: DENY``, ``frame-ancestors 'none'``), sends CORS headers for
  the app's own origins only (Gradio's reflect-any-origin headers are removed);
- lets through only the POST routes the app uses (sign-in, the question queue, cancel, reset, and
  uploads for administrators only); Gradio's other routes that accept files or run tools
  (recording processing, component server, run history, proxies, remote ``file=`` URLs) and its
  ``/token`` route, which hands the session token to scripts, are refused.

Leaves out: who is signed in (the server passes ``user_of(headers)``/``is_admin``) and sign-in itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.requests import cookie_parser

from workbench.config import WebSettings

SAFE_METHODS = {"GET", "HEAD"}
FOREIGN_SITES = {"cross-site", "same-site"}
POST_PATHS = {"/login", "/gradio_api/queue/join", "/gradio_api/cancel", "/gradio_api/reset", "/gradio_api/upload"}
UPLOAD_PATHS = {"/gradio_api/upload"}
HIDDEN_PREFIXES = ("/gradio_api/token", "/token", "/gradio_api/run-history", "/gradio_api/runs",
                   "/gradio_api/proxy=", "/proxy=", "/gradio_api/file=http", "/file=http", "/gradio_api/vibe")
FRAME_DESTS = {"iframe", "frame", "embed", "object", "fencedframe"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


class WebGuard:
    """ASGI middleware; see the module docstring for what it refuses."""

    def __init__(self, app, origins: frozenset[str], user_of: Callable[[dict[str, str]], str | None],
                 is_admin: Callable[[str], bool]) -> None:
        self.app, self.origins, self.user_of, self.is_admin = app, origins, user_of, is_admin
        self.hosts = allowed_hosts(origins)

    def _own_origin(self, origin: str, host: str) -> bool:
        if self.hosts is not None:
            return origin_of(origin) in self.origins if origin != "null" else False
        return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()

    def refusal(self, scope) -> tuple[int, str, str | None] | None:
        """(status, reason, redirect location or None) when the request must not reach the app."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
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
        if path.startswith(HIDDEN_PREFIXES):
            return 404, "Not Found", None
        if scope["type"] == "http" and method not in SAFE_METHODS and path.rstrip("/") not in POST_PATHS \
                and method != "OPTIONS":
            return 404, "Not Found", None
        if foreign_origin or (foreign and (method not in SAFE_METHODS or scope["type"] == "websocket"
                                           or mode not in ("navigate", "") or dest in FRAME_DESTS)):
            return 403, "cross-site request refused: open the app itself to use it", None
        if foreign and path not in ("/", ""):
            return 303, "opened from another site: start at the app's own page", "/"
        if method == "POST" and path.rstrip("/") in UPLOAD_PATHS:
            user = self.user_of(headers)
            if user is None or not self.is_admin(user):
                return 403, "only administrators can upload files", None
        return None

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
            body = reason.encode()
            extra = [(b"location", location.encode())] if location else []
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"x-content-type-options", b"nosniff"), *extra]})
            await send({"type": "http.response.body", "body": body})
            return
        origin = dict(scope.get("headers") or []).get(b"origin", b"").decode("latin-1")

        async def send_guarded(message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", [])
                        if not k.lower().startswith(b"access-control-") and k.lower() != b"x-frame-options"]
                kept += [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'")]
                if origin and origin_of(origin) in self.origins:
                    kept += [(b"access-control-allow-origin", origin.encode()),
                             (b"access-control-allow-credentials", b"true"), (b"vary", b"Origin")]
                message = {**message, "headers": kept}
            await send(message)

        await self.app(scope, receive, send_guarded)
