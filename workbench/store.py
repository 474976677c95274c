"""The index folder: published generations (FAISS + SQLite catalog), the write lock, the cache.

Layout::

    INDEX/CURRENT                   the published generation number (replaced atomically)
    INDEX/gen/000007/catalog.sqlite the catalog of generation 7 (never modified once published)
    INDEX/gen/000007/vectors.faiss  its vectors (faiss.write_index; IndexIDMap2 keyed by chunk id)
    INDEX/gen/000007/search.faiss   the IVF index searching them, when [index] kind asks for one
    INDEX/gen/000007/lexical/       BM25 matrices answering lexical queries, when [index] lexical asks
    INDEX/gen/000008.partial/       a generation being built (removed if its writer died)
    INDEX/embeddings.sqlite         embedding cache keyed by (model, text hash), shared by all
    INDEX/lock                      flock held by the one writer

A writer copies the current generation, changes the copy, then publishes it with a rename and an
atomic replace of CURRENT. A reader opens whatever CURRENT names, so it always sees a complete
index, and a process killed at any moment leaves the last published generation intact. Folders
the workbench creates here are 0700 and files 0600 (the service user's alone), whatever the umask.
Leaves out: deciding what changes (`workbench.sync`) and search ranking (`workbench.retrieve`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from workbench import lexical_index, vector_index
from workbench.catalog import SCHEMA_VERSION, Catalog
from workbench.config import IndexSettings
from workbench.errors import IndexBusyError, IndexCorruptError, IndexMismatchError
from workbench.files import PRIVATE_DIR, PRIVATE_FILE, private_dir, private_file
from workbench.records import Filters

def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new or truncated 0600 file and fsync it."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE), "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_generation(root: Path) -> int | None:
    """The published generation number, or None when nothing was published yet."""
    try:
        return int((root / "CURRENT").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _gen_dir(root: Path, generation: int) -> Path:
    return root / "gen" / f"{generation:06d}"


def check_schema(root: Path, meta: dict[str, str]) -> None:
    """Raise IndexMismatchError for an index written in another catalog format."""
    if meta.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise IndexMismatchError(
            f"{root} uses catalog format {meta['schema_version']}; this workbench reads format {SCHEMA_VERSION}. "
            "Ingest your sources into a new --index folder"
        )


class IndexReader:
    """One published generation, opened read-only. Cheap to open; vectors load on first use."""

    def __init__(self, root: Path, generation: int) -> None:
        self.root = root
        self.generation = generation
        self.dir = _gen_dir(root, generation)
        uri = f"file:{self.dir / 'catalog.sqlite'}?mode=ro&immutable=1"
        self.catalog = Catalog(sqlite3.connect(uri, uri=True, check_same_thread=False))
        self.manifest = json.loads((self.dir / "manifest.json").read_text())
        meta = self.catalog.meta()
        check_schema(root, meta)
        # how strongly each passage's vector leans toward its document's identity (0 before it did)
        self.identity_weight = float(meta.get("identity_weight", 0) or 0)
        self._vectors = None
        self._approximate = None
        self._lexical = None
        self._allowed: dict[tuple, np.ndarray] = {}
        self._allowed_lock = threading.Lock()
        # how an IVF index is searched: the defaults of [index]; Workbench.reader sets the config's
        self.nprobe, self.exact_below = IndexSettings().nprobe, IndexSettings().exact_below

    @property
    def index_info(self) -> dict:
        """The manifest's description of what searches the vectors ({"kind": "flat"} before there was one)."""
        return self.manifest.get("index", {"kind": "flat"})

    @property
    def approximate(self):
        """The generation's IVF index, or None when its vectors are searched exactly."""
        if self._approximate is None and self.index_info.get("kind") == "ivf":
            import faiss

            from workbench.vector_index import APPROX_FILE

            self._approximate = faiss.read_index(str(self.dir / APPROX_FILE))
        return self._approximate

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

    @property
    def lexical_info(self) -> dict:
        """The manifest's description of what answers BM25 queries ({"kind": "fts5"}: the catalog)."""
        return self.manifest.get("lexical", {"kind": "fts5"})

    @property
    def lexical(self):
        """The generation's BM25 matrices (`workbench.lexical_index.LexicalMatrix`), or None when the
        catalog's FTS5 table answers."""
        if self._lexical is None and self.lexical_info.get("kind") == "matrix":
            self._lexical = lexical_index.LexicalMatrix(self.dir / lexical_index.LEXICAL_DIR)
        return self._lexical

    @classmethod
    def open(cls, root: Path) -> "IndexReader | None":
        """The current generation, or None for an index with nothing published."""
        for _ in range(3):  # CURRENT may move (and old generations be pruned) between read and open
            generation = current_generation(root)
            if generation is None:
                return None
            try:
                return cls(root, generation)
            except (FileNotFoundError, sqlite3.OperationalError):
                time.sleep(0.05)
        raise IndexCorruptError(f"{root}: CURRENT names a generation that is missing; restore the folder from a "
                                f"backup or ingest into a new --index folder")

    @property
    def vectors(self):
        if self._vectors is None:
            import faiss

            self._vectors = faiss.read_index(str(self.dir / "vectors.faiss"))
        return self._vectors


    def close(self) -> None:
        self.catalog.conn.close()


class EmbeddingCache:
    """Vectors by (model, text hash), committed per batch so a killed run keeps its work.

    WAL with synchronous=NORMAL: a commit is not an fsync (an fsync per batch showed up as I/O
    wait while embedding); a power cut may lose the last batches of the cache, never corrupt it,
    and a lost vector is only computed again."""

    def __init__(self, path: Path, model: str) -> None:
        self.conn = sqlite3.connect(private_file(path))
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("""CREATE TABLE IF NOT EXISTS embeddings (model TEXT NOT NULL, text_hash TEXT NOT NULL,
            vector BLOB NOT NULL, PRIMARY KEY (model, text_hash)) WITHOUT ROWID""")
        self.model = model

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(hashes), 500):
            batch = list(hashes[i : i + 500])
            rows = self.conn.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE model=? AND text_hash IN ({','.join('?' * len(batch))})",
                [self.model, *batch])
            found.update({h: np.frombuffer(v, dtype=np.float32) for h, v in rows})
        return found

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                              [(self.model, h, v.astype(np.float32).tobytes()) for h, v in zip(hashes, vectors)])
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


class IndexWriter:
    """Builds the next generation under the write lock. Use as a context manager, then `publish`."""

    def __init__(self, root: Path, model: str, dim: int, wait_s: float = 0.0, keep_generations: int = 2,
                 cache_key: str | None = None, search: IndexSettings | None = None) -> None:
        """``cache_key`` names the embedding cache's vectors (default: the model; an int8 run uses
        its own, so that its vectors never stand in for float32 ones). ``search``: ``[index]``, whose
        kind, approximate_from and nprobe decide what searches the vectors (default: its defaults)."""
        self.root, self.model, self.dim = root, model, dim
        self.cache_key = cache_key or model
        self.search = search or IndexSettings()
        self.added: set[int] = set()
        self.removed: set[int] = set()
        self._base_manifest: dict | None = None
        self.wait_s, self.keep = wait_s, keep_generations
        self.published = False

    def _lock(self) -> None:
        private_dir(self.root)
        self._lock_fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(self._lock_fd, 200, 0).decode(errors="replace").strip() or "another process"
                    os.close(self._lock_fd)
                    raise IndexBusyError(
                        f"{self.root} is being updated by {holder}; try again later or pass --wait SECONDS"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"pid {os.getpid()} since {datetime.now().isoformat(timespec='seconds')}".encode(), 0)

    def __enter__(self) -> "IndexWriter":
        import faiss

        self._lock()
        try:
            gens = self.root / "gen"
            private_dir(gens)
            self.base = current_generation(self.root)
            for stale in gens.iterdir():  # left by a writer killed before or during publish; we hold the lock
                if stale.name.endswith(".partial") or (stale.name.isdigit() and int(stale.name) > (self.base or 0)):
                    shutil.rmtree(stale, ignore_errors=True)
            self.generation = (self.base or 0) + 1
            self.dir = gens / f"{self.generation:06d}.partial"
            self.dir.mkdir(mode=PRIVATE_DIR)
            conn = sqlite3.connect(private_file(self.dir / "catalog.sqlite"))
            if self.base is not None:
                src = sqlite3.connect(f"file:{_gen_dir(self.root, self.base) / 'catalog.sqlite'}?mode=ro", uri=True)
                src.backup(conn)
                src.close()
                self.vectors = faiss.read_index(str(_gen_dir(self.root, self.base) / "vectors.faiss"))
            else:
                self.vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            self.catalog = Catalog.create(conn)
            self._check_model()
            self.cache = EmbeddingCache(self.root / "embeddings.sqlite", self.cache_key)
        except BaseException:
            self._release()
            raise
        return self

    def _check_model(self) -> None:
        meta = self.catalog.meta()
        check_schema(self.root, meta)
        built = meta.get("embedding_model")
        if built is not None and (built != self.model or int(meta["embedding_dim"]) != self.dim):
            raise IndexMismatchError(
                f"{self.root} was built with embedding model {built!r}; the config says {self.model!r}. "
                "Set [embedding] model back, or ingest into a new --index folder"
            )
        self.catalog.set_meta(embedding_model=self.model, embedding_dim=str(self.dim))

    def add_vectors(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        if len(ids):
            self.vectors.add_with_ids(vectors.astype(np.float32), np.asarray(ids, dtype=np.int64))
            self.added.update(int(i) for i in ids)

    def remove_vectors(self, ids: Sequence[int]) -> None:
        if len(ids):
            self.vectors.remove_ids(np.asarray(ids, dtype=np.int64))
            self.removed.update(int(i) for i in ids)

    def _base_index(self, entry: str = "index") -> dict | None:
        """The current generation's manifest entry on what searches its vectors ("index") or its
        terms ("lexical"); None before the first publish. The manifest is read once."""
        if self.base is None:
            return None
        if self._base_manifest is None:
            try:
                self._base_manifest = json.loads((_gen_dir(self.root, self.base) / "manifest.json").read_text())
            except (OSError, ValueError):
                return None
        return self._base_manifest.get(entry, {})

    def search_index_outdated(self) -> bool:
        """True when the current generation is searched by another kind of index than ``search`` now
        asks for (``[index] kind``, ``approximate_from`` or ``lexical`` changed): publishing again rebuilds it."""
        built = self._base_index()
        if built is None:
            return False
        wanted = vector_index.resolve_kind(self.search.kind, self.vectors.ntotal, self.search.approximate_from)
        return (built.get("kind", "flat") != (wanted if self.vectors.ntotal else "flat")
                or (self._base_index("lexical") or {}).get("kind", "fts5") != self.search.lexical)

    def publish(self) -> int:
        """Write the vectors, then switch CURRENT to this generation in one atomic step."""
        import faiss

        docs, all_chunks = self.catalog.counts()
        chunks = all_chunks - len(self.catalog.lexical_only_ids())  # navigation pages have no vector
        if chunks != self.vectors.ntotal:
            raise IndexCorruptError(f"catalog has {chunks} embedded chunks but FAISS {self.vectors.ntotal} vectors; not "
                                    "publishing (the published generation is untouched; run the command again)")
        published_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.catalog.set_meta(generation=str(self.generation), published_at=published_at)
        self.catalog.conn.commit()
        base_dir = _gen_dir(self.root, self.base) if self.base is not None else None
        lexical = lexical_index.publish(self.dir, self.catalog.lexical_rows, all_chunks, self.search.lexical,
                                        self.catalog.chunks_changed, base_dir, self._base_index("lexical"))
        self.catalog.conn.close()
        faiss.write_index(self.vectors, str(private_file(self.dir / "vectors.faiss")))
        files = ["catalog.sqlite", "vectors.faiss"]
        private_file(self.dir / vector_index.APPROX_FILE)
        index = vector_index.publish(self.dir, self.vectors, self.search.kind, self.search.approximate_from,
                                     self.search.nprobe, base_dir, self._base_index(), self.removed, self.added)
        if index["kind"] == "ivf":
            files.append(vector_index.APPROX_FILE)
        else:
            (self.dir / vector_index.APPROX_FILE).unlink()
        index["bytes"] = sum((self.dir / name).stat().st_size for name in files[1:])
        manifest = {"generation": self.generation, "published_at": published_at, "documents": docs,
                    "chunks": chunks, "embedding_model": self.model, "embedding_dim": self.dim, "index": index,
                    "lexical": lexical}
        _write_private(self.dir / "manifest.json", json.dumps(manifest, indent=2))
        if lexical["kind"] == "matrix":
            files += [str(p.relative_to(self.dir)) for p in sorted((self.dir / lexical_index.LEXICAL_DIR).rglob("*"))
                      if p.is_file()]
        for name in files:
            with open(self.dir / name, "rb") as fh:
                os.fsync(fh.fileno())
        final = _gen_dir(self.root, self.generation)
        os.rename(self.dir, final)
        _fsync_dir(final.parent)
        tmp = self.root / "CURRENT.tmp"
        _write_private(tmp, f"{self.generation}\n")
        os.replace(tmp, self.root / "CURRENT")
        _fsync_dir(self.root)
        self.published = True
        self._prune()
        return self.generation

    def _prune(self) -> None:
        keep = {self.generation - i for i in range(self.keep)}
        for d in (self.root / "gen").iterdir():
            if d.name.isdigit() and int(d.name) not in keep:
                shutil.rmtree(d, ignore_errors=True)

    def _release(self) -> None:
        if not self.published and getattr(self, "dir", None) is not None:
            try:
                self.catalog.conn.close()
            except Exception:
                pass
            shutil.rmtree(self.dir, ignore_errors=True)
        if getattr(self, "cache", None) is not None:
            self.cache.close()
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)

    def __exit__(self, *exc) -> None:
        self._release()
