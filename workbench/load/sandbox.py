"""Parse files in worker processes bounded in time and memory.

Each worker is a fresh interpreter (`python -m workbench.load.sandbox`: no inherited torch threads
or model weights, and the caller's script is never re-imported) with an address-space limit
(RLIMIT_AS). The parent hands it one path at a time over a pipe and waits
with a deadline: a worker that overruns is killed and replaced, one that dies (a parser crash, an
allocation abort) is replaced, and either way the file gets a failure reason and the batch goes
on. Messages are JSON, never pickle. Leaves out: deciding what to parse (see `workbench.sync`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

from workbench.errors import ParseError
from workbench.load import LoadLimits, parse_bytes
from workbench.records import Block, ParsedDocument


@dataclass(frozen=True, slots=True)
class ParseOutcome:
    """The result for one path: documents, or the reason it could not be parsed."""

    path: str
    docs: tuple[ParsedDocument, ...] = ()
    error: str | None = None


def _doc_from_dict(d: dict) -> ParsedDocument:
    blocks = tuple(Block(**{**b, "headings": tuple(b["headings"])}) for b in d["blocks"])
    return ParsedDocument(format=d["format"], title=d["title"], blocks=blocks, part=d["part"],
                          metadata=d["metadata"])


def parse_path(path: str, limits: LoadLimits, memory_mb: int) -> dict:
    """Parse one file in this process; the JSON-able message a worker sends back."""
    try:
        data = Path(path).read_bytes()
        docs = parse_bytes(data, Path(path).name, limits)
        return {"ok": True, "docs": [d.to_dict() for d in docs]}
    except ParseError as exc:
        return {"ok": False, "reason": str(exc)}
    except MemoryError:
        return {"ok": False, "fatal": True,
                "reason": f"parser ran out of memory (limit {memory_mb} MB, ingest.parse_memory_mb)"}
    except RecursionError:
        return {"ok": False, "reason": "document structure nested too deeply to parse"}
    except OSError as exc:
        return {"ok": False, "reason": f"cannot read file ({exc.strerror or exc})"}
    except Exception as exc:  # any parser bug is one file's failure, not the batch's
        return {"ok": False, "reason": f"parser error ({type(exc).__name__}: {exc})"}


def _read_frame(stream) -> bytes | None:
    """One length-prefixed frame, or None at end of stream."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    size = int.from_bytes(head, "big")
    body = stream.read(size)
    return body if len(body) == size else None


def _write_frame(stream, payload: bytes) -> None:
    stream.write(len(payload).to_bytes(4, "big") + payload)
    stream.flush()


def worker_main(memory_mb: int, max_unzipped_mb: float) -> None:
    """Body of `python -m workbench.load.sandbox`: paths in on stdin, JSON results out on stdout."""
    import os
    import resource
    import sys

    limit = memory_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # a parser that prints must not corrupt the protocol
    limits = LoadLimits(max_unzipped_mb=max_unzipped_mb)
    while (frame := _read_frame(sys.stdin.buffer)) is not None:
        path = frame.decode("utf-8", "surrogateescape")
        _write_frame(protocol_out, json.dumps(parse_path(path, limits, memory_mb)).encode())


class _Worker:
    """A separate interpreter (not a fork or multiprocessing child: it never re-imports the
    caller's __main__ script, and inherits no torch threads or model weights)."""

    def __init__(self, memory_mb: int, max_unzipped_mb: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.load.sandbox", str(memory_mb), str(max_unzipped_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        self.path: str | None = None
        self.deadline = 0.0

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def send(self, path: str) -> None:
        _write_frame(self.proc.stdin, path.encode("utf-8", "surrogateescape"))

    def receive(self) -> dict | None:
        frame = _read_frame(self.proc.stdout)
        return None if frame is None else json.loads(frame)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class ParserPool:
    """A small pool of bounded parser processes. Use as a context manager."""

    def __init__(self, workers: int, timeout_s: float, memory_mb: int, limits: LoadLimits) -> None:
        self.n = max(1, workers)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.limits = limits
        self.workers: list[_Worker] = []

    def __enter__(self) -> "ParserPool":
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            w.kill()
        self.workers.clear()

    def _spawn(self) -> _Worker:
        w = _Worker(self.memory_mb, self.limits.max_unzipped_mb)
        self.workers.append(w)
        return w

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self.workers.remove(w)
        self._spawn()

    def map(self, paths: Iterable[str]) -> Iterator[ParseOutcome]:
        """Parse each path; yield outcomes as they complete (not in input order)."""
        pending = deque(paths)
        while len(self.workers) < min(self.n, len(pending)):
            self._spawn()
        while True:
            for w in self.workers:
                if w.path is None and pending:
                    w.path = pending.popleft()
                    w.deadline = time.monotonic() + self.timeout_s
                    try:
                        w.send(w.path)
                    except OSError:  # the worker died while idle; the wait below reports it
                        pass
            busy = [w for w in self.workers if w.path is not None]
            if not busy:
                return
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait(busy, timeout=timeout)
            for w in busy:
                path = w.path
                if w in ready:
                    msg = w.receive()
                    if msg is None:
                        code = w.proc.wait(5)
                        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                        self._replace(w)
                        yield ParseOutcome(path, error=f"parser process crashed ({why}); the file may be "
                                           f"malformed or need more than {self.memory_mb} MB")
                        continue
                    w.path = None
                    if msg.get("fatal"):
                        self._replace(w)
                    if msg["ok"]:
                        yield ParseOutcome(path, docs=tuple(_doc_from_dict(d) for d in msg["docs"]))
                    else:
                        yield ParseOutcome(path, error=msg["reason"])
                elif time.monotonic() >= w.deadline:
                    self._replace(w)
                    yield ParseOutcome(path, error=f"parsing timed out after {self.timeout_s:g}s "
                                       "(ingest.parse_timeout_s)")


if __name__ == "__main__":
    worker_main(int(sys.argv[1]), float(sys.argv[2]))
