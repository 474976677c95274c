"""A real OpenID provider on loopback for the sign-in tests: `oidc-provider-mock` in its own process.

The provider (built on Authlib) serves discovery, JWKS, RS256-signed ID tokens, userinfo, refresh
tokens, client registration, RP-initiated logout and a login form where a person is chosen by
their subject. Clients must register (``--require-registration``) and send a nonce
(``--require-nonce``). Leaves out: PKCE enforcement (the provider accepts the challenge the
workbench sends without checking it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from webkit import free_port

# the provider's people: subject -> claims (groups are the provider's names, mapped by [auth] groups)
PEOPLE = {
    "sub-erin": {"preferred_username": "erin", "email": "erin@example.org", "groups": ["Staff"]},
    "sub-frank": {"preferred_username": "frank", "email": "frank@example.org", "groups": ["Staff", "Finance-Team"]},
    "sub-bob": {"preferred_username": "bob", "email": "bob@example.org"},  # no groups claim: the directory's
}
TABLE = {"staff": ["staff"], "finance-team": ["finance"]}


class OidcProvider:
    """``python -m oidc_provider_mock`` on a free loopback port (a context manager)."""

    def __init__(self, log: Path, token_max_age_s: int = 3600, require_nonce: bool = True) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "w")
        claims = [json.dumps({"sub": sub, **c}) for sub, c in PEOPLE.items()]
        args = [sys.executable, "-m", "oidc_provider_mock", "-p", str(self.port), "-H", "127.0.0.1",
                "--require-registration", *(["--require-nonce"] if require_nonce else []), "-e", str(token_max_age_s)]
        for c in claims:
            args += ["--user-claims", c]
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, Path(log).read_text()
            assert time.monotonic() < deadline, "the OpenID provider did not start in 60 s"
            time.sleep(0.3)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()

    def register(self, redirect_uri: str) -> tuple[str, str]:
        """A new client (id, secret) allowed to return to ``redirect_uri``."""
        meta = httpx.get(f"{self.issuer}/.well-known/openid-configuration").json()
        r = httpx.post(meta["registration_endpoint"], json={"redirect_uris": [redirect_uri]})
        assert r.status_code == 201, r.text
        return r.json()["client_id"], r.json()["client_secret"]

    def set_claims(self, sub: str, claims: dict) -> None:
        assert httpx.put(f"{self.issuer}/users/{quote(sub)}", json=claims).status_code == 204

    def revoke(self, sub: str) -> None:
        """End every token of ``sub`` (as when the person is removed at the provider)."""
        assert httpx.post(f"{self.issuer}/users/{quote(sub)}/revoke-tokens").status_code == 204

    @staticmethod
    def approve(authorize_url: str, sub: str) -> str:
        """Choose ``sub`` on the provider's login form (as a person would); the address it sends back to."""
        r = httpx.post(authorize_url, data={"sub": sub})
        assert r.status_code == 302, r.text[:500]
        return r.headers["location"]
