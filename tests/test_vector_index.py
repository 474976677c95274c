"""[index] kind: an IVF index trained at publish, updated on re-syncs, searched with filters inside
the search, its recall measured at publish; against exact search on the same real documents."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from conftest import SAMPLE, run_cli
from workbench.config import Config
from workbench.pipeline import Workbench
from workbench.records import Filters
from workbench.index import IndexReader

WORDS = ("policy travel receipt ledger budget quarter audit report staff leave shuttle parking contract vendor "
         "invoice security backup server network archive payroll pension runway hangar engine inspection").split()
QUERIES = ["How many days of annual leave can be carried over?", "When does the shuttle bus leave car park D?",
           "engine inspection in the hangar", "payroll and pension audit", "security backup of the server"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("vi") / "docs"
    shutil.copytree(SAMPLE, root / "sample")
    rnd = random.Random(7)
    (root / "notes").mkdir()
    for i in range(40):
        paras = [" ".join(rnd.choice(WORDS) for _ in range(50)) + "." for _ in range(10)]
        (root / "notes" / f"n{i:02d}.md").write_text(f"# Note {i}\n\n" + "\n\n".join(paras))
    return root


def open_wb(index, embedder, **index_settings) -> Workbench:
    cfg = Config().with_index_dir(index)
    return Workbench(cfg.replace("index", **index_settings) if index_settings else cfg, embedder=embedder)


def dense(wb, query, filters=None):
    return [(h.chunk.chunk_id, round(h.score, 5)) for h in wb.search(query, k=8, mode="dense", filters=filters)]


def manifest(index):
    return IndexReader.open(index).index_info


def test_ivf_is_trained_at_publish_and_finds_what_exact_search_finds(tmp_path, embedder, corpus):
    flat = open_wb(tmp_path / "flat", embedder, kind="flat")
    flat.ingest(corpus, progress=False)
    ivf = open_wb(tmp_path / "ivf", embedder, kind="ivf", nprobe=10_000)  # every list: exhaustive

    report = ivf.ingest(corpus, progress=False)

    info = manifest(tmp_path / "ivf")
    assert info["kind"] == "ivf" and info["retrained"] and info["trained_on"] == report.chunks_embedded
    assert 1 < info["nlist"] < info["trained_on"] and info["recall_at_10"] == 1.0
    assert (IndexReader.open(tmp_path / "ivf").dir / "search.faiss").exists()
    assert manifest(tmp_path / "flat")["kind"] == "flat"
    assert not (IndexReader.open(tmp_path / "flat").dir / "search.faiss").exists()
    for q in QUERIES:
        assert dense(ivf, q) == dense(flat, q)
    status = str(ivf.status())
    assert f"vector index: ivf ({info['nlist']} lists, nprobe 10000)" in status and "recall@10 against exact 1.000" in status
    out = run_cli("status", "--index", str(tmp_path / "flat"))
    assert "vector index: flat (exact search)" in out.stdout, out.stderr


def test_a_resync_updates_the_ivf_index_without_retraining_and_recall_is_measured(tmp_path, embedder, corpus):
    docs = tmp_path / "docs"
    shutil.copytree(corpus, docs)
    open_wb(tmp_path / "ivf", embedder, kind="ivf").ingest(docs, progress=False)
    trained = manifest(tmp_path / "ivf")
    gone = docs / "notes" / "n05.md"
    gone_ids = {c.chunk_id for c in open_wb(tmp_path / "ivf", embedder).chunks() if c.path == str(gone)}
    gone.unlink()
    (docs / "notes" / "new.md").write_text("# Quasar\n\nThe quasar ledger closes every June for its yearly audit.")
    wb = open_wb(tmp_path / "ivf", embedder, kind="ivf", nprobe=1)  # one list per query: recall drops

    report = wb.reindex(progress=False)

    info = manifest(tmp_path / "ivf")
    assert report.deleted == (str(gone),) and report.added == (str(docs / "notes" / "new.md"),)
    assert not info["retrained"] and info["trained_on"] == trained["trained_on"] and info["nlist"] == trained["nlist"]
    assert info["recall_at_10"] < 1.0 and info["nprobe"] == 1  # measured, not assumed
    hits = {cid for q in QUERIES for cid, _ in dense(wb, q)}
    assert gone_ids and not hits & gone_ids
    assert "quasar ledger" in wb.search("quasar ledger yearly audit", k=1, mode="dense")[0].chunk.text
    reader = IndexReader.open(tmp_path / "ivf")
    assert reader.vector_search.ivf.ntotal == reader.vectors.ntotal  # exactly the generation's vectors


@pytest.mark.parametrize("exact_below", [0, 1_000_000])  # IVF with a selector / exact over the readable set
def test_filters_stay_inside_an_ivf_search(tmp_path, embedder, corpus, exact_below):
    flat = open_wb(tmp_path / "flat", embedder, kind="flat")
    ivf = open_wb(tmp_path / "ivf", embedder, kind="ivf", nprobe=10_000, exact_below=exact_below)
    for wb in (flat, ivf):
        wb.ingest(corpus / "sample", collection="handbook", progress=False)
        wb.ingest(corpus / "notes", collection="notes", progress=False)
    only = Filters(collections=("handbook",))
    for q in QUERIES:
        got = dense(ivf, q, only)
        assert got == dense(flat, q, only) and got
        assert {c.collection for c in ivf.chunks([cid for cid, _ in got])} == {"handbook"}


def test_auto_switches_to_ivf_at_its_threshold(tmp_path, embedder, corpus):
    small = open_wb(tmp_path / "a", embedder)  # default: auto, IVF from 200,000 vectors
    small.ingest(corpus / "sample", progress=False)
    assert manifest(tmp_path / "a")["kind"] == "flat"
    low = open_wb(tmp_path / "b", embedder, approximate_from=100)
    report = low.ingest(corpus, progress=False)
    assert report.chunks_embedded >= 100 and manifest(tmp_path / "b")["kind"] == "ivf"
    assert json.loads(run_cli("status", "--index", str(tmp_path / "b"), "--json").stdout)["vector_index"].startswith("ivf")


def test_changing_the_index_kind_takes_effect_at_the_next_reindex(tmp_path, embedder, corpus):
    open_wb(tmp_path / "ix", embedder, kind="flat").ingest(corpus / "notes", progress=False)
    assert manifest(tmp_path / "ix")["kind"] == "flat"
    report = open_wb(tmp_path / "ix", embedder, kind="ivf").reindex(progress=False)  # nothing changed on disk
    assert report.published and report.chunks_added == 0 and manifest(tmp_path / "ix")["kind"] == "ivf"
    again = open_wb(tmp_path / "ix", embedder, kind="ivf").reindex(progress=False)
    assert not again.published  # and nothing to do once it matches
    back = open_wb(tmp_path / "ix", embedder, kind="flat").reindex(progress=False)
    assert back.published and manifest(tmp_path / "ix")["kind"] == "flat"
