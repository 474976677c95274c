"""Who runs parse → chunk (→ embed) for an ingest: the `Executor` protocol (`base.py`) and one
module per executor.

- `workbench.executors.local`: this machine's sandboxed parser pool (`LocalPool`);
- `workbench.executors.cluster`: a Ray cluster's nodes (`RayCluster`), with ``[cluster] address``.

`executor_for` is the one place the choice is made. Leaves out: the sync plan and the writer
(`workbench.ingest` stays the one writer whichever executor runs).
"""

from __future__ import annotations

from workbench.config import Config
from workbench.embed import Embedder
from workbench.executors.base import Executor, Opener, Uncached, chunk_outcome
from workbench.executors.local import LocalPool

__all__ = ["Executor", "LocalPool", "Opener", "Uncached", "chunk_outcome", "executor_for"]


def executor_for(config: Config, embedder: Embedder, opener: Opener, files: int = 1) -> Executor:
    """The executor ``config`` asks for: a Ray cluster when ``[cluster] address`` is set and there
    are ``files`` to parse (connects now; ClusterError when it cannot), else the local parser pool."""
    if config.cluster.address and files:
        from workbench.executors.cluster import RayCluster  # imports Ray only when asked

        return RayCluster(config, embedder, opener)
    return LocalPool(config, embedder.count_tokens, opener)
