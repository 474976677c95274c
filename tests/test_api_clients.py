"""Other tools against a real `workbench serve`, with personal keys: the REST API's ask (server-sent
events), passages and files, its OpenAPI description; the Python client `Workbench.connect`
returning the local API's records; the MCP server at /mcp driven by the official MCP client over
HTTP, and `workbench mcp` over stdio. A staff key never gets the finance canary through any of them.
"""

from __future__ import annotations

import json
import sqlite3
import sys

import anyio
import httpx
import pytest
from signinkit import FINANCE_TEXT, docs_site
from webkit import Server, add_user, signed_in

from conftest import run_cli
from workbench import Answer, Hits, NotFoundError, SourceView, Workbench
from workbench.errors import RemoteError

PASSWORD = "a long enough password"
CANARY = "CANARY-FIN-5521"


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    info = docs_site(tmp_path_factory.mktemp("clients"), embedder, {}, web="api_calls_per_minute = 1000")
    for name, groups in (("sam", "staff"), ("fay", "finance")):
        add_user(info["cfg"], name, groups, PASSWORD)
    server = Server(info["cfg"])
    keys = {}
    for name, scopes in (("fay", "search,ask,read"), ("sam", "search,ask,read"), ("sam-search", "search")):
        user = name.split("-")[0]
        done = run_cli("keys", "create", "--user", user, "--name", name, "--scope", scopes, "--config",
                       str(info["cfg"]), "--json")
        assert done.returncode == 0, done.stderr
        keys[name] = json.loads(done.stdout)["key"]
    yield {**info, "server": server, "url": server.url, "keys": keys}
    server.stop()


def auth(site, who: str) -> dict:
    return {"Authorization": f"Bearer {site['keys'][who]}"}


def audit_rows(site, action: str) -> list[tuple]:
    with sqlite3.connect(site["index"] / "audit.sqlite") as db:
        return db.execute("SELECT user, source, chunk_ids, outcome FROM audit WHERE action=?", (action,)).fetchall()


def sse(response: httpx.Response) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


def test_ask_streams_the_answer_as_the_keys_user(site):
    with httpx.stream("POST", site["url"] + "api/v1/ask", headers=auth(site, "fay"), timeout=300,
                      json={"question": "How big is the bonus pool for 2027?"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse(response)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) <= {"token"}, kinds
    answer = events[-1][1]
    assert CANARY in json.dumps(answer["hits"]) and {"text", "citations", "refused", "flags"} <= answer.keys()
    if not answer["refused"]:  # the tokens are the answer's text as generated (citations are checked after)
        assert "".join(d["text"] for k, d in events if k == "token").strip()
    assert any(u == "fay" and s.startswith("api key") and o in ("answered", "refused")
               for u, s, _, o in audit_rows(site, "ask"))
    with httpx.stream("POST", site["url"] + "api/v1/ask", headers=auth(site, "sam"), timeout=300,
                      json={"question": "How big is the bonus pool for 2027 in the payroll memo?"}) as response:
        text = response.read().decode()
    assert response.status_code == 200 and 'event: answer' in text  # the leak canary: nothing of the finance memo
    assert CANARY not in text and "4.2 million" not in text and "Payroll memo" not in text
    narrow = httpx.post(site["url"] + "api/v1/ask", headers=auth(site, "sam-search"), json={"question": "x"}, timeout=30)
    assert narrow.status_code == 403 and "may not ask" in narrow.json()["error"]
    with sqlite3.connect(site["index"] / "audit.sqlite") as db:  # a known key refused is audited
        assert db.execute("SELECT count(*) FROM audit WHERE user='sam' AND action='refused' AND source LIKE 'api key%' "
                          "AND text LIKE '%may not ask%'").fetchone()[0] >= 1
    for bad in ({"question": ""}, {"question": "x", "history": "nope"}, {"question": "x", "history": [["a"]]},
                {"question": "x", "collection": 5}, ["question"],
                {"question": "x", "history": [["y" * 60_000, "z"]]}):  # a question too long to ask, as history
        assert httpx.post(site["url"] + "api/v1/ask", headers=auth(site, "sam"), json=bad, timeout=30).status_code == 400


def test_passages_and_files_only_for_their_readers(site):
    fin = site["chunks"]["finance"]
    read = httpx.get(site["url"] + f"api/v1/passages/{fin}", headers=auth(site, "fay"), timeout=30)
    assert read.status_code == 200 and CANARY in read.json()["chunk"]["text"]
    assert read.json()["document"]["collection"] == "finance"
    got = httpx.get(site["url"] + f"api/v1/passages/{fin}/file", headers=auth(site, "fay"), timeout=30)
    assert got.status_code == 200 and got.content == FINANCE_TEXT.encode()
    assert "attachment" in got.headers["content-disposition"]
    assert 'filename="finance.txt"' in got.headers["content-disposition"]  # what curl -OJ saves it as
    for route in (f"api/v1/passages/{fin}", f"api/v1/passages/{fin}/file"):
        refused = httpx.get(site["url"] + route, headers=auth(site, "sam"), timeout=30)
        assert refused.status_code == 404 and CANARY not in refused.text
        assert httpx.get(site["url"] + route, headers=auth(site, "sam-search"), timeout=30).status_code == 403
        assert httpx.get(site["url"] + route, timeout=30).status_code == 401
    for bad in ("-1", "99999999999999999999999", "1e3", "..%2fusers.sqlite"):
        assert httpx.get(site["url"] + f"api/v1/passages/{bad}", headers=auth(site, "fay"), timeout=30).status_code in (404, 422)
    views = audit_rows(site, "view")
    assert any(u == "fay" and s.startswith("api key") and str(fin) in c for u, s, c, _ in views)
    assert any(u == "sam" and o == "refused" for u, _, _, o in views)
    assert any(u == "fay" for u, *_ in audit_rows(site, "download"))


def test_the_openapi_description_is_for_signed_in_users_and_keys(site):
    url = site["url"] + "api/v1/openapi.json"
    assert httpx.get(url, timeout=30).status_code == 401
    doc = httpx.get(url, headers=auth(site, "sam-search"), timeout=30)
    assert doc.status_code == 200 and doc.json()["openapi"].startswith("3.")
    with signed_in(site["url"], "sam", PASSWORD) as http:
        assert http.get("api/v1/openapi.json").json() == doc.json()
    from workbench_web import api

    routes = {api.SEARCH, api.ASK, api.OPENAPI, api.PASSAGES + "{chunk_id}", api.PASSAGES + "{chunk_id}/file"}
    assert set(doc.json()["paths"]) == routes
    for path, methods in doc.json()["paths"].items():  # every described route answers (not the guard's 404)
        concrete = path.replace("{chunk_id}", str(site["chunks"]["staff"]))
        for method in methods:
            r = httpx.request(method.upper(), site["url"] + concrete.lstrip("/"), timeout=300,
                              headers=auth(site, "sam"), json={"query": "canteen", "question": "canteen hours?"})
            assert r.status_code == 200, (path, r.status_code, r.text[:200])


def test_the_python_client_returns_the_local_records(site, embedder):
    local = Workbench.open(site["cfg"]).replace(embedder=embedder)
    fay = local.principal("fay")
    with Workbench.connect(site["url"], key=site["keys"]["fay"]) as remote:
        hits = remote.search("bonus pool 2027", k=2)
        mine = local.search("bonus pool 2027", k=2, principal=fay)
        assert isinstance(hits, Hits) and [h.chunk for h in hits] == [h.chunk for h in mine]
        assert [round(h.score, 5) for h in hits] == [round(h.score, 5) for h in mine]
        view, here = remote.source(site["chunks"]["finance"]), local.source(site["chunks"]["finance"], fay)
        assert isinstance(view, SourceView) and (view.chunk, view.before, view.after) == (here.chunk, here.before, here.after)
        assert view.document.path == here.document.path and view.document.groups == ()  # readers are not sent
        assert remote.original_file(site["chunks"]["finance"]) == FINANCE_TEXT.encode()
        pieces = []
        answer = remote.ask("How big is the bonus pool for 2027?", on_token=pieces.append)
        assert isinstance(answer, Answer) and answer.hits and answer.hits[0].chunk.text.startswith("Payroll memo")
        assert all(c.chunk.chunk_id in {h.chunk.chunk_id for h in answer.hits} for c in answer.citations)
    with Workbench.connect(site["url"], key=site["keys"]["sam"]) as remote:
        assert CANARY not in " ".join(h.chunk.text for h in remote.search("bonus pool 2027 " + CANARY, k=5))
        with pytest.raises(NotFoundError):
            remote.source(site["chunks"]["finance"])
    with Workbench.connect(site["url"], key="wbk_" + "x" * 12 + "_" + "y" * 43) as remote, \
            pytest.raises(RemoteError) as refused:
        remote.search("canteen")
    assert refused.value.status == 401


async def _mcp_calls(client, chunk_id: int) -> dict:
    tools = await client.list_tools()
    found = await client.call_tool("search", {"query": "bonus pool 2027", "k": 3})
    read = await client.call_tool("read_passage", {"chunk_id": chunk_id})
    asked = await client.call_tool("ask", {"question": "How big is the bonus pool for 2027?"})
    return {"tools": {t.name for t in tools.tools}, "search": found, "read": read, "ask": asked}


def _mcp_http(url: str, key: str | None, chunk_id: int) -> dict:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def go():
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx2.AsyncClient(headers=headers, timeout=300) as http, \
                Client(streamable_http_client(url + "mcp", http_client=http)) as client:
            return await _mcp_calls(client, chunk_id)
    return anyio.run(go)


def test_mcp_over_http_with_keys(site):
    fin = site["chunks"]["finance"]
    fay = _mcp_http(site["url"], site["keys"]["fay"], fin)
    assert fay["tools"] == {"search", "ask", "read_passage"}
    hits = fay["search"].structured_content["hits"]
    assert not fay["search"].is_error and CANARY in hits[0]["text"]
    assert hits[0]["link"] == f"{site['url']}source/{hits[0]['chunk_id']}" and hits[0]["path"].endswith("finance.txt")
    assert not fay["read"].is_error and CANARY in fay["read"].structured_content["text"]
    asked = fay["ask"].structured_content
    assert not fay["ask"].is_error and {"answer", "citations", "refused"} <= asked.keys()
    sam = _mcp_http(site["url"], site["keys"]["sam"], fin)
    seen = json.dumps([sam[k].structured_content for k in ("search", "ask")]) + str(sam["read"].content)
    assert CANARY not in seen and "4.2 million" not in seen  # the leak canary, through every tool
    assert sam["read"].is_error and "no source" in sam["read"].content[0].text
    narrow = _mcp_http(site["url"], site["keys"]["sam-search"], site["chunks"]["staff"])
    assert not narrow["search"].is_error and narrow["read"].is_error and "may not read" in narrow["read"].content[0].text
    listed = run_cli("keys", "list", "--config", str(site["cfg"]), "--json").stdout
    assert all(k["last_used"] for k in json.loads(listed) if k["label"] == "sam-search")  # MCP use is recorded
    for method in ("GET", "DELETE"):  # no standing stream to hold open, no session to end
        assert httpx.request(method, site["url"] + "mcp", headers=auth(site, "fay"), timeout=30).status_code in (404, 405)
    refused = httpx.post(site["url"] + "mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30,
                         headers={"Accept": "application/json, text/event-stream"})
    assert refused.status_code == 401 and "Bearer" in refused.headers["www-authenticate"]
    bad = httpx.post(site["url"] + "mcp", json={}, timeout=30, headers={"Authorization": "Bearer wbk_x"})
    assert bad.status_code == 401
    foreign = httpx.post(site["url"] + "mcp", json={}, timeout=30, headers={**auth(site, "fay"), "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    rows = audit_rows(site, "search")
    assert any(u == "fay" and s.startswith("api key") for u, s, _, _ in rows)


def test_mcp_over_stdio_as_a_user_and_as_the_operator(site):
    from mcp import Client, StdioServerParameters

    def run(*extra: str) -> dict:
        params = StdioServerParameters(command=sys.executable, args=["-m", "workbench.cli", "mcp", "--config",
                                                                     str(site["cfg"]), *extra])

        async def go():
            async with Client(params, read_timeout_seconds=300) as client:
                return await _mcp_calls(client, site["chunks"]["finance"])
        return anyio.run(go)

    sam = run("--as-user", "sam")
    assert sam["tools"] == {"search", "ask", "read_passage"}
    assert CANARY not in json.dumps(sam["search"].structured_content) and sam["read"].is_error
    operator = run()
    assert CANARY in operator["search"].structured_content["hits"][0]["text"]
    assert not operator["read"].is_error and operator["read"].structured_content["link"] is None  # no public_url
    assert any(u == "sam" and s == "local" for u, s, _, _ in audit_rows(site, "search"))


def test_staff_make_and_revoke_their_own_key_in_the_app(site):
    from playwright.sync_api import sync_playwright
    from webkit import launch_browser, login, new_context, shot

    others = run_cli("keys", "create", "--user", "fay", "--name", "fay's other", "--config", str(site["cfg"]), "--json")
    fay_key = json.loads(others.stdout)
    with sync_playwright() as p:
        browser = launch_browser(p)
        try:
            page = login(new_context(browser), site["url"], "sam", PASSWORD)
            page.get_by_role("tab", name="API keys").click()
            page.locator("#wb-key-label input, #wb-key-label textarea").first.fill("my ticket script")
            page.locator("#wb-key-create").click()
            box = page.locator("#wb-key-new textarea, #wb-key-new input").first
            box.wait_for(timeout=30_000)
            page.wait_for_function("() => /^wbk_/.test((document.querySelector('#wb-key-new textarea') || "
                                   "document.querySelector('#wb-key-new input')).value)", timeout=30_000)
            secret = box.input_value()
            page.wait_for_selector("#wb-keys:has-text('my ticket script')", timeout=30_000)
            shot(page, "api-keys-created")
            found = httpx.post(site["url"] + "api/v1/search", json={"query": "canteen opening"}, timeout=60,
                               headers={"Authorization": f"Bearer {secret}"})
            assert found.status_code == 200 and "CANARY-STAFF-1180" in json.dumps(found.json())
            key_id = secret.split("_")[1]
            # another user's key id is not sam's to revoke: it keeps working
            page.locator("#wb-key-revoke-id input, #wb-key-revoke-id textarea").first.fill(fay_key["id"])
            page.locator("#wb-key-revoke").click()
            page.wait_for_selector("#wb-key-note:has-text('You have no key')", timeout=30_000)
            assert httpx.post(site["url"] + "api/v1/search", json={"query": "bonus"}, timeout=60,
                              headers={"Authorization": f"Bearer {fay_key['key']}"}).status_code == 200
            page.locator("#wb-key-revoke-id input, #wb-key-revoke-id textarea").first.fill(key_id)
            page.locator("#wb-key-revoke").click()
            page.wait_for_selector("#wb-key-note:has-text('revoked')", timeout=30_000)
            page.wait_for_selector("#wb-keys:has-text('revoked')", timeout=30_000)
        finally:
            browser.close()
    assert httpx.post(site["url"] + "api/v1/search", json={"query": "canteen"}, timeout=60,
                      headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    with sqlite3.connect(site["index"] / "audit.sqlite") as db:
        entries = [t for (t,) in db.execute("SELECT text FROM audit WHERE user='sam' AND action='key'")]
    assert any(f"created key {key_id}" in t for t in entries) and any(f"revoked key {key_id}" in t for t in entries)


def test_an_answer_left_unread_is_audited_as_cancelled(site, embedder, llm):
    wb = Workbench.open(site["cfg"]).replace(embedder=embedder, llm=llm)
    answering = wb.ask_stream("When does the canteen open?", principal=wb.principal("sam"))
    assert isinstance(next(answering), str)
    answering.close()  # as the REST API does when the client goes away
    with sqlite3.connect(site["index"] / "audit.sqlite") as db:
        outcome = db.execute("SELECT outcome FROM audit WHERE action='ask' ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert outcome == "cancelled"
