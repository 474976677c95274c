"""The `Executor` protocol: what runs parse → chunk (→ embed) for an ingest, and the one step
every executor runs per file.

An executor takes the files the sync planned (`ParseJob`s) and yields one `ChunkedFile` per file,
in completion order: its documents with their ids and chunks (and vectors, when it embedded them
itself), or the reason it could not be read. Files are opened through the ``opener`` it is given
(the sources' `open`); only a cluster node reading a shared mount opens the planned path itself,
and checks the bytes against the planned hash. `chunk_outcome` is the
parse → chunk step, written once: the local pool runs it in this process, a cluster node on its
own. Leaves out: the sync (`workbench.sync`), the writer (`workbench.ingest`, the one writer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

from workbench.chunk import chunk_file
from workbench.config import ChunkingSettings
from workbench.records import Chunk, ChunkedFile, NodeWork, ParseJob

Opener = Callable[[str, "str | None"], int]  # (path, content hash) -> descriptor, or FileCheckError
Uncached = Callable[[list[Chunk]], dict[str, str]]  # chunks -> {text hash: model input} not cached yet


@runtime_checkable
class Executor(Protocol):
    address: str  # where it runs ("" for this machine)
    notes: list[str]  # what the report should say about the run (nodes lost, GPUs unused, ...)
    seconds: dict[str, float]  # time per stage it ran ("parse", "chunk"; "connect", "cluster")

    def run(self, jobs: list[ParseJob], uncached: Uncached) -> Iterator[ChunkedFile]:
        """Each job's file, parsed and chunked (and embedded where the executor does it)."""
        ...

    def node_work(self) -> tuple[NodeWork, ...]:
        """What each node did (empty for this machine)."""
        ...

    def close(self) -> None:
        """End the executor's processes or actors."""
        ...


def chunk_outcome(job: ParseJob, docs, error: str | None, count_tokens: Callable[[list[str]], list[int]],
                  settings: ChunkingSettings, node: str = "local") -> ChunkedFile:
    """The parsed documents of ``job``'s file cut into chunks (with their document ids), or its error."""
    if error is not None:
        return ChunkedFile(job.path, error=error, node=node)
    chunked = chunk_file(job, docs, count_tokens, settings.max_tokens, settings.overlap_tokens,
                         settings.identity_weight > 0)
    return ChunkedFile(job.path, docs=tuple(chunked), node=node)
