"""Sign-in through an OpenID Connect provider: the authorization code flow with PKCE, state and nonce.

`OidcClient.begin` makes the provider's sign-in address and a `Pending` (state, nonce, PKCE verifier)
that the caller keeps server-side; `OidcClient.complete` exchanges the returned code for tokens and
checks the ID token with joserfc (the JOSE library of the Authlib project): its RS256/ES256/PS256
signature against the provider's published keys (``alg: none`` and HMAC are refused), issuer,
audience (and ``azp`` when there are several), expiry, issue time and nonce. The user name comes
from ``[auth.oidc] username_claim`` and must be a valid workbench name; groups from
``groups_claim`` in the ID token, else in the userinfo answer, else None (the caller then asks the
LDAP directory). `groups_now` re-reads them at the userinfo endpoint with the access token (a
token the provider no longer accepts, and cannot renew with the refresh token, ends the
session); `logout_url` is the provider's RP-initiated logout.

Discovery is read once from ``ISSUER/.well-known/openid-configuration``; its issuer must be the
configured one, and every endpoint must be https unless it is on this machine. Keys are fetched
once and again when a token names a key not seen yet (rotation). Leaves out: keeping pending
sign-ins and sessions, cookies and routes (`workbench_web.oidc`), and mapping groups
(`workbench.identity.base.map_groups`).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from workbench.access import NAME_RE
from workbench.errors import ConfigError, DirectoryUnavailableError, SignInError, WorkbenchError
from workbench.net import is_loopback
from workbench.records import _Record

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
LEEWAY_S = 60  # clock difference tolerated between the provider and this server
RETRY_S = 30.0  # after a failed discovery, sign-ins are refused at once for this long before asking again
PENDING_S = 600.0  # a sign-in must come back from the provider within this


@dataclass(frozen=True, slots=True)
class Pending(_Record):
    """A sign-in sent to the provider and not back yet: kept by the server, never by the browser."""

    state: str
    nonce: str = field(repr=False)
    verifier: str = field(repr=False)  # PKCE code verifier (the provider got its S256 challenge)
    started: float = 0.0


@dataclass(frozen=True, slots=True)
class SignedIn(_Record):
    """What a checked ID token (and the userinfo answer) say about the person who signed in."""

    name: str
    subject: str
    groups: tuple[str, ...] | None  # the groups claim's values; None: the provider sent no such claim
    id_token: str = field(repr=False)  # kept for the provider's logout (id_token_hint)
    access_token: str = field(repr=False)  # for `groups_now`
    refresh_token: str = field(default="", repr=False)  # to renew the access token (if the provider issued one)


def _https_or_local(url: str, what: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or "")):
        return url
    raise ConfigError(f"the OpenID provider's {what} {url!r} is not https: set [auth.oidc] issuer to the "
                      "provider's https address (plain http is accepted only on this machine, for tests)")


def _json_object(response, what: str) -> dict:
    """The JSON object of ``response``; DirectoryUnavailableError for anything else (HTML, a signed JWT...)."""
    try:
        value = response.json()
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise DirectoryUnavailableError(f"the OpenID provider's answer from {what} is not a JSON object: check that "
                                        "it is configured to answer userinfo and tokens as plain JSON")
    return value


class OidcClient:
    """One configured OpenID provider (``[auth.oidc]``) for one redirect address (see module)."""

    def __init__(self, settings, redirect_uri: str, client_secret: str | None = None, clock=time.time) -> None:
        if not settings.issuer:
            raise ConfigError("[auth.oidc] issuer is not set")
        self.settings, self.redirect_uri, self.clock = settings, redirect_uri, clock
        self.issuer = _https_or_local(settings.issuer.rstrip("/"), "issuer")
        self._secret = client_secret
        self._meta: dict | None = None
        self._meta_failed: tuple[float, Exception] | None = None  # the last failed discovery, retried after a pause
        self._keys = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OidcClient(issuer={self.issuer!r}, client_id={self.settings.client_id!r})"

    # ---- the provider's documents --------------------------------------------------------------
    def _http(self):
        import httpx

        verify = str(self.settings.ca_file) if self.settings.ca_file else True
        return httpx.Client(timeout=self.settings.timeout_s, verify=verify, follow_redirects=False)

    def _get_json(self, url: str, **kw) -> dict:
        import httpx

        try:
            with self._http() as http:
                response = http.get(url, **kw)
        except httpx.HTTPError as exc:
            raise DirectoryUnavailableError(f"the OpenID provider at {self.issuer} did not answer ({type(exc).__name__}"
                                            f"): check [auth.oidc] issuer and that the provider is up") from None
        if response.status_code != 200:
            raise DirectoryUnavailableError(f"the OpenID provider answered {response.status_code} for {url}")
        return _json_object(response, url)

    def metadata(self) -> dict:
        """The provider's discovery document (read once; its issuer must be the configured one). After a
        failure, the same error is raised at once for RETRY_S before the provider is asked again."""
        with self._lock:
            if self._meta is not None:
                return self._meta
            failed = self._meta_failed
        if failed is not None and self.clock() - failed[0] < RETRY_S:
            raise failed[1]
        try:
            meta = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if str(meta.get("issuer", "")).rstrip("/") != self.issuer:
                raise ConfigError(f"the provider at {self.issuer} calls itself {str(meta.get('issuer'))[:200]!r}: set "
                                  "[auth.oidc] issuer to exactly the provider's issuer")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                _https_or_local(str(meta.get(key, "")), key)
        except WorkbenchError as exc:
            with self._lock:
                self._meta_failed = (self.clock(), exc)
            raise
        with self._lock:
            self._meta, self._meta_failed = meta, None
        return meta

    @property
    def expected_issuer(self) -> str:
        """The ``iss`` ID tokens must carry: the discovery document's issuer, as it spells it."""
        return str(self.metadata()["issuer"])

    def _key_set(self, refresh: bool = False):
        from joserfc.jwk import KeySet

        with self._lock:
            cached = self._keys
        if cached is None or refresh:
            try:
                cached = KeySet.import_key_set(self._get_json(self.metadata()["jwks_uri"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise DirectoryUnavailableError(f"the OpenID provider's published keys could not be read "
                                                f"({type(exc).__name__})") from None
            with self._lock:
                self._keys = cached
        return cached

    # ---- the flow -----------------------------------------------------------------------------
    def begin(self) -> tuple[str, Pending]:
        """The provider's sign-in address to send the browser to, and the `Pending` to keep."""
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        pending = Pending(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64), self.clock())
        scopes = dict.fromkeys(("openid", *self.settings.scopes))
        query = {"response_type": "code", "client_id": self.settings.client_id, "redirect_uri": self.redirect_uri,
                 "scope": " ".join(scopes), "state": pending.state, "nonce": pending.nonce,
                 "code_challenge": create_s256_code_challenge(pending.verifier), "code_challenge_method": "S256"}
        return f"{self.metadata()['authorization_endpoint']}?{urlencode(query)}", pending

    def complete(self, pending: Pending, code: str) -> SignedIn:
        """Exchange ``code`` for tokens and check the ID token (SignInError when anything is off)."""
        if self.clock() - pending.started > PENDING_S:
            raise SignInError("the sign-in took too long at the provider: start again")
        tokens = self._token_call({"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                                   "code_verifier": pending.verifier},
                                  lambda status: f"the provider refused the sign-in code ({status}): start again")
        if not isinstance(tokens.get("id_token"), str):
            raise SignInError("the provider sent no ID token: check that the 'openid' scope is allowed for this client")
        claims = self.check_id_token(tokens["id_token"], pending.nonce)
        access = str(tokens.get("access_token") or "")
        groups = self._groups_of(claims)
        if groups is None and self.settings.groups_claim and access:
            info = self._userinfo(access, claims["sub"])
            groups = self._groups_of(info) if info is not None else None
        return SignedIn(self._name_of(claims), str(claims["sub"]), groups, tokens["id_token"], access,
                        str(tokens.get("refresh_token") or ""))

    def _token_call(self, form: dict, refused) -> dict:
        """The token endpoint's JSON answer to ``form`` (this client's id and secret added);
        SignInError(``refused(status)``) when it says no, DirectoryUnavailableError when it is down."""
        import httpx

        auth = (self.settings.client_id, self._secret) if self._secret else None
        try:
            with self._http() as http:
                response = http.post(self.metadata()["token_endpoint"], data={**form, "client_id": self.settings.client_id},
                                     auth=auth)
        except httpx.HTTPError as exc:
            raise DirectoryUnavailableError(f"the OpenID provider's token endpoint did not answer ({type(exc).__name__})") \
                from None
        if response.status_code != 200:
            raise SignInError(refused(response.status_code))
        return _json_object(response, "the token endpoint")

    def check_id_token(self, id_token: str, nonce: str | None, subject: str | None = None) -> dict:
        """The claims of ``id_token`` once signature, issuer, audience, expiry and nonce check out;
        SignInError otherwise (saying which check failed, never echoing the token). A token from a
        refresh carries no nonce (``nonce`` None) and must name the same ``subject``."""
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError

        try:
            try:
                token = jwt.decode(id_token, self._key_set(), algorithms=ALGORITHMS)
            except InvalidKeyIdError:  # the provider may have rotated its keys since they were read
                token = jwt.decode(id_token, self._key_set(refresh=True), algorithms=ALGORITHMS)
            registry = jwt.JWTClaimsRegistry(
                now=int(self.clock()), leeway=LEEWAY_S, iss={"essential": True, "value": self.expected_issuer},
                aud={"essential": True, "value": self.settings.client_id},
                **({} if subject is not None else {"sub": {"essential": True}}),
                exp={"essential": True}, iat={"essential": True},
                **({"nonce": {"essential": True, "value": nonce}} if nonce is not None else {}),
                **({"sub": {"essential": True, "value": subject}} if subject is not None else {}))
            registry.validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise SignInError(f"the ID token was refused: {getattr(exc, 'error', type(exc).__name__)}"
                              f"{': ' + exc.description if getattr(exc, 'description', '') else ''}") from None
        claims = token.claims
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise SignInError("the ID token was refused: it names several audiences and another authorized party")
        if int(claims["iat"]) > self.clock() + LEEWAY_S:
            raise SignInError("the ID token was refused: issued in the future")
        return claims

    def _name_of(self, claims: dict) -> str:
        if self.settings.username_claim == "email" and claims.get("email_verified") is not True:
            raise SignInError("the provider has not verified this account's e-mail address, and [auth.oidc] "
                              "username_claim is 'email': verify it at the provider, or use a claim only "
                              "administrators set, e.g. 'preferred_username'")
        name = claims.get(self.settings.username_claim)
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise SignInError(f"the provider's {self.settings.username_claim!r} claim ({str(name)[:64]!r}) is not a usable "
                              "user name (1-64 letters, digits, '.', '_', '@', '-'): set [auth.oidc] username_claim to "
                              "a claim that is, e.g. 'preferred_username' or 'email'")
        return name

    def _groups_of(self, claims: dict) -> tuple[str, ...] | None:
        value = claims.get(self.settings.groups_claim) if self.settings.groups_claim else None
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        return tuple(str(g)[:512] for g in items if isinstance(g, str))[:1000]

    def _userinfo(self, access_token: str, subject: str | None) -> dict | None:
        """The userinfo answer (None when the token is no longer accepted); its sub must be ``subject``
        (None: any subject, which must then be a non-empty string)."""
        endpoint = self.metadata().get("userinfo_endpoint")
        if not endpoint:
            return None
        _https_or_local(endpoint, "userinfo_endpoint")
        import httpx

        try:
            with self._http() as http:
                response = http.get(endpoint, headers={"Authorization": f"Bearer {access_token}"})
        except httpx.HTTPError as exc:
            raise DirectoryUnavailableError(f"the OpenID provider's userinfo did not answer ({type(exc).__name__})") \
                from None
        if response.status_code in (400, 401, 403):  # invalid_token (RFC 6750; some providers answer 400)
            return None
        if response.status_code != 200:
            raise DirectoryUnavailableError(f"the OpenID provider's userinfo answered {response.status_code}")
        info = _json_object(response, "the userinfo endpoint")
        if subject is None and isinstance(info.get("sub"), str) and info["sub"]:
            return info
        if info.get("sub") != subject:
            raise SignInError("the provider's userinfo names another subject than the ID token")
        return info

    def token_user(self, access_token: str) -> SignedIn | None:
        """Who the provider says holds ``access_token`` (an MCP client's bearer token), asked at its
        userinfo endpoint: name and groups read as at sign-in. None when the provider does not accept
        the token (unknown, expired, revoked). SignInError when it names no usable user;
        DirectoryUnavailableError when it cannot be asked (or offers no userinfo endpoint). The token's
        audience is not checked: the provider accepts at its userinfo endpoint any token it issued
        with the 'openid' scope, whichever client it issued it to."""
        if not self.metadata().get("userinfo_endpoint"):
            raise DirectoryUnavailableError("the OpenID provider offers no userinfo endpoint to check tokens with")
        info = self._userinfo(access_token, None)
        if info is None:
            return None
        return SignedIn(self._name_of(info), str(info["sub"]), self._groups_of(info), "", access_token)

    def groups_now(self, signed_in: SignedIn) -> tuple[SignedIn, tuple[str, ...] | None]:
        """Whether the provider still accepts this sign-in, and the user's groups as it says now.

        The userinfo endpoint is asked with the access token; when it refuses (expired) or the
        provider has none, the refresh token is used, and the groups claim is read from the
        userinfo answer or the renewed ID token (checked like the first, same subject). Returns the
        sign-in (renewed) and the groups claim, None when neither answer carries it. SignInError
        when the provider no longer accepts the sign-in (tokens revoked or expired, user removed);
        DirectoryUnavailableError when it cannot be reached. A provider with neither userinfo nor a
        refresh token gives nothing to check with: (signed_in, None).
        """
        has_userinfo = bool(self.metadata().get("userinfo_endpoint"))
        info = self._userinfo(signed_in.access_token, signed_in.subject) if has_userinfo else None
        renewed_claims: dict = {}
        if info is None:
            if not signed_in.refresh_token:
                if has_userinfo:
                    raise SignInError(f"the provider no longer accepts {signed_in.name}'s sign-in: sign in again")
                return signed_in, None
            signed_in, renewed_claims = self._renewed(signed_in)
            if has_userinfo:
                info = self._userinfo(signed_in.access_token, signed_in.subject)
                if info is None:
                    raise SignInError(f"the provider no longer accepts {signed_in.name}'s sign-in: sign in again")
        groups = self._groups_of(info) if info else None
        return signed_in, groups if groups is not None else self._groups_of(renewed_claims)

    def _renewed(self, signed_in: SignedIn) -> tuple[SignedIn, dict]:
        """The sign-in with tokens renewed by its refresh token, and the renewed ID token's claims
        (checked, same subject; {} when the provider sent none)."""
        import dataclasses

        tokens = self._token_call({"grant_type": "refresh_token", "refresh_token": signed_in.refresh_token},
                                  lambda status: f"the provider no longer renews {signed_in.name}'s sign-in: sign in again")
        claims = {}
        if isinstance(tokens.get("id_token"), str):
            claims = self.check_id_token(tokens["id_token"], None, subject=signed_in.subject)
        return dataclasses.replace(signed_in, access_token=str(tokens.get("access_token") or ""),
                                   refresh_token=str(tokens.get("refresh_token") or signed_in.refresh_token),
                                   id_token=str(tokens.get("id_token") or signed_in.id_token)), claims

    def logout_url(self, signed_in: SignedIn | None, after: str) -> str | None:
        """The provider's RP-initiated logout address (None when it offers none)."""
        endpoint = self.metadata().get("end_session_endpoint")
        if not endpoint:
            return None
        query = {"client_id": self.settings.client_id, "post_logout_redirect_uri": after}
        if signed_in is not None:
            query["id_token_hint"] = signed_in.id_token
        return f"{_https_or_local(endpoint, 'end_session_endpoint')}?{urlencode(query)}"
