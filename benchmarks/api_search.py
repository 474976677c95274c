"""Search through the REST API against the same searches through the Python API, in one run.

Ingests the bundled sample documents, starts `workbench serve` as a real server (real MiniLM), makes
a personal key for a staff user, and runs the same searches (as that user, hybrid, k=5) at 1, 8 and
32 concurrent clients two ways: each client an HTTP connection calling ``POST /api/v1/search`` with
the key, and each client a thread calling `Workbench.search` in this process with the user's
`Principal`. Prints requests/s and p50/p95 latency for each, and the REST/Python ratio of
requests/s per concurrency (the Python API run is the baseline: same index, same machine, same
minute). The server and this process share the machine's cores, as a portal on the same host would.

    make bench-api [ARGS="--clients 1,8,32 --requests 240"]

Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
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
QUERIES = ["shuttle bus car park D", "annual leave carried over", "site manager Hamburg", "mileage rate private car",
           "Hangar 4 opening hours", "fleet availability Q3", "travel expenses approval", "canteen menu",
           "safety training", "parking permit", "overtime rules", "IT helpdesk phone"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], check=True, capture_output=True, text=True, **kw)


def prepare(base: Path) -> tuple[Path, str]:
    cfg = base / "workbench.toml"
    cfg.write_text('[index]\ndir = "index"\n[web]\napi_calls_per_minute = 1000000\n')
    _cli("ingest", str(ROOT / "data" / "sample"), "--config", str(cfg))
    _cli("users", "add", "sam", "--groups", "staff", "--password-stdin", "--config", str(cfg), input="a long password\n")
    key = json.loads(_cli("keys", "create", "--user", "sam", "--name", "bench", "--config", str(cfg), "--json").stdout)
    return cfg, key["key"]


def start(cfg: Path) -> tuple[subprocess.Popen, str]:
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--config", str(cfg), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except urllib.error.HTTPError:
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.5)


def wait_idle(pid: int, limit_s: float = 180.0) -> None:
    """Wait until the server has loaded its models in the background (its CPU time stops growing), so
    that neither way is measured against a model still loading."""
    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    deadline, last = time.monotonic() + limit_s, cpu()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = cpu()
        if now - last < 0.05:
            return
        last = now


def drive(clients: int, requests: int, call) -> dict:
    """``requests`` calls of ``call(client, query)`` spread over ``clients`` threads; throughput and latency."""
    latencies: list[float] = []
    lock = threading.Lock()
    per = max(1, requests // clients)
    barrier = threading.Barrier(clients)

    def worker(i: int) -> None:
        mine = []
        barrier.wait()
        for j in range(per):
            t = time.perf_counter()
            call(i, QUERIES[(i + j) % len(QUERIES)])
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(latencies), "rps": len(latencies) / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * latencies[max(0, int(0.95 * len(latencies)) - 1)]}


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import machine

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--requests", type=int, default=192, help="searches per concurrency level and way")
    args = p.parse_args()
    print(machine.describe())
    import httpx

    from workbench import Workbench

    with tempfile.TemporaryDirectory() as tmp:
        cfg, key = prepare(Path(tmp))
        proc, url = start(cfg)
        try:
            wait_idle(proc.pid)
            wb = Workbench.open(cfg)
            sam = wb.principal("sam")
            wb.search("warm up", principal=sam)
            http = [httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"})
                    for _ in range(max(int(c) for c in args.clients.split(",")))]

            def rest(i: int, query: str) -> None:
                r = http[i].post("api/v1/search", json={"query": query, "k": 5})
                assert r.status_code == 200, r.text

            def local(i: int, query: str) -> None:
                wb.search(query, k=5, principal=sam)

            rest(0, "warm up")
            rows = []
            for clients in (int(c) for c in args.clients.split(",")):
                python = drive(clients, args.requests, local)
                api = drive(clients, args.requests, rest)
                rows.append((clients, python, api))
                print(f"{clients:>3} clients  Python API {python['rps']:7.1f} req/s  p50 {python['p50_ms']:6.1f} ms  "
                      f"p95 {python['p95_ms']:6.1f} ms | REST {api['rps']:7.1f} req/s  p50 {api['p50_ms']:6.1f} ms  "
                      f"p95 {api['p95_ms']:6.1f} ms | REST/Python throughput {api['rps'] / python['rps']:.2f}x",
                      flush=True)
            for c in http:
                c.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps([{"clients": c, "python": py, "rest": api} for c, py, api in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
