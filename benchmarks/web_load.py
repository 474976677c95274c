"""Load check of the staff web app: N concurrent sessions ask questions at the same moment.

Starts `workbench serve` as a real server (real MiniLM + SmolLM2) over the sample documents, signs
in N sessions (each its own login and cookie), and has them all ask at once through the app's
queue. Every session must end with an answer or a clear "busy" (queue full) message within the
deadline; none may hang. Prints counts, time to the first answer text and to the last (median,
p95), and the ratio of the median loaded latency to one question asked alone (the baseline, same
server, same run).

With ``--llm-slots 1,4`` the model runs in `workbench llm-serve --parallel N` (llamacpp backend,
SmolLM2 GGUF) and the app talks to it through the `openai` backend with ``[llm] max_concurrency =
N``: the same sessions against 1 slot and against 4, in one run.

    make bench-web-load ARGS="--sessions 20,50 --llm-slots 1,4"
    .venv/bin/python benchmarks/web_load.py [--sessions 20] [--queue-size 16] [--max-new-tokens 96]

Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
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


def start_llm(base: Path, slots: int, max_new_tokens: int) -> tuple[subprocess.Popen, str]:
    """`workbench llm-serve --parallel SLOTS` on the SmolLM2 GGUF (llamacpp); its base URL."""
    import re

    cfg = base / f"llm-{slots}.toml"
    cfg.write_text(f'[index]\ndir = "index"\n[llm]\nbackend = "llamacpp"\nmax_new_tokens = {max_new_tokens}\n')
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "llm-serve", "--port", "0", "--parallel", str(slots),
                             "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", proc.stdout.readline())
    if not match:
        raise SystemExit("llm-serve did not start: " + (proc.stderr.read() if proc.poll() is not None else ""))
    return proc, f"http://127.0.0.1:{match.group(1)}/v1"


def start_server(base: Path, queue_size: int, max_new_tokens: int, llm: str = "") -> tuple[subprocess.Popen, str]:
    cfg = base / "workbench.toml"
    # one account for every session: it may have as many questions in flight as there are sessions
    cfg.write_text(f'[index]\ndir = "index"\n[llm]\nmax_new_tokens = {max_new_tokens}\n{llm}\n'
                   f'[web]\nqueue_size = {queue_size}\nquestions_per_user = 1000\n')
    wb = [sys.executable, "-m", "workbench.cli"]
    if not (base / "index").exists():
        subprocess.run([*wb, "ingest", str(ROOT / "data" / "sample"), "--config", str(cfg)], check=True,
                       capture_output=True)
        subprocess.run([*wb, "users", "add", "loadtest", "--groups", "staff", "--password-stdin", "--config",
                        str(cfg)], input="load-test-password\n", text=True, check=True, capture_output=True)
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


def _text(chat) -> str:
    """The last chat message's text (Gradio 6 sends message content as a list of parts)."""
    content = chat[-1].get("content", "") if chat and isinstance(chat[-1], dict) else ""
    if isinstance(content, list):
        content = " ".join(str(p.get("text", p) if isinstance(p, dict) else p) for p in content)
    return str(content)


def session(http, fn: int, question: str, barrier: threading.Barrier, deadline_s: float, out: list, i: int) -> None:
    """One browser tab's question, as its page sends it: join the queue, then read the event stream."""
    barrier.wait()
    t0 = time.perf_counter()
    first, kind, text, updates = None, "hang", "", 0
    try:
        hash_ = os.urandom(8).hex()
        join = http.post("gradio_api/queue/join", json={"data": [question, "", None], "session_hash": hash_,
                                                         "fn_index": fn, "trigger_id": None, "event_data": None})
        if join.status_code != 200:
            kind, text = ("busy" if join.status_code in (429, 503) else "error"), f"{join.status_code} {join.text}"
        else:
            with http.stream("GET", "gradio_api/queue/data", params={"session_hash": hash_},
                             timeout=deadline_s) as stream:
                for line in stream.iter_lines():
                    if time.perf_counter() - t0 > deadline_s:
                        break
                    if not line.startswith("data:"):
                        continue
                    msg = json.loads(line[5:])
                    if msg.get("msg") == "process_generating" and msg["output"]["data"][0]:
                        updates += 1  # the first shows the "Searching..." placeholder, the next the first text
                        if updates == 2 and first is None:
                            first = time.perf_counter() - t0
                    if msg.get("msg") == "process_completed":
                        output = msg.get("output") or {}
                        if not msg.get("success", True) or "error" in output:
                            text = str(output.get("error") or msg)
                            kind = "busy" if "queue is full" in text.lower() else "error"
                        else:
                            text = _text(output["data"][0])
                            kind = "answer" if text and not text.startswith(("Searching", "Loading")) else "empty"
                        break
    except Exception as exc:  # noqa: BLE001 - the message is what a user would see
        text = f"{type(exc).__name__}: {exc}"
        kind = "busy" if "queue is full" in text.lower() else "error"
    total = time.perf_counter() - t0
    out[i] = (kind, total, text[:120], first if first is not None else total)


def run(url: str, n: int, deadline_s: float) -> list:
    """N sessions, signed in one after another (sign-ins are throttled per client by design), then
    asking all at the same moment."""
    import httpx

    clients = []
    for _ in range(n):
        http = httpx.Client(base_url=url, timeout=60)
        if http.post("login", data={"username": "loadtest", "password": "load-test-password"}).status_code != 200:
            raise SystemExit("sign-in failed")
        clients.append(http)
    deps = clients[0].get("config").json()["dependencies"]
    fn = next(d["id"] for d in deps if d.get("api_name") == "ask")
    out: list = [None] * n
    barrier = threading.Barrier(n)
    threads = [threading.Thread(target=session, args=(clients[i], fn, QUESTIONS[i % len(QUESTIONS)], barrier,
                                                      deadline_s, out, i))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(deadline_s + 60)
    for http in clients:
        http.close()
    return [o or ("hang", deadline_s, "thread did not finish", deadline_s) for o in out]


def p95(values: list[float]) -> float:
    return values[min(len(values) - 1, int(0.95 * len(values)))]


def report(label: str, n: int, results: list, wall: float, alone: float) -> dict:
    counts = {k: sum(1 for r in results if r[0] == k) for k in ("answer", "busy", "error", "hang", "empty")}
    answered = sorted(r[1] for r in results if r[0] == "answer")
    first = sorted(r[3] for r in results if r[0] == "answer")
    line = f"{label:14s} {n:8d} sessions {wall:6.1f} s wall: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    if answered:
        line += (f"; first text p50 {statistics.median(first):.1f} s p95 {p95(first):.1f} s; last p50 "
                 f"{statistics.median(answered):.1f} s p95 {p95(answered):.1f} s; median/alone "
                 f"{statistics.median(answered) / alone:.1f}x")
    print(line, flush=True)
    busy = [r for r in results if r[0] == "busy"]
    if busy:
        print(f"    busy replies after {min(r[1] for r in busy):.2f}-{max(r[1] for r in busy):.2f} s: {busy[0][2]!r}")
    for kind, secs, text, _ in results:
        if kind in ("error", "hang", "empty"):
            print(f"    {kind} after {secs:.1f} s: {text}")
    return {"counts": counts, "first": statistics.median(first) if first else None,
            "last": statistics.median(answered) if answered else None}


def main() -> int:
    import machine

    print(machine.describe())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="20", help="comma-separated session counts (default 20)")
    ap.add_argument("--queue-size", type=int, default=16, help="[web] queue_size for the server (default 16)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--deadline", type=float, default=900, help="seconds before a session counts as hung")
    ap.add_argument("--llm-slots", default="", help="e.g. 1,4: run the model in llm-serve with these slot counts")
    args = ap.parse_args()
    sessions = [int(x) for x in args.sessions.split(",")]
    base = Path(tempfile.mkdtemp(prefix="wb-load-"))
    setups = [(f"llm-serve {n} slot{'s' if n > 1 else ''}", n) for n in map(int, args.llm_slots.split(","))] \
        if args.llm_slots else [("in-process", 0)]
    print(f"app: queue_size {args.queue_size}, max_new_tokens {args.max_new_tokens}; one question alone is the "
          "baseline of each setup")
    summary, bad = {}, 0
    for label, slots in setups:
        llm_proc, llm = None, ""
        if slots:
            llm_proc, url = start_llm(base, slots, args.max_new_tokens)
            llm = (f'backend = "openai"\nbase_url = "{url}"\nmodel = "SmolLM2-135M-Instruct"\n'
                   f"max_concurrency = {slots}")
        proc, app = start_server(base, args.queue_size, args.max_new_tokens, llm)
        try:
            run(app, 1, args.deadline)  # warm-up: loads the models
            [(kind, alone, text, _)] = run(app, 1, args.deadline)
            if kind != "answer":
                raise SystemExit(f"a single question failed: {kind}: {text}")
            print(f"{label}: one question alone {alone:.1f} s")
            for n in sessions:
                t0 = time.perf_counter()
                results = run(app, n, args.deadline)
                summary[(label, n)] = report(label, n, results, time.perf_counter() - t0, alone)
                bad += sum(1 for r in results if r[0] in ("hang", "error", "empty"))
        finally:
            for p in (proc, llm_proc):
                if p is not None:
                    p.terminate()
                    try:
                        p.wait(15)
                    except subprocess.TimeoutExpired:  # uvicorn waits for open event streams
                        p.kill()
                        p.wait(15)
    if len(setups) == 2:
        (a, _), (b, _) = setups
        for n in sessions:
            x, y = summary[(a, n)], summary[(b, n)]
            if x["first"] and y["first"]:
                print(f"{n} sessions, {b} vs {a}: median first text {x['first'] / y['first']:.2f}x sooner, "
                      f"median last {x['last'] / y['last']:.2f}x sooner")
    shutil.rmtree(base, ignore_errors=True)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
