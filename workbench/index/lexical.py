"""The lexical side of a generation: BM25 as sparse matrices (bm25s), built at publish.

Every catalog keeps each chunk's analysed terms in its SQLite FTS5 table (`workbench.index.catalog`);
``[index] lexical`` decides what answers BM25 queries: ``matrix`` (the default: this module) or
``fts5`` (the table itself). The matrices are faster at every size (1M chunks: 4 ms p50 against
98 ms for FTS5; 100k: 0.9 ms against 9.6 ms) and score textbook BM25, where FTS5's IDF is zero for
a word found in over half the chunks (measured: README, "An index sized to the corpus").

bm25s's eager BM25 keeps one sparse column per term holding that term's precomputed score in every
chunk (Lucene's form, k1 = 1.2 and b = 0.75 as FTS5), so a query adds a few columns into one score
array and takes its top n. Two matrices, one over the chunks' text terms and one over their heading
terms, are summed with ``heading_weight`` (FTS5 weighs its columns inside one BM25 over the whole
row instead, so the two engines' scores differ in detail). The files live in the
generation's folder (``lexical/``), written before CURRENT moves, so the matrices always match
their catalog. A publish that changed no chunk links the previous generation's files; any other
publish rebuilds them from the catalog (about 60 s per million chunks, measured). Filters and
access groups apply inside the search, as a mask of the readable chunk ids, before the top n are
taken. `MatrixSearch` and `Fts5Search` are the two `LexicalSearch` backends. Leaves out: the
analysis of text into terms (`workbench.analyze`) and fusion with the dense
side (`workbench.retrieve`).
"""

from __future__ import annotations

import os
import shutil
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench.index.catalog import Catalog
from workbench.records import Filters

LEXICAL_DIR = "lexical"
K1, B = 1.2, 0.75  # FTS5's bm25() constants, so both engines weigh term frequency alike
_FIELDS = ("text", "headings")


def _bm25(docs: list[array], vocab: dict[str, int]):
    import bm25s

    model = bm25s.BM25(k1=K1, b=B, method="lucene")
    model.index((docs, vocab), show_progress=False, create_empty_token=True)
    return model


def build(rows: Iterable[tuple[int, str, str]], dest: Path) -> dict[str, Any]:
    """Write the matrices for ``rows`` ((chunk id, text terms, heading terms), ids ascending) under
    ``dest``/lexical; the manifest's "lexical" entry."""
    started = time.perf_counter()
    ids = array("q")
    docs: dict[str, list[array]] = {f: [] for f in _FIELDS}
    vocabs: dict[str, dict[str, int]] = {f: {} for f in _FIELDS}
    for chunk_id, text, headings in rows:
        ids.append(chunk_id)
        for field, value in zip(_FIELDS, (text, headings)):
            vocab = vocabs[field]
            docs[field].append(array("i", [vocab.setdefault(w, len(vocab)) for w in value.split()]))
    out = dest / LEXICAL_DIR
    out.mkdir(mode=0o700)
    np.save(out / "ids.npy", np.frombuffer(ids, dtype=np.int64) if len(ids) else np.zeros(0, np.int64))
    for field in _FIELDS:
        if vocabs[field] and len(ids):
            _bm25(docs[field], vocabs[field]).save(str(out / field))
        docs[field].clear()
    for path in out.rglob("*"):  # bm25s and numpy create files by the umask; the index is the service user's
        path.chmod(0o700 if path.is_dir() else 0o600)
    return {"kind": "matrix", "chunks": len(ids), "terms": len(vocabs["text"]), "reused": False,
            "build_s": round(time.perf_counter() - started, 2), "bytes": _size(out)}


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _link_tree(src: Path, dst: Path) -> None:
    """``dst`` as hard links to ``src``'s files (a copy where links are refused): published
    generations are never modified, so sharing their files is safe."""
    dst.mkdir(mode=0o700)
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
            continue
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def publish(dest: Path, rows, n_chunks: int, kind: str, chunks_changed: bool, previous_dir: Path | None,
            previous_info: dict | None) -> dict[str, Any]:
    """Give generation ``dest`` its lexical matrices when ``kind`` asks for them: the previous
    generation's when no chunk changed, else built from ``rows()`` (a callable giving the catalog's
    (chunk id, text terms, heading terms)). The manifest's "lexical" entry ({"kind": "fts5"} when
    the catalog's FTS5 table answers)."""
    if kind != "matrix":
        return {"kind": "fts5"}
    prev = previous_info or {}
    source = previous_dir / LEXICAL_DIR if previous_dir is not None else None
    if (not chunks_changed and prev.get("kind") == "matrix" and prev.get("chunks") == n_chunks
            and source is not None and source.is_dir()):
        started = time.perf_counter()
        _link_tree(source, dest / LEXICAL_DIR)
        return {**prev, "reused": True, "build_s": round(time.perf_counter() - started, 2)}
    return build(rows(), dest)


class LexicalMatrix:
    """A generation's BM25 matrices, memory-mapped (opening costs little; pages load as queried)."""

    def __init__(self, folder: Path) -> None:
        import bm25s

        self.ids = np.load(folder / "ids.npy", mmap_mode="r", allow_pickle=False)
        self.fields = {}
        for field in _FIELDS:
            if (folder / field).is_dir():
                model = bm25s.BM25.load(str(folder / field), mmap=True, load_corpus=False)
                self.fields[field] = model

    def _scores(self, words: Sequence[str], heading_weight: float) -> np.ndarray | None:
        """BM25 of every row for ``words`` (None when no word is in the vocabulary)."""
        total = None
        for field, weight in (("text", 1.0), ("headings", heading_weight)):
            model = self.fields.get(field)
            known = [model.vocab_dict[w] for w in dict.fromkeys(words) if model is not None and w in model.vocab_dict]
            if not known or weight <= 0:
                continue
            scores = model.get_scores_from_ids(known)
            total = scores * weight if total is None else total + scores * weight
        return total

    def _rows(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, the ids found there) for the ``ids`` this matrix holds."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = np.searchsorted(self.ids, ids)
        inside = rows < len(self.ids)
        rows, ids = rows[inside], ids[inside]
        held = self.ids[rows] == ids
        return rows[held], ids[held]

    def search(self, words: Sequence[str], n: int, allowed: np.ndarray | None, heading_weight: float = 0.5
               ) -> list[tuple[int, float]]:
        """(chunk id, BM25) of the ``n`` best chunks holding any of ``words``, among ``allowed`` ids
        (every chunk when None), best first."""
        total = self._scores(words, heading_weight)
        if total is None or n <= 0:
            return []
        if allowed is not None:
            rows, _ = self._rows(allowed)
            masked = np.zeros_like(total)
            masked[rows] = total[rows]
            total = masked
        n = min(n, int(np.count_nonzero(total > 0)))
        if n == 0:
            return []
        top = np.argpartition(-total, n - 1)[:n]
        top = top[np.lexsort((self.ids[top], -total[top]))]
        return [(int(self.ids[i]), float(total[i])) for i in top]

    def scores_of(self, words: Sequence[str], ids: Sequence[int], heading_weight: float = 0.5) -> dict[int, float]:
        """BM25 of the given chunks for ``words`` (chunks matching none of them are left out)."""
        total = self._scores(words, heading_weight)
        if total is None or not len(ids):
            return {}
        rows, found = self._rows(np.asarray(ids))
        return {int(i): float(total[r]) for r, i in zip(rows, found) if total[r] > 0}


class MatrixSearch:
    """BM25 on the generation's matrices, the readable set applied as a mask before the top n."""

    kind = "matrix"

    def __init__(self, folder: Path, allowed: Callable[[Filters], "np.ndarray | None"]) -> None:
        self.matrix = LexicalMatrix(folder / LEXICAL_DIR)
        self.allowed = allowed  # filters -> readable chunk ids, lexical-only chunks included

    def search(self, words: Sequence[str], n: int, filters: Filters, heading_weight: float = 0.5
               ) -> list[tuple[int, float]]:
        return self.matrix.search(words, n, self.allowed(filters), heading_weight)

    def scores_of(self, words: Sequence[str], ids: Sequence[int], heading_weight: float = 0.5) -> dict[int, float]:
        return self.matrix.scores_of(words, ids, heading_weight)


class Fts5Search:
    """BM25 from the catalog's FTS5 table, the filters joined into its SQL."""

    kind = "fts5"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def search(self, words: Sequence[str], n: int, filters: Filters, heading_weight: float = 0.5
               ) -> list[tuple[int, float]]:
        return self.catalog.bm25(words, n, filters, heading_weight)

    def scores_of(self, words: Sequence[str], ids: Sequence[int], heading_weight: float = 0.5) -> dict[int, float]:
        return self.catalog.bm25_of(words, ids, heading_weight)
