"""Retrieval over a published generation: dense search with filters applied inside the search.

Filters (collection, for now) become a FAISS ID selector, so a narrow filter still returns its
best k chunks rather than what survives of a shared top-k. Leaves out (for the grounded-answers
issue): lexical BM25 and fusion, reranking, access groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.records import Hit
from workbench.store import IndexReader


@dataclass(frozen=True, slots=True)
class Filters:
    """Restrictions applied inside the search. Empty means no restriction."""

    collections: tuple[str, ...] = ()

    def allowed_ids(self, reader: IndexReader) -> np.ndarray | None:
        if not self.collections:
            return None
        marks = ",".join("?" * len(self.collections))
        rows = reader.catalog.conn.execute(
            f"SELECT c.id FROM chunks c JOIN documents d USING (doc_id) WHERE d.collection IN ({marks})",
            self.collections)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)


def dense_search(reader: IndexReader, query: np.ndarray, k: int, allowed: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(scores, chunk ids) by inner product, restricted to ``allowed`` ids when given."""
    import faiss

    index = reader.vectors
    if index.ntotal == 0 or (allowed is not None and len(allowed) == 0):
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    params = None
    if allowed is not None:
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
    kk = min(k, index.ntotal if allowed is None else len(allowed))
    scores, ids = index.search(query.reshape(1, -1).astype(np.float32), kk, params=params)
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]


def search(reader: IndexReader, query_vector: np.ndarray, k: int, filters: Filters = Filters()) -> list[Hit]:
    """Top-k hits for an embedded query."""
    scores, ids = dense_search(reader, query_vector, k, filters.allowed_ids(reader))
    chunks = reader.catalog.chunks([int(i) for i in ids])
    by_id = {c.chunk_id: c for c in chunks}
    hits: list[Hit] = []
    for score, cid in zip(scores, ids):
        if int(cid) in by_id:
            hits.append(Hit(chunk=by_id[int(cid)], score=float(score), rank=len(hits) + 1))
    return hits


def hits_text(hits: Sequence[Hit]) -> str:
    return "\n".join(str(h) for h in hits)
