"""Sign-in through a real OpenID provider (oidc-provider-mock in its own process, see `oidcbed`).

The ID-token checks are attacked with forged tokens (another key, ``alg: none``, HMAC keyed with the
provider's public key, another client's token, an expired one, a wrong nonce); the web routes with
replayed states and codes and a callback opened in another browser; rights follow the provider's
answer at each refresh. Chromium signs in through the provider's own login page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidcbed import TABLE, OidcProvider
from signinkit import docs_site, eventually
from webkit import CHROMIUM, Server, _Client, audit_rows, free_port, launch_browser, new_context, shot

from workbench.config import OidcSettings
from workbench.errors import ConfigError, SignInError
from workbench.identity.oidc import OidcClient

CALLBACK = "http://127.0.0.1:9/login/oidc/callback"


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    with OidcProvider(tmp_path_factory.mktemp("oidc") / "provider.log") as p:
        yield p


def client_for(provider, redirect: str = CALLBACK, **kw) -> OidcClient:
    client_id, secret = provider.register(redirect)
    return OidcClient(OidcSettings(issuer=provider.issuer, client_id=client_id), redirect, secret, **kw)


def sign_in(provider, client: OidcClient, sub: str = "sub-frank"):
    url, pending = client.begin()
    back = parse_qs(urlsplit(provider.approve(url, sub)).query)
    assert back["state"] == [pending.state]
    return url, pending, back["code"][0]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict, dict]:
    head, body = token.split(".")[:2]
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(head))), json.loads(base64.urlsafe_b64decode(pad(body)))


def test_a_sign_in_checks_the_id_token_and_sends_pkce(provider):
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    client = client_for(provider)
    url, pending, code = sign_in(provider, client)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] == [create_s256_code_challenge(pending.verifier)]
    assert query["nonce"] == [pending.nonce] and "openid" in query["scope"][0].split()
    done = client.complete(pending, code)
    assert (done.name, done.subject, done.groups) == ("frank", "sub-frank", ("Staff", "Finance-Team"))
    with pytest.raises(SignInError):  # the provider takes a code once
        client.complete(pending, code)


def test_forged_and_foreign_id_tokens_are_refused(provider):
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    client = client_for(provider)
    _, pending, code = sign_in(provider, client)
    real = client.complete(pending, code).id_token
    header, claims = _parts(real)
    assert client.check_id_token(real, pending.nonce)["sub"] == "sub-frank"  # control: the real token passes
    refused = {}

    def attempt(name, token, nonce=pending.nonce, checker=client):
        with pytest.raises(SignInError) as caught:
            checker.check_id_token(token, nonce)
        refused[name] = str(caught.value)

    kid = {"kid": header["kid"]} if "kid" in header else {}  # the provider's key id, if it names one
    attempt("wrong nonce", real, nonce="another-nonce")
    attempt("alg none", f"{_b64(json.dumps({'alg': 'none', **kid}).encode())}.{real.split('.')[1]}.")
    other = RSAKey.generate_key(2048)
    attempt("another key, the provider's kid", jwt.encode({"alg": "RS256", **kid}, claims, other))
    attempt("another key, a new kid", jwt.encode({"alg": "RS256", "kid": "attacker"}, claims, other))
    public = client._key_set().keys[0].as_pem(private=False)
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', **kid}).encode())}.{real.split('.')[1]}"
    mac = hmac.new(public if isinstance(public, bytes) else public.encode(), signing_input.encode(), hashlib.sha256)
    attempt("HS256 keyed with the public key", f"{signing_input}.{_b64(mac.digest())}")
    other_client = client_for(provider)
    _, other_pending, other_code = sign_in(provider, other_client)
    foreign = other_client.complete(other_pending, other_code).id_token
    assert other_client.check_id_token(foreign, other_pending.nonce)  # control: valid for the client it was made for
    attempt("another client's token", foreign, nonce=other_pending.nonce)
    late = OidcClient(client.settings, CALLBACK, None, clock=lambda: time.time() + 7200)
    attempt("expired", real, checker=late)
    assert "aud" in refused["another client's token"] and "exp" in refused["expired"]
    assert "nonce" in refused["wrong nonce"]
    assert all(real not in message for message in refused.values())


def test_the_provider_must_use_https_unless_on_this_machine():
    with pytest.raises(ConfigError, match="https"):
        OidcClient(OidcSettings(issuer="http://sso.example.org/realms/staff"), CALLBACK)
    assert OidcClient(OidcSettings(issuer="https://sso.example.org/realms/staff"), CALLBACK).issuer


def test_a_user_name_the_workbench_cannot_use_is_refused(provider):
    provider.set_claims("sub-odd", {"preferred_username": "*)(uid=*", "groups": ["Staff"]})
    client = client_for(provider)
    _, pending, code = sign_in(provider, client, "sub-odd")
    with pytest.raises(SignInError, match="username_claim"):
        client.complete(pending, code)


# ---- the web app ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(provider, tmp_path_factory, embedder):
    port = free_port()
    client_id, secret = provider.register(f"http://127.0.0.1:{port}/login/oidc/callback")
    auth = {"refresh_s": 1, "groups": TABLE,
            "oidc": {"issuer": provider.issuer, "client_id": client_id, "client_secret_env": "WB_TEST_OIDC_SECRET"}}
    info = docs_site(tmp_path_factory.mktemp("oidc-site"), embedder, auth)
    server = Server(info["cfg"], env={**os.environ, "WB_TEST_OIDC_SECRET": secret}, port=port)
    yield {**info, "server": server, "url": server.url}
    server.stop()


def web_sign_in(site, provider, sub: str) -> httpx.Client:
    """An HTTP client that signed in as ``sub`` through the provider, as a browser does."""
    http = _Client(base_url=site["url"], timeout=60)
    start = http.get("login/oidc")
    assert start.status_code == 302 and start.headers["location"].startswith(provider.issuer)
    back = http.get(provider.approve(start.headers["location"], sub))
    assert back.status_code == 302, back.text
    http.back_url = str(back.request.url)
    return http


def test_staff_sign_in_through_the_provider_with_their_groups(site, provider):
    with web_sign_in(site, provider, "sub-frank") as frank, web_sign_in(site, provider, "sub-erin") as erin:
        assert frank.get(f"source/{site['chunks']['finance']}").status_code == 200
        assert erin.get(f"source/{site['chunks']['finance']}").status_code == 404
        assert erin.get(f"source/{site['chunks']['staff']}").status_code == 200
    rows = [r for r in audit_rows(site["index"], "login")]
    assert rows, "sign-ins are audited"
    import sqlite3

    with sqlite3.connect(site["index"] / "audit.sqlite") as db:
        found = db.execute("SELECT source, subject, groups FROM audit WHERE user='frank' AND action='login'").fetchall()
    assert ("oidc", "sub-frank", "finance,staff") in {(s, sub, ",".join(sorted(g.split(",")))) for s, sub, g in found}


def test_replayed_or_transplanted_callbacks_are_refused(site, provider):
    with web_sign_in(site, provider, "sub-erin") as erin:
        replay = erin.get(erin.back_url)  # the same browser, the same state and code again
        assert replay.status_code == 400 and "already used" in replay.text
        fresh = httpx.Client(base_url=site["url"], timeout=60)  # a new sign-in, with the old code
        start = fresh.get("login/oidc")
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        old_code = parse_qs(urlsplit(erin.back_url).query)["code"][0]
        r = fresh.get("login/oidc/callback", params={"state": state, "code": old_code})
        assert r.status_code == 400 and "refused the sign-in code" in r.text
        assert not any(c.startswith("access-token") for c in fresh.cookies)
    victim = httpx.Client(base_url=site["url"], timeout=60)  # an attacker's callback link opened by someone else
    attacker = httpx.Client(base_url=site["url"], timeout=60)
    start = attacker.get("login/oidc")
    link = provider.approve(start.headers["location"], "sub-erin")
    r = victim.get(link)
    assert r.status_code == 400 and "another browser" in r.text
    assert not any(c.startswith("access-token") for c in victim.cookies)


def test_rights_follow_the_provider_and_a_revoked_user_is_signed_out(site, provider):
    provider.set_claims("sub-gail", {"preferred_username": "gail", "groups": ["Staff", "Finance-Team"]})
    with web_sign_in(site, provider, "sub-gail") as gail:
        finance = f"source/{site['chunks']['finance']}"
        assert gail.get(finance).status_code == 200
        provider.set_claims("sub-gail", {"preferred_username": "gail", "groups": ["Staff"]})
        # [auth] refresh_s = 1: out of Finance-Team at the provider, no finance any more
        assert eventually(lambda: gail.get(finance).status_code == 404)
        assert gail.get(f"source/{site['chunks']['staff']}").status_code == 200  # still signed in
        provider.revoke("sub-gail")  # removed at the provider: its tokens no longer work
        assert eventually(lambda: gail.get(f"source/{site['chunks']['staff']}").status_code == 404)  # signed out


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium: make setup-browser")
def test_chromium_signs_in_on_the_providers_page_and_signs_out_there(site, provider):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_browser(pw)
        ctx = new_context(browser)
        page = ctx.new_page()
        page.goto(site["url"])
        page.locator("#wb-oidc").click()
        page.wait_for_url(f"{provider.issuer}/**")
        page.get_by_placeholder("sub").fill("sub-frank")
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_selector("#wb-who:has-text('frank')", timeout=60_000)
        who = page.locator("#wb-who").inner_text()
        assert "finance" in who and "staff" in who
        shot(page, "oidc-signed-in")
        page.goto(site["url"] + "logout")
        page.wait_for_url(f"{provider.issuer}/oauth2/end_session**")  # the provider's own sign-out (RP-initiated)
        shot(page, "oidc-provider-logout")  # (the provider's own pages load a style sheet from a CDN)
        browser.close()
