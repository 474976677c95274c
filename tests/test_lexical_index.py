"""[index] lexical: BM25 matrices (bm25s) built at publish beside the catalog, searched with filters
inside the search, linked when no chunk changed, rebuilt when one did; against FTS5 on the same
real documents, through the API and the `workbench` command."""

from __future__ import annotations

import math
import os
import random
import shutil
import stat

import pytest

from conftest import SAMPLE, run_cli
from workbench.config import Config
from workbench.pipeline import Workbench
from workbench.records import Filters
from workbench.retrieve import lexical_ranking, query_terms
from workbench.index import IndexReader

WORDS = ("policy travel receipt ledger budget quarter audit report staff leave shuttle parking contract vendor "
         "invoice security backup server network archive payroll pension runway hangar engine inspection").split()
QUERIES = ["annual leave carried over", "shuttle bus car park", "engine inspection hangar", "payroll pension audit",
           "security backup server", "travel receipts"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("lx") / "docs"
    shutil.copytree(SAMPLE, root / "sample")
    rnd = random.Random(11)
    (root / "notes").mkdir()
    for i in range(30):
        paras = [" ".join(rnd.choice(WORDS) for _ in range(40)) + "." for _ in range(6)]
        (root / "notes" / f"n{i:02d}.md").write_text(f"# Note {i}\n\n" + "\n\n".join(paras))
    return root


def open_wb(index, embedder, **index_settings) -> Workbench:
    cfg = Config().with_index_dir(index)
    return Workbench(cfg.replace("index", **index_settings) if index_settings else cfg, embedder=embedder)


def lexical(wb, query, filters=None, k=8):
    return [(h.chunk.path, h.chunk.ordinal) for h in wb.search(query, k=k, mode="lexical", filters=filters)]


def info(index):
    return IndexReader.open(index).lexical_info


def textbook_bm25(reader, words, heading_weight=0.5, k1=1.2, b=0.75) -> dict[int, float]:
    """BM25 written out here from the catalog's terms (Lucene's form: idf = ln(1 + (N - df + 0.5) /
    (df + 0.5)), tf / (tf + k1 (1 - b + b dl / avgdl))), per field, headings weighted."""
    rows = list(reader.catalog.lexical_rows())
    total: dict[int, float] = {}
    for field, weight in ((1, 1.0), (2, heading_weight)):
        docs = {r[0]: r[field].split() for r in rows}
        avgdl = sum(map(len, docs.values())) / len(docs)
        for w in set(words):
            df = sum(w in d for d in docs.values())
            if not df:
                continue
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            for cid, d in docs.items():
                tf = d.count(w)
                if tf:
                    total[cid] = total.get(cid, 0.0) + weight * idf * tf / (tf + k1 * (1 - b + b * len(d) / avgdl))
    return total


def test_matrices_are_built_at_publish_and_score_textbook_bm25(tmp_path, embedder, corpus):
    fts = open_wb(tmp_path / "fts", embedder, lexical="fts5")
    fts.ingest(corpus, progress=False)
    mat = open_wb(tmp_path / "mat", embedder, lexical="matrix")
    umask = os.umask(0)  # files are private whatever the umask
    try:
        report = mat.ingest(corpus, progress=False)
    finally:
        os.umask(umask)

    built = info(tmp_path / "mat")
    reader = IndexReader.open(tmp_path / "mat")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (reader.dir / "lexical").rglob("*")}
    assert len(modes) > 5 and {m for n, m in modes.items() if n not in ("text", "headings")} == {0o600}, modes
    assert modes["text"] == modes["headings"] == 0o700
    assert built["kind"] == "matrix" and not built["reused"] and built["chunks"] == report.chunks_added
    assert (reader.dir / "lexical" / "ids.npy").exists()
    assert info(tmp_path / "fts")["kind"] == "fts5"
    assert not (IndexReader.open(tmp_path / "fts").dir / "lexical").exists()
    for q in QUERIES:
        words = query_terms(reader, q, mat.config.retrieval)[1]
        got = lexical_ranking(reader, words, 8, Filters())  # the ranking before fusion and de-duplication
        want = textbook_bm25(reader, words)
        best = sorted(want.values(), reverse=True)[:8]
        assert [s for _, s in got] == pytest.approx(best, rel=1e-4), q  # the 8 best scores, in order
        assert [s for _, s in got] == pytest.approx([want[cid] for cid, _ in got], rel=1e-4), q  # of those chunks
    for q in ("annual leave carried over", "shuttle bus car park", "security backup server"):
        assert lexical(fts, q, k=1) == lexical(mat, q, k=1), q  # where both engines see the same best passage
    # FTS5's IDF is zero for a term in over half the chunks; Lucene's is not, so "travel" still counts
    assert "travel-policy" not in lexical(fts, "travel receipts", k=1)[0][0]
    assert "travel-policy" in lexical(mat, "travel receipts", k=1)[0][0]
    assert lexical(mat, "zzzunknownword") == []
    out = run_cli("status", "--index", str(tmp_path / "mat"))
    assert f"lexical index: BM25 matrices (bm25s), {built['chunks']:,} chunks" in out.stdout, out.stderr
    assert "lexical index: SQLite FTS5" in run_cli("status", "--index", str(tmp_path / "fts")).stdout


def test_filters_stay_inside_the_matrix_search(tmp_path, embedder, corpus):
    mat = open_wb(tmp_path / "mat", embedder, lexical="matrix")
    mat.ingest(corpus / "sample", collection="handbook", progress=False)
    mat.ingest(corpus / "notes", collection="notes", progress=False)
    reader = IndexReader.open(tmp_path / "mat")
    only = Filters(collections=("notes",))
    notes = {c.chunk_id for c in mat.chunks() if c.collection == "notes"}
    for q in ("annual leave carried over", "shuttle bus car park"):  # the handbook's subjects
        assert "/sample/" in lexical(mat, q, k=1)[0][0]
        got = lexical(mat, q, only)
        assert len(got) == 8 and all("/notes/" in p for p, _ in got)  # the notes' best, not nothing
        words = query_terms(reader, q, mat.config.retrieval)[1]
        ranked = lexical_ranking(reader, words, 5, only)
        want = {cid: s for cid, s in textbook_bm25(reader, words).items() if cid in notes}
        assert [s for _, s in ranked] == pytest.approx(sorted(want.values(), reverse=True)[:5], rel=1e-4)


def test_an_unchanged_publish_links_the_matrices_and_a_change_rebuilds_them(tmp_path, embedder, corpus):
    docs = tmp_path / "docs"
    shutil.copytree(corpus / "sample", docs)
    index = tmp_path / "ix"
    open_wb(index, embedder, lexical="matrix").ingest(docs, progress=False)
    first = IndexReader.open(index)
    ids_before = first.dir / "lexical" / "ids.npy"

    # an access change publishes a generation without changing a chunk: the files are shared
    (docs / ".workbench-access").write_text('groups = ["hr"]\n')
    wb = open_wb(index, embedder, lexical="matrix")
    report = wb.reindex(progress=False)
    second = IndexReader.open(index)
    assert report.published and second.generation == first.generation + 1
    assert second.lexical_info["reused"] and os.path.samefile(ids_before, second.dir / "lexical" / "ids.npy")

    (docs / "quasar.md").write_text("# Receipts\n\nReceipts go to the quasar-ledger system within 14 days.")
    wb.reindex(progress=False)
    third = IndexReader.open(index)
    assert not third.lexical_info["reused"] and third.lexical_info["chunks"] == second.lexical_info["chunks"] + 1
    assert lexical(wb, "quasar ledger", k=1)[0][0] == str(docs / "quasar.md")
    # the generation a reader already holds is untouched: its matrices still know nothing of it
    assert second.lexical_search.search(["quasar"], 5, Filters()) == []


def test_the_matrices_are_the_default_and_a_changed_setting_republishes(tmp_path, embedder, corpus):
    open_wb(tmp_path / "a", embedder, lexical="fts5").ingest(corpus / "sample", progress=False)
    assert info(tmp_path / "a")["kind"] == "fts5"
    report = open_wb(tmp_path / "a", embedder).reindex(progress=False)  # the default; nothing changed on disk
    assert report.published and report.chunks_added == 0 and info(tmp_path / "a")["kind"] == "matrix"
    assert not open_wb(tmp_path / "a", embedder).reindex(progress=False).published  # nothing left to do
    back = open_wb(tmp_path / "a", embedder, lexical="fts5").reindex(progress=False)
    assert back.published and info(tmp_path / "a")["kind"] == "fts5"
    assert not (IndexReader.open(tmp_path / "a").dir / "lexical").exists()


def test_two_groups_of_users_on_one_reader_each_see_their_own_documents(tmp_path, embedder):
    src = tmp_path / "docs"
    for group in ("hr", "staff"):
        shutil.copytree(SAMPLE, src / group)
        (src / group / ".workbench-access").write_text(f'groups = ["{group}"]\n')
    wb = open_wb(tmp_path / "ix", embedder)  # the default: matrices
    wb.ingest(src, progress=False)
    for _ in range(2):  # the second round comes from the reader's remembered readable sets
        for group in ("hr", "staff"):
            got = lexical(wb, "annual leave travel receipts", Filters(groups=(group,)))
            assert got and all(f"/{group}/" in path for path, _ in got), (group, got)
            hits = wb.search("annual leave travel receipts", k=5, filters=Filters(groups=(group,)))
            assert hits and all(f"/{group}/" in h.chunk.path for h in hits)
    assert lexical(wb, "annual leave travel receipts", Filters(groups=("nobody",))) == []
