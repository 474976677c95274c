"""A real multi-node Ray cluster on this machine, for the cluster tests and `make bench-cluster`.

Each node is its own `ray start` process tree (a raylet with its workers), as on separate machines:
a head that only coordinates (``--num-cpus=0``) and worker nodes with the CPUs given. Usage
statistics are off and no dashboard is started. Everything lives under a private temp folder, so
`stop` ends exactly this cluster's processes (never another Ray cluster of the same user) and
removes the folder. `kill_worker` SIGKILLs one node's raylet and its workers (a node lost mid-run).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def raylets() -> dict[str, int]:
    """{node id: raylet pid} of the raylets running on this machine."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"/raylet"):
            for arg in cmd:
                if arg.startswith(b"--node_id="):
                    found[arg[len(b"--node_id="):].decode()] = int(pid)
    return found


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(p))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str) -> None:
    subprocess.run([RAY, *args], env=ENV, check=True, capture_output=True, text=True, timeout=180)


class LocalRay:
    """Start with `LocalRay(workers=2)`; ``address`` is what `workbench ingest --cluster` takes."""

    def __init__(self, workers: int = 2, cpus_per_worker: int = 1, object_store_mb: int = 100) -> None:
        self.temp = tempfile.mkdtemp(prefix="raybed-")
        self.address = f"127.0.0.1:{_free_port()}"
        self.cpus, self.store = cpus_per_worker, str(object_store_mb * 2**20)
        self.workers: list[str] = []  # node ids of the worker nodes, in start order
        _ray("start", "--head", f"--port={self.address.split(':')[1]}", "--node-ip-address=127.0.0.1",
             "--num-cpus=0", "--include-dashboard=false", "--disable-usage-stats",
             f"--object-store-memory={self.store}", f"--temp-dir={self.temp}")
        for _ in range(workers):
            self.add_worker()

    def add_worker(self) -> str:
        """Start one more worker node; its node id."""
        before = set(raylets())
        _ray("start", f"--address={self.address}", "--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus}",
             "--disable-usage-stats", f"--object-store-memory={self.store}")
        deadline = time.monotonic() + 30
        while not (new := set(raylets()) - before) and time.monotonic() < deadline:
            time.sleep(0.2)
        node = new.pop()
        self.workers.append(node)
        return node

    def kill_worker(self, node: str) -> None:
        """SIGKILL that worker node's raylet and the worker processes it started, at once: the node is
        lost as when its machine goes down (a raylet killed alone leaves its running workers serving
        requests until Ray's health checks declare the node dead)."""
        raylet = raylets()[node]
        doomed = [raylet, *_descendants(raylet)]
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.workers.remove(node)

    def stop(self) -> None:
        """SIGKILL every process of this cluster (those naming its temp folder, and their children)."""
        mine = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if self.temp.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    mine.append(int(pid))
            except OSError:
                continue
        for pid in {p for root in mine for p in (root, *_descendants(root))} - {os.getpid()}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp, ignore_errors=True)
