"""A signed-in member of staff with a script, not a browser: attacks on a real `workbench serve`.

The server is built from the sample documents split into a staff folder and a finance folder (a
budget only finance may read). Each test performs one attack of issue 22 over real HTTP (or in
Chromium) and checks that it is refused, that nothing leaves the server and that the app keeps
answering: file objects and URLs in every input of every event (the transcript among them),
another user's session, deep links, a file swapped for a link after ingest, an upload named like
a pattern, one user filling the queue, huge bodies, repeated and forged headers, odd chunk ids.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time

import httpx
import pytest
import webkit
from webkit import Recorder, Server, add_user, ask_fn, ask_http, audit_rows, final_text, raw_status

from conftest import SAMPLE, run_cli

PASSWORDS = {"ada": "ada-admin-pass", "sam": "sam-staff-pass", "kim": "kim-staff-pass", "fay": "fay-finance-pass"}
BUDGET = "# Budget 2027\n\nThe confidential budget for 2027 is 4.2 million euros, mostly for hangar 9.\n"
SECRET = "4.2 million"


@pytest.fixture(scope="module")
def corp(tmp_path_factory):
    """Staff and finance folders ingested, four users, a decoy the size and time of the budget in the staff
    folder, and `workbench serve` whose proxy settings point at a recorder (any fetch would show there)."""
    base = tmp_path_factory.mktemp("corp")
    docs = base / "docs"
    shutil.copytree(SAMPLE, docs / "staff")
    (docs / "finance").mkdir()
    budget = docs / "finance" / "budget.md"
    budget.write_text(BUDGET)
    (docs / "finance" / ".workbench-access").write_text('groups = ["finance"]\n')
    decoy = docs / "staff" / "notes.md"  # same size and modification time as the budget: stat() cannot tell
    decoy.write_text(("# Notes\n\nThe canteen opens at eight on weekdays. " + "x" * 200)[: len(BUDGET) - 1] + "\n")
    assert decoy.stat().st_size == budget.stat().st_size
    os.utime(decoy, ns=(budget.stat().st_atime_ns, budget.stat().st_mtime_ns))
    cfg = base / "workbench.toml"
    cfg.write_text('[index]\ndir = "index"\n[llm]\nmax_new_tokens = 16\n')
    done = run_cli("ingest", str(docs), "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    for name, groups in (("ada", "admin,staff"), ("sam", "staff"), ("kim", "staff"), ("fay", "finance")):
        add_user(cfg, name, groups, PASSWORDS[name])
    recorder = Recorder()
    env = {**os.environ, "HTTP_PROXY": recorder.url, "HTTPS_PROXY": recorder.url, "http_proxy": recorder.url,
           "https_proxy": recorder.url, "NO_PROXY": "", "no_proxy": ""}
    server = Server(cfg, env=env)
    yield {"server": server, "url": server.url, "cfg": cfg, "index": base / "index", "docs": docs,
           "budget": budget, "decoy": decoy, "recorder": recorder}
    server.stop()
    recorder.stop()


def signed_in(corp, name: str) -> httpx.Client:
    return webkit.signed_in(corp["url"], name, PASSWORDS[name])


def audit(corp, action: str) -> list[tuple]:
    """(user, action, text, outcome) of the audit entries of ``action``, oldest first."""
    return [(user, act, text, outcome) for user, act, text, _, outcome in audit_rows(corp["index"], action)]


def chunk_of(corp, file_name: str) -> int:
    """The id of the first chunk of the file called ``file_name``, read from the published catalog."""
    gen = int((corp["index"] / "CURRENT").read_text().strip())
    conn = sqlite3.connect(corp["index"] / "gen" / f"{gen:06d}" / "catalog.sqlite")
    try:
        row = conn.execute("SELECT c.id FROM chunks c JOIN documents d ON c.doc_id = d.doc_id "
                           "WHERE d.path LIKE ? ORDER BY c.ordinal LIMIT 1", (f"%/{file_name}",)).fetchone()
    finally:
        conn.close()
    assert row, file_name
    return int(row[0])


def join(http: httpx.Client, fn: int, data: list, session: str | None = None, **extra) -> httpx.Response:
    body = {"data": data, "event_data": None, "fn_index": fn, "trigger_id": None,
            "session_hash": session or os.urandom(6).hex(), **extra}
    return http.post("gradio_api/queue/join", json=body)


def file_data(path: str, **extra) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}, **extra}


# ---- 1. no event takes a file, a URL or a transcript from the client ------------------------------------

def test_no_event_of_the_app_takes_a_file_or_url_from_a_signed_in_user(corp):
    """Fuzz: every event, every input slot (and event_data), each payload; as staff, then as an admin."""
    index, recorder = corp["index"], corp["recorder"]
    link = corp["docs"] / "staff" / "budget-link.md"
    link.symlink_to(corp["budget"])
    targets = {"users database": str(index / "users.sqlite"), "/dev/zero": "/dev/zero", "symlink": str(link),
               "finance document": str(corp["budget"]), "environment": "/proc/self/environ"}
    payloads = [file_data(p) for p in targets.values()]
    payloads += [file_data(f"{recorder.url}/loopback.txt"), {"url": f"{recorder.url}/by-url.txt", "path": "x"},
                 file_data("https://example.com/public.txt"), {"path": "http://93.184.215.14/public.pdf"}]
    transcript = [{"role": "user", "content": [{"type": "file", "file": file_data(targets["users database"])}]}]
    try:
        for name in ("sam", "ada"):
            with signed_in(corp, name) as http:
                deps = http.get("config").json()["dependencies"]
                assert len(deps) >= 8
                answers: dict[int, set[int]] = {}
                for dep in deps:
                    slots = len(dep["inputs"])
                    for i in range(slots):
                        for value in (*payloads, [payloads[0]], transcript, {"nested": payloads[1]}):
                            data = [value if j == i else None for j in range(slots)]
                            started = time.monotonic()
                            r = join(http, dep["id"], data)
                            assert time.monotonic() - started < 10, "the server hung on a payload"
                            answers.setdefault(dep["id"], set()).add(r.status_code)
                            assert r.status_code in (403, 404, 422), (name, dep.get("api_name"), i, value, r.text)
                    r = join(http, dep["id"], [None] * slots, event_data={"value": payloads[0]})
                    assert r.status_code == 422, r.text
                    r = join(http, dep["id"], [None] * (slots + 1))  # an extra slot is not a place to hide one
                    assert r.status_code == 422, r.text
                for path in targets.values():  # nothing was copied where Gradio would serve it
                    assert http.get(f"gradio_api/file={path}").status_code in (403, 404)
                # the app keeps answering, the conversation only as the server keeps it
                final = final_text(ask_http(http, "When does the shuttle bus leave car park D?"))
                assert final and "Sorry" not in final
    finally:
        link.unlink()
    copied = [p for p in (index / "web-uploads").rglob("*") if p.is_file()]
    assert copied == [], copied
    assert recorder.seen == [], recorder.seen  # nothing fetched, directly or through the proxy settings
    refused = audit(corp, "refused")
    assert any(r[0] == "sam" and "queue/join" in r[2] for r in refused)  # refused inputs are audited


def test_a_user_cannot_drive_or_read_another_users_session(corp):
    with signed_in(corp, "sam") as sam, signed_in(corp, "kim") as kim:
        session = os.urandom(6).hex()
        assert join(sam, ask_fn(sam)["fn_index"], ["What is the travel policy?", "", None], session).status_code == 200
        hijack = join(kim, ask_fn(kim)["fn_index"], ["What did sam ask?", "", None], session)
        assert hijack.status_code == 403
        assert kim.get("gradio_api/queue/data", params={"session_hash": session}).status_code == 403
        assert kim.get(f"gradio_api/heartbeat/{session}").status_code == 403
        assert kim.post("gradio_api/cancel", json={"session_hash": session, "fn_index": 1,
                                                   "event_id": "x"}).status_code == 403
        with sam.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
            assert stream.status_code == 200  # the owner still reads their own answer


def test_malformed_queue_requests_and_staff_calls_to_admin_events_are_refused(corp):
    """Bodies a page never sends: not JSON, nested past the parser, wrong shapes; admin events run by staff."""
    with signed_in(corp, "sam") as http:
        deps = {d.get("api_name"): d["id"] for d in http.get("config").json()["dependencies"]}
        raw = {"Content-Type": "application/json"}
        deep = b'{"data": [' + b"[" * 5000 + b"]" * 5000 + b', "", null], "fn_index": 1, "session_hash": "deep01"}'
        assert http.post("gradio_api/queue/join", content=b"{nope", headers=raw).status_code == 400
        assert http.post("gradio_api/queue/join", content=deep, headers=raw).status_code == 400
        assert http.post("gradio_api/cancel", content=b"[" * 5000, headers=raw).status_code == 400
        for body in ([1, 2], "x", {"data": [], "fn_index": "0", "session_hash": "s0"},
                     {"data": [], "fn_index": True, "session_hash": "s0"}, {"data": {"a": 1}, "fn_index": 0, "session_hash": "s0"},
                     {"data": [], "fn_index": 0, "session_hash": {"a": 1}}, {"data": [], "fn_index": 0}):
            assert http.post("gradio_api/queue/join", json=body).status_code in (400, 404, 422), body
        for name, data in (("do_reindex", []), ("do_upload", [None, "uploads", "staff"])):
            session = os.urandom(6).hex()
            assert join(http, deps[name], data, session).status_code == 200  # the gate admits; the handler refuses
            with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
                done = next(json.loads(line[5:]) for line in stream.iter_lines()
                            if line.startswith("data:") and '"process_completed"' in line)
            assert "Only administrators" in json.dumps(done)
        assert http.get("config").status_code == 200  # still answering
    refused = [r[2] for r in audit(corp, "refused") if r[0] == "sam"]
    assert any(t.startswith("re-index:") for t in refused) and any(t.startswith("upload:") for t in refused)


# ---- 2. a file swapped after ingest is not served in its place ----------------------------------------------

def test_a_decoy_swapped_for_a_link_or_other_bytes_is_not_served(corp):
    decoy, chunk = corp["decoy"], chunk_of(corp, "notes.md")
    original = decoy.read_bytes()
    stat = decoy.stat()
    with signed_in(corp, "sam") as http:
        assert http.get(f"source/{chunk}/file").status_code == 200  # control: the real file is served
        try:
            decoy.unlink()
            decoy.symlink_to(corp["budget"])  # same size and time through the link: stat() says unchanged
            r = http.get(f"source/{chunk}/file")
            assert r.status_code == 404 and SECRET not in r.text
            decoy.unlink()
            decoy.write_bytes(original.replace(b"canteen", b"CANTEEN"))  # other bytes, same size, same time
            os.utime(decoy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            r = http.get(f"source/{chunk}/file")
            assert r.status_code == 404 and b"CANTEEN" not in r.content
        finally:
            decoy.unlink(missing_ok=True)
            decoy.write_bytes(original)
            os.utime(decoy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert http.get(f"source/{chunk}/file").content == original
    downloads = audit(corp, "download")
    assert [r for r in downloads if r[0] == "sam" and r[3] == "refused" and "notes.md" in r[2]]


def test_ingest_parses_what_it_checked_not_a_link_swapped_in_after_listing(tmp_path):
    from workbench.load import LoadLimits
    from workbench.load.sandbox import ParserPool
    from workbench.sync import file_hash

    secret = tmp_path / "secret" / "budget.md"
    secret.parent.mkdir()
    secret.write_text(BUDGET)
    folder = tmp_path / "watched"
    (folder / "sub").mkdir(parents=True)
    note = folder / "sub" / "note.md"
    note.write_text("# Note\n\nHarmless.\n")
    planned = file_hash(note)
    with ParserPool(1, 60, 1024, LoadLimits()) as pool:
        [ok] = pool.map([(str(note), planned)])
        assert ok.error is None and "Harmless" in ok.docs[0].text
        note.unlink()
        note.symlink_to(secret)  # the file becomes a link after the sync listed and hashed it
        [out] = pool.map([(str(note), planned)])
        assert out.docs == () and "symbolic link" in out.error
        note.unlink()
        shutil.rmtree(folder / "sub")
        (folder / "sub").symlink_to(secret.parent)  # or a folder on its path does
        [out] = pool.map([(str(folder / "sub" / "budget.md"), file_hash(secret))])
        assert out.docs == () and "symbolic link" in out.error
        (folder / "sub").unlink()
        (folder / "sub").mkdir()
        note.write_text("# Note\n\nChanged after the sync.\n")
        [out] = pool.map([(str(note), planned)])
        assert out.docs == () and "not what was listed" in out.error


# ---- 3. no deep links, a strict Content-Security-Policy on the page ------------------------------------------

def test_deep_links_are_closed_and_the_page_enforces_its_content_security_policy(corp):
    from playwright.sync_api import sync_playwright

    recorder = corp["recorder"]
    with signed_in(corp, "sam") as http:
        assert http.get("gradio_api/deep_link", params={"session_hash": "abc"}).status_code == 404
        opened = http.get("", params={"deep_link": "abc"})
        assert opened.status_code == 303 and opened.headers["location"] == "/"
        csp = http.get("").headers["content-security-policy"]
        for directive in ("default-src 'self'", "img-src 'self' data: blob:", "form-action 'self'",
                          "connect-src 'self'", "frame-ancestors 'none'"):
            assert directive in csp, csp
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
    with sync_playwright() as p:
        browser = webkit.launch_browser(p)
        ctx = webkit.new_context(browser)
        page = webkit.login(ctx, corp["url"], "sam", PASSWORDS["sam"])
        tried = page.evaluate("""async (url) => {
            const out = {};
            try { await fetch(url + '/csp-fetch'); out.fetch = 'sent'; } catch (e) { out.fetch = 'blocked'; }
            out.image = await new Promise(done => { const img = new Image(); img.onload = () => done('loaded');
                img.onerror = () => done('blocked'); img.src = url + '/csp-image.png'; document.body.appendChild(img); });
            const f = document.createElement('form'); f.method = 'post'; f.action = url + '/csp-form';
            const blocked = new Promise(done => document.addEventListener('securitypolicyviolation',
                e => { if (e.violatedDirective.startsWith('form-action')) done('blocked'); }));
            document.body.appendChild(f); f.submit();
            out.form = await Promise.race([blocked, new Promise(done => setTimeout(() => done('sent'), 3000))]);
            const s = document.createElement('script'); s.textContent = 'window.injected = 1'; document.body.appendChild(s);
            out.inline = window.injected === 1 ? 'ran' : 'blocked';
            return out; }""", recorder.url)
        assert tried == {"fetch": "blocked", "image": "blocked", "form": "blocked", "inline": "blocked"}, tried
        page.goto(corp["url"] + "?deep_link=abc")
        assert "deep_link" not in page.url
        page.wait_for_selector("#wb-question textarea", timeout=60_000)
        # e-mail addresses in text never become links (mailto: survives no escaping)
        page.locator("#wb-question textarea").fill("Write to mailto:leak@evil.example or leak@evil.example")
        page.locator("#wb-ask").click()
        user = page.locator("#wb-chat [data-testid=user]").last
        user.wait_for(timeout=30_000)
        assert "leak@evil.example" in user.inner_text()
        assert user.locator("a").count() == 0
        browser.close()
    assert recorder.seen == [], recorder.seen


# ---- 4. an upload named like a pattern re-shares nothing -----------------------------------------------------

def _upload(http: httpx.Client, name: str, content: bytes, groups: str) -> list[dict]:
    """The admin's upload through the app's own routes: Gradio's upload, then the upload event."""
    up = http.post("gradio_api/upload", files={"files": (name, content)})
    assert up.status_code == 200, up.text
    fn = next(d for d in http.get("config").json()["dependencies"] if d.get("api_name") == "do_upload")["id"]
    session = os.urandom(6).hex()
    r = join(http, fn, [[file_data(up.json()[0], orig_name=name)], "shared", groups], session)
    assert r.status_code == 200, r.text
    seen = []
    with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                if seen[-1].get("msg") == "process_completed":
                    break
    return seen


def test_an_upload_named_like_a_pattern_cannot_re_share_another_file(corp):
    with signed_in(corp, "ada") as ada:
        assert "indexed" in json.dumps(_upload(ada, "budget.md", BUDGET.encode(), "finance"))
        assert "indexed" in json.dumps(_upload(ada, "[a-c]udget.md", b"# Public\n\nA harmless note.\n", "staff"))
    access = (corp["index"] / "uploads" / "shared" / ".workbench-access").read_text()
    assert '"budget.md" = ["finance"]' in access and "[a-c]" not in access
    budget = chunk_of(corp, "shared/budget.md")
    with signed_in(corp, "sam") as sam:
        assert sam.get(f"source/{budget}").status_code == 404
        assert sam.get(f"source/{chunk_of(corp, 'shared/_a-c_udget.md')}").status_code == 200
    with signed_in(corp, "fay") as fay:
        assert fay.get(f"source/{budget}").status_code == 200
    with signed_in(corp, "sam") as sam:  # and a non-admin cannot submit an upload at all
        assert sam.post("gradio_api/upload", files={"files": ("x.md", b"x")}).status_code == 403


# ---- 5. one user cannot block everyone; bodies are capped -------------------------------------------------------

def test_one_user_cannot_fill_the_queue_and_huge_bodies_are_refused(corp):
    with signed_in(corp, "sam") as sam, signed_in(corp, "kim") as kim:
        fn = ask_fn(sam)["fn_index"]
        codes: list[int] = []

        def one() -> None:
            codes.append(join(sam, fn, ["Where is the hangar?", "", None]).status_code)

        threads = [threading.Thread(target=one) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert codes.count(200) <= 2 and codes.count(429) >= 18, codes
        assert join(kim, fn, ["What is the travel policy?", "", None]).status_code == 200  # others still get in
        started = time.monotonic()
        big = sam.post("gradio_api/queue/join", content=b'{"data": ["' + b"x" * (38 << 20) + b'"]}',
                       headers={"Content-Type": "application/json"})
        assert big.status_code == 413 and time.monotonic() - started < 30
        assert sam.post("login", data={"username": "sam", "password": "x" * (1 << 20)}).status_code == 413


# ---- 7. smaller holes ---------------------------------------------------------------------------------------------------

def test_forged_and_repeated_headers_odd_ids_and_the_api_description_are_refused(corp):
    port = corp["server"].port
    with signed_in(corp, "sam") as http:
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        base = [("Host", f"127.0.0.1:{port}"), ("Cookie", cookie)]
        assert raw_status(port, base) == 200  # control: the same request, each header once
        for name, value in (("Host", f"127.0.0.1:{port}"), ("Cookie", cookie), ("X-Forwarded-User", "ada"),
                            ("Origin", f"http://127.0.0.1:{port}"), ("X-Forwarded-For", "10.1.2.3")):
            twice = base + [(name, value)] * (1 if name in ("Host", "Cookie") else 2)
            assert raw_status(port, twice) == 400, name
        for route in ("openapi.json", "gradio_api/openapi.json", "gradio_api/info", "docs", "gradio_api/api/ask",
                      "gradio_api/deep_link", "monitoring", "gradio_api/run-history/buckets", "gradio_api/token"):
            assert http.get(route).status_code == 404, route
        assert http.get("gradio_api/file=/etc/hostname").status_code == 403  # admins' own uploads only
        for odd in ("99999999999999999999", "-1", "9223372036854775808"):
            assert http.get(f"source/{odd}").status_code == 404
            assert http.get(f"source/{odd}/file").status_code == 404
        budget = chunk_of(corp, "finance/budget.md")
        assert http.get(f"source/{budget}").status_code == 404
        assert http.get(f"source/{budget}/file").status_code == 404
    refused = [r for r in audit(corp, "view") + audit(corp, "download") if r[0] == "sam" and r[3] == "refused"]
    assert any(str(budget) in r[2] for r in refused) and any("99999999999999999999" in r[2] for r in refused)
    # no proxy is configured: X-Forwarded-For from a local process neither names the client nor escapes the delays
    forged = httpx.post(corp["url"] + "login", data={"username": "kim", "password": "wrong-password"},
                        headers={"X-Forwarded-For": "203.0.113.9"})
    assert forged.status_code == 400
    entry = [r for r in audit(corp, "login-failed") if r[0] == "kim"][-1]
    assert "203.0.113.9" not in entry[2] and "127.0.0.1" in entry[2]
