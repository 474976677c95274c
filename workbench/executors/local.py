"""The local executor: this machine's bounded parser pool parses, this process chunks.

Embedding stays with the writer (`workbench.ingest`), in this thread: measured on 2 cores,
embedding beside the parser processes made the whole ingest slower, not faster. Leaves out:
the parser sandbox itself (`workbench.load.sandbox`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from workbench.config import Config
from workbench.executors.base import Opener, Uncached, chunk_outcome
from workbench.load.sandbox import parser_pool
from workbench.records import ChunkedFile, NodeWork, ParseJob


class LocalPool:
    """Parses in ``[ingest] workers`` sandboxed processes and chunks with ``count_tokens`` here."""

    address = ""

    def __init__(self, config: Config, count_tokens: Callable[[list[str]], list[int]], opener: Opener) -> None:
        self.config, self.count_tokens, self.opener = config, count_tokens, opener
        self.notes: list[str] = []
        self.seconds: dict[str, float] = {}

    def _time(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - since
        return now

    def run(self, jobs: list[ParseJob], uncached: Uncached) -> Iterator[ChunkedFile]:
        by_path = {job.path: job for job in jobs}
        with parser_pool(self.config.ingest, self.config.ocr) as pool:
            started = time.perf_counter()
            for outcome in pool.map([(job.path, job.content_hash) for job in jobs], self.opener):
                started = self._time("parse", started)
                done = chunk_outcome(by_path[outcome.path], outcome.docs, outcome.error, self.count_tokens,
                                     self.config.chunking)
                if outcome.error is None:
                    self._time("chunk", started)
                yield done  # the writer's time (embedding, writing) is not this executor's
                started = time.perf_counter()

    def node_work(self) -> tuple[NodeWork, ...]:
        return ()

    def close(self) -> None:
        pass
