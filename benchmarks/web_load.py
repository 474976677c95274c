"""Load check of the staff web app: N concurrent sessions ask questions at the same moment.

Starts `workbench serve` as a real server (real MiniLM + SmolLM2) over the sample documents, signs
in N sessions (each its own login and cookie), and has them all ask at once through the app's
queue. Every session must end with an answer or a clear "busy" (queue full) message within the
deadline; none may hang. Prints counts, latency percentiles, and the ratio of the median loaded
latency to one question asked alone (the baseline, same server, same run).

    .venv/bin/python benchmarks/web_load.py [--sessions 20] [--queue-size 16] [--max-new-tokens 96]

Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["When does the shuttle bus leave car park D?", "How many days of annual leave can be carried over?",
             "Who is the site manager in Hamburg?", "What is the mileage rate for private cars?",
             "When does Hangar 4 open?", "What was fleet availability in Q3?"]


def start_server(base: Path, queue_size: int, max_new_tokens: int) -> tuple[subprocess.Popen, str]:
    cfg = base / "workbench.toml"
    cfg.write_text(f'[index]\ndir = "index"\n[llm]\nmax_new_tokens = {max_new_tokens}\n[web]\nqueue_size = {queue_size}\n')
    wb = [sys.executable, "-m", "workbench.cli"]
    subprocess.run([*wb, "ingest", str(ROOT / "data" / "sample"), "--config", str(cfg)], check=True,
                   capture_output=True)
    subprocess.run([*wb, "users", "add", "loadtest", "--groups", "staff", "--password-stdin", "--config", str(cfg)],
                   input="load-test-password\n", text=True, check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*wb, "serve", "--config", str(cfg), "--port", str(port)], cwd=base,
                            stdout=open(base / "serve.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    raise SystemExit("server did not start; see " + str(base / "serve.log"))


def session(url: str, question: str, barrier: threading.Barrier, deadline_s: float, out: list, i: int) -> None:
    from gradio_client import Client

    client = Client(url, auth=("loadtest", "load-test-password"), verbose=False)
    barrier.wait()
    t0 = time.perf_counter()
    job = client.submit(question, [], "", api_name="/ask")
    try:
        result = job.result(timeout=deadline_s)
        chat = result[0]
        content = chat[-1]["content"] if chat else ""
        if isinstance(content, list):  # Gradio 6 sends message content as a list of parts
            content = " ".join(str(p.get("text", p) if isinstance(p, dict) else p) for p in content)
        text = str(content)
        kind = "answer" if text and not text.startswith(("Searching", "Loading")) else "empty"
    except TimeoutError:
        kind, text = "hang", ""
    except Exception as exc:  # noqa: BLE001 - the message is what a user would see
        text = str(exc)
        text = f"{type(exc).__name__}: {exc}"
        kind = "busy" if "queue is full" in text.lower() or "busy" in text.lower() else "error"
    out[i] = (kind, time.perf_counter() - t0, text[:120])


def run(url: str, n: int, deadline_s: float) -> list:
    out: list = [None] * n
    barrier = threading.Barrier(n)
    threads = [threading.Thread(target=session, args=(url, QUESTIONS[i % len(QUESTIONS)], barrier, deadline_s, out, i))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(deadline_s + 60)
    return [o or ("hang", deadline_s, "thread did not finish") for o in out]


def main() -> int:
    import machine

    print(machine.describe())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--queue-size", type=int, default=16, help="[web] queue_size for the server (default 16)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--deadline", type=float, default=900, help="seconds before a session counts as hung")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wb-load-"))
    proc, url = start_server(base, args.queue_size, args.max_new_tokens)
    try:
        run(url, 1, args.deadline)  # warm-up: loads the models
        [(kind, alone, _)] = run(url, 1, args.deadline)
        if kind != "answer":
            raise SystemExit(f"a single question failed: {kind}: {_}")
        t0 = time.perf_counter()
        results = run(url, args.sessions, args.deadline)
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(30)
    counts = {k: sum(1 for r in results if r[0] == k) for k in ("answer", "busy", "error", "hang", "empty")}
    answered = sorted(r[1] for r in results if r[0] == "answer")
    busy = sorted(r[1] for r in results if r[0] == "busy")
    print(f"server: concurrency 1 (transformers backend), queue_size {args.queue_size}, "
          f"max_new_tokens {args.max_new_tokens}")
    print(f"one question alone (baseline): {alone:.1f} s")
    print(f"{args.sessions} concurrent sessions, {wall:.1f} s wall: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if answered:
        p95 = answered[min(len(answered) - 1, int(0.95 * len(answered)))]
        print(f"answered: min {answered[0]:.1f} s, median {statistics.median(answered):.1f} s, p95 {p95:.1f} s, "
              f"max {answered[-1]:.1f} s; median / baseline = {statistics.median(answered) / alone:.1f}x")
    if busy:
        print(f"busy replies came after {busy[0]:.2f}-{busy[-1]:.2f} s; message: {next(r[2] for r in results if r[0] == 'busy')!r}")
    for kind, secs, text in results:
        if kind in ("error", "hang", "empty"):
            print(f"  {kind} after {secs:.1f} s: {text}")
    shutil.rmtree(base, ignore_errors=True)
    return 0 if counts["hang"] == counts["error"] == counts["empty"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
