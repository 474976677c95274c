"""Who sent a request, and the sign-in and sign-out routes (answered here, not by Gradio).

`Identity` names the user of a request: the session of its cookie (`workbench_web.sessions`), or,
with ``[web] trusted_user_header`` (single sign-on through a reverse proxy on the same machine), the
name in that header, only together with the proxy's shared secret (``X-Workbench-Proxy-Secret``).
`add_signin_routes` adds POST /login and GET /logout: the password is checked (a local account with
argon2, else the LDAP/AD directory when configured: `workbench.services.accounts`) in a worker
thread, at most ``[web] login_concurrency`` at once and few waiting (the event loop that serves pages
and answer streams never runs argon2); failed sign-ins are delayed per client by `LoginThrottle`,
short delays waited out by the server so that a user who mistyped is let in a bit later. Sign-ins,
failed ones included, are audited. The session cookie is Gradio's own name, HttpOnly, SameSite=Lax,
Secure behind https, and lasts the browser session. `gradio_auth` tells Gradio's mounted app how to
sign in (its login page posts to our route).

Leaves out: sessions and delays themselves (`workbench_web.sessions`), which requests may reach
these routes (`workbench_web.guard`), and putting the server together (`workbench_web.server`).
"""

import asyncio
import hmac
import os

from workbench import NotFoundError, Workbench, WorkbenchError
from workbench.access import principal_for
from workbench.errors import DirectoryUnavailableError
from workbench_web.guard import SECURE_HEADERS, cookies_of
from workbench_web.sessions import LoginThrottle, SessionStore

PROXY_SECRET_HEADER = "X-Workbench-Proxy-Secret"
LOGIN_QUEUE_FACTOR = 8  # password checks waiting beyond login_concurrency x this are refused as busy
LOGIN_HOLD_S = 10.0  # failed-login delays up to this are waited out by the server; longer ones are refused
BUSY = object()  # what `PasswordChecks.check` returns when too many checks are waiting
UNAVAILABLE = object()  # what `PasswordChecks.check` returns when the directory cannot be reached


class Refused(str):
    """What `PasswordChecks.check` returns when the password was right but the account may not sign in
    (its name belongs to another identity): the reason, for the audit log only."""


def proxy_secret(web) -> str | None:
    """The single sign-on proxy's shared secret (WorkbenchError when SSO is on without one)."""
    if not web.trusted_user_header:
        return None
    secret = os.environ.get(web.trusted_header_secret_env or "", "")
    if len(secret) < 16:
        raise WorkbenchError("[web] trusted_user_header is set, so the proxy must prove itself with a shared secret: "
                             "set [web] trusted_header_secret_env to the name of an environment variable holding a "
                             f"secret of 16+ characters, and have the proxy send it in the {PROXY_SECRET_HEADER} header")
    return secret


class Identity:
    """Who sent a request: its session cookie's user, or with SSO the proxy's header (see module)."""

    def __init__(self, wb: Workbench, sessions: SessionStore, secret: str | None) -> None:
        self.wb, self.sessions, self.secret = wb, sessions, secret
        self.header = wb.config.web.trusted_user_header
        self.gradio_app = None  # Gradio's mounted app (its cookie names), once mounted
        self.after_logout = lambda token: None  # the OpenID provider's logout address (`workbench_web.oidc`)

    def cookie_names(self) -> tuple[str, str]:
        cookie_id = self.gradio_app.cookie_id
        return f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"

    def token_of(self, cookies) -> str | None:
        if self.gradio_app is None:
            return None
        secure, plain = self.cookie_names()
        return cookies.get(secure) or cookies.get(plain)

    def sso_name(self, headers) -> str | None:
        given = headers.get(PROXY_SECRET_HEADER.lower(), "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return None
        name = headers.get(self.header.lower())
        return name if name and self.wb.users.get(name) else None

    def user_of(self, request) -> str | None:
        return self.sso_name(request.headers) if self.header else self.sessions.user_of(self.token_of(request.cookies))

    def principal_of(self, request):
        """The request's user's Principal; NotFoundError (a 404 page) when nobody is signed in."""
        name = self.user_of(request)
        if not name or self.wb.users.get(name) is None:
            raise NotFoundError("sign in first")
        return self.wb.principal(name)

    def guard_user(self, headers: dict[str, str]) -> str | None:
        """The user of raw request headers, for the guard (looking does not keep the session alive)."""
        if self.header:
            return self.sso_name(headers)
        return self.sessions.user_of(self.token_of(cookies_of(headers)), touch=False)


class PasswordChecks:
    """accounts.sign_in in a worker thread, at most ``concurrency`` at once, ``BUSY`` when too many wait,
    ``UNAVAILABLE`` when the directory that would decide cannot be reached."""

    def __init__(self, wb: Workbench, concurrency: int) -> None:
        self.wb, self.concurrency = wb, concurrency
        self.waiting = 0
        self.slots = asyncio.Semaphore(concurrency)

    async def check(self, name: str, password: str):
        if self.waiting >= self.concurrency * LOGIN_QUEUE_FACTOR:
            return BUSY
        self.waiting += 1
        try:
            async with self.slots:
                try:
                    return await asyncio.to_thread(self.wb.accounts.sign_in, name, password)
                except DirectoryUnavailableError:
                    return UNAVAILABLE
                except WorkbenchError as exc:  # the password was right, but the name is another identity's
                    return Refused(str(exc))
        finally:
            self.waiting -= 1


def refuse(detail: str):  # Gradio's login page shows any 400 as "Incorrect Credentials"
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": detail}, status_code=400, headers=SECURE_HEADERS)


async def audit(wb: Workbench, *args) -> None:
    """`AuditLog.record` off the event loop (SQLite and fsync)."""
    await asyncio.to_thread(wb.audit.record, *args)


def add_signin_routes(app, wb: Workbench, identity: Identity, throttle: LoginThrottle, https: bool) -> None:
    """POST /login (and /login/) and GET /logout on ``app``; none with single sign-on (the proxy signs in)."""
    from fastapi import Form, Request
    from fastapi.responses import JSONResponse, RedirectResponse

    if identity.header:
        return
    checks = PasswordChecks(wb, wb.config.web.login_concurrency)
    held: dict[str, bool] = {}  # clients with a sign-in waiting out its delay (one each)

    @app.post("/login")
    @app.post("/login/")
    async def login(request: Request, username: str = Form(""), password: str = Form("")):
        name, client = username.strip()[:200], request.client.host if request.client else "?"
        wait = await _turn(throttle, held, client, name)  # reserves the check; cheap refusals are not audited
        if wait > 0:
            return refuse(f"Too many failed sign-ins from your address: try again in {wait:.0f} s.")
        ok = None  # no check made (busy, or cancelled): nothing counted against the name
        try:
            user = await checks.check(name, password)
            if user is BUSY:
                return refuse("The server is busy checking other sign-ins: try again in a moment.")
            if user is UNAVAILABLE:
                await audit(wb, name, "login-failed", f"from {client}: the directory could not be reached")
                return refuse("The directory that checks passwords cannot be reached: try again later.")
            if isinstance(user, Refused):
                await audit(wb, name, "login-failed", f"from {client}: {user}")
                return refuse("This account cannot sign in here: ask your administrator.")
            ok = user is not None
        finally:
            throttle.end(client, name, ok)
        if not ok:
            await audit(wb, name, "login-failed", f"from {client}: wrong name or password")
            return refuse("Incorrect credentials.")
        await audit(wb, principal_for(user, wb.config.web.admin_group), "login", f"from {client}")
        response = JSONResponse({"success": True})
        secure, plain = identity.cookie_names()
        # a browser-session cookie (gone when the browser closes); the server ends it sooner when idle
        response.set_cookie(secure if https else plain, identity.sessions.start(user), httponly=True,
                            samesite="lax", secure=https, path="/")
        return response

    @app.get("/logout")
    def logout(request: Request):
        token = identity.token_of(request.cookies)
        after = identity.after_logout(token) if token else None  # the provider's own sign-out, if any
        if token:
            identity.sessions.end(token)
        response = RedirectResponse(url=after or "./", status_code=302)
        for name in identity.cookie_names():
            response.delete_cookie(name, path="/", samesite="lax", secure=https, httponly=True)
        return response


async def _turn(throttle: LoginThrottle, held: dict[str, bool], client: str, name: str) -> float:
    """`LoginThrottle.begin`, waiting out a short delay once per client: 0 when the check may run."""
    wait = throttle.begin(client, name)
    if 0 < wait <= LOGIN_HOLD_S and not held.get(client):
        # a short wait is served here instead of refused, so a user who mistyped a few times is
        # let in (a bit later), not told "Incorrect Credentials" with the right password
        held[client] = True
        try:
            await asyncio.sleep(wait)
        finally:
            held.pop(client, None)
        wait = throttle.begin(client, name)
    return wait


def gradio_auth(web, identity: Identity) -> dict:
    """`gr.mount_gradio_app`'s sign-in arguments: the SSO header, or Gradio's login page (posting to our route)."""
    if identity.header:
        return dict(auth_dependency=lambda request: identity.sso_name(request.headers))

    def check_login(name: str, password: str) -> bool:  # never reached: POST /login above answers first
        return False

    return dict(auth=check_login, auth_message=sign_in_message(identity.wb.config))


def sign_in_message(config) -> str:
    """The HTML above Gradio's sign-in form: which account to use, and the OpenID provider's link."""
    import html

    web, auth = config.web, config.auth
    which = "your organization account" if auth.ldap.url else "the account your administrator gave you"
    text = (f"{html.escape(web.title)}: sign in with {which}. After many failed attempts, wait a few minutes "
            "before trying again.")
    if auth.oidc.issuer:
        text = (f'<p><a id="wb-oidc" href="login/oidc">{html.escape(auth.oidc.button)}</a></p>'
                f"<p>Or below, with {'your directory account or ' if auth.ldap.url else ''}a local account. "
                "After many failed attempts, wait a few minutes before trying again.</p>")
    return text
