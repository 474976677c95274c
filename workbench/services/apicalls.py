"""Who a program's call acts as: a personal key checked, its user's groups now, its rate.

`KeyCalls.act_as(token, scope)` is the one door of the REST API (`workbench_web.api`) and the MCP
server over HTTP (`workbench.services.mcp`): the key must be live and hold the scope
(`workbench.stores.keys.KeyStore.check`), its user must still exist, and a directory user's groups
are re-read from LDAP/AD when they are older than ``[auth] refresh_s`` (as a signed-in session's
are), so a user removed from the directory or from a group loses that at the next call after the
refresh is due. An OpenID-only user's groups are those their last sign-in or session refresh read.
Calls are limited per key (``[web] api_calls_per_minute``, a token bucket), and questions
being answered per user (`KeyCalls.asking`, ``[web] questions_per_user``). The principal that
comes out carries the key (id and label) as its identity source, so the audit log says which key
made each call.

`KeyCalls.act_as_token(token, oidc)` is the other way into the MCP server, with
``[auth.oidc] mcp_sign_in``: an access token the organization's OpenID provider issued (the MCP
authorization flow). The provider's userinfo endpoint says whose it is and their groups now
(`workbench.identity.oidc.OidcClient.token_user`); the user is written as at a web sign-in, and the
answer is remembered for at most TOKEN_S seconds (a token revoked at the provider stops working
within that). Such a caller has every scope: it acts with the user's own rights, as the web app
does. Calls are limited per user then. Leaves out: HTTP (status codes are only suggested by
`CallRefused.status`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from dataclasses import dataclass
import threading
from contextlib import contextmanager
import time

from workbench.access import principal_for
from workbench.errors import CallRefused, DirectoryUnavailableError, SignInError, WorkbenchError
from workbench.records import Principal
from workbench.stores.keys import ApiKey


@dataclass(frozen=True, slots=True)
class Caller:
    """A checked call: the principal it acts as (the key as its identity source) and the key."""

    principal: Principal
    key: ApiKey | None  # None: signed in through the OpenID provider (every scope, as in the web app)

    def may(self, scope: str) -> None:
        """CallRefused(403) unless the key holds ``scope``."""
        if self.key is not None and scope not in self.key.scopes:
            raise CallRefused(403, f"this key may not {scope} (its scopes: {', '.join(self.key.scopes)})")


TOKEN_S = 60.0  # how long the provider's word on an access token is trusted before it is asked again
MAX_TOKENS = 10_000  # access tokens remembered at once
OIDC_SOURCE = "openid (mcp)"
TOKEN_RE = re.compile(r"^[A-Za-z0-9\-._~+/]{8,4096}=*$")  # RFC 6750 token characters, and a sane length
REFUSED_S = 30.0  # a token the provider refused is refused here without asking again for this long
PROVIDER_CHECKS = 4  # tokens being checked with the provider at once (each may wait its timeout)
REFUSED = "the OpenID provider does not accept this token for this server: sign in again"
MAX_K = 50  # passages one program's search may ask for
MODES = ("hybrid", "dense", "lexical")


def search_refusal(k, mode) -> str:
    """'' when ``k`` and ``mode`` are what a program's search may ask for (REST and MCP alike), else
    the sentence saying what is allowed."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        return f"k must be a whole number from 1 to {MAX_K}"
    if mode is not None and mode not in MODES:
        return f"mode must be one of {', '.join(MODES)}"
    return ""


class RateLimit:
    """A token bucket per key: ``per_minute`` calls a minute, bursts up to that."""

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str) -> float:
        """0 when a call may go ahead now (it is counted), else seconds to wait."""
        now = self.clock()
        rate = self.per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0


class KeyCalls:
    """The key checks of one workbench (see module); thread-safe."""

    def __init__(self, wb, clock=time.monotonic) -> None:
        self.wb = wb
        self.keys = wb.keys
        self.limit = RateLimit(wb.config.web.api_calls_per_minute, clock)
        self.clock = clock
        self._checked: dict[str, float] = {}  # user name -> when their directory groups were last re-read
        self._asking: dict[str, int] = {}  # user name -> questions being answered through keys now
        self._tokens: dict[str, tuple[float, str, str]] = {}  # sha256(access token) -> (until, name, subject)
        self._refused: dict[str, float] = {}  # sha256(access token) -> until when it is refused without asking
        self._provider = threading.BoundedSemaphore(PROVIDER_CHECKS)
        self._lock = threading.Lock()

    @contextmanager
    def asking(self, principal: Principal):
        """Hold one of the user's ``[web] questions_per_user`` places while a question is answered
        (CallRefused 429 when all are taken), so one key cannot keep the model busy for everyone."""
        cap = self.wb.config.web.questions_per_user
        with self._lock:
            if self._asking.get(principal.name, 0) >= cap:
                raise CallRefused(429, f"{cap} question(s) of yours are being answered: wait for them "
                                       "([web] questions_per_user)", 5.0)
            self._asking[principal.name] = self._asking.get(principal.name, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._asking[principal.name] -= 1

    def act_as(self, token: str | None, scope: str | None) -> Caller:
        """Who a call with ``token`` acts as, for ``scope`` ('search', 'ask', 'read'; None: any, the
        caller checks `Caller.may` later, as the MCP server does per tool).

        CallRefused: 401 (no key, unknown, revoked, expired, its user gone), 403 (the key lacks
        ``scope``), 429 (too many calls with this key: ``retry_after``). Blocking (reads SQLite and
        maybe the directory): call it from a worker thread in async code.
        """
        if not token:
            raise CallRefused(401, "send your key: Authorization: Bearer wbk_...")
        key, why = self.keys.check(token, scope)
        if key is None:
            raise CallRefused(401, why)
        wait = self.limit.take(key.id)  # refused calls of a known key count too
        if wait > 0:
            raise CallRefused(429, f"too many calls with this key: try again in {wait:.0f} s", wait)
        if why:
            self._audit_refused(key, why)
            raise CallRefused(401 if not key.live else 403, why)
        user = self._current(key.user)
        if user is None or key.user_since is None or user.created_at != key.user_since:
            # gone, or the name now belongs to another account made later: the old keys are not its keys
            why = f"the key's user {key.user!r} no longer exists" if user is None else \
                "this key belongs to an earlier account of that name: create a new one"
            self._audit_refused(key, why)
            raise CallRefused(401, why)
        principal = principal_for(user, self.wb.config.web.admin_group)
        return Caller(dataclasses.replace(principal, source=_source(key)), key)

    def act_as_token(self, token: str, oidc, client: str = "") -> Caller:
        """Who a call with the provider's access ``token`` acts as (``oidc``: the
        `workbench.identity.oidc.OidcClient`; ``client``: the caller's address, for the audit log).
        CallRefused: 401 (not a token, the provider does not accept it, or it names no usable user or
        another account's name: the same sentence for all, the reason goes in the audit log), 429
        (too many calls by this user), 503 (the provider cannot be asked, or PROVIDER_CHECKS checks
        are waiting on it). A refused token is refused again without asking for REFUSED_S. Blocking:
        call it from a worker thread in async code."""
        if not TOKEN_RE.match(token):
            raise CallRefused(401, "this is not an access token: sign in again")
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        with self._lock:
            known = self._tokens.get(digest)
            refused_until = self._refused.get(digest, 0.0)
        if refused_until > now:
            raise CallRefused(401, REFUSED)
        user = None
        if known is not None and known[0] > now:
            user = self.wb.users.get(known[1])
            if user is not None and user.subject != known[2]:
                user = None  # removed, or the name now belongs to someone else: ask the provider
        if user is None:
            user = self._signed_in(token, digest, oidc, client)
            with self._lock:
                if len(self._tokens) >= MAX_TOKENS:
                    for old in [d for d, v in self._tokens.items() if v[0] <= now] or list(self._tokens)[:MAX_TOKENS // 10]:
                        self._tokens.pop(old, None)
                self._tokens[digest] = (now + min(TOKEN_S, self.wb.config.auth.refresh_s), user.name, user.subject)
        wait = self.limit.take(f"oidc:{user.name}")
        if wait > 0:
            raise CallRefused(429, f"too many calls by {user.name}: try again in {wait:.0f} s", wait)
        principal = principal_for(user, self.wb.config.web.admin_group)
        return Caller(dataclasses.replace(principal, source=OIDC_SOURCE), None)

    def _signed_in(self, token: str, digest: str, oidc, client: str):
        """The user the provider says holds ``token``, written as at a web sign-in (see `act_as_token`)."""
        if not self._provider.acquire(timeout=1.0):
            raise CallRefused(503, "the OpenID provider is being asked about other tokens: try again", 5.0)
        signed = None
        try:
            signed = oidc.token_user(token)
            if signed is None:
                raise SignInError("the provider does not accept the token")
            user = self.wb.accounts.sign_in_oidc(signed.name, signed.subject, signed.groups)
        except DirectoryUnavailableError as exc:
            raise CallRefused(503, f"the OpenID provider could not be asked: {exc}", 30.0) from None
        except WorkbenchError as exc:  # SignInError included: the provider's no, or a name that is not theirs
            with self._lock:
                if len(self._refused) >= MAX_TOKENS:
                    self._refused.clear()
                self._refused[digest] = self.clock() + REFUSED_S
            if signed is not None:  # the provider named someone, who may not come in (tokens it refused are not logged)
                self._audit(Principal(signed.name, source=OIDC_SOURCE, subject=signed.subject), "refused",
                            f"MCP sign-in refused from {client}: {exc}", outcome="refused")
            raise CallRefused(401, REFUSED) from None
        finally:
            self._provider.release()
        self._audit(Principal(user.name, user.groups, source=OIDC_SOURCE, subject=user.subject), "login",
                    f"signed in through the OpenID provider (MCP client) from {client}")
        return user

    def _audit(self, principal: Principal, action: str, text: str, outcome: str = "") -> None:
        try:
            self.wb.audit.record(principal, action, text, outcome=outcome)
        except Exception as exc:  # noqa: BLE001 - the decision stands whether or not it could be written
            print(f"workbench: audit log not writable: {exc}", file=sys.stderr)

    def _audit_refused(self, key: ApiKey, why: str) -> None:
        """A known key refused (revoked, expired, lacking the scope, its user gone) goes in the audit log."""
        self._audit(Principal(key.user, source=_source(key)), "refused", f"api key {key.id}: {why}", outcome="refused")

    def _current(self, name: str):
        """The stored user ``name`` now (None when gone): a directory user's groups are re-read first when
        ``[auth] refresh_s`` has passed since the last time (one gone from the directory is removed)."""
        user = self.wb.users.get(name)
        if user is None or user.source == "local":
            return user
        now = self.clock()
        with self._lock:
            if now - self._checked.get(name, -1e18) < self.wb.config.auth.refresh_s:
                return user
            self._checked[name] = now
        # an OpenID user's groups are the provider's (read at sign-in and by their sessions): a key holds
        # no provider token to ask with, so those stay as last read
        self.wb.accounts.refresh(name, subject=user.subject, groups_from_claim=user.source == "oidc")
        return self.wb.users.get(name)


def _source(key: ApiKey) -> str:
    return f"api key {key.id} ({key.label})"[:40]
