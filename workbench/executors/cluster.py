"""Parse, chunk and embed on a Ray cluster's nodes while this process stays the one index writer.

`RayCluster(config, embedder, opener).run(jobs, uncached)` (an `Executor`) starts one actor per node that has a CPU (it
takes one GPU where the node has one and ``[cluster] use_gpus`` is on). Each actor loads the
embedder once (refused if it is not the index's model), parses up to ``parsers_per_node`` files at
once, each in the same bounded sandbox as a local ingest (`workbench.load.sandbox.parser_pool`), and
embeds on all the node's cores beside them. The driver hands each actor its parser count plus one
file; for each parsed file it asks ``uncached`` which texts are not in the embedding cache yet, and
gives those, in batches of `EMBED_SPLIT`, to the least busy actors (so a few large files still keep
every node busy). It yields one `ChunkedFile` (with the new vectors) per file, in completion order;
`run_ingest` writes them. A file reaches a node by path (the sources mounted at the same path on
every node) or, with ``[cluster] ship_files``, as bytes the driver read through its source's
``opener`` and sent through Ray's object store; either way the node checks the bytes against the
content hash the sync planned with, and chunks them with the local pool's own step (`chunk_outcome`).

Faults: when an actor or its node dies, its files and embedding batches go to the others; a file
handed out ``max_attempts`` times, a path a node cannot see and content that changed are reported
with ``retry`` (not remembered as the file's failure: the next run tries again); an embedding batch
that fails twice is left to the writer; with no actor left, `run` raises and the caller publishes
nothing. A parser crash inside the sandbox is that file's failure, as locally.

Privacy: Ray's usage statistics are switched off before Ray is imported, this process starts no
dashboard, and messages carry JSON text and numpy arrays between the cluster's own processes.
Ray's transport itself serializes with pickle: run the cluster on a network only its nodes reach.
Leaves out: starting or sizing the cluster (``ray start``; see README, "Scaling out"), and writing
the index (the driver does that).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.config import Config
from workbench.embed import Embedder
from workbench.errors import ClusterError, FileCheckError
from workbench.executors.base import Opener, Uncached, chunk_outcome
from workbench.privacy import OFFLINE_SWITCHES
from workbench.records import Chunk, ChunkedFile, NodeWork, ParsedDocument, ParseJob

DEPTH = 1  # requests waiting at one actor beyond its parser count: keeps it busy while the driver writes
EMBED_SPLIT = 128  # texts per embedding request: one large file's passages spread over every node


def _quiet_ray():
    """Import Ray with its usage statistics off (set before the import reads it)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        import ray
    except ImportError:
        raise ClusterError("Ray is not installed in this environment: `make setup` installs it from "
                           "requirements.lock (or pip install 'workbench[cluster]')") from None
    return ray


def _last_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[-1] if lines else type(exc).__name__)[:300]


# ---- the actor, one per node -----------------------------------------------------------------

class NodeWorker:
    """Runs on a cluster node: parses with the bounded parser pool, chunks, embeds. Messages out are
    JSON text (parse) and float32 arrays (embed)."""

    def __init__(self, config: dict, threads: int, device: str | None, parsers: int) -> None:
        os.environ.update(OFFLINE_SWITCHES)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        from workbench.embed import load_embedder
        from workbench.files import private_dir
        from workbench.load.sandbox import parser_pool

        self.config = Config.model_validate(config)
        settings = self.config.embedding
        self.note = ""
        if device is not None and device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():  # a GPU node whose torch is the CPU build
                device, self.note = None, "has a GPU, but its torch has no CUDA: it embeds on its CPUs"
        if device is not None:
            settings = settings.model_copy(update={"device": device})
        models = Path(tempfile.gettempdir()) / f"workbench-models-{os.getuid()}"
        private_dir(models)
        self.embedder = load_embedder(settings, models)  # reads the model folder; weights load on first embed
        self.threads = threads
        self.parsers: queue.Queue = queue.Queue()  # one bounded parser process per concurrent parse call
        for _ in range(parsers):
            self.parsers.put(parser_pool(self.config.ingest.model_copy(update={"workers": 1}), self.config.ocr).__enter__())
        self.n_parsers = parsers
        self.embedding = threading.Lock()  # one embedding call at a time; it uses all the node's cores
        ray = _quiet_ray()
        ctx = ray.get_runtime_context()
        self.node = f"{ray.util.get_node_ip_address()}/{ctx.get_node_id()[:8]}"

    def ready(self) -> dict:
        """Where this worker runs and which model it embeds with (the driver refuses a different one)."""
        e = self.embedder
        return {"node": self.node, "model": e.name, "dim": e.dim, "cache_key": e.cache_key,
                "parsers": self.n_parsers, "note": self.note}

    def parse(self, job: dict, data: bytes | None = None) -> str:
        """Parse and chunk one file; JSON {path, error, retry, docs: [{doc, id, chunks}], seconds}.

        The bytes parsed (read here from the shared mount, or shipped) must have the content hash
        the driver planned with; otherwise nothing is indexed and the next run tries again."""
        started = time.perf_counter()
        job = ParseJob(**job)

        def refused(reason: str) -> str:
            return json.dumps({"path": job.path, "seconds": time.perf_counter() - started, "retry": True,
                               "error": reason})

        folder = Path(tempfile.mkdtemp(prefix="workbench-ship-"))  # 0700, one per call, removed below
        try:
            if data is not None:  # shipped bytes: parse a private copy under the same file name
                local = folder / Path(job.path).name
                local.write_bytes(data)
            elif not os.path.exists(job.path):
                return refused(f"not visible on cluster node {self.node}: mount the sources at the same path "
                               "on every node, or use --ship-files")
            else:
                local = Path(job.path)
            pool = self.parsers.get()
            try:  # the pool opens the file without links and parses it only if it has the planned content
                outcome = next(iter(pool.map([(str(local), job.content_hash)])))
            finally:
                self.parsers.put(pool)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if outcome.unchecked:
            return refused(f"on cluster node {self.node} it is not what the sync planned ({outcome.error}; or a "
                           "different file at that path on the node)")
        done = chunk_outcome(job, outcome.docs, outcome.error, self.embedder.count_tokens, self.config.chunking)
        msg = {"path": job.path, "error": done.error, "docs": [
            {"doc": parsed.to_dict(), "id": doc_id, "chunks": [c.to_dict() for c in chunks]}
            for parsed, doc_id, chunks in done.docs]}
        msg["seconds"] = time.perf_counter() - started
        return json.dumps(msg)

    def embed(self, texts: list[str]) -> tuple[np.ndarray, float]:
        """Document vectors for ``texts`` (model inputs), and the seconds it took."""
        with self.embedding:
            started = time.perf_counter()
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
                self.threads = 0
            vectors = np.asarray(self.embedder.embed_documents(texts), dtype=np.float32)
            return vectors, time.perf_counter() - started

    def close(self) -> None:
        """End the parser processes (called before the actor is killed)."""
        while not self.parsers.empty():
            self.parsers.get().__exit__(None, None, None)


def _from_message(msg: dict, node: str) -> ChunkedFile:
    if msg.get("error") is not None:
        return ChunkedFile(msg["path"], error=msg["error"], node=node, retry=bool(msg.get("retry")))
    docs = tuple((ParsedDocument.from_dict(d["doc"]), d["id"],
                  tuple(Chunk(**{**c, "headings": tuple(c["headings"])}) for c in d["chunks"])) for d in msg["docs"])
    return ChunkedFile(msg["path"], docs=docs, node=node)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once when a HOST:PORT head does not answer (Ray itself would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    import socket

    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ClusterError(
            f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}. Start its head first "
            "(README, 'Scaling out'), or leave [cluster] address empty to ingest in this process") from None


# ---- the driver --------------------------------------------------------------------------------

@dataclass
class _Actor:
    handle: object
    node: str
    capacity: int = 1 + DEPTH  # requests handed to it at once: its parsers, plus DEPTH
    busy: int = 0
    files: int = 0
    chunks: int = 0
    embedded: int = 0
    parse_s: float = 0.0
    embed_s: float = 0.0
    lost: bool = False


@dataclass
class _Waiting:
    """A parsed file waiting for the vectors of its embedding batches."""

    file: ChunkedFile
    batches: int
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # a batch that failed twice is left out:
    # the writer then embeds those passages itself


@dataclass
class _Request:
    actor: _Actor
    kind: str  # "parse" | "embed"
    job: ParseJob
    waiting: _Waiting | None = None  # embed: the file this batch belongs to
    texts: dict[str, str] = field(default_factory=dict)  # embed: {text hash: model input}
    attempt: int = 1


class RayCluster:
    """A connection to the Ray cluster ``[cluster] address`` names, with one worker actor per node.
    Call `run` once, then `close` (which ends the actors, and Ray if this object started it)."""

    def __init__(self, config: Config, embedder: Embedder, opener: Opener) -> None:
        started = time.perf_counter()
        self.config, self.opener = config, opener
        self.seconds: dict[str, float] = {}
        self.model = {"model": embedder.name, "dim": embedder.dim,
                      "cache_key": embedder.cache_key}
        self.address = config.cluster.address
        self.notes: list[str] = []
        self.ray = ray = _quiet_ray()
        self._owns = not ray.is_initialized()
        if self._owns:
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, logging_level="WARNING", log_to_driver=False,
                         configure_logging=True)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ClusterError(
                    f"cannot join the Ray cluster at {self.address!r}: {_last_line(exc)}. This machine must be a "
                    f"node of it: run `ray start --address {self.address} --num-cpus 0` here first (README, "
                    "'Scaling out'), or leave [cluster] address empty to ingest in this process") from None
        try:
            self.actors = self._start_actors()
        except BaseException:
            if self._owns:
                ray.shutdown()
            raise
        self.seconds["connect"] = time.perf_counter() - started

    def _start_actors(self) -> list[_Actor]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray, cfg = self.ray, self.config
        remote = ray.remote(NodeWorker)
        pending = []
        for node in ray.nodes():
            res = node.get("Resources", {})
            if not node.get("Alive") or res.get("CPU", 0) < 1:
                continue  # a head started with --num-cpus=0 only coordinates
            gpu = cfg.cluster.use_gpus and res.get("GPU", 0) >= 1
            cpus = int(res["CPU"])
            parsers = cfg.cluster.parsers_per_node or max(1, cpus // 4)
            handle = remote.options(  # threads: its parse calls, one embedding call, ready/close
                num_cpus=1, num_gpus=1 if gpu else 0, max_restarts=0, max_task_retries=0,
                max_concurrency=parsers + 2,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
            ).remote(cfg.model_dump(mode="json"), cpus, "cuda" if gpu else None, parsers)
            pending.append((handle, node["NodeManagerAddress"], handle.ready.remote()))
        actors, problems = [], []
        deadline = time.monotonic() + cfg.cluster.start_timeout_s  # one wait for all nodes, not one each
        for handle, where, ref in pending:
            try:
                info = ray.get(ref, timeout=max(1.0, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - a node that cannot start is reported, the others work
                problems.append(f"{where}: {_last_line(exc)}")
                ray.kill(handle, no_restart=True)
                continue
            theirs = {k: info[k] for k in self.model}
            if theirs != self.model:
                problems.append(f"{info['node']}: embeds with {theirs}, not this index's {self.model}")
                ray.kill(handle, no_restart=True)
                continue
            actors.append(_Actor(handle, info["node"], capacity=info["parsers"] + DEPTH))
            if info["note"]:
                self.notes.append(f"cluster node {info['node']} {info['note']} (install a CUDA build of torch there)")
        if problems:
            self.notes.append("cluster nodes that could not start a worker: " + "; ".join(problems))
        if not actors:
            raise ClusterError(
                f"the Ray cluster at {self.address!r} started no worker "
                + (f"({'; '.join(problems)}). " if problems else "(no node with a CPU). ")
                + "Install the same workbench and embedding model on every node (README, 'Scaling out')")
        return actors

    def _live(self) -> list[_Actor]:
        return [a for a in self.actors if not a.lost]

    def _lose(self, actor: _Actor, exc: Exception) -> None:
        if not actor.lost:
            actor.lost = True
            self.notes.append(f"cluster node {actor.node} was lost during the run; its files went to the "
                              f"other nodes ({type(exc).__name__})")
            try:
                self.ray.kill(actor.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - it is gone already
                pass

    def run(self, jobs: list[ParseJob], uncached: Uncached) -> Iterator[ChunkedFile]:
        """Parse, chunk and embed ``jobs`` on the cluster; yield each file as its vectors arrive (the
        seconds spent waiting for them are the "cluster" stage)."""
        started = time.perf_counter()
        for f in self._run(jobs, uncached):
            self.seconds["cluster"] = self.seconds.get("cluster", 0.0) + time.perf_counter() - started
            yield f
            started = time.perf_counter()

    def _read(self, job: ParseJob) -> bytes:
        """The planned bytes of ``job``'s file, read through its source (FileCheckError otherwise)."""
        with os.fdopen(self.opener(job.path, job.content_hash), "rb") as fh:
            return fh.read()

    def _run(self, jobs: list[ParseJob], uncached: Uncached) -> Iterator[ChunkedFile]:
        ray = self.ray
        from ray.exceptions import RayError, RayTaskError

        ship = self.config.cluster.ship_files
        attempts: dict[str, int] = {}
        queue: deque[ParseJob] = deque(jobs)
        retry_embeds: deque[_Request] = deque()
        inflight: dict[object, _Request] = {}

        def submit(req: _Request) -> None:
            a = req.actor
            if req.kind == "parse":
                data = ray.put(self._read(req.job)) if ship else None
                ref = a.handle.parse.remote(req.job.to_dict(), data)
            else:
                ref = a.handle.embed.remote(list(req.texts.values()))
            a.busy += 1
            inflight[ref] = req

        def least_busy() -> _Actor:
            live = self._live()
            if not live:
                raise ClusterError(f"every worker of the Ray cluster at {self.address!r} was lost; nothing was "
                                   "published and the previous generation is still the one searched")
            return min(live, key=lambda a: a.busy)

        while queue or inflight or retry_embeds:
            while retry_embeds:
                req = retry_embeds.popleft()
                submit(_Request(least_busy(), "embed", req.job, req.waiting, req.texts, req.attempt + 1))
            for a in self._live():
                while queue and a.busy < a.capacity:
                    job = queue.popleft()
                    attempts[job.path] = attempts.get(job.path, 0) + 1
                    try:
                        submit(_Request(a, "parse", job))
                    except FileCheckError as exc:  # --ship-files: the file changed or went away since the plan
                        yield ChunkedFile(job.path, error=str(exc), retry=True)
                    except OSError as exc:  # it could not be read to the end
                        yield ChunkedFile(job.path, error=f"cannot read file ({exc.strerror or exc})", retry=True)
            if not inflight:
                least_busy()  # raises: work is left and no actor is
                continue
            (ref,), _ = ray.wait(list(inflight), num_returns=1)
            req = inflight.pop(ref)
            req.actor.busy -= 1
            try:
                value = ray.get(ref)
            except RayTaskError as exc:  # our code raised on the node
                if req.kind == "embed":  # the writer embeds this batch itself
                    self.notes.append(f"embedding failed on cluster node {req.actor.node} ({_last_line(exc)}); "
                                      "this process embedded that batch")
                    yield from self._batch_done(req, {})
                    continue
                yield ChunkedFile(req.job.path, error=f"worker error on {req.actor.node}: {_last_line(exc)}",
                                  node=req.actor.node, retry=True)
                continue
            except RayError as exc:  # the actor or its node died: hand the work to another
                self._lose(req.actor, exc)
                if req.kind == "embed":
                    if req.attempt < self.config.cluster.max_attempts:
                        retry_embeds.append(req)
                    else:
                        yield from self._batch_done(req, {})
                elif attempts[req.job.path] >= self.config.cluster.max_attempts:
                    yield ChunkedFile(req.job.path, error=f"the cluster nodes it was given to died "
                                      f"{attempts[req.job.path]} times while reading it ([cluster] max_attempts)",
                                      retry=True)
                else:
                    queue.appendleft(req.job)
                continue
            if req.kind == "parse":
                msg = json.loads(value)
                f = _from_message(msg, req.actor.node)
                req.actor.parse_s += msg["seconds"]
                req.actor.files += 1
                req.actor.chunks += sum(len(c) for _, _, c in f.docs)
                texts = list(uncached([c for _, _, cs in f.docs for c in cs]).items()) if f.error is None else []
                if not texts:
                    yield f
                    continue
                waiting = _Waiting(f, batches=-(-len(texts) // EMBED_SPLIT))
                for i in range(0, len(texts), EMBED_SPLIT):
                    submit(_Request(least_busy(), "embed", req.job, waiting, dict(texts[i:i + EMBED_SPLIT])))
            else:
                vectors, seconds = value
                req.actor.embed_s += seconds
                req.actor.embedded += len(req.texts)
                yield from self._batch_done(req, dict(zip(req.texts, vectors)))

    @staticmethod
    def _batch_done(req: _Request, vectors: dict) -> Iterator[ChunkedFile]:
        """Record one embedding batch of a file; yield the file once its last batch is back."""
        w = req.waiting
        w.vectors.update(vectors)
        w.batches -= 1
        if w.batches == 0:
            yield ChunkedFile(w.file.path, docs=w.file.docs, node=w.file.node, vectors=w.vectors)

    def node_work(self) -> tuple[NodeWork, ...]:
        return tuple(NodeWork(a.node, a.files, a.chunks, a.embedded, round(a.parse_s, 3), round(a.embed_s, 3),
                              a.lost) for a in self.actors)

    def close(self) -> None:
        """End the actors (and Ray in this process, if this object started it)."""
        for a in self.actors:
            if not a.lost:
                try:
                    self.ray.get(a.handle.close.remote(), timeout=30)
                except Exception:  # noqa: BLE001 - killed below either way
                    pass
                try:
                    self.ray.kill(a.handle, no_restart=True)
                except Exception:  # noqa: BLE001
                    pass
        if self._owns:
            self.ray.shutdown()
