"""Parse files in worker processes bounded in time, CPU, memory and reach.

Each worker is a fresh interpreter (`python -m workbench.load.sandbox`: no inherited torch threads
or model weights, and the caller's script is never re-imported) started with a clean environment
(`worker_env`: no API keys, tokens or other secrets of the parent). Before it reads its first path
it calls `enter_sandbox`: a private, empty network namespace where the OS lets an unprivileged
process have one, a guard that makes Python-level network use raise in every case, no core dumps,
an address-space limit (RLIMIT_AS), and a file-system sandbox (`workbench.load.confine`, Linux
Landlock): from then on it can read only the Python installation and system libraries, write only
its own scratch folder (its TMPDIR and working directory, removed with it), and open nothing
else: not the index, its users database, the document folders or the home folder. Before each
file it also takes a CPU-time limit (RLIMIT_CPU).

The parent opens each file itself, through the opener it is given (its source's `open`; by default
`workbench.files.open_checked`: never through a symbolic link, a regular file only, and, when the
sync planned it with a content hash, only if its bytes still have it)
and hands the worker the open descriptor over a Unix socket: the worker parses exactly the bytes
that were checked, and needs no access to the folder. The parent waits with a deadline: a worker
that overruns is killed and replaced, one that dies (a parser crash, an allocation abort, the CPU
limit) is replaced, and either way the file gets a failure reason and the batch goes on. Messages
are JSON, never pickle. `workbench.render_worker` draws PDF pages under the same bounds. Leaves
out: deciding what to parse (see `workbench.sync`).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait
from pathlib import Path

from workbench.config import IngestSettings, OcrSettings
from workbench.errors import FileCheckError, ParseError
from workbench.files import open_checked
from workbench.load import LoadLimits, confine, parse_bytes
from workbench.privacy import OFFLINE_SWITCHES
from workbench.records import ParsedDocument

DEFAULT_CPU_S = IngestSettings.model_fields["parse_cpu_s"].default
# What a worker needs to start and to decode text; everything else (API keys, tokens, cloud
# credentials, proxies) stays in the parent.
PASSED_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
              "PYTHONPATH", "PYTHONHOME", "PYTHONUTF8", "LD_LIBRARY_PATH")
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000


# ---- isolating one worker process ------------------------------------------------------------

def worker_env() -> dict[str, str]:
    """The whole environment of a worker: `PASSED_ENV` from ours, plus the offline switches."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.update(OFFLINE_SWITCHES)
    return env


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _unshare_network() -> bool:
    """Move this (single-threaded) process into a new network namespace: only a loopback device
    that is down, so no address outside is reachable. False where the OS forbids it.

    Other users get a new user namespace too (that is what lets them unshare); root does not, as
    root in a new user namespace could no longer read files of other owners it is asked to parse.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if os.geteuid() == 0:
            return libc.unshare(_CLONE_NEWNET) == 0
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
            return False
        _write("/proc/self/setgroups", "deny")  # keep our own uid/gid visible inside
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        return True
    except (OSError, AttributeError):
        return False


def _refuse(*_args, **_kwargs):
    raise PermissionError(errno.EACCES, "network access is disabled in the workbench's sandboxed workers")


def block_network() -> None:
    """Make socket connect/bind/send-to and name lookups raise for anything but AF_UNIX."""
    import socket

    def guarded(method):
        def call(self, *args, **kwargs):
            if self.family == socket.AF_UNIX:
                return method(self, *args, **kwargs)
            _refuse()
        return call

    for name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
        setattr(socket.socket, name, guarded(getattr(socket.socket, name)))
    for name in ("getaddrinfo", "create_connection", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        setattr(socket, name, _refuse)


def enter_sandbox(memory_mb: int, scratch: str | None = None) -> bool:
    """Bound this worker before it reads any input. True when it got a private network namespace.
    Where Landlock is available the worker is also confined to ``scratch`` (`workbench.load.confine`);
    where it is available and refuses, this raises (a worker is never left half-confined)."""
    isolated = _unshare_network()
    block_network()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    limit = memory_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if confine.abi_version():
        confine.confine(scratch)
    return isolated


_warned = []


def warn_if_unconfined() -> None:
    """Say once per process when parser workers cannot get a file-system sandbox here, and why."""
    ok, why = confine.available()
    if not ok and not _warned:
        _warned.append(why)
        warnings.warn(f"workbench: parser workers are not confined to their file ({why}); they keep their "
                      "other bounds (no network, memory, CPU and time limits, clean environment), but a parser "
                      "exploit could read what the service user can read", RuntimeWarning, stacklevel=2)




def limit_cpu(seconds: int) -> None:
    """SIGXCPU (which ends the process) once it has used at least ``seconds`` (at most one more)
    of CPU time beyond what it has used so far. Called before each file, so the bound is per file."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(used.ru_utime + used.ru_stime) + 1 + int(seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def killed_by_cpu_limit(returncode: int | None) -> bool:
    return returncode == -signal.SIGXCPU


# ---- parsing -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ParseOutcome:
    """The result for one path: documents, or the reason it could not be parsed."""

    path: str
    docs: tuple[ParsedDocument, ...] = ()
    error: str | None = None
    unchecked: bool = False  # the file failed `open_checked` (a link, not regular, other content): never parsed


def parse_file(fd: int, name: str, limits: LoadLimits, memory_mb: int) -> dict:
    """Parse the open file ``fd`` (closed here), named ``name``, in this process; the JSON-able message
    a worker sends back."""
    try:
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
        docs = parse_bytes(data, name, limits)
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


def _read_exactly(stream, n: int) -> bytes:
    """``n`` bytes from ``stream`` (fewer only at end of stream); an unbuffered stream may return
    short reads, so read until done."""
    out = b""
    while len(out) < n:
        piece = stream.read(n - len(out))
        if not piece:
            break
        out += piece
    return out


def read_frame(stream) -> bytes | None:
    """One length-prefixed frame, or None at end of stream."""
    head = _read_exactly(stream, 4)
    if len(head) < 4:
        return None
    size = int.from_bytes(head, "big")
    body = _read_exactly(stream, size)
    return body if len(body) == size else None


def write_frame(stream, payload: bytes) -> None:
    stream.write(len(payload).to_bytes(4, "big") + payload)
    stream.flush()


MAX_NAME_BYTES = 4096


def worker_main(memory_mb: int, limits: LoadLimits, cpu_s: int = DEFAULT_CPU_S, scratch: str | None = None) -> None:
    """Body of `python -m workbench.load.sandbox`: open files (a name and a descriptor per message) in on
    stdin, a Unix socket; JSON results out on stdout."""
    files_in = socket.socket(fileno=os.dup(sys.stdin.fileno()))
    try:
        enter_sandbox(memory_mb, scratch)
        refusal = None
    except OSError as exc:  # the file sandbox exists here but would not take: parse nothing (fails closed)
        refusal = f"the parser's file sandbox could not be set up ({exc}); nothing was parsed"
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # a parser that prints must not corrupt the protocol
    from workbench.load import ocr

    def page_done() -> None:  # a page read by OCR: tell the parent, and give the next page its CPU bound
        write_frame(protocol_out, b'{"progress": true}')
        limit_cpu(cpu_s)

    ocr.on_page = page_done
    while True:
        name, fds, _, _ = socket.recv_fds(files_in, MAX_NAME_BYTES, 1)
        if not name or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return
        limit_cpu(cpu_s)
        if refusal is not None:
            os.close(fds[0])
            result = {"ok": False, "reason": refusal}
        else:
            result = parse_file(fds[0], name.decode("utf-8", "surrogateescape"), limits, memory_mb)
        write_frame(protocol_out, json.dumps(result).encode())


class _Worker:
    """A separate interpreter (not a fork or multiprocessing child: it never re-imports the
    caller's __main__ script, and inherits no torch threads or model weights)."""

    def __init__(self, memory_mb: int, limits: LoadLimits, cpu_s: int) -> None:
        self.scratch = tempfile.mkdtemp(prefix="workbench-parser-")  # 0700; the worker's only writable place
        self.files, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "workbench.load.sandbox", str(memory_mb), json.dumps(asdict(limits)),
                 str(cpu_s), self.scratch],
                stdin=theirs.fileno(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True,
                cwd=self.scratch, env={**worker_env(), "TMPDIR": self.scratch},
                bufsize=0)  # unbuffered: a frame read never hides the next one from wait()
        except BaseException:
            self.files.close()
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        finally:
            theirs.close()
        self.path: str | None = None
        self.started = self.deadline = 0.0

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def send(self, path: str, fd: int) -> None:
        """Hand the worker the open file ``fd`` (a duplicate travels; the caller closes its own)."""
        socket.send_fds(self.files, [Path(path).name.encode("utf-8", "surrogateescape")[:MAX_NAME_BYTES]], [fd])

    def receive(self) -> dict | None:
        frame = read_frame(self.proc.stdout)
        return None if frame is None else json.loads(frame)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        for stream in (self.files, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self.scratch, ignore_errors=True)


class ParserPool:
    """A small pool of bounded parser processes. Use as a context manager."""

    def __init__(self, workers: int, timeout_s: float, memory_mb: int, limits: LoadLimits,
                 cpu_s: int = DEFAULT_CPU_S) -> None:
        warn_if_unconfined()
        self.n = max(1, workers)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.limits = limits
        self.workers: list[_Worker] = []

    def __enter__(self) -> "ParserPool":
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            w.kill()
        self.workers.clear()

    def _spawn(self) -> _Worker:
        w = _Worker(self.memory_mb, self.limits, self.cpu_s)
        self.workers.append(w)
        return w

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self.workers.remove(w)
        self._spawn()

    def _crash_reason(self, code: int | None) -> str:
        if killed_by_cpu_limit(code):
            return f"parsing used more than {self.cpu_s} s of CPU (ingest.parse_cpu_s)"
        why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"parser process crashed ({why}); the file may be malformed or need more than {self.memory_mb} MB"

    def map(self, items: Iterable[str | tuple[str, str | None]],
            opener: Callable[[str, str | None], int] = open_checked) -> Iterator[ParseOutcome]:
        """Parse each path (or (path, content hash the file must still have)); yield outcomes as they
        complete (not in input order). ``opener`` (a source's `open`; default `open_checked`) gives
        each file's descriptor; a file it refuses (FileCheckError) is not handed to a worker."""
        pending = deque((item, None) if isinstance(item, str) else item for item in items)
        while len(self.workers) < min(self.n, len(pending)):
            self._spawn()
        while True:
            for w in self.workers:
                while w.path is None and pending:
                    path, content_hash = pending.popleft()
                    try:
                        fd = opener(path, content_hash)
                    except FileCheckError as exc:
                        yield ParseOutcome(path, error=str(exc), unchecked=True)
                        continue
                    w.path = path
                    w.started = time.monotonic()
                    w.deadline = w.started + self.timeout_s
                    try:
                        w.send(path, fd)
                    except OSError:  # the worker died while idle; the wait below reports it
                        pass
                    finally:
                        os.close(fd)
            busy = [w for w in self.workers if w.path is not None]
            if not busy:
                return
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait(busy, timeout=timeout)
            for w in busy:
                path = w.path
                if w in ready:
                    msg = w.receive()
                    if msg is not None and msg.get("progress"):  # a page read by OCR: the file lives on
                        w.deadline = min(time.monotonic() + self.timeout_s,
                                         w.started + max(self.timeout_s, self.limits.ocr_file_timeout_s))
                        continue
                    if msg is None:
                        reason = self._crash_reason(w.proc.wait(5))
                        self._replace(w)
                        yield ParseOutcome(path, error=reason)
                        continue
                    w.path = None
                    if msg.get("fatal"):
                        self._replace(w)
                    if msg["ok"]:
                        yield ParseOutcome(path, docs=tuple(ParsedDocument.from_dict(d) for d in msg["docs"]))
                    else:
                        yield ParseOutcome(path, error=msg["reason"])
                elif time.monotonic() >= w.deadline:
                    self._replace(w)
                    took = time.monotonic() - w.started
                    why = (f"parsing timed out after {self.timeout_s:g}s (ingest.parse_timeout_s)"
                           if took < self.timeout_s + 1 else
                           f"parsing stopped after {took:.0f}s: no progress for {self.timeout_s:g}s "
                           f"(ingest.parse_timeout_s), or OCR beyond {self.limits.ocr_file_timeout_s:g}s "
                           "for one file ([ocr] file_timeout_s)")
                    yield ParseOutcome(path, error=why)


def parser_pool(settings: IngestSettings, ocr: OcrSettings | None = None) -> ParserPool:
    """The bounded parser processes ``[ingest]`` and ``[ocr]`` ask for (the same on every cluster node)."""
    return ParserPool(settings.workers, settings.parse_timeout_s, settings.parse_memory_mb,
                      LoadLimits.from_settings(settings, ocr or OcrSettings()), cpu_s=settings.parse_cpu_s)


if __name__ == "__main__":
    worker_main(int(sys.argv[1]), LoadLimits(**json.loads(sys.argv[2])), int(sys.argv[3]),
                sys.argv[4] if len(sys.argv) > 4 else None)
