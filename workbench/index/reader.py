"""Reading one published generation: its catalog, and the searches its manifest names.

`IndexReader.open(root, settings)` opens whatever CURRENT names (so it always sees a complete
generation) with the ``[index]`` settings that say how to search it; `vector_search` and
`lexical_search` are its `VectorSearch` and `LexicalSearch` (`workbench.index.base`), and
`allowed_ids` remembers the readable set of each filter. Leaves out: writing
(`workbench.index.writer`) and ranking (`workbench.retrieve`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from workbench.config import IndexSettings
from workbench.errors import IndexCorruptError
from workbench.index.base import LexicalSearch
from workbench.index.catalog import Catalog
from workbench.index.generations import check_schema, current_generation, gen_dir
from workbench.index.lexical import Fts5Search, MatrixSearch
from workbench.index.vectors import FlatSearch, IvfSearch
from workbench.records import Filters


class IndexReader:
    """One published generation, opened read-only, searched as ``[index]`` says (nprobe,
    exact_below). Cheap to open; vectors and matrices load on first use."""

    def __init__(self, root: Path, generation: int, settings: IndexSettings | None = None) -> None:
        self.root = root
        self.generation = generation
        self.settings = settings or IndexSettings()
        self.dir = gen_dir(root, generation)
        uri = f"file:{self.dir / 'catalog.sqlite'}?mode=ro&immutable=1"
        self.catalog = Catalog(sqlite3.connect(uri, uri=True, check_same_thread=False))
        self.manifest = json.loads((self.dir / "manifest.json").read_text())
        meta = self.catalog.meta()
        check_schema(root, meta)
        # how strongly each passage's vector leans toward its document's identity (0 before it did)
        self.identity_weight = float(meta.get("identity_weight", 0) or 0)
        self._vector_search: FlatSearch | None = None
        self._lexical_search: LexicalSearch | None = None
        self._allowed: dict[tuple, np.ndarray] = {}
        self._allowed_lock = threading.Lock()
        self._opening = threading.Lock()  # many threads search one reader: each search is built once

    @classmethod
    def open(cls, root: Path, settings: IndexSettings | None = None) -> "IndexReader | None":
        """The current generation, or None for an index with nothing published."""
        for _ in range(3):  # CURRENT may move (and old generations be pruned) between read and open
            generation = current_generation(root)
            if generation is None:
                return None
            try:
                return cls(root, generation, settings)
            except (FileNotFoundError, sqlite3.OperationalError):
                time.sleep(0.05)
        raise IndexCorruptError(f"{root}: CURRENT names a generation that is missing; restore the folder from a "
                                f"backup or ingest into a new --index folder")

    @property
    def index_info(self) -> dict:
        """The manifest's description of what searches the vectors ({"kind": "flat"} before there was one)."""
        return self.manifest.get("index", {"kind": "flat"})

    @property
    def lexical_info(self) -> dict:
        """The manifest's description of what answers BM25 queries ({"kind": "fts5"}: the catalog)."""
        return self.manifest.get("lexical", {"kind": "fts5"})

    @property
    def vector_search(self) -> FlatSearch:
        """What searches this generation's vectors: exact, or its IVF index (the manifest says)."""
        if self._vector_search is None:
            self._build_searches()
        return self._vector_search

    def _build_searches(self) -> None:
        """Build the vector and lexical searches the manifest names, once (under a lock)."""
        with self._opening:
            if self._vector_search is None:
                s = self.settings
                if self.index_info.get("kind") == "ivf":
                    self._vector_search = IvfSearch(self.dir, self.allowed_ids, s.exact_below, s.nprobe)
                else:
                    self._vector_search = FlatSearch(self.dir, self.allowed_ids, s.exact_below)
            if self._lexical_search is None:
                if self.lexical_info.get("kind") == "matrix":
                    self._lexical_search = MatrixSearch(self.dir, lambda f: self.allowed_ids(f, lexical_only=True))
                else:
                    self._lexical_search = Fts5Search(self.catalog)

    @property
    def lexical_search(self) -> LexicalSearch:
        """What answers BM25 queries: the generation's matrices, or the catalog's FTS5 table."""
        if self._lexical_search is None:
            self._build_searches()
        return self._lexical_search

    @property
    def vectors(self):
        """The generation's stored vectors as a FAISS index (for exports and maps, not for search)."""
        return self.vector_search.flat

    def allowed_ids(self, filters: Filters, lexical_only: bool = False) -> np.ndarray | None:
        """`Catalog.allowed_ids`, remembered per filters: a published generation never changes, so the
        readable set of one group of users is read from SQL once per generation (the 16 latest kept)."""
        if not filters.restricts:
            return None
        key = (filters, lexical_only)
        with self._allowed_lock:
            found = self._allowed.get(key)
        if found is None:
            found = self.catalog.allowed_ids(filters, lexical_only)
            found.setflags(write=False)
            with self._allowed_lock:
                while len(self._allowed) >= 16:
                    self._allowed.pop(next(iter(self._allowed)))
                self._allowed[key] = found
        return found

    def close(self) -> None:
        self.catalog.conn.close()
