"""The SQLite catalog of one index generation: documents, chunks, full text, sources, failures.

Schema and queries only; `workbench.store` decides which file is opened, read-only or for a new
generation. Chunks carry their FAISS id as their primary key, and an FTS5 table (kept in step by
triggers) indexes their text and heading path. Leaves out: vectors (FAISS) and the embedding cache.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence

from workbench.records import Chunk, Document, FileFailure

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
CREATE TABLE IF NOT EXISTS failures (
  collection TEXT NOT NULL, path TEXT NOT NULL, source_root TEXT NOT NULL, reason TEXT NOT NULL,
  size INTEGER, mtime REAL, at REAL NOT NULL, PRIMARY KEY (collection, path));
"""

_UNDER = "(path = ? OR substr(path, 1, length(?)) = ?)"  # params: root, root + "/", root + "/"
_DOC_COLS = "doc_id, collection, path, part, title, format, size, mtime, content_hash, groups, language"
_CHUNK_SELECT = """SELECT c.id, c.doc_id, c.ordinal, c.text, c.start, c."end", c.page, c.sheet, c.headings,
  c.text_hash, d.collection, d.path, d.part, d.title, d.format FROM chunks c JOIN documents d USING (doc_id)"""


def _chunk(row: Sequence) -> Chunk:
    return Chunk(chunk_id=row[0], doc_id=row[1], ordinal=row[2], text=row[3], start=row[4], end=row[5],
                 page=row[6], sheet=row[7], headings=tuple(json.loads(row[8])), text_hash=row[9],
                 collection=row[10], path=row[11], part=row[12], title=row[13], format=row[14])


def _document(row: Sequence, n_chunks: int = 0) -> Document:
    return Document(doc_id=row[0], collection=row[1], path=row[2], part=row[3], title=row[4], format=row[5],
                    size=row[6], mtime=row[7], content_hash=row[8], groups=tuple(json.loads(row[9])),
                    language=row[10], n_chunks=n_chunks)


class Catalog:
    """Queries over one catalog connection (read-only or read-write)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @classmethod
    def create(cls, conn: sqlite3.Connection) -> "Catalog":
        conn.executescript(SCHEMA)
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
        rows = self.conn.execute("SELECT path, reason, collection FROM failures ORDER BY path")
        return [FileFailure(path=p, reason=r, collection=c) for p, r, c in rows]

    def failure_signatures(self, collection: str, root: str) -> dict[str, tuple[int, float, str]]:
        """Past failures of files at or under ``root`` in ``collection``."""
        rows = self.conn.execute(
            f"SELECT path, size, mtime, reason FROM failures WHERE collection=? AND {_UNDER}",
            (collection, root, root + "/", root + "/"))
        return {p: (s, m, r) for p, s, m, r in rows}

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
            self.conn.execute("DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE doc_id=?)", (doc_id,))
            self.conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
            self.conn.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))

    def set_groups(self, doc_id: str, groups: tuple[str, ...]) -> None:
        self.conn.execute("UPDATE documents SET groups=? WHERE doc_id=?", (json.dumps(list(groups)), doc_id))

    def move_document(self, doc_id: str, path: str, size: int, mtime: float) -> None:
        self.conn.execute("UPDATE documents SET path=?, size=?, mtime=? WHERE doc_id=?", (path, size, mtime, doc_id))

    def insert_document(self, doc: Document, root: str, text: str, metadata: dict[str, str]) -> None:
        self.conn.execute(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (doc.doc_id, doc.collection, root, doc.path, doc.part, doc.title, doc.format, doc.size, doc.mtime,
             doc.content_hash, json.dumps(list(doc.groups)), json.dumps(metadata), text, time.time(), doc.language))

    def insert_chunks(self, chunks: Sequence[Chunk], terms: Sequence[tuple[str, str]]) -> None:
        """Chunks and their full-text terms (``terms[i]`` = (text terms, heading terms) of chunk i)."""
        self.conn.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(c.chunk_id, c.doc_id, c.ordinal, c.page, c.sheet, json.dumps(list(c.headings)), c.start, c.end,
              c.text, c.text_hash) for c in chunks])
        self.conn.executemany("INSERT INTO chunks_fts (rowid, terms, heading_terms) VALUES (?, ?, ?)",
                              [(c.chunk_id, t, h) for c, (t, h) in zip(chunks, terms)])

    def languages(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT language, count(*) FROM documents GROUP BY language"))

    def set_failure(self, collection: str, root: str, path: str, reason: str, size: int | None,
                    mtime: float | None) -> None:
        self.conn.execute("INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?,?,?)",
                          (collection, path, root, reason, size, mtime, time.time()))

    def clear_failure(self, collection: str, path: str) -> None:
        self.conn.execute("DELETE FROM failures WHERE collection=? AND path=?", (collection, path))
