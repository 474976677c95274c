"""Helpers for the tests that start the real web app and drive it from Debian's Chromium."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, run_cli

CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SHOTS = ROOT / "test-artifacts" / "web"
FINAL = re.compile(r"(Sources:|Passages the answer was drawn from|No answer:|no documents to search|could not be answered)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_user(cfg: Path, name: str, groups: str, password: str, env=None) -> None:
    done = run_cli("users", "add", name, "--groups", groups, "--password-stdin", "--config", str(cfg),
                   input=password + "\n", env=env)
    assert done.returncode == 0, done.stderr


class Server:
    """`workbench serve --config CFG` as a subprocess on a free loopback port."""

    def __init__(self, cfg: Path, env=None, port: int | None = None) -> None:
        self.cfg = cfg
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = cfg.parent / "serve.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "serve", "--config", str(cfg), "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=cfg.parent, env=env)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return
            except urllib.error.HTTPError:  # it answers (e.g. 401 without the single sign-on headers)
                return
            except OSError:
                assert self.proc.poll() is None, self.log_path.read_text()
                assert time.monotonic() < deadline, "the server did not start in 120 s"
                time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # uvicorn waits for open event streams; do not wait forever
            self.proc.kill()
            self.proc.wait(timeout=15)
        self._log.close()


def launch_browser(playwright):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run `make setup-browser` (installs Debian's chromium)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def new_context(browser):
    """A fresh browser profile that records every request leaving 127.0.0.1 in ``ctx.outside``."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.outside = []
    ctx.on("request", lambda r: ctx.outside.append(r.url)
           if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
    return ctx


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def login(context, url: str, name: str, password: str, expect_ok: bool = True):
    page = context.new_page()
    page.goto(url)
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    if expect_ok:
        page.wait_for_selector("#wb-question textarea", timeout=60_000)
        page.wait_for_selector(f"#wb-who:has-text('{name}')", timeout=30_000)
    return page


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


# ---- a script instead of a browser: the same requests the page makes ------------------------------

class _Client(httpx.Client):
    def __enter__(self):  # usable in a with-block after its first request (the sign-in)
        return self


def signed_in(url: str, name: str, password: str, client_ip: str | None = None) -> httpx.Client:
    """An HTTP client holding ``name``'s real session cookie (from ``client_ip`` when given, e.g. 127.0.0.2)."""
    transport = httpx.HTTPTransport(local_address=client_ip) if client_ip else None
    http = _Client(base_url=url, timeout=120, transport=transport)
    r = http.post("login", data={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return http


def ask_fn(http: httpx.Client) -> dict:
    """The queued ask event's ids, read from the app's config as the page itself does."""
    deps = http.get("config").json()["dependencies"]
    dep = next(d for d in deps if d.get("api_name") == "ask")
    return {"fn_index": dep["id"], "trigger_id": dep["targets"][0][0]}


def ask_http(http: httpx.Client, question: str, on_message=None, stop_after: int | None = None,
             collection: str = "") -> list[dict]:
    """Ask through Gradio's queue over plain HTTP (join, then read the event stream), as the page does
    (the new question and the collection; the conversation is the server's); the messages seen.
    ``stop_after``: drop the connection after that many generated updates (a reader closing the tab)."""
    session = os.urandom(6).hex()
    join = http.post("gradio_api/queue/join", json={"data": [question, collection, None], "session_hash": session,
                                                     "event_data": None, **ask_fn(http)})
    assert join.status_code == 200, join.text
    seen, generated = [], 0
    with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            seen.append(msg)
            if on_message:
                on_message(msg)
            generated += msg.get("msg") == "process_generating"
            if msg.get("msg") == "process_completed" or (stop_after and generated >= stop_after):
                break
    return seen


def final_text(messages: list[dict]) -> str:
    """The last assistant message of the finished answer, as shown in the chat."""
    done = [m for m in messages if m.get("msg") == "process_completed"]
    assert done, messages[-3:]
    chat = done[-1]["output"]["data"][0]
    content = chat[-1]["content"] if chat else ""
    if isinstance(content, list):
        content = " ".join(str(p.get("text", p)) if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def audit_rows(index: Path, action: str | None = None) -> list[tuple]:
    conn = sqlite3.connect(index / "audit.sqlite")
    try:
        sql = "SELECT user, action, text, chunk_ids, outcome FROM audit"
        rows = conn.execute(sql + (" WHERE action=?" if action else "") + " ORDER BY id", (action,) if action else ())
        return rows.fetchall()
    finally:
        conn.close()


def raw_status(port: int, headers: list[tuple[str, str]], path: str = "/config") -> int:
    """The status of a GET sent byte for byte (HTTP clients refuse to repeat a header; attackers do not)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        conn.sendall(f"GET {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode())
        return int(conn.makefile("rb").readline().split()[1])


class Recorder:
    """A loopback HTTP server (and HTTP proxy) that records every request it gets: the server must fetch nothing."""

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                seen.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Length", "6")
                self.end_headers()
                self.wfile.write(b"leaked")

            do_GET = do_POST = do_PUT = do_CONNECT = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
