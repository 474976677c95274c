"""Looking inside an index: stored vectors, a 2-D map of them, near-duplicate passages.

Pure functions over vectors plus `embeddings`, which reads vectors back from a generation's FAISS
index (no re-embedding). Used by `Workbench.embeddings` / `Workbench.near_duplicates` and the
notebooks. Leaves out: plotting (the notebooks draw with matplotlib) and UMAP (PCA is enough to
see clusters and needs no extra package).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def embeddings(reader, ids: Sequence[int]) -> np.ndarray:
    """The stored (normalised) vectors of chunk ``ids``, one row each, in that order."""
    index = reader.vectors
    if not len(ids):
        return np.zeros((0, index.d), dtype="float32")
    return np.stack([index.reconstruct(int(i)) for i in ids]).astype("float32")


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The rows of ``vectors`` projected on their first two principal components (n × 2)."""
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2), dtype="float32")
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[:2].T).astype("float32")


def near_duplicate_pairs(ids: Sequence[int], vectors: np.ndarray, threshold: float = 0.9,
                         limit: int = 50) -> list[tuple[int, int, float]]:
    """Pairs of chunk ids whose cosine similarity is at least ``threshold``, most similar first.

    Exact all-pairs comparison in blocks of 1,024 rows (fine up to ~100k chunks).
    """
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, len(ids), 1024):
        block = vectors[start:start + 1024] @ vectors.T
        rows, cols = np.nonzero(block >= threshold)
        for r, c in zip(rows, cols):
            i = start + int(r)
            if int(c) > i:
                pairs.append((int(ids[i]), int(ids[int(c)]), float(block[r, c])))
    pairs.sort(key=lambda p: -p[2])
    return pairs[:limit]
