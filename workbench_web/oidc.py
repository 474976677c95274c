"""Sign-in through the organization's OpenID provider: GET /login/oidc and its callback.

``/login/oidc`` starts a sign-in (`workbench.identity.oidc.OidcClient.begin`): the state, nonce and
PKCE verifier stay in this server's memory, keyed by the state, and the browser gets the state in a
short-lived HttpOnly cookie, so the callback completes only a sign-in this same browser started
(no login CSRF). ``/login/oidc/callback`` takes the pending sign-in out (a replayed state or code
finds nothing), checks the cookie, exchanges the code and checks the ID token, writes the user with
the groups their directory groups map to (`workbench.services.accounts.Accounts.sign_in_oidc`),
starts a session holding the sign-in (for the refresh and the provider's logout) and goes to the
app. Failures are audited and shown as a short page with a link to try again.

`refresher` is the sessions' refresh: for an OpenID session the provider's userinfo answer (its
access token renewed when expired) gives the groups, else the LDAP directory; a provider that no
longer accepts the sign-in, or a user gone from the directory, ends the session.

Leaves out: password sign-in and sign-out (`workbench_web.signin`), sessions (`workbench_web.sessions`).
"""


import asyncio
import hmac
import html
import os
import threading
import time
from urllib.parse import urlsplit

from workbench import Workbench, WorkbenchError
from workbench.access import principal_for
from workbench.errors import DirectoryUnavailableError, SignInError
from workbench.identity.oidc import PENDING_S, OidcClient, Pending, SignedIn
from workbench_web.guard import OIDC_CALLBACK, OIDC_START, SECURE_HEADERS
from workbench_web.sessions import client_key
from workbench_web.signin import Identity, audit

STATE_COOKIE = "wb-oidc-state"
MAX_PENDING = 10_000  # sign-ins started and not back yet, across all browsers
PER_CLIENT = 20  # ... from one client address (its oldest is forgotten beyond that)


def oidc_client(wb: Workbench, root_url: str) -> OidcClient | None:
    """The configured provider's client, returning to ``root_url`` + /login/oidc/callback; None without one."""
    settings = wb.config.auth.oidc
    if not settings.issuer:
        return None
    secret = None
    if settings.client_secret_env:
        secret = os.environ.get(settings.client_secret_env)
        if not secret:
            raise WorkbenchError(f"[auth.oidc] client_secret_env names {settings.client_secret_env}, which is not set: "
                                 "export the client secret the provider gave this app in that variable")
    return OidcClient(settings, root_url.rstrip("/") + OIDC_CALLBACK, secret)


class PendingSignIns:
    """Sign-ins sent to the provider, by state; each can be taken out once, within PENDING_S. One
    client holds at most PER_CLIENT of them, so nobody can push out everyone else's sign-ins."""

    def __init__(self, clock=time.time) -> None:
        self.clock = clock
        self._by_state: dict[str, tuple[Pending, str]] = {}
        self._by_client: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def add(self, pending: Pending, client: str) -> None:
        with self._lock:
            mine = self._by_client.setdefault(client, [])
            while len(mine) >= PER_CLIENT:
                self._by_state.pop(mine.pop(0), None)
            if len(self._by_state) >= MAX_PENDING:
                oldest = next(iter(self._by_state))
                self._forget(oldest)
            self._by_state[pending.state] = (pending, client)
            mine.append(pending.state)

    def _forget(self, state: str) -> None:
        _, client = self._by_state.pop(state)
        states = self._by_client.get(client, [])
        if state in states:
            states.remove(state)
        if not states:
            self._by_client.pop(client, None)

    def take(self, state: str) -> Pending | None:
        with self._lock:
            if state not in self._by_state:
                return None
            pending = self._by_state[state][0]
            self._forget(state)
        return pending if self.clock() - pending.started < PENDING_S else None


def refresher(wb: Workbench, client: OidcClient | None):
    """The `SessionStore` refresh callback: (still signed in?, the session's grant from now on)."""

    def refresh(name: str, grant):
        if not isinstance(grant, SignedIn):  # a password sign-in (local or LDAP)
            return wb.accounts.refresh(name), grant
        if client is None:
            return False, grant
        try:
            grant, claim_groups = client.groups_now(grant)
        except SignInError:
            return False, grant
        except DirectoryUnavailableError:
            return True, grant  # the provider is down: nobody is signed out for that
        return wb.accounts.refresh(name, claim_groups, subject=grant.subject,
                                   groups_from_claim=grant.groups is not None), grant

    return refresh


def _page(title: str, text: str, status: int = 400):
    from fastapi.responses import HTMLResponse

    body = (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(text)}</p><p><a href=\"/\">Back to the sign-in page</a></p>")
    return HTMLResponse(body, status_code=status, headers=SECURE_HEADERS)


def add_oidc_routes(app, wb: Workbench, identity: Identity, client: OidcClient, https: bool) -> None:
    """GET /login/oidc and /login/oidc/callback on ``app`` (see module); the provider's logout on /logout."""
    from fastapi import Request
    from fastapi.responses import RedirectResponse

    pending_sign_ins = PendingSignIns()
    root = client.redirect_uri[: -len(OIDC_CALLBACK)] + "/"
    cookie_path = urlsplit(client.redirect_uri).path  # the callback as the browser sees it (behind a path prefix too)

    @app.get(OIDC_START)
    async def start(request: Request):
        try:
            url, pending = await asyncio.to_thread(client.begin)
        except WorkbenchError as exc:
            return _page("Sign-in is not available", str(exc), 503)
        pending_sign_ins.add(pending, client_key(request.client.host if request.client else "?"))
        response = RedirectResponse(url, status_code=302)
        response.set_cookie(STATE_COOKIE, pending.state, max_age=int(PENDING_S), httponly=True, samesite="lax",
                            secure=https, path=cookie_path)
        return response

    @app.get(OIDC_CALLBACK)
    async def callback(request: Request):
        client_ip = request.client.host if request.client else "?"
        params = request.query_params
        state, code = params.get("state", "")[:200], params.get("code", "")[:2000]
        pending = pending_sign_ins.take(state) if state else None
        cookie = request.cookies.get(STATE_COOKIE, "")
        failed = shown = None
        if pending is None:  # unknown, used or stale: nothing to audit (anyone can open this address)
            response = _page("Sign-in failed", "This sign-in is unknown, already used or too old. Start again "
                                               "from the sign-in page.")
            response.delete_cookie(STATE_COOKIE, path=cookie_path)
            return response
        if params.get("error"):
            failed, shown = f"the provider refused: {params.get('error')[:60]}", "The provider did not sign you in."
        elif not hmac.compare_digest(cookie.encode(), state.encode()):
            failed = shown = "This sign-in was started in another browser."
        elif not code:
            failed = shown = "The provider sent no sign-in code."
        if failed is None:
            try:
                signed_in = await asyncio.to_thread(client.complete, pending, code)
                user = await asyncio.to_thread(wb.accounts.sign_in_oidc, signed_in.name, signed_in.subject,
                                               signed_in.groups)
            except WorkbenchError as exc:
                failed = str(exc)
                shown = ("The provider could not be reached." if isinstance(exc, DirectoryUnavailableError) else
                         "The provider refused the sign-in code." if "sign-in code" in failed else
                         "This account cannot sign in here. Ask your administrator.")
            except Exception as exc:  # noqa: BLE001 - an odd answer from the provider: a failed sign-in, audited
                failed, shown = f"{type(exc).__name__}: {exc}"[:300], "The sign-in failed. Try again later."
        if failed is not None:
            await audit(wb, "(unknown)", "login-failed", f"from {client_ip} via OpenID: {failed}"[:500])
            response = _page("Sign-in failed", f"{shown} Start again from the sign-in page.")
            response.delete_cookie(STATE_COOKIE, path=cookie_path)
            return response
        await audit(wb, principal_for(user, wb.config.web.admin_group), "login", f"from {client_ip} via OpenID")
        response = RedirectResponse(root, status_code=302)
        response.delete_cookie(STATE_COOKIE, path=cookie_path)
        secure, plain = identity.cookie_names()
        response.set_cookie(secure if https else plain, identity.sessions.start(user, grant=signed_in), httponly=True,
                            samesite="lax", secure=https, path="/")
        return response

    def after_logout(token: str) -> str | None:
        grant = identity.sessions.grant_of(token)
        if not isinstance(grant, SignedIn):
            return None
        try:
            return client.logout_url(grant, root)
        except WorkbenchError:
            return None

    identity.after_logout = after_logout
