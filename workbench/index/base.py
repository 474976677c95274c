"""The two search interfaces of a generation, one per side, and the filter type they share.

`VectorSearch` answers "the k nearest vectors to this query among the chunks these filters let
through" (backends: exact `FlatSearch`, approximate `IvfSearch`, in `workbench.index.vectors`);
`LexicalSearch` answers "the n best BM25 chunks for these terms among the same chunks"
(`MatrixSearch` over bm25s matrices, `Fts5Search` over the catalog's FTS5 table, in
`workbench.index.lexical`). Both take the same `Filters` (collections, paths, groups) and apply them
inside the search, so a narrow filter still gets its best k. A reader builds the ones its
generation's manifest names (`workbench.index.reader`). Leaves out: fusion and ranking maths
(`workbench.retrieve`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from workbench.records import Filters


@runtime_checkable
class VectorSearch(Protocol):
    kind: str  # "flat" | "ivf"

    def search(self, query: np.ndarray, k: int, filters: Filters) -> list[tuple[int, float]]:
        """(chunk id, inner product) best first: the k nearest among the chunks ``filters`` allow."""
        ...

    def vector(self, chunk_id: int) -> np.ndarray | None:
        """The stored vector of a chunk, or None for a chunk without one (lexical-only)."""
        ...


@runtime_checkable
class LexicalSearch(Protocol):
    kind: str  # "matrix" | "fts5"

    def search(self, words: Sequence[str], n: int, filters: Filters, heading_weight: float = 0.5
               ) -> list[tuple[int, float]]:
        """(chunk id, BM25, higher is better) of the n best chunks holding any of ``words``."""
        ...

    def scores_of(self, words: Sequence[str], ids: Sequence[int], heading_weight: float = 0.5) -> dict[int, float]:
        """BM25 of the given chunks (those matching no word are left out)."""
        ...
