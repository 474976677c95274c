"""The SQLite catalog of one index generation: documents, chunks, full text, OCR pages, sources, failures.

Schema and queries only; `workbench.index.reader` and `writer` decide which file is opened, read-only or for a new
generation. Chunks carry their FAISS id as their primary key, and an FTS5 table (written beside
each chunk by `insert_chunks`, removed with it) indexes its analysed text and heading path. Chunks listed in
``lexical_only`` (tables of contents, back-of-book indexes) have no FAISS vector. Every
SQL statement of the index lives here, the search filters (`Filters` → SQL) included; ranking maths
stay in `workbench.retrieve`. Pages read by OCR have their own table (``ocr_pages``); a catalog
written before it (their confidences were JSON in a document's metadata) is moved over when a writer
opens it and read through a temporary view when opened read-only, so the format stays "2" (an
addition, like ``lexical_only``). Leaves out: vectors (FAISS) and the embedding cache.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence

import numpy as np

from workbench.records import DENY, Chunk, Document, FailureKind, FileFailure, Filters, OcrPage

SCHEMA_VERSION = "2"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
  root TEXT NOT NULL, collection TEXT NOT NULL, added_at REAL NOT NULL, last_sync REAL,
  PRIMARY KEY (root, collection));
CREATE TABLE IF NOT EXISTS documents (
  doc_id TEXT PRIMARY KEY, collection TEXT NOT NULL, source_root TEXT NOT NULL, path TEXT NOT NULL,
  part TEXT NOT NULL DEFAULT '', title TEXT NOT NULL, format TEXT NOT NULL, size INTEGER NOT NULL,
  mtime REAL NOT NULL, content_hash TEXT NOT NULL, groups TEXT NOT NULL DEFAULT '[]',
  metadata TEXT NOT NULL DEFAULT '{}', text TEXT NOT NULL, ingested_at REAL NOT NULL,
  language TEXT NOT NULL DEFAULT 'und',
  UNIQUE (collection, path, part));
CREATE INDEX IF NOT EXISTS documents_source ON documents (collection, source_root);
CREATE INDEX IF NOT EXISTS documents_hash ON documents (content_hash);
CREATE TABLE IF NOT EXISTS chunks (
  id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(doc_id), ordinal INTEGER NOT NULL,
  page INTEGER, sheet TEXT, headings TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
  text TEXT NOT NULL, text_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
-- Full text: each chunk's analysed terms (language-aware stems, stop words removed, accents
-- folded; see workbench.analyze) and its heading path's terms. rowid = chunk id.
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(terms, heading_terms, tokenize='unicode61 remove_diacritics 0');
-- Chunks searched by BM25 only, with no vector in FAISS: tables of contents and back-of-book
-- indexes (`workbench.chunk.is_navigation`). Absent from catalogs written before it existed.
CREATE TABLE IF NOT EXISTS lexical_only (id INTEGER PRIMARY KEY);
-- Pages read by OCR and the mean confidence of their words (0-100). Catalogs written before this
-- table kept them as JSON in documents.metadata: see LEGACY_OCR_PAGES.
CREATE TABLE IF NOT EXISTS ocr_pages (
  doc_id TEXT NOT NULL REFERENCES documents(doc_id), page INTEGER NOT NULL, confidence REAL NOT NULL,
  words INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (doc_id, page));
CREATE TABLE IF NOT EXISTS failures (
  collection TEXT NOT NULL, path TEXT NOT NULL, source_root TEXT NOT NULL, reason TEXT NOT NULL,
  size INTEGER, mtime REAL, at REAL NOT NULL, kind TEXT NOT NULL DEFAULT 'parse', PRIMARY KEY (collection, path));
"""

# The OCR pages of a catalog written before the ocr_pages table, where each document's metadata held
# {"ocr_pages": "{\"<page>\": <confidence>, ...}"}: copied into the table when a writer opens it,
# read through a temporary view of the same name when it is opened read-only.
LEGACY_OCR_PAGES = """SELECT d.doc_id AS doc_id, CAST(j.key AS INTEGER) AS page, j.value AS confidence, 0 AS words
  FROM documents d, json_each(json_extract(d.metadata, '$.ocr_pages')) j"""

_UNDER = "(path = ? OR substr(path, 1, length(?)) = ?)"  # params: root, root + "/", root + "/"
_DOC_COLS = "doc_id, collection, path, part, title, format, size, mtime, content_hash, groups, language"
_CHUNK_SELECT = """SELECT c.id, c.doc_id, c.ordinal, c.text, c.start, c."end", c.page, c.sheet, c.headings,
  c.text_hash, d.collection, d.path, d.part, d.title, d.format FROM chunks c JOIN documents d USING (doc_id)"""


def _chunk(row: Sequence) -> Chunk:
    return Chunk(chunk_id=row[0], doc_id=row[1], ordinal=row[2], text=row[3], start=row[4], end=row[5],
                 page=row[6], sheet=row[7], headings=tuple(json.loads(row[8])), text_hash=row[9],
                 collection=row[10], path=row[11], part=row[12], title=row[13], format=row[14])


def _where(filters: Filters) -> tuple[str, list]:
    """A SQL condition over ``documents d`` and its parameters ('1' when unrestricted); the same
    rule as `Filters.admits` (a test holds the two together)."""
    parts, params = [], []
    for column, values in (("d.collection", filters.collections), ("d.format", filters.formats)):
        if values:
            parts.append(f"{column} IN ({','.join('?' * len(values))})")
            params += list(values)
    if filters.path_glob:
        parts.append("d.path GLOB ?")
        params.append(filters.path_glob)
    if filters.modified_after is not None:
        parts.append("d.mtime >= ?")
        params.append(filters.modified_after)
    if filters.modified_before is not None:
        parts.append("d.mtime < ?")
        params.append(filters.modified_before)
    if filters.groups is not None:  # one of the reader's entries, and none of them denied ("!" + entry)
        marks = ",".join("?" * len(filters.groups)) or "NULL"
        parts.append(f"EXISTS (SELECT 1 FROM json_each(d.groups) g WHERE g.value IN ({marks})) AND NOT EXISTS "
                     f"(SELECT 1 FROM json_each(d.groups) g WHERE g.value IN ({marks}))")
        params += list(filters.groups) + [DENY + g for g in filters.groups]
    return (" AND ".join(parts) or "1"), params


def _match(words: Sequence[str]) -> str:
    """An FTS5 query matching any of ``words`` (each quoted, so none is read as an operator)."""
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM main.sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _document(row: Sequence, n_chunks: int = 0) -> Document:
    return Document(doc_id=row[0], collection=row[1], path=row[2], part=row[3], title=row[4], format=row[5],
                    size=row[6], mtime=row[7], content_hash=row[8], groups=tuple(json.loads(row[9])),
                    language=row[10], n_chunks=n_chunks)


class Catalog:
    """Queries over one catalog connection (read-only or read-write)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.chunks_changed = False  # set by writes that add or remove chunks (a new generation's catalog)
        if not _has_table(conn, "ocr_pages"):  # a catalog from before the table, opened read-only
            conn.execute(f"CREATE TEMP VIEW IF NOT EXISTS ocr_pages AS {LEGACY_OCR_PAGES}")

    @classmethod
    def create(cls, conn: sqlite3.Connection) -> "Catalog":
        legacy_ocr = _has_table(conn, "documents") and not _has_table(conn, "ocr_pages")
        conn.executescript(SCHEMA)
        if legacy_ocr:  # move each document's OCR pages out of its metadata into their table
            conn.execute(f"INSERT INTO ocr_pages {LEGACY_OCR_PAGES}")
            conn.execute("UPDATE documents SET metadata = json_remove(metadata, '$.ocr_pages', '$.ocr_seconds') "
                         "WHERE json_extract(metadata, '$.ocr_pages') IS NOT NULL")
        if "kind" not in {r[1] for r in conn.execute("PRAGMA table_info(failures)")}:  # written before kinds
            conn.execute("ALTER TABLE failures ADD COLUMN kind TEXT NOT NULL DEFAULT 'parse'")
            conn.execute("UPDATE failures SET kind='too_large' WHERE reason LIKE '%(ingest.max_file_mb)'")
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        return cls(conn)

    # ---- reading -------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def counts(self) -> tuple[int, int]:
        docs = self.conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return docs, chunks

    def collections(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT collection, count(*) FROM documents GROUP BY collection"))

    def sources(self) -> list[dict[str, str]]:
        rows = self.conn.execute("SELECT root, collection FROM sources ORDER BY collection, root")
        return [{"root": r, "collection": c} for r, c in rows]

    def failures(self) -> list[FileFailure]:
        kinds = "kind" if "kind" in {r[1] for r in self.conn.execute("PRAGMA table_info(failures)")} else "'parse'"
        rows = self.conn.execute(f"SELECT path, reason, collection, {kinds} FROM failures ORDER BY path")
        return [FileFailure(path=p, reason=r, collection=c, kind=FailureKind(k)) for p, r, c, k in rows]

    def failure_signatures(self, collection: str, root: str) -> dict[str, tuple[int, float, str, FailureKind]]:
        """Past failures of files at or under ``root`` in ``collection``: (size, mtime, reason, kind)."""
        rows = self.conn.execute(
            f"SELECT path, size, mtime, reason, kind FROM failures WHERE collection=? AND {_UNDER}",
            (collection, root, root + "/", root + "/"))
        return {p: (s, m, r, FailureKind(k)) for p, s, m, r, k in rows}

    def documents(self, collection: str | None = None) -> list[Document]:
        sql = f"""SELECT {_DOC_COLS}, (SELECT count(*) FROM chunks c WHERE c.doc_id = d.doc_id)
                  FROM documents d {'WHERE collection=?' if collection else ''} ORDER BY path, part"""
        rows = self.conn.execute(sql, (collection,) if collection else ())
        return [_document(r[:-1], r[-1]) for r in rows]

    def document(self, doc_id: str) -> Document | None:
        row = self.conn.execute(f"SELECT {_DOC_COLS} FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return _document(row) if row else None

    def source_documents(self, collection: str, root: str) -> list[Document]:
        """Documents of files at or under ``root`` (whichever source first added them)."""
        rows = self.conn.execute(f"SELECT {_DOC_COLS} FROM documents WHERE collection=? AND {_UNDER}",
                                 (collection, root, root + "/", root + "/"))
        return [_document(r) for r in rows]

    def chunk_ids_of(self, doc_ids: Iterable[str]) -> list[int]:
        ids: list[int] = []
        for doc_id in doc_ids:
            ids += [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE doc_id=?", (doc_id,))]
        return ids

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """Chunks by FAISS id, in the order given (unknown ids are skipped)."""
        found: dict[int, Chunk] = {}
        for i in range(0, len(ids), 500):
            batch = [int(x) for x in ids[i : i + 500]]
            marks = ",".join("?" * len(batch))
            for row in self.conn.execute(f"{_CHUNK_SELECT} WHERE c.id IN ({marks})", batch):
                found[row[0]] = _chunk(row)
        return [found[int(i)] for i in ids if int(i) in found]

    def allowed_ids(self, filters: Filters, lexical_only: bool = False) -> np.ndarray | None:
        """Ids of the chunks with a vector passing ``filters`` (``lexical_only``: those without one
        too); None when the filters restrict nothing."""
        if not filters.restricts:
            return None
        cond, params = _where(filters)
        # documents first, then their chunks by index (not every chunk joined to its document)
        sql = f"SELECT c.id FROM documents d CROSS JOIN chunks c ON c.doc_id = d.doc_id WHERE {cond}"
        if lexical_only:
            rows = self.conn.execute(sql, params).fetchall()
            return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        try:
            rows = self.conn.execute(sql + " AND c.id NOT IN (SELECT id FROM lexical_only)", params).fetchall()
        except sqlite3.OperationalError:  # a catalog from before lexical-only chunks existed
            rows = self.conn.execute(sql, params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def bm25(self, words: Sequence[str], n: int, filters: Filters, heading_weight: float = 0.5
             ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score, higher is better) of the ``n`` best chunks matching any of ``words``
        among those passing ``filters``."""
        if not words:
            return []
        match = _match(words)
        cond, params = _where(filters)
        join = "" if cond == "1" else "JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.doc_id = c.doc_id"
        sql = (f"SELECT f.rowid, bm25(chunks_fts, 1.0, ?) AS s FROM chunks_fts f {join} "
               f"WHERE chunks_fts MATCH ? AND {cond} ORDER BY s LIMIT ?")
        return [(int(i), -float(s)) for i, s in self.conn.execute(sql, [heading_weight, match, *params, n])]

    def bm25_of(self, words: Sequence[str], ids: Sequence[int], heading_weight: float = 0.5) -> dict[int, float]:
        """BM25 (higher is better) of the given chunks for ``words``; chunks matching none are left out."""
        if not words or not ids:
            return {}
        match = _match(words)
        found: dict[int, float] = {}
        for i in range(0, len(ids), 500):
            batch = [int(x) for x in ids[i : i + 500]]
            sql = (f"SELECT rowid, bm25(chunks_fts, 1.0, ?) FROM chunks_fts WHERE chunks_fts MATCH ? "
                   f"AND rowid IN ({','.join('?' * len(batch))})")
            found.update((int(r), -float(s)) for r, s in self.conn.execute(sql, [heading_weight, match, *batch]))
        return found

    def ocr_pages(self, doc_ids: Iterable[str]) -> dict[str, dict[int, float]]:
        """{doc id: {page: mean OCR word confidence}} for those of ``doc_ids`` with pages read by OCR."""
        ids = list(dict.fromkeys(doc_ids))
        found: dict[str, dict[int, float]] = {}
        for i in range(0, len(ids), 500):
            batch = ids[i : i + 500]
            rows = self.conn.execute(f"SELECT doc_id, page, confidence FROM ocr_pages WHERE doc_id IN "
                                     f"({','.join('?' * len(batch))})", batch)
            for doc_id, page, confidence in rows:
                found.setdefault(doc_id, {})[int(page)] = float(confidence)
        return found

    def identities(self) -> dict[str, str]:
        """{doc id: the identity line mixed into its passages' vectors} of every document that has one."""
        rows = self.conn.execute("SELECT doc_id, json_extract(metadata, '$.identity') FROM documents "
                                 "WHERE json_extract(metadata, '$.identity') IS NOT NULL")
        return dict(rows)

    def low_confidence_pages(self, below: float) -> list[tuple[str, int, float]]:
        """(path, page, confidence) of every page read by OCR with a mean word confidence below ``below``."""
        rows = self.conn.execute("SELECT d.path || CASE d.part WHEN '' THEN '' ELSE ' » ' || d.part END, o.page, "
                                 "o.confidence FROM ocr_pages o JOIN documents d USING (doc_id) WHERE o.confidence < ? "
                                 "ORDER BY d.path, d.part, o.page", (below,))
        return [(path, int(page), float(confidence)) for path, page, confidence in rows]

    def lexical_rows(self) -> Iterable[tuple[int, str, str]]:
        """(chunk id, text terms, heading terms) of every chunk, ids ascending (what a BM25 matrix is
        built from)."""
        return self.conn.execute("SELECT rowid, terms, heading_terms FROM chunks_fts ORDER BY rowid")

    def neighbours(self, chunk: Chunk, n: int) -> list[Chunk]:
        """Up to ``n`` chunks before and after ``chunk`` in its document, in order."""
        rows = self.conn.execute(
            "SELECT id FROM chunks WHERE doc_id=? AND ordinal BETWEEN ? AND ? AND ordinal != ? ORDER BY ordinal",
            (chunk.doc_id, chunk.ordinal - n, chunk.ordinal + n, chunk.ordinal))
        return self.chunks([r[0] for r in rows])

    def document_text(self, doc_id: str) -> str:
        row = self.conn.execute("SELECT text FROM documents WHERE doc_id=?", (doc_id,)).fetchone()
        return row[0] if row else ""

    # ---- writing (a new generation's catalog only) ------------------------------------------
    def set_meta(self, **values: str) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])

    def upsert_source(self, root: str, collection: str) -> None:
        now = time.time()
        self.conn.execute("INSERT OR IGNORE INTO sources VALUES (?, ?, ?, NULL)", (root, collection, now))
        self.conn.execute("UPDATE sources SET last_sync=? WHERE root=? AND collection=?", (now, root, collection))

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        for doc_id in doc_ids:
            self.chunks_changed = True
            self.conn.execute("DELETE FROM lexical_only WHERE id IN (SELECT id FROM chunks WHERE doc_id=?)", (doc_id,))
            self.conn.execute("DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE doc_id=?)", (doc_id,))
            self.conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
            self.conn.execute("DELETE FROM ocr_pages WHERE doc_id=?", (doc_id,))
            self.conn.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))

    def set_groups(self, doc_id: str, groups: tuple[str, ...]) -> None:
        self.conn.execute("UPDATE documents SET groups=? WHERE doc_id=?", (json.dumps(list(groups)), doc_id))

    def move_document(self, doc_id: str, path: str, size: int, mtime: float) -> None:
        self.conn.execute("UPDATE documents SET path=?, size=?, mtime=? WHERE doc_id=?", (path, size, mtime, doc_id))

    def insert_document(self, doc: Document, root: str, text: str, metadata: dict[str, str],
                        ocr_pages: Sequence[OcrPage] = ()) -> None:
        self.conn.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (doc.doc_id, doc.collection, root, doc.path, doc.part, doc.title, doc.format, doc.size, doc.mtime,
             doc.content_hash, json.dumps(list(doc.groups)), json.dumps(metadata), text, time.time(), doc.language))
        self.conn.executemany("INSERT INTO ocr_pages VALUES (?,?,?,?)",
                              [(doc.doc_id, p.page, p.confidence, p.words) for p in ocr_pages])

    def insert_chunks(self, chunks: Sequence[Chunk], terms: Sequence[tuple[str, str]]) -> None:
        """Chunks and their full-text terms (``terms[i]`` = (text terms, heading terms) of chunk i)."""
        self.chunks_changed = self.chunks_changed or bool(chunks)
        self.conn.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(c.chunk_id, c.doc_id, c.ordinal, c.page, c.sheet, json.dumps(list(c.headings)), c.start, c.end,
              c.text, c.text_hash) for c in chunks])
        self.conn.executemany("INSERT INTO chunks_fts (rowid, terms, heading_terms) VALUES (?, ?, ?)",
                              [(c.chunk_id, t, h) for c, (t, h) in zip(chunks, terms)])

    def mark_lexical_only(self, ids: Sequence[int]) -> None:
        """Record chunks that have no vector (searched by BM25 only)."""
        self.conn.executemany("INSERT OR IGNORE INTO lexical_only VALUES (?)", [(int(i),) for i in ids])

    def lexical_only_ids(self) -> set[int]:
        """Ids of the chunks without a vector (empty for catalogs written before there were any)."""
        try:
            return {r[0] for r in self.conn.execute("SELECT id FROM lexical_only")}
        except sqlite3.OperationalError:
            return set()

    def languages(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT language, count(*) FROM documents GROUP BY language"))

    def set_failure(self, collection: str, root: str, path: str, reason: str, size: int | None,
                    mtime: float | None, kind: FailureKind = FailureKind.PARSE) -> None:
        self.conn.execute("INSERT OR REPLACE INTO failures (collection, path, source_root, reason, size, mtime, at, "
                          "kind) VALUES (?,?,?,?,?,?,?,?)",
                          (collection, path, root, reason, size, mtime, time.time(), FailureKind(kind).value))

    def clear_failure(self, collection: str, path: str) -> None:
        self.conn.execute("DELETE FROM failures WHERE collection=? AND path=?", (collection, path))
