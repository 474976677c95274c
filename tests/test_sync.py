"""Sync by content, through the real pipeline: new, changed, renamed, deleted, unchanged."""

from __future__ import annotations

import os
import shutil
import time

from conftest import SAMPLE, make_docx, make_pdf

from workbench.records import Document
from workbench.sync import FileInfo, plan_sync
from workbench.records import FailureKind


def _doc(doc_id, path, size=10, mtime=1.0, h="h"):
    return Document(doc_id=doc_id, collection="c", path=path, part="", title="", format="text", size=size,
                    mtime=mtime, content_hash=h)


def test_plan_hashes_only_files_whose_stat_moved():
    hashed = []

    def hasher(p):
        hashed.append(p)
        return {"/a": "ha", "/b2": "hb", "/c": "hc-new", "/new": "hn"}[p]

    files = [FileInfo("/a", 10, 1.0), FileInfo("/b2", 10, 1.0), FileInfo("/c", 11, 2.0), FileInfo("/new", 5, 1.0)]
    docs = [_doc("A", "/a", h="ha"), _doc("B", "/b", h="hb"), _doc("C", "/c", h="hc"), _doc("D", "/gone", h="hd")]
    plan = plan_sync(files, docs, {}, max_bytes=1000, hasher=hasher)
    assert plan.unchanged == 1
    assert "/a" not in hashed
    assert [(old, f.path, ids) for old, f, ids in plan.renamed] == [("/b", "/b2", ("B",))]
    assert {t.file.path: t.replaces for t in plan.to_parse} == {"/c": ("C",), "/new": ()}
    assert plan.deleted == [("/gone", ("D",))]


def test_plan_skips_files_unchanged_since_they_failed_and_oversized_files():
    files = [FileInfo("/bad", 10, 1.0), FileInfo("/huge", 5000, 1.0)]
    past = {"/bad": (10, 1.0, "corrupt", FailureKind.PARSE)}
    plan = plan_sync(files, [], past, max_bytes=1000, hasher=lambda p: 1 / 0)
    assert [f.reason for f in plan.still_failing] == ["corrupt"]
    assert "over the" in plan.failed[0][1]
    assert plan.failed[0][0].path == "/huge"


def test_sync_cases_end_to_end(tmp_path, make_wb):
    src = tmp_path / "docs"
    shutil.copytree(SAMPLE, src)
    wb = make_wb()
    first = wb.ingest(src, progress=False)
    assert first.ok
    assert len(first.added) == 9
    assert first.published
    gen1 = first.generation
    n_docs = wb.status().documents

    # unchanged: nothing parsed, nothing published
    again = wb.ingest(src, progress=False)
    assert (again.added, again.changed, again.published, again.unchanged) == ((), (), False, 9)
    assert again.generation == gen1

    # renamed + moved: embeddings and chunk ids kept
    before = {h.chunk.chunk_id for h in wb.search("shuttle bus timetable", k=3)}
    (src / "archive").mkdir()
    os.rename(src / "hangar4-announcement.eml", src / "archive" / "mail.eml")
    moved = wb.ingest(src, progress=False)
    assert moved.renamed == ((str(src / "hangar4-announcement.eml"), str(src / "archive" / "mail.eml")),)
    assert moved.chunks_embedded == 0
    assert moved.chunks_added == 0
    hits = wb.search("shuttle bus timetable", k=3)
    assert {h.chunk.chunk_id for h in hits} == before
    assert hits[0].chunk.path == str(src / "archive" / "mail.eml")

    # changed: old text gone from search, new text found
    time.sleep(0.01)
    (src / "release-notes.txt").write_text("Release 6.0 adds offline mode for tablets in the hangar.\n")
    changed = wb.ingest(src, progress=False)
    assert changed.changed == (str(src / "release-notes.txt"),)
    top = wb.search("offline mode for tablets", k=1)[0].chunk
    assert top.path.endswith("release-notes.txt")
    assert "Release 6.0" in top.text
    assert all("superseded part numbers" not in h.chunk.text for h in wb.search("superseded part numbers", k=50))

    # deleted: disappears from search and from the catalog
    (src / "travel-policy.docx").unlink()
    deleted = wb.ingest(src, progress=False)
    assert deleted.deleted == (str(src / "travel-policy.docx"),)
    assert all(not h.chunk.path.endswith("travel-policy.docx") for h in wb.search("per diem rates Hamburg", k=30))
    assert wb.status().documents == n_docs - 1

    # a copy (same bytes and name, another folder, old still there) is a new document whose chunks
    # come from the cache: its identity (title, file name) and text are those already embedded
    (src / "copies").mkdir()
    shutil.copy(src / "onboarding.md", src / "copies" / "onboarding.md")
    copied = wb.ingest(src, progress=False)
    assert copied.added == (str(src / "copies" / "onboarding.md"),)
    assert copied.chunks_embedded == 0
    assert copied.chunks_from_cache == copied.chunks_added > 0
    # under another name too (its texts are cached; only its identity is new), but its vectors lean
    # toward its own name: the identity is mixed into every passage's vector
    shutil.copy(src / "onboarding.md", src / "onboarding-2019.md")
    renamed_copy = wb.ingest(src, progress=False)
    assert renamed_copy.added == (str(src / "onboarding-2019.md"),)
    assert renamed_copy.chunks_embedded == 0 and renamed_copy.chunks_from_cache == renamed_copy.chunks_added > 0
    ids, vectors = wb.embeddings()
    vector = {(c.path, c.ordinal): v for c, v in zip(wb.chunks(ids), vectors)}
    ordinals = [o for (path, o) in vector if path == str(src / "onboarding.md")]
    assert ordinals
    same = [float(vector[str(src / "onboarding.md"), o] @ vector[str(src / "copies" / "onboarding.md"), o]) for o in ordinals]
    other = [float(vector[str(src / "onboarding.md"), o] @ vector[str(src / "onboarding-2019.md"), o]) for o in ordinals]
    assert min(same) > 0.9999 and max(other) < 0.9999


def test_an_index_embedded_without_identity_is_embedded_again_once(tmp_path, embedder):
    """An index built before passages carried their document's identity (or with another [chunking]
    identity_weight) is parsed and embedded again by the next ingest, which says so; after that,
    an unchanged re-sync does nothing."""
    from workbench.config import Config
    from workbench.pipeline import Workbench

    src = tmp_path / "docs"
    src.mkdir()
    make_pdf(src / "memo.pdf", ["The hangar doors are serviced every spring."])
    (src / "notes.md").write_text("# Notes\n\nThe forklift is charged overnight.\n")
    cfg = Config().with_index_dir(tmp_path / "index")
    plain = Workbench(cfg.replace("chunking", identity_weight=0), embedder=embedder)
    first = plain.ingest(src, progress=False)
    assert first.chunks_embedded == 2
    again = plain.ingest(src, progress=False)
    assert not again.published and again.unchanged == 2 and again.notes == ()
    wb = Workbench(cfg, embedder=embedder)
    upgraded = wb.ingest(src, progress=False)
    assert upgraded.published and set(upgraded.changed) == {str(src / "memo.pdf"), str(src / "notes.md")}
    assert upgraded.chunks_from_cache == 2  # the texts were embedded before; their identities are mixed in now
    assert any("embedded again" in n for n in upgraded.notes)
    assert wb.search("hangar doors", k=1)[0].chunk.path.endswith("memo.pdf")
    settled = wb.ingest(src, progress=False)
    assert not settled.published and settled.unchanged == 2 and settled.chunks_embedded == 0


def test_reindex_resyncs_all_sources_with_their_collections(tmp_path, make_wb):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    make_docx(a / "fleet.docx")
    make_pdf(b / "memo.pdf", ["The hangar doors are serviced every spring."])
    wb = make_wb()
    wb.ingest(a, collection="engineering", progress=False)
    wb.ingest(b, collection="facilities", progress=False)
    make_pdf(b / "memo2.pdf", ["Snow clearing starts at 04:00 on the apron."])
    report = wb.reindex(progress=False)
    assert report.added == (str(b / "memo2.pdf"),)
    assert report.unchanged == 2
    assert wb.status().collections == {"engineering": 1, "facilities": 2}
    hits = wb.search("snow clearing apron", k=3, collection="engineering")
    assert hits
    assert all(h.chunk.collection == "engineering" for h in hits)
    assert wb.search("snow clearing apron", k=1, collection="facilities")[0].chunk.path.endswith("memo2.pdf")


def test_a_missing_source_folder_deletes_nothing(tmp_path, make_wb):
    src = tmp_path / "share"
    shutil.copytree(SAMPLE, src)
    wb = make_wb()
    wb.ingest(src, progress=False)
    shutil.rmtree(src)
    report = wb.reindex(progress=False)
    assert not report.ok
    assert "source is missing" in report.failed[0].reason
    assert wb.status().documents == 10


def test_an_index_parsed_by_an_earlier_version_is_parsed_again_once(tmp_path, embedder):
    """An index whose files were parsed by an earlier version (before statements became rows) is
    parsed again by the next ingest, which says so; unchanged passages come from the cache."""
    from workbench.config import Config
    from workbench.pipeline import Workbench

    src = tmp_path / "docs"
    src.mkdir()
    (src / "notes.md").write_text("# Notes\n\nThe forklift is charged overnight.\n")
    wb = Workbench(Config().with_index_dir(tmp_path / "index"), embedder=embedder)
    assert wb.ingest(src, progress=False).notes == ()  # a new index: nothing to say
    import sqlite3

    with sqlite3.connect(next((tmp_path / "index").rglob("catalog.sqlite"))) as db:
        db.execute("DELETE FROM meta WHERE key='parsing'")  # as an index of the previous version is
    upgraded = wb.ingest(src, progress=False)
    assert upgraded.published and upgraded.changed == (str(src / "notes.md"),)
    assert upgraded.chunks_from_cache == 1 and any("parsed again" in n for n in upgraded.notes)
    settled = wb.ingest(src, progress=False)
    assert not settled.published and settled.unchanged == 1 and settled.notes == ()
