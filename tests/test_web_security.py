"""Attacks on the staff web app, performed against a real `workbench serve` (real models, real HTTP).

Each test plays one adversary from the README's security section: a page on another site that a
signed-in member of staff opens (Chromium), a login flood, a stolen or stale session cookie, a
non-admin uploading, a reader who closes the tab mid-answer, a hostile question, a proxy-less
request with a forged single sign-on header. Plus the fresh-start case: a model that takes
minutes to load must not hold up sign-in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import webkit
from webkit import Server, add_user, ask_fn, ask_http, audit_rows, final_text, raw_status

from conftest import SAMPLE, run_cli

PASSWORDS = {"ada": "ada-admin-pass", "sam": "sam-staff-pass", "ivy": "ivy-admin-pass", "kim": "kim-staff-pass"}
QUESTION = "How many days of paid annual leave do full-time employees accrue?"


def _site(base: Path, web: str = "", env=None) -> dict:
    """A copy of the sample documents, ingested, four users, and `workbench serve` on it."""
    docs = base / "docs"
    shutil.copytree(SAMPLE, docs)
    cfg = base / "workbench.toml"
    cfg.write_text(f'[index]\ndir = "index"\n[llm]\nmax_new_tokens = 40\n[web]\n{web}\n')  # noqa: E501
    assert run_cli("ingest", str(docs), "--config", str(cfg)).returncode == 0
    for name, groups in (("ada", "admin,staff"), ("sam", "staff"), ("ivy", "admin,staff"), ("kim", "staff")):
        add_user(cfg, name, groups, PASSWORDS[name])
    server = Server(cfg, env=env)
    return {"server": server, "url": server.url, "cfg": cfg, "index": base / "index", "docs": docs}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    info = _site(tmp_path_factory.mktemp("websec"), web='public_url = "http://workbench.corp.example"')
    yield info
    info["server"].stop()


def signed_in(url: str, name: str, password: str | None = None, client_ip: str | None = None) -> httpx.Client:
    """An HTTP client holding ``name``'s real session cookie (this module's passwords by default)."""
    return webkit.signed_in(url, name, password or PASSWORDS[name], client_ip)


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


# ---- 1. a model that loads for minutes does not hold up sign-in, pages or admin work ---------------

GATE = '''
import os, time
import workbench.generate as _generate
_load = _generate.load_llm
def load_llm(settings):  # stands in for Llama 3.1 8B on a CPU: the load finishes when the test says so
    while not os.path.exists(os.environ["WB_LLM_GATE"]):
        time.sleep(0.1)
    return _load(settings)
_generate.load_llm = load_llm
'''


def test_sign_in_pages_and_admin_work_while_the_model_is_still_loading(tmp_path):
    from playwright.sync_api import sync_playwright

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(GATE)
    gate = tmp_path / "llm-may-load"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
           "WB_LLM_GATE": str(gate)}
    info = _site(tmp_path / "site", env=env)
    try:
        with sync_playwright() as p:
            browser = webkit.launch_browser(p)
            ctx = webkit.new_context(browser)
            page = webkit.login(ctx, info["url"], "sam", PASSWORDS["sam"])  # waits for "Signed in as sam"
            page.wait_for_selector("#wb-notice:has-text('language model is loading')", timeout=30_000)
            webkit.shot(page, "20-signed-in-while-model-loads")
            admin_ctx = webkit.new_context(browser)
            admin = webkit.login(admin_ctx, info["url"], "ada", PASSWORDS["ada"])
            admin.get_by_role("tab", name="Admin").click()
            admin.wait_for_selector("#wb-status table", timeout=30_000)
            page.locator("#wb-question textarea").fill(QUESTION)
            page.locator("#wb-ask").click()
            page.wait_for_selector("#wb-chat [data-testid=bot]:has-text('language model is loading')", timeout=30_000)
            # the question is in the audit log with its sources before a word is generated
            row = wait_for(lambda: [r for r in audit_rows(info["index"], "ask") if r[2] == QUESTION], 120, "the ask entry")
            assert row[0][0] == "sam"
            assert json.loads(row[0][3])
            assert row[0][4] == "asked"
            gate.touch()
            bot = page.locator("#wb-chat [data-testid=bot]").last
            wait_for(lambda: webkit.FINAL.search(bot.inner_text()), 240, "the answer once the model is loaded")
            assert ctx.outside == []
            assert admin_ctx.outside == []
            assert wait_for(lambda: [r for r in audit_rows(info["index"], "ask") if r[4] in ("answered", "refused")],
                            30, "the finished ask entry")
            ctx.close()
            browser.close()
    finally:
        info["server"].stop()


# ---- 2. pages on other sites cannot use the app as the signed-in user --------------------------------

EVIL_PAGE = '''<!doctype html><title>cat pictures</title><script>
const APP = "%(app)s", FN = %(fn)s;
window.results = {};
async function attempt(name, f) {
  try { const r = await f(); let body = ""; try { body = await r.text(); } catch (e) {}
        window.results[name] = {type: r.type, status: r.status, body: body.slice(0, 200)}; }
  catch (e) { window.results[name] = {error: String(e)}; }
}
(async () => {
  const ask = JSON.stringify({data: ["%(question)s", "", null], session_hash: "evil01", event_data: null, ...FN});
  await attempt("config", () => fetch(APP + "config", {credentials: "include"}));
  await attempt("join_cors", () => fetch(APP + "gradio_api/queue/join", {method: "POST", credentials: "include",
                 headers: {"Content-Type": "text/plain"}, body: ask}));
  await attempt("join_json", () => fetch(APP + "gradio_api/queue/join", {method: "POST", credentials: "include",
                 headers: {"Content-Type": "application/json"}, body: ask}));
  await attempt("join_nocors", () => fetch(APP + "gradio_api/queue/join", {method: "POST", mode: "no-cors",
                 credentials: "include", headers: {"Content-Type": "text/plain"}, body: ask}));
  await attempt("data", () => fetch(APP + "gradio_api/queue/data?session_hash=evil01", {credentials: "include"}));
  const form = new FormData(); form.append("files", new Blob(["%(marker)s"]), "evil-%(marker)s.txt");
  await attempt("upload", () => fetch(APP + "gradio_api/upload", {method: "POST", mode: "no-cors",
                 credentials: "include", body: form}));
  await attempt("source", () => fetch(APP + "source/%(chunk)s", {credentials: "include"}));
  await new Promise(done => { const img = new Image(); img.onload = () => { window.results.image = {width: img.naturalWidth}; done(); };
                              img.onerror = () => { window.results.image = {error: "blocked"}; done(); };
                              img.src = APP + "source/%(chunk)s/page.png"; });
  window.done = true;
})();
</script>'''


def test_pages_on_other_sites_cannot_act_or_read_as_the_signed_in_user(site, tmp_path):
    from playwright.sync_api import sync_playwright

    url, port = site["url"], site["server"].port
    with signed_in(url, "sam") as http:
        fn = ask_fn(http)
    from workbench.pipeline import Workbench

    chunk = Workbench.open(site["cfg"]).search("annual leave", k=1)[0].chunk.chunk_id
    uploads = site["index"] / "web-uploads"
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    handler = lambda *a, **k: SimpleHTTPRequestHandler(*a, directory=str(evil_dir), **k)  # noqa: E731
    evil = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = webkit.launch_browser(p)
            ctx = browser.new_context()
            page = webkit.login(ctx, url, "ada", PASSWORDS["ada"])  # an admin: the juiciest victim
            # positive control: the same request from the app's own page works (so the payload is right)
            own = page.evaluate("""async ([fn]) => { const r = await fetch('gradio_api/queue/join', {method: 'POST',
                headers: {'Content-Type': 'application/json'}, body: JSON.stringify({data: ['own-origin control', '',
                null], session_hash: 'own01', event_data: null, ...fn})}); return r.status; }""", [fn])
            assert own == 200
            wait_for(lambda: [r for r in audit_rows(site["index"], "ask") if r[2] == "own-origin control"], 60,
                     "the control question in the audit log")
            # the attacker's page, once on another site (localhost) and once same-site (127.0.0.1, other port):
            # the SameSite cookie is sent in the second case, so only the origin checks stand in the way
            for host in ("localhost", "127.0.0.1"):
                marker = f"evil{host.replace('.', '')}"
                (evil_dir / "index.html").write_text(EVIL_PAGE % {"app": url, "fn": json.dumps(fn), "chunk": chunk,
                                                                  "question": f"question from {marker}", "marker": marker})
                attacker = ctx.new_page()
                attacker.goto(f"http://{host}:{evil.server_address[1]}/index.html")
                attacker.wait_for_function("window.done === true", timeout=60_000)
                results = attacker.evaluate("window.results")
                for name, r in results.items():  # nothing readable: network errors, opaque responses, blocked image
                    assert "error" in r or (r.get("type") == "opaque" and r.get("status") == 0 and r.get("body") == ""), \
                        (host, name, r)
                time.sleep(3)  # give a refused request every chance to show up server-side
                assert not [r for r in audit_rows(site["index"], "ask") if marker in r[2]], (host, "ask went through")
                assert not [f for f in uploads.rglob("*") if marker in f.name], (host, "upload went through")
                attacker.close()
            ctx.close()
            browser.close()
    finally:
        evil.shutdown()
    assert port  # the app kept running


def test_the_app_refuses_foreign_origins_behind_a_proxy_and_never_reflects_them(site):
    with signed_in(site["url"], "sam") as http:
        evil = {"Host": "workbench.corp.example", "Origin": "http://evil.example"}
        r = http.get("config", headers=evil)
        assert r.status_code == 403
        assert "access-control-allow-origin" not in r.headers
        pre = http.options("gradio_api/queue/join", headers={**evil, "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 403
        assert "access-control-allow-origin" not in pre.headers
        join = http.post("gradio_api/queue/join", json={"data": ["x", "", None], "session_hash": "p1",
                                                        "event_data": None, **ask_fn(http)},
                         headers={**evil, "Content-Type": "text/plain"})
        assert join.status_code == 403
        for site_kind in ("cross-site", "same-site"):  # a browser's fetch metadata, no Origin header
            r = http.get("config", headers={"Sec-Fetch-Site": site_kind, "Sec-Fetch-Mode": "cors"})
            assert r.status_code == 403, site_kind
        same = {"Host": "workbench.corp.example", "Origin": "http://workbench.corp.example"}
        assert http.get("config", headers=same).status_code == 200  # the app's own page behind the proxy
        rebound = http.get("config", headers={"Host": f"evil.example:{site['server'].port}"})
        assert rebound.status_code == 421  # a page that rebinds its own name to this server gets nothing
        framed = http.get("", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                       "Sec-Fetch-Dest": "iframe"})
        assert framed.status_code == 403  # no framing by other sites (clickjacking) ...
        page = http.get("")
        assert page.headers["x-frame-options"] == "DENY"  # ... nor by anyone
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        away = http.get("logout", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                           "Sec-Fetch-Dest": "document"})
        assert away.status_code == 303
        assert away.headers["location"] == "/"  # a link elsewhere opens the start page
        assert http.get("config").status_code == 200  # ... and did not sign the user out
        for route in ("gradio_api/process_recording", "gradio_api/component_server", "gradio_api/run-history/connect",
                      "gradio_api/vibe-edit"):  # Gradio routes this app does not use take no files
            r = http.post(route, files={"video": ("v.mp4", b"x" * 1000)})
            assert r.status_code == 404, (route, r.status_code)
        assert http.get("gradio_api/token").status_code == 404  # the route that handed the token to scripts
        cookie = http.post("login", data={"username": "sam", "password": PASSWORDS["sam"]}).headers["set-cookie"]
        assert "samesite=lax" in cookie.lower()
        assert "httponly" in cookie.lower()


def test_public_url_decides_the_origins_and_hosts(make_wb):
    from workbench_web.guard import allowed_hosts, public_origins

    web = make_wb().config.web
    assert public_origins(web, "127.0.0.1", 7860) == {"http://127.0.0.1:7860", "http://localhost:7860"}
    behind = web.model_copy(update={"public_url": "https://Workbench.corp.example/"})
    assert public_origins(behind, "0.0.0.0", 7860) == {"https://workbench.corp.example"}
    assert "https://workbench.corp.example" in public_origins(behind, "127.0.0.1", 7860)
    assert allowed_hosts(public_origins(behind, "0.0.0.0", 7860)) == {"workbench.corp.example"}
    assert public_origins(web, "::1", 7860) >= {"http://[::1]:7860"}  # IPv6 literals in brackets
    assert allowed_hosts(public_origins(web, "0.0.0.0", 7860)) is None  # unknown: same-host rule only


# ---- 3. login floods: nobody locks the admin out, and the stream keeps flowing ------------------------

FLOODER = "127.0.0.9"  # another loopback address: another client as far as the server can tell


def test_a_login_flood_neither_locks_out_the_admin_nor_stalls_answers(site):
    stop, attempts, updates = threading.Event(), [], []

    def flood(worker: int) -> None:  # wrong passwords for the admin, and for made-up names (argon2 each time)
        with httpx.Client(base_url=site["url"], timeout=60, transport=httpx.HTTPTransport(local_address=FLOODER)) as http:
            i = 0
            while not stop.is_set():
                name = "ada" if i % 2 == 0 else f"nobody{worker}-{i}"
                r = http.post("login", data={"username": name, "password": f"guess-{i}"})
                attempts.append((name, r.status_code, r.json().get("detail", "")))
                i += 1

    with signed_in(site["url"], "sam") as reader:
        flooders = [threading.Thread(target=flood, args=(w,)) for w in range(4)]
        for t in flooders:
            t.start()
        wait_for(lambda: len(attempts) >= 20, 60, "the flood to start")
        flood_started = time.monotonic()
        messages = ask_http(reader, QUESTION, on_message=lambda m: updates.append(time.monotonic())
                            if m.get("msg") == "process_generating" else None)
        during = [t for t in updates if t > flood_started and not stop.is_set()]
        # the rightful admin, from another address, signs in at once with the right password ...
        with signed_in(site["url"], "ada") as admin:
            assert admin.get("config").status_code == 200
        # ... while the flooding address is made to wait for that name (without a password check)
        with httpx.Client(transport=httpx.HTTPTransport(local_address=FLOODER)) as http:
            from_flooder = http.post(site["url"] + "login", data={"username": "ada", "password": PASSWORDS["ada"]})
        stop.set()
        for t in flooders:
            t.join(60)
    assert "Passages the answer was drawn from" in final_text(messages) or "Sources" in final_text(messages)
    assert len(during) >= 5, f"only {len(during)} answer updates arrived while the flood ran"
    assert from_flooder.status_code == 400
    assert "try again in" in from_flooder.json()["detail"]
    assert len(attempts) >= 40
    assert any("try again in" in d for n, _, d in attempts if n == "ada")
    assert any("try again in" in d for n, _, d in attempts if n.startswith("nobody"))  # spraying names is slowed too
    failed = audit_rows(site["index"], "login-failed")
    assert any(r[0] == "ada" and FLOODER in r[2] for r in failed)
    assert any(r[0].startswith("nobody") for r in failed)


# ---- 4. sessions end: sign-out, password, groups, removal; idle and absolute expiry ---------------------

def _routes_work(http: httpx.Client, url: str, upload: bool = False) -> dict[str, int]:
    """Status of Gradio's own routes with this client's cookie."""
    codes = {"config": http.get("config").status_code}
    join = http.post("gradio_api/queue/join", json={"data": [], "session_hash": os.urandom(6).hex(),
                                                    "event_data": None, "fn_index": 0, "trigger_id": None})
    codes["queue"] = join.status_code
    if upload:
        up = http.post("gradio_api/upload", files={"files": ("note.txt", b"session test")})
        codes["upload"] = up.status_code
        if up.status_code == 200:
            codes["file"] = http.get(f"gradio_api/file={up.json()[0]}").status_code
    return codes


def test_sign_out_and_account_changes_end_sessions_everywhere(site):
    url, cfg = site["url"], str(site["cfg"])
    http = signed_in(url, "ivy")
    assert _routes_work(http, url, upload=True) == {"config": 200, "queue": 200, "upload": 200, "file": 200}
    up = http.post("gradio_api/upload", files={"files": ("kept.txt", b"for the file route")}).json()[0]
    copied = httpx.Client(base_url=url, cookies=dict(http.cookies))  # the same cookie, kept elsewhere
    assert copied.get("config").status_code == 200
    assert http.get("logout").status_code in (302, 307)
    # signing out ends the session on the server: the copied cookie is worthless now
    assert copied.get("config").status_code == 401
    assert copied.get(f"gradio_api/file={up}").status_code in (401, 403)
    assert _routes_work(copied, url, upload=True) == {"config": 401, "queue": 401, "upload": 403}
    for change in (["users", "passwd", "ivy", "--password-stdin"], ["users", "groups", "ivy", "admin,hr"],
                   ["users", "remove", "ivy"]):
        http = signed_in(url, "ivy")
        assert http.get("config").status_code == 200
        done = run_cli(*change, "--config", cfg, input=PASSWORDS["ivy"] + "\n")
        assert done.returncode == 0, done.stderr
        codes = _routes_work(http, url, upload=True)
        assert codes == {"config": 401, "queue": 401, "upload": 403}, (change, codes)
    assert httpx.post(url + "login", data={"username": "ivy", "password": PASSWORDS["ivy"]}).status_code == 400


def test_sessions_expire_when_idle_and_after_their_maximum_age(tmp_path):
    info = _site(tmp_path, web="session_idle_s = 3.0\nsession_max_s = 9.0")
    try:
        started = time.monotonic()
        busy = signed_in(info["url"], "kim")
        idle = signed_in(info["url"], "sam")
        assert idle.get("config").status_code == 200
        while time.monotonic() - started < 8:  # kim works on, a request every second: alive ...
            assert busy.get("config").status_code == 200
            time.sleep(1)
        assert idle.get("config").status_code == 401  # sam was idle for longer than 3 s
        time.sleep(max(0.0, 9.5 - (time.monotonic() - started)))
        assert busy.get("config").status_code == 401  # ... until 9 s after sign-in, however active
    finally:
        info["server"].stop()


# ---- 5. uploads: admins only, private, not kept ---------------------------------------------------------

def test_only_admins_upload_into_a_private_folder(site):
    with signed_in(site["url"], "sam") as staff:
        r = staff.post("gradio_api/upload", files=[("files", (f"f{i}.txt", b"x" * 1000)) for i in range(3)])
        assert r.status_code == 403
    with signed_in(site["url"], "ada") as admin:
        r = admin.post("gradio_api/upload", files={"files": ("minutes.txt", b"board minutes")})
        assert r.status_code == 200
        stored = Path(r.json()[0])
    with signed_in(site["url"], "ada") as admin:  # other cookies of the same host do not confuse the check
        admin.cookies.set("prefs", '{"a": 1}')
        admin.cookies.set("odd", '"unbalanced')
        assert admin.post("gradio_api/upload", files={"files": ("x.txt", b"x")}).status_code == 200
    private = site["index"] / "web-uploads"
    assert private in stored.parents
    assert (private.stat().st_mode & 0o777) == 0o700
    assert not any("minutes.txt" in str(p) for p in Path("/tmp/gradio").rglob("*")) if Path("/tmp/gradio").exists() else True


def test_a_re_upload_without_groups_keeps_the_groups_the_file_had(make_wb, tmp_path):
    from workbench.access import Principal

    wb = make_wb()
    doc = tmp_path / "salaries.md"
    doc.write_text("# Salaries\n\nThe 2026 salary bands are confidential.\n")
    wb.config = wb.config.replace("access", collections={"shared": ["staff"]})
    wb.upload([("salaries.md", doc)], "shared", groups="finance")
    doc.write_text("# Salaries\n\nThe 2026 salary bands are confidential. Updated in May.\n")
    report, _ = wb.upload([("salaries.md", doc)], "shared")  # the admin leaves the groups box empty
    assert len(report.changed) == 1
    [entry] = wb.documents()
    assert entry.groups == ("finance",)
    assert wb.search("salary bands", k=3, principal=Principal("sam", ("staff",))) == []


def test_a_failed_re_upload_keeps_the_good_version(make_wb, tmp_path):
    wb = make_wb()
    good = tmp_path / "good.md"
    good.write_text("# Parking\n\nThe visitor car park P7 opens at 06:00 on weekdays.\n")
    report, _ = wb.upload([("parking.md", good)], "facilities")
    assert report.ok
    assert len(report.added) == 1
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"\x00\x01binary junk" * 100)
    report, refused = wb.upload([("parking.md", bad)], "facilities")
    assert not refused
    assert [Path(f.path).name for f in report.failed] == ["parking.md"]
    kept = wb.index_dir / "uploads" / "facilities" / "parking.md"
    assert kept.read_text() == good.read_text()  # the good version is still there ...
    assert "06:00" in wb.search("When does visitor car park P7 open?", k=1)[0].chunk.text  # ... and searchable
    assert not (wb.index_dir / "upload-staging").exists() or not any((wb.index_dir / "upload-staging").iterdir())
    actions = [(e.action, e.text) for e in wb.audit.entries()]
    assert any(a == "upload" and "not readable" in t for a, t in actions)


# ---- 6. the audit log: questions before answers, no answer without a record, safe to print ---------------

def test_questions_are_audited_even_when_the_reader_leaves_and_unrecordable_ones_are_refused(site):
    hostile = "Leave policy?\x1b[2J\x1b]0;owned\x07\u202e"
    with signed_in(site["url"], "kim") as http:
        ask_http(http, hostile, stop_after=1)  # the reader closes the tab after the first words
        row = wait_for(lambda: [r for r in audit_rows(site["index"], "ask") if r[0] == "kim"], 30, "kim's question")
        assert row[0][2] == hostile
        assert json.loads(row[0][3])
        # the audit log cannot be written: the answer is refused, nothing generated
        log = site["index"] / "audit.sqlite"
        moved = log.with_name("audit.sqlite.moved")
        log.rename(moved)
        log.mkdir()
        try:
            text = final_text(ask_http(http, QUESTION))
        finally:
            log.rmdir()
            moved.rename(log)
        assert "could not be recorded in the audit log" in text
        assert "annual leave" not in text.lower()
        assert http.get("source/1/page.png").status_code in (200, 404)
    shown = run_cli("audit", "--config", str(site["cfg"]), "--limit", "500")
    assert shown.returncode == 0
    assert "\x1b" not in shown.stdout
    assert "\x07" not in shown.stdout
    assert "\u202e" not in shown.stdout
    assert "\\x1b[2J" in shown.stdout
    assert "\\u202e" in shown.stdout
    assert re.search(r"kim\tlogin\t", shown.stdout)


def test_page_images_uploads_and_reindex_are_audited(site):
    from workbench.pipeline import Workbench

    wb = Workbench.open(site["cfg"])
    chunk = wb.search(QUESTION, k=1)[0].chunk
    with signed_in(site["url"], "sam") as http:
        assert http.get(f"source/{chunk.chunk_id}/page.png").content.startswith(b"\x89PNG")
        assert http.get(f"source/{chunk.chunk_id}").status_code == 200
    assert run_cli("reindex", "--config", str(site["cfg"])).returncode == 0
    actions = {(r[0], r[1]) for r in audit_rows(site["index"])}
    assert {("sam", "page"), ("sam", "view"), ("(operator)", "reindex")} <= actions


# ---- 8. bounded work per request --------------------------------------------------------------------------

def test_overlong_questions_are_refused_by_the_server(site):
    with signed_in(site["url"], "sam") as http:
        text = final_text(ask_http(http, "leave " * 1000))
    assert "the limit is 4,000" in text


def test_query_terms_are_capped_and_linear(make_wb):
    from workbench.retrieve import query_terms

    wb = make_wb()
    wb.ingest(SAMPLE, progress=False)
    question = " ".join(f"term{i}x" for i in range(20_000))  # 20,000 distinct terms: quadratic would take minutes
    lang, words = query_terms(wb.reader(), question, wb.config.retrieval)
    assert len(words) == wb.config.retrieval.max_query_terms
    assert words[0] == "term0x"


def test_single_sign_on_needs_the_proxy_secret(tmp_path):
    secret = "a-long-shared-proxy-secret"
    env = {**os.environ, "WB_PROXY_SECRET": secret}
    info = _site(tmp_path, web='trusted_user_header = "X-Forwarded-User"\ntrusted_header_secret_env = "WB_PROXY_SECRET"',
                 env=env)
    try:
        with httpx.Client(base_url=info["url"]) as http:
            forged = http.get("config", headers={"X-Forwarded-User": "ada"})
            assert forged.status_code == 401  # a local process claiming to be the proxy
            wrong = http.get("config", headers={"X-Forwarded-User": "ada", "X-Workbench-Proxy-Secret": "guess"})
            assert wrong.status_code == 401
            proxy = {"X-Forwarded-User": "sam", "X-Workbench-Proxy-Secret": secret}
            assert http.get("config", headers=proxy).status_code == 200
            assert http.post("gradio_api/upload", headers=proxy, files={"files": ("a.txt", b"x")}).status_code == 403
        # the user header twice (a proxy that appends instead of replacing): sam by one reading, ada by another
        port = info["server"].port
        assert raw_status(port, [("Host", f"127.0.0.1:{port}"), ("X-Forwarded-User", "sam"),
                                 ("X-Forwarded-User", "ada"), ("X-Workbench-Proxy-Secret", secret)]) == 400
    finally:
        info["server"].stop()
    no_secret = tmp_path / "nosecret.toml"
    no_secret.write_text('[web]\ntrusted_user_header = "X-Forwarded-User"\n')
    done = run_cli("serve", "--config", str(no_secret), "--port", "1", timeout=120)
    assert done.returncode == 2
    assert "shared secret" in done.stderr


def test_a_waiting_question_is_told_its_place_in_the_queue(site):
    """One answer at a time (the in-process model): three questions at once, and the server tells the
    later ones their place (Gradio's queue estimation, which the page shows as "queue n/m")."""
    seen: dict[str, list[dict]] = {}
    errors: list[BaseException] = []

    def one(name, ip):  # each from its own loopback address: other tests' failed sign-ins do not slow it
        try:  # three users: one user may have only [web] questions_per_user (2) questions in flight
            with signed_in(site["url"], name, client_ip=ip) as http:
                seen[ip] = ask_http(http, QUESTION)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(name, f"127.0.0.{n}"))
               for name, n in (("sam", 31), ("kim", 32), ("ada", 33))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    ranks = sorted(max((m.get("rank") or 0) for m in msgs if m.get("msg") == "estimation") for msgs in seen.values())
    assert len(seen) == 3 and all(any(m.get("msg") == "process_completed" for m in msgs) for msgs in seen.values())
    assert ranks[-1] >= 1, ranks  # the last in line was told that others were ahead of it
