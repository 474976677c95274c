"""The REST API with personal keys, against a real `workbench serve`: search as the key's user, and
the refusals (no key, a wrong, revoked, expired or narrow key, a removed user, too many calls, a
page of another site), with every call audited."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest
from signinkit import docs_site
from webkit import Server, add_user

from conftest import run_cli

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    info = docs_site(tmp_path_factory.mktemp("rest"), embedder, {}, web="api_calls_per_minute = 6")
    for name, groups in (("sam", "staff"), ("fay", "finance"), ("gus", "staff")):
        add_user(info["cfg"], name, groups, PASSWORD)
    server = Server(info["cfg"])
    yield {**info, "server": server, "url": server.url}
    server.stop()


def key(site, user: str, *extra: str) -> dict:
    done = run_cli("keys", "create", "--user", user, "--name", f"{user}'s script", *extra, "--config",
                   str(site["cfg"]), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def search(site, token: str | None, query: str = "bonus pool 2027", **body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(site["url"] + "api/v1/search", json={"query": query, **body}, headers=headers, timeout=60)


def texts(response) -> str:
    return " ".join(h["chunk"]["text"] for h in response.json()["hits"])


def test_a_key_searches_as_its_user_and_only_what_they_may_read(site):
    fay, sam = key(site, "fay")["key"], key(site, "sam", "--scope", "search")["key"]
    found = search(site, fay, k=3)
    assert found.status_code == 200 and "CANARY-FIN-5521" in texts(found)
    hit = found.json()["hits"][0]
    assert {"chunk", "score", "rank", "dense_score", "lexical_score"} <= hit.keys()
    assert {"chunk_id", "path", "page", "text", "headings"} <= hit["chunk"].keys()
    staff = search(site, sam, k=10)
    assert staff.status_code == 200 and "CANARY-FIN-5521" not in texts(staff)  # the leak canary
    assert "CANARY-STAFF-1180" in texts(search(site, sam, "canteen opening time"))
    with sqlite3.connect(site["index"] / "audit.sqlite") as db:
        rows = db.execute("SELECT user, action, source, groups FROM audit WHERE action='search'").fetchall()
    assert ("fay", "search") in {(u, a) for u, a, _, _ in rows}
    assert any(s.startswith("api key") and "fay's script" in s and g == "finance" for u, _, s, g in rows if u == "fay")


def test_keys_that_must_not_work_do_not(site):
    assert search(site, None).status_code == 401
    assert search(site, "wbk_notakeyatall_" + "x" * 43).status_code == 401
    narrow = key(site, "sam", "--scope", "ask")["key"]
    refused = search(site, narrow)
    assert refused.status_code == 403 and "may not search" in refused.json()["error"]
    revoked = key(site, "sam")
    assert search(site, revoked["key"]).status_code == 200
    assert run_cli("keys", "revoke", revoked["id"], "--config", str(site["cfg"])).returncode == 0
    assert search(site, revoked["key"]).status_code == 401
    short = key(site, "sam", "--expires", "1m")
    from workbench.stores.keys import KeyStore

    with sqlite3.connect(KeyStore(site["index"]).path) as db:  # an hour later, as far as the key knows
        db.execute("UPDATE keys SET expires_at=? WHERE id=?", (time.time() - 1, short["id"]))
    expired = search(site, short["key"])
    assert expired.status_code == 401 and "expired" in expired.json()["error"]
    gus = key(site, "gus")["key"]
    assert search(site, gus).status_code == 200
    assert run_cli("users", "remove", "gus", "--config", str(site["cfg"])).returncode == 0
    assert search(site, gus).status_code == 401  # a removed user's keys stop at once
    add_user(site["cfg"], "gus", "finance", PASSWORD)  # a new account under the old name
    reused = search(site, gus)
    assert reused.status_code == 401 and "CANARY-FIN" not in reused.text  # does not inherit the old keys
    listed = run_cli("keys", "list", "--config", str(site["cfg"])).stdout
    assert "revoked" in listed and "expired" in listed and gus not in listed  # the secret is never listed


def test_calls_are_limited_per_key_and_other_sites_cannot_call(site):
    mine, other = key(site, "sam")["key"], key(site, "fay")["key"]
    codes = [search(site, mine, "canteen").status_code for _ in range(8)]
    assert codes[:6] == [200] * 6 and codes[-1] == 429  # [web] api_calls_per_minute = 6
    limited = search(site, mine, "canteen")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert search(site, other, "canteen").status_code == 200  # another key is not held up
    twice = httpx.post(site["url"] + "api/v1/search", json={"query": "canteen"}, timeout=30,  # a proxy and the app
                       headers=[("Authorization", "Bearer x"), ("Authorization", f"Bearer {other}")])  # could differ
    assert twice.status_code == 400 and "authorization sent more than once" in twice.text
    foreign = httpx.post(site["url"] + "api/v1/search", json={"query": "canteen"}, timeout=30,
                         headers={"Authorization": f"Bearer {other}", "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    for bad in ({"query": ""}, {"query": "x", "k": 0}, {"query": "x", "k": 1000}, {"query": "x", "mode": "magic"}):
        assert httpx.post(site["url"] + "api/v1/search", json=bad, timeout=30,
                          headers={"Authorization": f"Bearer {other}"}).status_code == 400
