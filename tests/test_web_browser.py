"""The staff web app in a real browser: `workbench serve` as a real server, Debian's Chromium via Playwright.

The server runs the real small models (MiniLM, SmolLM2) over the sample documents. Screenshots of
every step go to test-artifacts/web/ (the path is printed at the end of the test run).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE, make_pdf, run_cli

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SHOTS = ROOT / "test-artifacts" / "web"
PASSWORDS = {"ada": "ada-admin-pass", "sam": "sam-staff-pass"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(base: Path, ingest: bool):
    """`workbench serve` on a fresh index (of a copy of the sample documents when ``ingest``), two users."""
    docs = base / "docs"
    shutil.copytree(SAMPLE, docs)
    cfg = base / "workbench.toml"
    cfg.write_text('[index]\ndir = "index"\n[llm]\nmax_new_tokens = 80\n')
    if ingest:
        assert run_cli("ingest", str(docs), "--config", str(cfg)).returncode == 0
    for name, groups in (("ada", "admin,staff"), ("sam", "staff")):
        done = run_cli("users", "add", name, "--groups", groups, "--password-stdin", "--config", str(cfg),
                       input=PASSWORDS[name] + "\n")
        assert done.returncode == 0, done.stderr
    port = _free_port()
    log = open(base / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--config", str(cfg), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=base)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert proc.poll() is None, (base / "serve.log").read_text()
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            time.sleep(0.5)
    return proc, log, {"url": url, "cfg": cfg, "docs": docs, "base": base}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, log, info = _start(tmp_path_factory.mktemp("web"), ingest=True)
    yield info
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run `make setup-browser` (installs Debian's chromium)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser, server):
    """A fresh browser profile that records every request leaving 127.0.0.1."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.outside = []
    ctx.on("request", lambda r: ctx.outside.append(r.url)
           if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
    yield ctx
    assert ctx.outside == [], f"the page contacted other hosts: {ctx.outside}"
    ctx.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def login(context, server, name: str, password: str | None = None, expect_ok: bool = True):
    page = context.new_page()
    page.goto(server["url"])
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password or PASSWORDS[name])
    page.get_by_role("button", name="Login").click()
    if expect_ok:
        page.wait_for_selector("#wb-question textarea", timeout=60_000)
        page.wait_for_selector(f"#wb-who:has-text('{name}')", timeout=30_000)
    return page


FINAL = re.compile(r"(Sources:|Passages the answer was drawn from|No answer:|no documents to search|could not be answered)")


def ask(page, question: str) -> list[str]:
    """Ask in the chat; return every distinct text the answer bubble showed until the final answer."""
    page.locator("#wb-question textarea").fill(question)
    page.locator("#wb-ask").click()
    seen: list[str] = []
    bot = page.locator("#wb-chat [data-testid=bot]")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        text = bot.last.inner_text() if bot.count() else ""
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        if text and FINAL.search(text) and question not in text:
            page.wait_for_selector("#wb-sources .wb-source, #wb-sources .wb-empty", timeout=10_000)
            return seen
        time.sleep(0.05)
    pytest.fail(f"no answer within 240 s; the bubble showed {seen[-3:]}")


def source_number(page, *needles: str) -> int:
    """The number of the first source in the panel whose text holds every needle."""
    cards = page.locator("#wb-sources .wb-source")
    for i in range(cards.count()):
        text = cards.nth(i).inner_text()
        if all(n in text for n in needles):
            return int(re.match(r"\[(\d+)\]", text).group(1))
    pytest.fail(f"no source with {needles} in: {page.locator('#wb-sources').inner_text()}")


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
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
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
    assert listing.status == 404 and b"sign in" in listing.body()
    direct = ctx.request.get(server["url"] + "gradio_api/file=" + str(server["docs"] / "employee-handbook.pdf"))
    assert direct.status in (401, 403, 404) and not direct.body().startswith(b"%PDF")
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
    proc, log, empty = _start(tmp_path, ingest=False)
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
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
