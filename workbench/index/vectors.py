"""Which FAISS index searches a generation's vectors, how it is built at publish, how it is searched.

Every generation keeps its vectors exactly in ``vectors.faiss`` (an IndexIDMap2 over IndexFlatIP:
the writer's working copy, the source of stored vectors). ``[index] kind`` decides what *searches*
them: ``flat`` searches that exactly; ``ivf`` adds ``search.faiss``, a FAISS IVF-Flat index (inner
product) trained at publish; ``auto`` is exact below ``[index] approximate_from`` vectors and IVF
from there. A publish after a small re-sync does not retrain: it copies the previous generation's
IVF index and applies the same removals and additions, and retrains only when the number of
vectors has doubled or halved since it was trained. Each IVF publish measures recall@10 against
exact search on stored vectors and records it in the manifest (`workbench status` shows it).

Filters and access groups stay inside the search: a query whose readable set is small (under
``[index] exact_below`` chunks) is answered exactly over that set; a larger one runs IVF with the
set as a FAISS ID selector inside the probed lists, and falls back to exact search when fewer than
the wanted number come back. `FlatSearch` and `IvfSearch` are the two `VectorSearch` backends.
Leaves out: product quantization and HNSW (not measured better here), and the lexical side
(`workbench.index.lexical`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from workbench.records import Filters

VECTORS_FILE = "vectors.faiss"
APPROX_FILE = "search.faiss"
RECALL_QUERIES = 200


def resolve_kind(kind: str, n: int, approximate_from: int) -> str:
    """"flat" or "ivf" for ``n`` vectors under setting ``kind``."""
    if kind == "auto":
        return "ivf" if n >= approximate_from else "flat"
    return kind


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` vectors: about 4·sqrt(n), with at least 39 training points per list."""
    return int(max(1, min(4 * math.sqrt(n), n // 39, 65536)))


def _all_vectors(flat) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of an IndexIDMap2 over a flat index, in storage order."""
    import faiss

    ids = faiss.vector_to_array(flat.id_map).astype(np.int64)
    return ids, flat.index.reconstruct_n(0, flat.ntotal)


def build_ivf(flat, seed: int = 1):
    """A new IVF-Flat index over every vector of ``flat`` (trained on up to 64 points per list)."""
    import faiss

    ids, xb = _all_vectors(flat)
    nlist = nlist_for(len(ids))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(flat.d), flat.d, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = xb if len(xb) <= 64 * nlist else xb[rng.choice(len(xb), 64 * nlist, replace=False)]
    ivf.cp.max_points_per_centroid = 64
    ivf.train(np.ascontiguousarray(sample))
    ivf.add_with_ids(xb, ids)
    return ivf


def update_ivf(previous, flat, removed: set[int], added: set[int]):
    """``previous`` (the last generation's IVF index) with ``removed`` ids taken out and ``added``
    ones put in from ``flat``; None when the result would not hold exactly ``flat``'s vectors."""
    if removed:
        previous.remove_ids(np.fromiter(removed, dtype=np.int64))
    present = [i for i in added if _has(flat, i)]  # not those added and removed again in this run
    if present:
        keys = np.asarray(present, dtype=np.int64)
        previous.add_with_ids(flat.reconstruct_batch(keys), keys)
    return previous if previous.ntotal == flat.ntotal else None


def _has(flat, chunk_id: int) -> bool:
    try:
        flat.reconstruct(int(chunk_id))
        return True
    except RuntimeError:
        return False


def measure_recall(flat, ivf, nprobe: int, k: int = 10, queries: int = RECALL_QUERIES, seed: int = 2) -> float:
    """Mean recall@k of ``ivf`` at ``nprobe`` against exact search, the queries being stored vectors
    (each query's own vector left out of both lists)."""
    import faiss

    n = flat.ntotal
    if n <= k + 1:
        return 1.0
    ids, xb = _all_vectors(flat)
    rng = np.random.default_rng(seed)
    pick = rng.choice(n, min(queries, n), replace=False)
    q = np.ascontiguousarray(xb[pick])
    _, exact = flat.search(q, k + 1)
    _, approx = ivf.search(q, k + 1, params=faiss.SearchParametersIVF(nprobe=nprobe))
    hits = 0
    for own, e, a in zip(ids[pick], exact, approx):
        truth = [i for i in e if i != own][:k]
        got = {i for i in a if i != own}
        hits += len(got.intersection(truth))
    return hits / (k * len(pick))


def publish(dest: Path, flat, kind: str, approximate_from: int, nprobe: int, previous_dir: Path | None,
            previous_info: dict | None, removed: set[int], added: set[int]) -> dict[str, Any]:
    """Write ``dest``/search.faiss when the generation is searched by IVF; the manifest's "index" entry."""
    import faiss

    chosen = resolve_kind(kind, flat.ntotal, approximate_from)
    if chosen != "ivf" or flat.ntotal == 0:
        return {"kind": "flat"}
    started = time.perf_counter()
    ivf, trained_on = None, flat.ntotal
    prev = previous_info or {}
    if (previous_dir is not None and prev.get("kind") == "ivf" and (previous_dir / APPROX_FILE).exists()
            and prev["trained_on"] / 2 <= flat.ntotal <= prev["trained_on"] * 2):
        ivf = update_ivf(faiss.read_index(str(previous_dir / APPROX_FILE)), flat, removed, added)
        trained_on = prev["trained_on"]
    rebuilt = ivf is None
    if rebuilt:
        ivf, trained_on = build_ivf(flat), flat.ntotal
    faiss.write_index(ivf, str(dest / APPROX_FILE))
    return {"kind": "ivf", "nlist": int(ivf.nlist), "nprobe": nprobe, "trained_on": int(trained_on),
            "retrained": rebuilt, "build_s": round(time.perf_counter() - started, 2),
            "recall_at_10": round(measure_recall(flat, ivf, nprobe), 4)}


def search(flat, ivf, query: np.ndarray, k: int, allowed: np.ndarray | None, nprobe: int,
           exact_below: int) -> list[tuple[int, float]]:
    """(chunk id, inner product) best first: the k nearest among ``allowed`` ids (all when None)."""
    import faiss

    q = query.reshape(1, -1).astype(np.float32)
    if allowed is not None and len(allowed) == 0 or flat.ntotal == 0:
        return []
    kk = min(k, flat.ntotal if allowed is None else len(allowed))
    if ivf is not None and (allowed is None or len(allowed) >= exact_below):
        sel = faiss.IDSelectorBatch(allowed) if allowed is not None else None
        scores, ids = ivf.search(q, kk, params=faiss.SearchParametersIVF(nprobe=nprobe, sel=sel))
        found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        if len(found) >= kk:
            return found
    if allowed is not None and len(allowed) < exact_below:  # exact over a small readable set
        keys = np.asarray(allowed, dtype=np.int64)
        scores = flat.reconstruct_batch(keys) @ q[0]
        top = np.argsort(-scores, kind="stable")[:kk]
        return [(int(keys[i]), float(scores[i])) for i in top]
    params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed)) if allowed is not None else None
    scores, ids = flat.search(q, kk, params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


Allowed = Callable[[Filters], "np.ndarray | None"]  # filters -> readable chunk ids with a vector (None: all)


class FlatSearch:
    """Exact inner product over a generation's stored vectors (loaded on first use)."""

    kind = "flat"

    def __init__(self, folder: Path, allowed: Allowed, exact_below: int) -> None:
        self.folder, self.allowed, self.exact_below = folder, allowed, exact_below
        self._flat = None
        self._loading = threading.Lock()  # the web app searches from many threads: load once

    @property
    def flat(self):
        """The generation's vectors: a FAISS IndexIDMap2 over IndexFlatIP, keyed by chunk id."""
        if self._flat is None:
            with self._loading:
                if self._flat is None:
                    import faiss

                    self._flat = faiss.read_index(str(self.folder / VECTORS_FILE))
        return self._flat

    def search(self, query: np.ndarray, k: int, filters: Filters) -> list[tuple[int, float]]:
        return search(self.flat, None, query, k, self.allowed(filters), 0, self.exact_below)

    def exact(self) -> "FlatSearch":
        """Exact search over the same vectors (sharing what is loaded)."""
        flat = FlatSearch(self.folder, self.allowed, self.exact_below)
        flat._flat = self.flat
        return flat

    def vector(self, chunk_id: int) -> np.ndarray | None:
        try:
            return self.flat.reconstruct(int(chunk_id))
        except RuntimeError:  # no vector under that id
            return None


class IvfSearch(FlatSearch):
    """FAISS IVF-Flat over the same vectors, probing ``nprobe`` lists; exact where `search` says."""

    kind = "ivf"

    def __init__(self, folder: Path, allowed: Allowed, exact_below: int, nprobe: int) -> None:
        super().__init__(folder, allowed, exact_below)
        self.nprobe = nprobe
        self._ivf = None

    @property
    def ivf(self):
        """The generation's trained IVF index."""
        if self._ivf is None:
            with self._loading:
                if self._ivf is None:
                    import faiss

                    self._ivf = faiss.read_index(str(self.folder / APPROX_FILE))
        return self._ivf

    def probing(self, nprobe: int) -> "IvfSearch":
        """The same IVF index probing ``nprobe`` lists (sharing what is loaded)."""
        other = IvfSearch(self.folder, self.allowed, self.exact_below, nprobe)
        other._flat, other._ivf = self.flat, self.ivf
        return other

    def search(self, query: np.ndarray, k: int, filters: Filters) -> list[tuple[int, float]]:
        return search(self.flat, self.ivf, query, k, self.allowed(filters), self.nprobe, self.exact_below)
