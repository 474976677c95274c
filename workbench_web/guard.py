"""The staff app's outer wall: which requests from which pages reach the app at all.

`WebGuard` is an ASGI middleware around everything the server answers (Gradio's routes and the
source viewer). It

- refuses requests made by pages of another origin: any request whose ``Origin`` is not the app's
  own (CORS preflights included), any but GET/HEAD whose ``Sec-Fetch-Site`` is ``cross-site`` or
  ``same-site``, and such foreign subresource loads (fetch, images, scripts) of anything; a link
  followed from another site (a top-level GET navigation) still opens;
- sends CORS headers for the app's own public origin only (Gradio's reflect-any-origin headers
  are removed);
- lets only administrators upload files (Gradio's ``/gradio_api/upload`` is open to any signed-in
  user otherwise) and hides Gradio's ``/token`` route, which returns the session token to scripts.

Leaves out: who is signed in (the server passes ``user_of(headers)``/``is_admin``) and sign-in itself.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from workbench.config import WebSettings

SAFE_METHODS = {"GET", "HEAD"}
FOREIGN_SITES = {"cross-site", "same-site"}
UPLOAD_PATHS = ("/gradio_api/upload", "/upload")
HIDDEN_PATHS = ("/gradio_api/token", "/token")


def origin_of(url: str) -> str:
    """'https://host[:port]' of a URL (default ports dropped), lower-case."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def public_origins(web: WebSettings, host: str, port: int) -> frozenset[str]:
    """The origins whose pages may use the app: ``[web] public_url``, else http://HOST:PORT (and the
    loopback names of it). With neither known (HOST 0.0.0.0), same-host requests still pass."""
    if web.public_url:
        return frozenset({origin_of(web.public_url)})
    names = {host}
    if host in ("127.0.0.1", "localhost", "::1"):
        names |= {"127.0.0.1", "localhost"}
    return frozenset(origin_of(f"http://{n}:{port}") for n in names if n not in ("0.0.0.0", "::"))


def cookies_of(headers: dict[str, str]) -> dict[str, str]:
    """The cookies of a request's headers (lower-case names → values)."""
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header means no cookies
        return {}
    return {k: v.value for k, v in jar.items()}


class WebGuard:
    """ASGI middleware; see the module docstring for what it refuses."""

    def __init__(self, app, origins: frozenset[str], user_of: Callable[[dict[str, str]], str | None],
                 is_admin: Callable[[str], bool], same_host_ok: bool = True) -> None:
        self.app, self.origins, self.user_of, self.is_admin = app, origins, user_of, is_admin
        self.same_host_ok = same_host_ok

    def _own_origin(self, origin: str, host: str) -> bool:
        if origin in self.origins:
            return True
        return self.same_host_ok and bool(host) and origin != "null" and urlsplit(origin).netloc.lower() == host.lower()

    def refusal(self, scope) -> tuple[int, str] | None:
        """(status, reason) when the request must not reach the app, else None."""
        headers = dict(scope.get("headers") or [])
        method, path = scope.get("method", "GET"), scope.get("path", "")
        origin = headers.get(b"origin", b"").decode("latin-1") or None
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
        mode = headers.get(b"sec-fetch-mode", b"").decode("latin-1").lower()
        host = headers.get(b"host", b"").decode("latin-1")
        foreign_origin = origin is not None and not self._own_origin(origin, host)
        foreign = site in FOREIGN_SITES or foreign_origin
        if path.rstrip("/") in HIDDEN_PATHS:
            return 404, "Not Found"
        if foreign_origin or (foreign and (method not in SAFE_METHODS or scope["type"] == "websocket"
                                           or mode not in ("navigate", ""))):
            return 403, "cross-site request refused: open the app itself to use it"
        if method == "POST" and path.rstrip("/") in UPLOAD_PATHS:
            user = self.user_of({k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers.items()})
            if user is None or not self.is_admin(user):
                return 403, "only administrators can upload files"
        return None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is not None:
            status, reason = refused
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            body = reason.encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"x-content-type-options", b"nosniff")]})
            await send({"type": "http.response.body", "body": body})
            return
        origin = dict(scope.get("headers") or []).get(b"origin", b"").decode("latin-1")

        async def send_with_cors(message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", [])
                        if not k.lower().startswith(b"access-control-")]
                if origin in self.origins:
                    kept += [(b"access-control-allow-origin", origin.encode()),
                             (b"access-control-allow-credentials", b"true"), (b"vary", b"Origin")]
                message = {**message, "headers": kept}
            await send(message)

        await self.app(scope, receive, send_with_cors)
