"""Staff sign in with their directory accounts on the real web app: a real slapd (StartTLS, see
`ldapbed`) and a real OpenID provider (`oidcbed`), both started here on loopback.

Rights are observed through the real server: the source viewer answers 404 for a passage its user
may not read. Covered: directory passwords and groups (nested, unmapped), the break-glass local
account, the disabled user, an LDAP injection and an empty password in the sign-in form, groups
and accounts removed while signed in, an OpenID user whose groups come from LDAP, the audit log's
identity columns, `users list`'s source column, and ``--as-user`` resolved through the directory.
"""

from __future__ import annotations

import os
import sqlite3

import httpx
import pytest
from ldapbed import PASSWORDS, Slapd
from oidcbed import OidcProvider
from signinkit import docs_site, eventually
from webkit import Server, _Client, add_user, ask_http, free_port

from conftest import run_cli

BREAK_GLASS = "break-glass-admin-pass"


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    base = tmp_path_factory.mktemp("directory-site")
    with Slapd() as directory, OidcProvider(base / "provider.log") as provider:
        port = free_port()
        client_id, secret = provider.register(f"http://127.0.0.1:{port}/login/oidc/callback")
        auth = directory.auth_settings(oidc={"issuer": provider.issuer, "client_id": client_id,
                                             "client_secret_env": "WB_TEST_OIDC_SECRET"})
        info = docs_site(base, embedder, auth)
        env = {**os.environ, **directory.env(), "WB_TEST_OIDC_SECRET": secret}
        add_user(info["cfg"], "root", "admin", BREAK_GLASS, env=env)  # the local break-glass account
        server = Server(info["cfg"], env=env, port=port)
        try:
            yield {**info, "server": server, "url": server.url, "directory": directory, "provider": provider,
                   "env": env}
        finally:
            server.stop()


def sign_in(site, name: str, password: str) -> httpx.Response:
    http = _Client(base_url=site["url"], timeout=60)
    http.last = http.post("login", data={"username": name, "password": password})
    return http


def can_read(http, site, group: str) -> bool:
    return http.get(f"source/{site['chunks'][group]}").status_code == 200


def test_an_openid_user_without_a_groups_claim_gets_the_directory_groups(site):
    provider, directory = site["provider"], site["directory"]
    directory.add_user("kate", "kate-pass-1", groups=("staff", "finance"))
    provider.set_claims("sub-kate", {"preferred_username": "kate"})  # the token carries no groups claim
    http = _Client(base_url=site["url"], timeout=60)
    start = http.get("login/oidc")
    back = http.get(provider.approve(start.headers["location"], "sub-kate"))
    assert back.status_code == 302
    assert can_read(http, site, "finance") and can_read(http, site, "staff")  # kate's LDAP groups
    # the name now belongs to the OpenID identity: the same name by another way in is refused
    assert sign_in(site, "kate", "kate-pass-1").last.status_code == 400
    provider.set_claims("sub-mallory", {"preferred_username": "kate", "groups": ["Staff"]})  # a colleague's name
    start = http.get("login/oidc")
    taken = http.get(provider.approve(start.headers["location"], "sub-mallory"))
    assert taken.status_code == 400 and "cannot sign in here" in taken.text
    assert can_read(http, site, "finance")  # kate's own session goes on


def test_staff_sign_in_with_their_directory_password_and_groups(site):
    bob, alice, dora = (sign_in(site, n, PASSWORDS[n]) for n in ("bob", "alice", "dora"))
    assert bob.last.status_code == alice.last.status_code == dora.last.status_code == 200
    assert can_read(bob, site, "finance") and can_read(bob, site, "staff")  # finance through the nested group
    assert not can_read(alice, site, "finance") and can_read(alice, site, "staff")
    assert can_read(dora, site, "finance")  # wb-admins maps to the admin group
    listed = run_cli("users", "list", "--config", str(site["cfg"]), env=site["env"])
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.stdout.splitlines()}
    assert rows["bob"][2] == "ldap" and set(rows["bob"][1].split(",")) == {"staff", "finance"}
    assert rows["root"][2] == "local"
    root = sign_in(site, "root", BREAK_GLASS)  # the local account still works beside the directory
    assert root.last.status_code == 200 and can_read(root, site, "finance")


@pytest.mark.parametrize("name, password", [
    ("carol", PASSWORDS["carol"]),  # disabled in the directory
    ("alice", "not-her-password"),
    ("alice", ""),  # an empty password: LDAP would bind anonymously
    ("*)(uid=*", PASSWORDS["alice"]),  # LDAP injection
    ("*", PASSWORDS["alice"]),
    ("root", PASSWORDS["alice"]),  # a local account is never checked against the directory
])
def test_the_directory_refuses(site, name, password):
    http = sign_in(site, name, password)
    assert http.last.status_code == 400
    assert not any(c.startswith("access-token") for c in http.cookies)


def test_rights_follow_the_directory_while_signed_in(site):
    directory = site["directory"]
    directory.add_user("hank", "hank-pass-1", groups=("staff", "finance"))
    hank = sign_in(site, "hank", "hank-pass-1")
    assert hank.last.status_code == 200 and can_read(hank, site, "finance")
    directory.remove_from_group("hank", "finance")
    assert eventually(lambda: not can_read(hank, site, "finance"))  # [auth] refresh_s = 1, no request needed
    assert can_read(hank, site, "staff")  # still signed in, with fewer rights
    directory.remove_user("hank")
    assert eventually(lambda: not can_read(hank, site, "staff"))  # signed out: gone from the directory
    directory.add_user("jill", "jill-pass-1", groups=("staff",))
    jill = sign_in(site, "jill", "jill-pass-1")
    assert jill.last.status_code == 200 and can_read(jill, site, "staff")
    directory.disable("jill")  # disabled, not deleted: the user filter no longer matches
    assert eventually(lambda: not can_read(jill, site, "staff"))
    assert sign_in(site, "jill", "jill-pass-1").last.status_code == 400
    listed = run_cli("users", "list", "--config", str(site["cfg"]), env=site["env"]).stdout
    assert "hank" not in listed and "jill" not in listed


def test_questions_are_audited_with_the_identity_source_subject_and_groups(site):
    bob = sign_in(site, "bob", PASSWORDS["bob"])
    ask_http(bob, "When is the bonus pool for 2027 paid?")
    with sqlite3.connect(site["index"] / "audit.sqlite") as db:
        row = db.execute("SELECT source, subject, groups, chunk_ids FROM audit WHERE user='bob' AND action='ask' "
                         "ORDER BY id DESC LIMIT 1").fetchone()
    assert row[0] == "ldap" and row[1] == "uid=bob,ou=people,dc=example,dc=org"
    assert set(row[2].split(",")) == {"staff", "finance"}


def test_as_user_resolves_a_colleague_through_the_directory(site):
    site["directory"].add_user("ivan", "ivan-pass-1", groups=("finance",))  # never signed in to the workbench
    cfg, env = str(site["cfg"]), site["env"]
    ivan = run_cli("search", "bonus pool 2027", "--as-user", "ivan", "--config", cfg, env=env)
    assert ivan.returncode == 0, ivan.stderr
    assert "CANARY-FIN-5521" in ivan.stdout
    alice = run_cli("search", "bonus pool 2027", "--as-user", "alice", "--config", cfg, env=env)
    assert alice.returncode == 0 and "CANARY-FIN-5521" not in alice.stdout
    nobody = run_cli("search", "bonus pool", "--as-user", "nobody", "--config", cfg, env=env)
    assert nobody.returncode != 0 and "in the directory" in nobody.stderr
    status = run_cli("status", "--config", cfg, env=env).stdout
    sign_in_line = next(line for line in status.splitlines() if line.startswith("sign-in:"))
    assert "local accounts" in sign_in_line and site["directory"].url in sign_in_line
    assert site["provider"].issuer in sign_in_line


def test_a_directory_users_key_follows_the_directory(site):
    """A key of an LDAP user: their groups are re-read when [auth] refresh_s (1 s here) has passed, so a
    group removed in the directory, then the user removed, stop the key's reads at the next call."""
    import json

    directory, cfg, env = site["directory"], str(site["cfg"]), site["env"]
    directory.add_user("kurt", "kurt-pass-1", groups=("staff", "finance"))
    assert sign_in(site, "kurt", "kurt-pass-1").last.status_code == 200  # directory users are stored at sign-in
    made = run_cli("keys", "create", "--user", "kurt", "--name", "kurt's script", "--config", cfg, "--json", env=env)
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}

    def finance_hits() -> int:
        r = httpx.post(site["url"] + "api/v1/search", json={"query": "bonus pool 2027", "k": 5}, headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        return sum("CANARY-FIN-5521" in h["chunk"]["text"] for h in r.json()["hits"])

    assert finance_hits() == 1
    directory.remove_from_group("kurt", "finance")
    assert eventually(lambda: finance_hits() == 0)
    directory.remove_user("kurt")
    assert eventually(lambda: httpx.post(site["url"] + "api/v1/search", json={"query": "canteen"}, headers=headers,
                                         timeout=60).status_code == 401)
