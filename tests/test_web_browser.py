"""The staff web app in a real browser: `workbench serve` as a real server, Debian's Chromium via Playwright.

The server runs the real small models (MiniLM, SmolLM2) over the sample documents. Screenshots of
every step go to test-artifacts/web/ (the path is printed at the end of the test run).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import webkit
from webkit import Server, add_user, ask, shot, source_number

from conftest import SAMPLE, make_pdf, run_cli

PASSWORDS = {"ada": "ada-admin-pass", "sam": "sam-staff-pass"}


def _start(base: Path, ingest: bool) -> tuple[Server, dict]:
    """`workbench serve` on a fresh index (of a copy of the sample documents when ``ingest``), two users."""
    docs = base / "docs"
    shutil.copytree(SAMPLE, docs)
    cfg = base / "workbench.toml"
    cfg.write_text('[index]\ndir = "index"\n[llm]\nmax_new_tokens = 80\n')
    if ingest:
        assert run_cli("ingest", str(docs), "--config", str(cfg)).returncode == 0
    add_user(cfg, "ada", "admin,staff", PASSWORDS["ada"])
    add_user(cfg, "sam", "staff", PASSWORDS["sam"])
    server = Server(cfg)
    return server, {"url": server.url, "cfg": cfg, "docs": docs, "base": base}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, info = _start(tmp_path_factory.mktemp("web"), ingest=True)
    yield info
    proc.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = webkit.launch_browser(p)
        yield b
        b.close()


@pytest.fixture
def context(browser, server):
    ctx = webkit.new_context(browser)
    yield ctx
    assert ctx.outside == [], f"the page contacted other hosts: {ctx.outside}"
    ctx.close()


def login(context, server, name: str, password: str | None = None, expect_ok: bool = True):
    return webkit.login(context, server["url"], name, password or PASSWORDS[name], expect_ok)


def test_a_wrong_password_is_refused(context, server):
    page = login(context, server, "sam", "not-the-password", expect_ok=False)
    page.wait_for_selector("text=Incorrect Credentials", timeout=30_000)
    shot(page, "01-wrong-password")
    assert page.locator("#wb-question").count() == 0


def test_staff_ask_see_the_answer_stream_and_open_a_cited_page(context, server):
    page = login(context, server, "sam")
    shot(page, "02-staff-signed-in")
    assert page.get_by_role("tab", name="Admin").count() == 0  # a non-admin sees no admin tab ...
    assert page.locator("#wb-files").count() == 0  # ... and no upload
    seen = ask(page, "How many days of paid annual leave do full-time employees accrue?")
    shot(page, "03-staff-answer")
    answers = [s for s in seen if not s.startswith(("Searching", "Loading"))]
    assert len(answers) >= 3, f"the answer did not stream: {seen}"
    final = answers[-1]
    assert any(len(a) < len(final) and final.startswith(a[:20]) for a in answers[:-1])
    # the sources panel names the handbook page that holds the leave policy
    n = source_number(page, "Northwind Aero Employee Handbook 2026", "page 2")
    link = page.locator("#wb-chat [data-testid=bot]").last.locator(f"a[href^='source/']:text-is('[{n}]')").first
    with context.expect_page() as popup:
        link.click()
    viewer = popup.value
    viewer.wait_for_load_state()
    shot(viewer, "04-source-viewer")
    assert viewer.locator("#wb-title").inner_text() == "Northwind Aero Employee Handbook 2026"
    assert viewer.locator("#wb-where").inner_text().startswith("page 2")
    assert "annual leave" in viewer.locator("#wb-passage").inner_text().lower()
    assert viewer.locator("#wb-page").evaluate("img => img.complete && img.naturalWidth > 500")
    assert viewer.locator("#wb-open").get_attribute("href").endswith("/file#page=2")
    pdf = context.request.get(viewer.url + "/file")
    assert pdf.status == 200
    assert pdf.body().startswith(b"%PDF")
    # feedback on the answer is stored with the question and generation
    page.locator("#wb-comment textarea").fill("clear and cited")
    page.locator("#wb-down").click()
    page.wait_for_selector("#wb-feedback-note:has-text('saved')", timeout=30_000)
    page.locator("#wb-new").click()
    page.wait_for_selector("#wb-sources .wb-empty", timeout=30_000)
    assert page.locator("#wb-chat [data-testid=bot]").count() == 0


def test_signed_out_requests_get_no_document(browser, server):
    ctx = browser.new_context()
    listing = ctx.request.get(server["url"] + "source/1")
    assert listing.status == 404
    assert b"sign in" in listing.body()
    direct = ctx.request.get(server["url"] + "gradio_api/file=" + str(server["docs"] / "employee-handbook.pdf"))
    assert direct.status in (401, 403, 404)
    assert not direct.body().startswith(b"%PDF")
    ctx.close()


def test_signed_in_staff_cannot_fetch_files_by_path(context, server):
    login(context, server, "sam")
    for path in (server["docs"] / "employee-handbook.pdf", server["cfg"].parent / "index" / "users.sqlite"):
        direct = context.request.get(server["url"] + "gradio_api/file=" + str(path))
        assert direct.status in (403, 404), (path, direct.status)
    assert context.request.get(server["url"] + "source/12345").status == 404


def test_admin_upload_then_ask_cites_the_new_document(context, server, tmp_path):
    page = login(context, server, "ada")
    page.get_by_role("tab", name="Admin").click()
    page.wait_for_selector("#wb-status table", timeout=30_000)
    shot(page, "05-admin-tab")
    new = tmp_path / "canteen-menu.md"
    new.write_text("# Canteen menu\n\nThe Level 3 canteen serves fresh pho noodle soup every Thursday "
                   "from 11:30 to 14:00. Vegetarian pho is available on request.\n")
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.7\n this is not really a pdf")
    page.locator("#wb-up-groups textarea, #wb-up-groups input").first.fill("staff")
    page.locator("#wb-files input[type=file]").set_input_files([str(new), str(bad)])
    page.wait_for_timeout(1000)
    page.locator("#wb-upload").click()
    page.wait_for_selector("#wb-upload-result:has-text('generation')", timeout=120_000)
    shot(page, "06-admin-uploaded")
    result = page.locator("#wb-upload-result").inner_text()
    assert re.search(r"canteen-menu\.md\s+indexed", result), result
    assert re.search(r"broken\.pdf\s+failed\s+\S", result), result
    assert "uploads: 1 document" in page.locator("#wb-status").inner_text()
    page.get_by_role("tab", name="Ask").click()
    ask(page, "What does the Level 3 canteen serve on Thursdays?")
    shot(page, "07-admin-answer-from-upload")
    n = source_number(page, "Canteen menu", "pho noodle soup")
    assert page.locator("#wb-chat [data-testid=bot]").last.locator(f"a:text-is('[{n}]')").count() >= 1
    # the uploaded copies were deleted once processed; only the index keeps the document
    uploads = server["cfg"].parent / "index" / "web-uploads"
    assert not [f for f in uploads.rglob("*") if f.is_file() and f.name in ("canteen-menu.md", "broken.pdf")]
    # a broken re-upload of the same name is refused and the good version stays indexed
    page.get_by_role("tab", name="Admin").click()
    broken_again = tmp_path / "again" / "canteen-menu.md"
    broken_again.parent.mkdir()
    broken_again.write_bytes(b"\x00\x01 not text at all" * 50)
    page.locator("#wb-files input[type=file]").set_input_files([str(broken_again)])
    page.wait_for_timeout(1000)
    page.locator("#wb-upload").click()
    page.wait_for_function("""() => /canteen-menu\\.md\\s+failed\\s+\\S/.test(
        document.querySelector('#wb-upload-result').innerText)""", timeout=120_000)
    kept = server["cfg"].parent / "index" / "uploads" / "uploads" / "canteen-menu.md"
    assert kept.read_text().startswith("# Canteen menu")
    page.get_by_role("tab", name="Ask").click()
    page.locator("#wb-new").click()
    page.wait_for_selector("#wb-sources .wb-empty", timeout=30_000)  # cleared (the question box too) ...
    ask(page, "What does the Level 3 canteen serve on Thursdays?")  # ... before the next question is typed
    source_number(page, "Canteen menu", "pho noodle soup")
    # the feedback list shows the staff member's rating from the other test, with its question
    page.get_by_role("tab", name="Admin").click()
    page.locator("#wb-refresh").click()
    page.wait_for_selector("#wb-feedback:has-text('clear and cited')", timeout=30_000)
    shot(page, "08-admin-feedback")


def test_a_reindex_by_cron_is_used_without_restart(context, server):
    make_pdf(server["docs"] / "parking-rules.pdf",
             ["Visitors", "Bicycle parking: the covered bicycle shelter behind Hangar 2 holds 40 bicycles."],
             outline=["Visitors", "Bicycles"])
    done = run_cli("reindex", "--config", str(server["cfg"]))
    assert done.returncode == 0, done.stderr
    page = login(context, server, "sam")
    ask(page, "How many bicycles does the covered bicycle shelter behind Hangar 2 hold?")
    shot(page, "09-after-reindex")
    source_number(page, "covered bicycle shelter", "page 2")


def test_an_empty_index_says_so_instead_of_failing(browser, tmp_path):
    proc, empty = _start(tmp_path, ingest=False)
    try:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = login(ctx, empty, "sam")
        page.wait_for_selector("#wb-notice:has-text('No documents yet')", timeout=30_000)
        assert "Ask an administrator" in page.locator("#wb-notice").inner_text()
        seen = ask(page, "When does the shuttle bus leave?")
        assert "no documents to search yet" in seen[-1]
        shot(page, "10-empty-index")
        ctx.close()
    finally:
        proc.stop()
