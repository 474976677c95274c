"""Parse files in worker processes bounded in time and memory.

Each worker is a fresh interpreter (spawn: no inherited torch threads or model weights) with an
address-space limit (RLIMIT_AS). The parent hands it one path at a time over a pipe and waits
with a deadline: a worker that overruns is killed and replaced, one that dies (a parser crash, an
allocation abort) is replaced, and either way the file gets a failure reason and the batch goes
on. Messages are JSON, never pickle. Leaves out: deciding what to parse (see `workbench.sync`).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
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


def _worker_main(conn: Connection, memory_mb: int, max_unzipped_mb: float) -> None:
    import resource

    limit = memory_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    limits = LoadLimits(max_unzipped_mb=max_unzipped_mb)
    while True:
        try:
            path = conn.recv_bytes().decode("utf-8", "surrogateescape")
        except (EOFError, OSError):
            return
        conn.send_bytes(json.dumps(parse_path(path, limits, memory_mb)).encode())


class _Worker:
    def __init__(self, ctx, memory_mb: int, max_unzipped_mb: float) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, memory_mb, max_unzipped_mb), daemon=True)
        self.proc.start()
        child.close()
        self.path: str | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class ParserPool:
    """A small pool of bounded parser processes. Use as a context manager."""

    def __init__(self, workers: int, timeout_s: float, memory_mb: int, limits: LoadLimits) -> None:
        self.n = max(1, workers)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.limits = limits
        self.ctx = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []

    def __enter__(self) -> "ParserPool":
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            w.kill()
        self.workers.clear()

    def _spawn(self) -> _Worker:
        w = _Worker(self.ctx, self.memory_mb, self.limits.max_unzipped_mb)
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
                    w.conn.send_bytes(w.path.encode("utf-8", "surrogateescape"))
            busy = [w for w in self.workers if w.path is not None]
            if not busy:
                return
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=timeout)
            for w in busy:
                path = w.path
                if w.conn in ready:
                    try:
                        msg = json.loads(w.conn.recv_bytes())
                    except (EOFError, OSError):
                        w.proc.join(1)
                        code = w.proc.exitcode
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
