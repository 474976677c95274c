"""Bounded work per request: parser and renderer sandboxes, the LLM server, private index files.

Every test does the thing for real: real worker processes (a probe planted through PYTHONPATH
plays a compromised parser inside the real worker), real PDFs that are expensive to draw, a real
HTTP server and client, the real `workbench` command.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import stat
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import SAMPLE, make_pdf, run_cli

from workbench.errors import NotFoundError, WorkbenchError
from workbench.generate import LLM
from workbench.load import LoadLimits
from workbench.load.sandbox import ParserPool, worker_env

SECRETS = {"OPENAI_API_KEY": "sk-test-openai", "AWS_SECRET_ACCESS_KEY": "aws-test-secret", "HF_TOKEN": "hf_test",
           "GITHUB_TOKEN": "ghp_test", "MY_SERVICE_SECRET": "svc-test", "DATABASE_KEY": "db-test"}

# A compromised parser: loaded by the real worker through PYTHONPATH, it answers a .txt file that
# starts with "PROBE <port>" by reporting its environment and trying to reach the network.
PROBE = '''
import json, os
import workbench.load.text as _text
from workbench.records import Block, ParsedDocument

_real = _text.load_text


def _attempt(fn):
    try:
        fn()
        return "connected"
    except OSError as exc:
        return f"refused: {exc}"


def _open(path, mode):
    try:
        with open(path, mode) as fh:
            if "w" in mode:
                fh.write("written by a parser")
            else:
                fh.read(16)
        return "opened"
    except OSError as exc:
        return f"refused: {exc}"


def load_text(data, stem):
    if data.startswith(b"FILES "):  # try to read each path given, and to write beside it
        paths = json.loads(data[6:])
        report = {p: _open(p, "rb") for p in paths}
        report.update({p + ".planted": _open(p + ".planted", "w") for p in paths})
        report["listing"] = _attempt(lambda: os.listdir(os.path.dirname(paths[0])))
        report["scratch"] = _open(os.path.join(os.environ["TMPDIR"], "scratch.txt"), "w")
        return ParsedDocument(format="text", title=stem, blocks=(Block(json.dumps(report)),))
    if not data.startswith(b"PROBE "):
        return _real(data, stem)
    import _socket, socket, urllib.request
    port = int(data.split()[1])
    report = {
        "environ": dict(os.environ),
        "proc_environ": open("/proc/self/environ", "rb").read().decode("utf-8", "replace"),
        "create_connection": _attempt(lambda: socket.create_connection(("127.0.0.1", port), timeout=2)),
        "socket_connect": _attempt(lambda: socket.socket().connect(("127.0.0.1", port))),
        "getaddrinfo": _attempt(lambda: socket.getaddrinfo("localhost", port)),
        "urlopen": _attempt(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)),
        "raw_connect": _attempt(lambda: _socket.socket().connect(("127.0.0.1", port))),
        "netns": os.readlink("/proc/self/ns/net"),
    }
    return ParsedDocument(format="text", title=stem, blocks=(Block(json.dumps(report)),))


_text.load_text = load_text
'''


@pytest.fixture
def probed_worker(tmp_path, monkeypatch):
    """A listening socket, secrets in our environment, the probe on PYTHONPATH; yields the port."""
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "sitecustomize.py").write_text(PROBE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(probe_dir), os.environ.get("PYTHONPATH")])))
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        yield listener


def _probe(tmp_path: Path, listener) -> tuple[dict, str]:
    """Parse the probe file in a real ParserPool; (the probe's report, the worker's /proc environ)."""
    probe = tmp_path / "probe.txt"
    probe.write_text(f"PROBE {listener.getsockname()[1]}\n")
    with ParserPool(1, 60, 1024, LoadLimits()) as pool:
        [outcome] = list(pool.map([str(probe)]))
        environ = Path(f"/proc/{pool.workers[0].proc.pid}/environ").read_bytes().decode("utf-8", "replace")
    assert outcome.error is None, outcome.error
    return json.loads(outcome.docs[0].blocks[0].text), environ


# ---- 1. parser sandbox -----------------------------------------------------------------------

def test_worker_env_keeps_what_a_worker_needs_and_no_secret(monkeypatch):
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = worker_env()
    assert not set(SECRETS) & set(env)
    assert env["PATH"] == os.environ["PATH"]
    assert env["LANG"] == "C.UTF-8"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TRANSFORMERS_OFFLINE"] == "1"


def test_a_real_worker_process_holds_no_secret_of_the_parent(tmp_path, probed_worker):
    report, proc_environ = _probe(tmp_path, probed_worker)
    for key, value in SECRETS.items():
        assert key not in report["environ"]
        assert value not in report["proc_environ"]
        assert value not in proc_environ
    assert report["environ"]["HF_HUB_OFFLINE"] == "1"
    assert report["environ"]["DO_NOT_TRACK"] == "1"
    assert "PATH" in report["environ"]


def test_a_parser_in_a_real_worker_cannot_reach_the_network(tmp_path, probed_worker):
    report, _ = _probe(tmp_path, probed_worker)
    for attempt in ("create_connection", "socket_connect", "getaddrinfo", "urlopen"):
        assert report[attempt].startswith("refused"), (attempt, report[attempt])
    if report["netns"] != os.readlink("/proc/self/ns/net"):  # the OS gave it a private network namespace
        assert report["raw_connect"].startswith("refused"), report["raw_connect"]
    with pytest.raises(BlockingIOError):
        probed_worker.accept()  # nothing ever connected to us


def test_a_parser_cannot_open_the_index_the_users_database_or_the_home_folder(tmp_path, probed_worker):
    """A compromised parser (the probe) tries to read and plant files outside the one it was handed."""
    from workbench.load import confine

    assert confine.available()[0], confine.available()[1]  # this project's machines offer Landlock
    index = tmp_path / "index"
    index.mkdir()
    users = index / "users.sqlite"
    users.write_text("argon2 hashes")
    home = Path.home() / f".workbench-probe-{os.getpid()}"
    home.write_text("a secret in the home folder")
    docs = tmp_path / "docs"
    docs.mkdir()
    neighbour = docs / "neighbour.md"
    neighbour.write_text("another document")
    probe = docs / "probe.txt"
    targets = [str(users), str(home), str(neighbour), "/etc/shadow", str(Path.cwd() / "workbench.toml")]
    probe.write_text("FILES " + json.dumps(targets))
    try:
        with ParserPool(1, 60, 1024, LoadLimits()) as pool:
            [outcome] = list(pool.map([str(probe)]))
    finally:
        home.unlink()
    assert outcome.error is None, outcome.error
    report = json.loads(outcome.docs[0].blocks[0].text)
    for path in targets:
        assert report[path].startswith("refused"), (path, report[path])
        assert report[path + ".planted"].startswith("refused"), (path, report[path + ".planted"])
        assert not Path(path + ".planted").exists()
    assert report["listing"].startswith("refused")
    assert report["scratch"] == "opened"  # its own scratch folder is writable (OCR needs one)
    assert users.read_text() == "argon2 hashes"


def test_a_parse_that_uses_too_much_cpu_is_stopped_and_the_batch_goes_on(tmp_path):
    heavy = tmp_path / "heavy.md"  # about 10 s of CPU in markdown-it: a real document, just large
    heavy.write_text("# Minutes\n\n" + "The board met and *agreed* on [item](x).\n\n" * 200_000)
    fine = tmp_path / "fine.md"
    fine.write_text("# Title\n\nBody.")
    start = time.monotonic()
    with ParserPool(1, 120, 1024, LoadLimits(), cpu_s=1) as pool:
        out = {o.path: o for o in pool.map([str(heavy), str(fine)])}
    assert out[str(heavy)].error == "parsing used more than 1 s of CPU (ingest.parse_cpu_s)"
    assert out[str(fine)].docs
    assert out[str(fine)].error is None
    assert time.monotonic() - start < 60  # stopped by the CPU bound, not the 120 s wall clock


def test_parse_cpu_s_is_a_setting_with_a_default():
    from workbench.config import Config, IngestSettings

    assert Config().ingest.parse_cpu_s == 120
    with pytest.raises(ValueError):
        IngestSettings(parse_cpu_s=0)


# ---- 2. PDF page images ----------------------------------------------------------------------

def _slow_pdf(path: Path, depth: int = 4, fanout: int = 10, segments: int = 1000) -> Path:
    """A small one-page PDF whose page draws a form that draws the next form ``fanout`` times, and so
    on ``depth`` deep, the last one a path of ``segments`` lines across the page: fanout**(depth-1)
    such paths to stroke. The defaults take pdfium about 50 s and 60 MB; depth 3 about 5 s."""
    zigzag = " ".join(f"{i * 37 % 612} {i * 91 % 792} l" for i in range(segments))
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            "/Resources << /XObject << /F5 5 0 R >> >> >>", "<< /Length 6 >>\nstream\n/F5 Do\nendstream"]
    for num in range(5, 5 + depth):
        if num == 4 + depth:
            content, res = f"0 0 m {zigzag} S", ""
        else:
            content = " ".join(f"q 1 0 0 1 {j / 10:.1f} 0 cm /F{num + 1} Do Q" for j in range(fanout))
            res = f"/Resources << /XObject << /F{num + 1} {num + 1} 0 R >> >>"
        objs.append(f"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] {res} /Length {len(content)} >>\n"
                    f"stream\n{content}\nendstream")
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{off:010d} 00000 n \n" for off in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


def _size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(png)).size


def _render_workers() -> list[int]:
    """Our child processes that are page renderers."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
            cmdline = (status.parent / "cmdline").read_bytes()
        except (OSError, StopIteration):
            continue
        if int(ppid.split()[1]) == os.getpid() and b"workbench.render_worker" in cmdline:
            found.append(int(status.parent.name))
    return found


def test_a_normal_page_renders_at_the_asked_width():
    from workbench.viewer import render_pdf_page

    width, height = _size(render_pdf_page(str(SAMPLE / "employee-handbook.pdf"), 1))
    assert width == 1000
    assert 1300 < height < 1500  # A4 portrait
    with pytest.raises(NotFoundError, match="page 99 is not in this PDF"):
        render_pdf_page(str(SAMPLE / "employee-handbook.pdf"), 99)
    assert not _render_workers()


@pytest.mark.parametrize("page_mm, width_px", [((20, 5000), 1000), ((5000, 5000), 60_000), ((5000, 20), 1000)])
def test_a_giant_page_is_drawn_within_the_pixel_cap(tmp_path, page_mm, width_px):
    from fpdf import FPDF

    from workbench.render_worker import MAX_PIXELS
    from workbench.viewer import render_pdf_page

    pdf = FPDF(format=page_mm)
    pdf.add_page()
    pdf.set_font("Helvetica", size=8)
    pdf.text(2, 10, "Banner")
    pdf.output(str(tmp_path / "giant.pdf"))
    width, height = _size(render_pdf_page(str(tmp_path / "giant.pdf"), 1, width_px))
    aspect = page_mm[0] / page_mm[1]
    assert width * height <= MAX_PIXELS
    assert abs(width - height * aspect) <= aspect + 1  # smaller, same shape


def test_a_page_that_takes_too_long_to_draw_is_killed_and_reported(tmp_path):
    from workbench.viewer import RenderLimits, render_pdf_page

    bomb = _slow_pdf(tmp_path / "forms.pdf")
    start = time.monotonic()
    with pytest.raises(WorkbenchError, match=r"drawing page 1 of forms\.pdf took longer than 3s and was stopped"):
        render_pdf_page(str(bomb), 1, limits=RenderLimits(timeout_s=3, cpu_s=600))
    assert time.monotonic() - start < 10
    assert not _render_workers()


def test_a_page_that_uses_too_much_cpu_is_stopped(tmp_path):
    from workbench.viewer import RenderLimits, render_pdf_page

    bomb = _slow_pdf(tmp_path / "forms.pdf")
    with pytest.raises(WorkbenchError, match=r"used more than 1 s of CPU and was stopped; open the PDF instead"):
        render_pdf_page(str(bomb), 1, limits=RenderLimits(timeout_s=120, cpu_s=1))


def test_only_a_few_pages_are_drawn_at_once(tmp_path):
    from workbench.viewer import RENDERS_AT_ONCE, RenderLimits, render_pdf_page

    bomb = _slow_pdf(tmp_path / "forms.pdf")
    slow = RenderLimits(timeout_s=6, cpu_s=600)
    errors: list[Exception] = []

    def draw() -> None:
        try:
            render_pdf_page(str(bomb), 1, limits=slow)
        except WorkbenchError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=draw) for _ in range(RENDERS_AT_ONCE)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while len(_render_workers()) < RENDERS_AT_ONCE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_render_workers()) == RENDERS_AT_ONCE
    with pytest.raises(WorkbenchError, match="being drawn already; try again in a moment"):
        render_pdf_page(str(SAMPLE / "employee-handbook.pdf"), 1, limits=RenderLimits(wait_s=0.5))
    for t in threads:
        t.join(30)
    assert len(errors) == RENDERS_AT_ONCE
    assert all("took longer" in str(e) for e in errors)
    assert _size(render_pdf_page(str(SAMPLE / "employee-handbook.pdf"), 1))[0] == 1000  # slots are free again


# ---- 3. llm-serve ----------------------------------------------------------------------------

class RecordingLLM(LLM):
    """A fake LLM (subclassing the protocol); tells what it was asked for (this tests the HTTP layer)."""

    name = "recording"
    context_window = 4096
    max_concurrency = 1

    def __init__(self) -> None:
        self.max_tokens: list[int] = []

    def count_tokens(self, messages) -> int:
        return sum(len(m["content"].split()) for m in messages)

    def stream(self, messages, max_new_tokens: int):
        self.max_tokens.append(max_new_tokens)
        yield from ("ok ", f"{max_new_tokens}")


@pytest.fixture
def llm_http():
    """A real serve_llm server on a free loopback port, with key 's3cret' and at most 16 tokens."""
    from workbench.serve_llm import make_server

    llm = RecordingLLM()
    server = make_server(llm, "127.0.0.1", 0, "s3cret", 16)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", llm
    server.shutdown()
    server.server_close()


CHAT = {"messages": [{"role": "user", "content": "hi"}]}
KEY = {"Authorization": "Bearer s3cret"}


def test_llm_server_never_generates_more_than_its_maximum(llm_http):
    url, llm = llm_http
    r = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "max_tokens": 1_000_000}, headers=KEY)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "ok 16"
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**CHAT, "max_tokens": 10**9, "stream": True},
                      headers=KEY) as r:
        assert r.status_code == 200
        assert "data: [DONE]" in r.read().decode()
    assert httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "max_tokens": 4}, headers=KEY).status_code == 200
    assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=KEY).status_code == 200
    assert llm.max_tokens == [16, 16, 4, 16]
    for bad in (-5, "lots", 2.5):
        r = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "max_tokens": bad}, headers=KEY)
        assert r.status_code == 400


class SlowLLM(RecordingLLM):
    """Generates up to 400 pieces, 20 ms apart; records how many it made and whether it was stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.made, self.stopped = 0, threading.Event()

    def stream(self, messages, max_new_tokens: int):
        try:
            for i in range(400):
                self.made += 1
                time.sleep(0.02)
                yield f"w{i} "
        finally:
            self.stopped.set()


def test_llm_server_refuses_prompts_beyond_the_window_hosts_it_does_not_know_and_stops_for_a_leaver():
    from workbench.serve_llm import make_server

    llm = SlowLLM()
    server = make_server(llm, "127.0.0.1", 0, None, 16)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        long = {"messages": [{"role": "user", "content": "word " * 5000}]}  # 5,000 tokens, window 4,096
        r = httpx.post(f"{url}/v1/chat/completions", json=long, timeout=30)
        assert r.status_code == 400 and "context window is 4096" in r.json()["error"]["message"]
        assert llm.made == 0  # refused before any generation
        assert httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 200_000}]},
                          timeout=30).status_code == 413  # a body no 4,096-token window needs
        for host in ("evil.example", f"evil.example:{server.server_port}", "10.0.0.1"):
            assert httpx.get(f"{url}/v1/models", headers={"Host": host}).status_code == 421, host
        assert httpx.get(f"{url}/v1/models", headers={"Host": f"localhost:{server.server_port}"}).status_code == 200
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30) as r:
            lines = r.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
        assert llm.stopped.wait(5), "generation went on after the reader left"
        assert llm.made < 100, llm.made
        llm.made = 0
        llm.stopped.clear()
        with pytest.raises(httpx.ReadTimeout):  # a client waiting for a whole answer gives up
            httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=0.5)
        assert llm.stopped.wait(5), "generation went on after the client left"
        assert llm.made < 150, llm.made
    finally:
        server.shutdown()
        server.server_close()


def test_llm_server_checks_the_api_key(llm_http):
    url, llm = llm_http
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer s3cre"},
                    {"Authorization": "Bearer s3cret2"}, {"Authorization": "s3cret"}):
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers).status_code == 401
        assert httpx.get(f"{url}/v1/models", headers=headers).status_code == 401
    assert httpx.get(f"{url}/v1/models", headers=KEY).json()["data"][0]["id"] == "recording"
    assert llm.max_tokens == []


def test_llm_server_wants_a_json_body_of_bounded_size(llm_http):
    url, llm = llm_http
    body = json.dumps(CHAT).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {**KEY, **({"Content-Type": content_type} if content_type else {})}
        r = httpx.post(f"{url}/v1/chat/completions", content=body, headers=headers)
        assert r.status_code == 415
        assert "application/json" in r.json()["error"]["message"]
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    conn.putrequest("POST", "/v1/chat/completions")  # announces 2 MB, sends nothing: answered at once
    for name, value in {**KEY, "Content-Type": "application/json", "Content-Length": str(2 << 20)}.items():
        conn.putheader(name, value)
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    big = {"messages": [{"role": "user", "content": "x" * (2 << 20)}]}
    try:
        status = httpx.post(f"{url}/v1/chat/completions", json=big, headers=KEY).status_code
    except httpx.TransportError:  # the server may close before the client has sent it all
        status = 413
    assert status == 413
    assert llm.max_tokens == []


def test_llm_serve_refuses_an_open_bind_without_a_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WB_TEST_LLM_KEY"}
    start = time.monotonic()
    r = run_cli("llm-serve", "--host", "0.0.0.0", "--port", "0", "--index", str(tmp_path / "index"), timeout=120,
                env=env)
    assert r.returncode == 2, r.stderr
    assert "without an API key" in r.stderr, r.stderr
    assert "--api-key-env" in r.stderr, r.stderr
    r = run_cli("llm-serve", "--host", "0.0.0.0", "--port", "0", "--api-key-env", "WB_TEST_LLM_KEY",
                "--index", str(tmp_path / "index"), timeout=120, env=env)
    assert r.returncode == 2, r.stderr
    assert "WB_TEST_LLM_KEY, which is not set" in r.stderr, r.stderr
    assert time.monotonic() - start < 60  # refused before loading the model


def test_llm_serve_on_an_open_address_with_a_key(tmp_path):
    import re
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "WB_TEST_LLM_KEY": "k-" + "7" * 30}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "llm-serve", "--host", "0.0.0.0", "--port", "0",
                             "--api-key-env", "WB_TEST_LLM_KEY", "--index", str(tmp_path / "index")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://0\.0\.0\.0:(\d+)/v1", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = f"http://127.0.0.1:{match.group(1)}/v1"
        assert httpx.get(f"{url}/models").status_code == 401
        r = httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {env['WB_TEST_LLM_KEY']}"})
        assert r.status_code == 200
        assert r.json()["data"][0]["id"]
    finally:
        proc.terminate()
        proc.wait(10)


# ---- 4. a private index folder ---------------------------------------------------------------

def test_index_folder_and_files_are_private_to_the_service_user(tmp_path):
    from workbench.stores.audit import AuditLog

    index = tmp_path / "index"
    old = os.umask(0o022)
    try:
        r = run_cli("ingest", str(SAMPLE), "--index", str(index))
        assert r.returncode in (0, 1), r.stderr
        r = run_cli("users", "add", "alice", "--groups", "staff", "--password-stdin", "--index", str(index),
                    input="correct horse battery staple\n")
        assert r.returncode == 0, r.stderr
        docs = tmp_path / "docs"
        docs.mkdir()
        make_pdf(docs / "extra.pdf", ["A second generation of the index."])
        r = run_cli("ingest", str(docs), "--index", str(index))
        assert r.returncode == 0, r.stderr
        AuditLog(index).record("alice", "search", "leave days", 2)
    finally:
        os.umask(old)
    seen = {p.relative_to(index).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [index, *index.rglob("*")]}
    assert {"lock", "CURRENT", "embeddings.sqlite", "users.sqlite", "audit.sqlite", "gen/000002/catalog.sqlite",
            "gen/000002/vectors.faiss", "gen/000002/manifest.json"} <= set(seen)
    wrong = {name: oct(mode) for name, mode in seen.items()
             if mode != (0o700 if (index / name).is_dir() else 0o600)}
    assert not wrong, wrong


def test_llm_serve_parallel_slots_generate_at_once_and_refuse_beyond_the_wait_bound(tmp_path):
    """`llm-serve --parallel 2` (llama.cpp: two contexts over one memory-mapped GGUF) streams two
    answers at the same time; with --max-waiting 0 a third request gets 503 while both slots work."""
    import re
    import subprocess
    import sys
    import threading
    import time

    from conftest import ROOT

    cfg = tmp_path / "wb.toml"
    cfg.write_text('[index]\ndir = "index"\n[llm]\nbackend = "llamacpp"\nmax_new_tokens = 200\n')
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "llm-serve", "--port", "0", "--parallel", "2",
                             "--max-waiting", "0", "--config", str(cfg)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1 .*2 slots", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = f"http://127.0.0.1:{match.group(1)}/v1"
        assert httpx.get(f"{url}/models").json()["data"][0]["max_concurrency"] == 2
        body = {"messages": [{"role": "user", "content": "Count from 1 to 100, separated by commas."}],
                "max_tokens": 200, "stream": True}
        started, events = time.perf_counter(), {}

        def ask(name):
            with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=120) as r:
                events[name + "-status"] = r.status_code
                for line in r.iter_lines():
                    if line.startswith("data:") and "content" in line:
                        events.setdefault(name + "-first", time.perf_counter() - started)
                events[name + "-end"] = time.perf_counter() - started

        threads = [threading.Thread(target=ask, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60  # (a one-slot server would answer b with 503: no first token)
        while not ("a-first" in events and "b-first" in events) and time.monotonic() < deadline:
            time.sleep(0.005)
        busy = httpx.post(f"{url}/chat/completions", json={**body, "stream": False}, timeout=30)
        busy_at = time.perf_counter() - started
        for t in threads:
            t.join(120)
        assert events["a-status"] == events["b-status"] == 200, events
        assert max(events["a-first"], events["b-first"]) < min(events["a-end"], events["b-end"]), events
        assert busy_at < min(events["a-end"], events["b-end"]), (busy_at, events)  # asked while both worked
        assert busy.status_code == 503 and "busy" in busy.json()["error"]["message"]
        after = httpx.post(f"{url}/chat/completions", json={**body, "stream": False}, timeout=120)
        assert after.status_code == 200 and after.json()["choices"][0]["message"]["content"]
    finally:
        proc.terminate()
        proc.wait(10)
