"""Building the next generation under the write lock, and publishing it in one atomic step.

`IndexWriter` copies the current generation (catalog and vectors), takes the changes as
document-level operations (`delete_documents`, `move_document`, `add_document`, `add_chunks`:
each keeps the catalog and the vectors in step, so no caller pairs them by hand), then publishes:
the vectors, the search index `[index]` asks for (`workbench.index.vectors`), the BM25 matrices
(`workbench.index.lexical`), the manifest, a rename and an atomic replace of CURRENT. A process
killed at any moment leaves the last published generation intact. Leaves out: what changed
(`workbench.sync`) and reading (`workbench.index.reader`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from workbench.config import IndexSettings
from workbench.errors import IndexBusyError, IndexCorruptError, IndexMismatchError
from workbench.files import PRIVATE_DIR, PRIVATE_FILE, private_dir, private_file
from workbench.index import lexical as lexical_index
from workbench.index import vectors as vector_index
from workbench.index.cache import EmbeddingCache
from workbench.index.catalog import Catalog
from workbench.index.generations import check_schema, current_generation, fsync_dir, gen_dir, write_private
from workbench.records import Chunk, Document, OcrPage


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
                src = sqlite3.connect(f"file:{gen_dir(self.root, self.base) / 'catalog.sqlite'}?mode=ro", uri=True)
                src.backup(conn)
                src.close()
                self.vectors = faiss.read_index(str(gen_dir(self.root, self.base) / "vectors.faiss"))
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

    # ---- document-level changes: each keeps the catalog and the vectors in step ------------------

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        """Remove documents with their chunks, their terms and their vectors."""
        self.remove_vectors(self.catalog.chunk_ids_of(doc_ids))
        self.catalog.delete_documents(doc_ids)

    def move_document(self, doc_id: str, path: str, size: int, mtime: float) -> None:
        """A document's file was renamed, moved or only touched: its chunks and vectors stay."""
        self.catalog.move_document(doc_id, path, size, mtime)

    def add_document(self, doc: Document, root: str, text: str, metadata: dict[str, str],
                     ocr_pages: Sequence[OcrPage] = ()) -> None:
        """A new document, with the pages OCR read (its chunks follow with `add_chunks`)."""
        self.catalog.insert_document(doc, root, text, metadata, ocr_pages)

    def add_chunks(self, chunks: Sequence[Chunk], terms: Sequence[tuple[str, str]], vector_ids: Sequence[int],
                   vectors: np.ndarray | None, lexical_only: Sequence[int] = ()) -> None:
        """Chunks with their (text, heading) terms; ``vectors`` are those of ``vector_ids``, and the
        ``lexical_only`` ids get none (they are found by BM25 alone)."""
        if vectors is not None:
            self.add_vectors(vector_ids, vectors)
        if lexical_only:
            self.catalog.mark_lexical_only(sorted(lexical_only))
        self.catalog.insert_chunks(chunks, terms)

    # ---- vectors -------------------------------------------------------------------------------

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
                self._base_manifest = json.loads((gen_dir(self.root, self.base) / "manifest.json").read_text())
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
        base_dir = gen_dir(self.root, self.base) if self.base is not None else None
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
        write_private(self.dir / "manifest.json", json.dumps(manifest, indent=2))
        if lexical["kind"] == "matrix":
            files += [str(p.relative_to(self.dir)) for p in sorted((self.dir / lexical_index.LEXICAL_DIR).rglob("*"))
                      if p.is_file()]
        for name in files:
            with open(self.dir / name, "rb") as fh:
                os.fsync(fh.fileno())
        final = gen_dir(self.root, self.generation)
        os.rename(self.dir, final)
        fsync_dir(final.parent)
        tmp = self.root / "CURRENT.tmp"
        write_private(tmp, f"{self.generation}\n")
        os.replace(tmp, self.root / "CURRENT")
        fsync_dir(self.root)
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
