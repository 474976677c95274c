"""Generations, atomic publish, the write lock, and the model guard."""

from __future__ import annotations

import fcntl
import os
import shutil

import faiss
import pytest
from conftest import SAMPLE

from workbench.errors import IndexBusyError, IndexMismatchError
from workbench.index import IndexReader, IndexWriter, current_generation


def test_published_index_opens_with_plain_faiss_and_sqlite(tmp_path, make_wb):
    import sqlite3

    wb = make_wb()
    wb.ingest(SAMPLE, progress=False)
    gen = tmp_path / "index" / "gen" / f"{current_generation(tmp_path / 'index'):06d}"
    index = faiss.read_index(str(gen / "vectors.faiss"))
    conn = sqlite3.connect(gen / "catalog.sqlite")
    ids = {r[0] for r in conn.execute("SELECT id FROM chunks")}
    assert index.ntotal == len(ids) == wb.status().chunks
    assert {int(index.id_map.at(i)) for i in range(index.ntotal)} == ids
    hits = conn.execute("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH 'shuttl'").fetchall()  # stemmed
    assert hits, "the full-text index is queryable with plain sqlite3"


def test_reader_keeps_its_generation_while_a_writer_builds_the_next(tmp_path, make_wb):
    wb = make_wb()
    wb.ingest(SAMPLE / "onboarding.md", progress=False)
    reader = IndexReader.open(tmp_path / "index")
    with IndexWriter(tmp_path / "index", wb.embedder.name, wb.embedder.dim) as w:
        w.catalog.delete_documents([d.doc_id for d in reader.catalog.documents()])
        assert reader.catalog.counts()[0] == 1, "the published catalog is untouched while building"
        assert current_generation(tmp_path / "index") == 1
    # the writer exited without publishing: its partial folder is gone, generation 1 stands
    assert current_generation(tmp_path / "index") == 1
    assert not list((tmp_path / "index" / "gen").glob("*.partial"))
    assert wb.status().documents == 1


def test_a_second_writer_gets_a_clear_busy_error(tmp_path, make_wb):
    wb = make_wb()
    wb.ingest(SAMPLE / "onboarding.md", progress=False)
    fd = os.open(tmp_path / "index" / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(IndexBusyError, match="try again later or pass --wait"):
            wb.ingest(SAMPLE, progress=False, wait_s=0.3)
    finally:
        os.close(fd)
    assert wb.ingest(SAMPLE, progress=False).ok


def test_stale_partial_generation_is_cleaned_and_rebuilt(tmp_path, make_wb):
    wb = make_wb()
    wb.ingest(SAMPLE / "onboarding.md", progress=False)
    stale = tmp_path / "index" / "gen" / "000002.partial"
    stale.mkdir()
    (stale / "catalog.sqlite").write_bytes(b"half-written")
    report = wb.ingest(SAMPLE, progress=False)
    assert report.generation == 2
    assert report.published
    assert not stale.exists()
    assert wb.status().documents == 10


def test_old_generations_are_pruned(tmp_path, make_wb):
    wb = make_wb()
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"n{i}.txt").write_text(f"Note number {i} about the hangar.")
        wb.ingest(src, progress=False)
    assert sorted(p.name for p in (tmp_path / "index" / "gen").iterdir()) == ["000003", "000004"]


def test_opening_an_index_with_another_embedding_model_is_refused(tmp_path, make_wb):
    wb = make_wb()
    wb.ingest(SAMPLE / "onboarding.md", progress=False)
    with pytest.raises(IndexMismatchError, match="ingest into a new --index folder"):
        with IndexWriter(tmp_path / "index", "another-model", wb.embedder.dim):
            pass
    shutil.rmtree(tmp_path / "index")


def test_ocr_pages_of_a_catalog_written_before_their_table_are_read_and_then_moved_into_it(tmp_path):
    import json
    import sqlite3

    from workbench.index.catalog import Catalog
    from workbench.records import Document, OcrPage

    path = tmp_path / "catalog.sqlite"
    conn = sqlite3.connect(path)
    doc = Document("d1", "default", "/docs/scan.pdf", "", "Scan", "pdf", 10, 1.0, "h")
    Catalog.create(conn).insert_document(doc, "/docs", "text", {"ocr_pages": json.dumps({"1": 93.5, "2": 41.0}),
                                                                "ocr_seconds": "1.20"})
    conn.execute("DROP TABLE ocr_pages")  # what the previous version wrote: confidences only in the metadata
    conn.commit()
    conn.close()
    old = Catalog(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True))
    assert old.ocr_pages(["d1", "d2"]) == {"d1": {1: 93.5, 2: 41.0}}
    assert old.low_confidence_pages(60) == [("/docs/scan.pdf", 2, 41.0)]
    old.conn.close()
    writer = Catalog.create(sqlite3.connect(path))  # a new generation starts from a copy of the old catalog
    assert writer.ocr_pages(["d1"]) == {"d1": {1: 93.5, 2: 41.0}}
    assert "ocr_pages" not in json.loads(writer.conn.execute("SELECT metadata FROM documents").fetchone()[0])
    other = Document("d2", "default", "/docs/b.png", "", "B", "image", 5, 1.0, "h2")
    writer.insert_document(other, "/docs", "text", {}, (OcrPage(1, 88.0, 12),))
    assert writer.ocr_pages(["d2"]) == {"d2": {1: 88.0}}
    assert writer.low_confidence_pages(95) == [("/docs/b.png", 1, 88.0), ("/docs/scan.pdf", 1, 93.5),
                                               ("/docs/scan.pdf", 2, 41.0)]
    writer.delete_documents(["d1", "d2"])
    assert writer.ocr_pages(["d1", "d2"]) == {} and writer.low_confidence_pages(100) == []


def test_a_parsed_document_with_ocr_pages_crosses_a_process_boundary_as_json():
    import json

    from workbench.records import Block, OcrPage, ParsedDocument

    doc = ParsedDocument("pdf", "Scan", (Block("text", page=2, headings=("A",)),), metadata={"k": "v"},
                         ocr_pages=(OcrPage(2, 71.5, 30),), ocr_seconds=1.25)
    assert ParsedDocument.from_dict(json.loads(json.dumps(doc.to_dict()))) == doc
