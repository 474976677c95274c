"""Concurrent answers from `workbench llm-serve` with 1 slot against 4 slots, in one run.

Starts the real server twice on the SmolLM2 GGUF through the llamacpp backend (`--parallel 1`, then
`--parallel 4`: four llama.cpp contexts over the one memory-mapped model, the CPU threads shared
out between them), and fires 20 and then 50 streaming chat requests at the same moment at each.
For every request: answered (200), queue full (503: more than --max-waiting were already waiting)
or error, the time to its first token and to its last. Prints median and p95 of both per case and
the ratio of 4 slots to 1 slot in the same run. This measures the serving layer the web app's
`openai` backend talks to (the web app adds its own queue in front; see `make bench-web-load`).

    make bench-llm-load            # ARGS="--max-tokens 96 --max-waiting 64"
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import machine

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["Name three colours.", "What is a hangar?", "Give two words for quick.", "What does a pilot do?",
             "Name a month with 30 days.", "What is rain?"]


def start(cfg: Path, parallel: int, max_waiting: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "llm-serve", "--port", "0", "--parallel",
                             str(parallel), "--max-waiting", str(max_waiting), "--config", str(cfg)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
    if not match:
        raise SystemExit(f"llm-serve did not start: {line} {proc.stderr.read() if proc.poll() is not None else ''}")
    return proc, f"http://127.0.0.1:{match.group(1)}/v1"


def one(url: str, question: str, max_tokens: int, barrier: threading.Barrier, out: list, i: int) -> None:
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": max_tokens, "stream": True}
    barrier.wait()
    t0 = time.perf_counter()
    first = None
    try:
        with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=600) as r:
            if r.status_code == 503:
                r.read()
                out[i] = ("queue full", time.perf_counter() - t0, None)
                return
            if r.status_code != 200:
                out[i] = ("error", time.perf_counter() - t0, None)
                return
            for line in r.iter_lines():
                if first is None and line.startswith("data:") and '"content"' in line:
                    first = time.perf_counter() - t0
        out[i] = ("answered", time.perf_counter() - t0, first)
    except httpx.HTTPError:
        out[i] = ("error", time.perf_counter() - t0, first)


def burst(url: str, n: int, max_tokens: int) -> tuple[list, float]:
    out: list = [None] * n
    barrier = threading.Barrier(n)
    threads = [threading.Thread(target=one, args=(url, QUESTIONS[i % len(QUESTIONS)], max_tokens, barrier, out, i))
               for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    return [o or ("error", 900.0, None) for o in out], time.perf_counter() - t0


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(0.95 * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--max-waiting", type=int, default=64)
    args = ap.parse_args()
    print(machine.describe())
    base = Path(tempfile.mkdtemp(prefix="llm-load-"))
    cfg = base / "workbench.toml"
    cfg.write_text(f'[index]\ndir = "index"\n[llm]\nbackend = "llamacpp"\nmax_new_tokens = {args.max_tokens}\n')
    print(f"llm-serve, llamacpp backend, SmolLM2-135M-Instruct GGUF, {args.max_tokens} new tokens at most, "
          f"--max-waiting {args.max_waiting}\n")
    medians: dict[tuple[int, int], tuple[float, float]] = {}
    print(f"{'slots':>5s} {'sessions':>8s} {'answered':>8s} {'full':>5s} {'errors':>6s} {'wall s':>7s} "
          f"{'TTFT p50':>9s} {'TTFT p95':>9s} {'last p50':>9s} {'last p95':>9s}")
    for slots in (1, 4):
        proc, url = start(cfg, slots, args.max_waiting)
        try:
            burst(url, 1, args.max_tokens)  # warm-up
            for n in (20, 50):
                results, wall = burst(url, n, args.max_tokens)
                ok = [r for r in results if r[0] == "answered"]
                ttft = [r[2] for r in ok if r[2] is not None]
                last = [r[1] for r in ok]
                count = {k: sum(1 for r in results if r[0] == k) for k in ("answered", "queue full", "error")}
                medians[(slots, n)] = (statistics.median(ttft), statistics.median(last))
                print(f"{slots:5d} {n:8d} {count['answered']:8d} {count['queue full']:5d} {count['error']:6d} "
                      f"{wall:7.1f} {statistics.median(ttft):9.2f} {p95(ttft):9.2f} {statistics.median(last):9.2f} "
                      f"{p95(last):9.2f}")
        finally:
            proc.terminate()
            proc.wait(30)
    for n in (20, 50):
        (t1, l1), (t4, l4) = medians[(1, n)], medians[(4, n)]
        print(f"{n} sessions, 4 slots vs 1: median first token {t1 / t4:.2f}x sooner, median last token "
              f"{l1 / l4:.2f}x sooner")


if __name__ == "__main__":
    main()
