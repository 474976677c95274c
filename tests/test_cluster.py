"""Distributed ingestion on a real Ray cluster: a head and two worker nodes started on this machine
with `ray start` (tests/raybed.py), as separate process trees. The index built through the cluster
must equal the local one; a worker node killed mid-run must not lose files; losing every worker must
publish nothing."""

from __future__ import annotations

import json
import random
import shutil

import pytest

from conftest import SAMPLE, encrypt_pdf, make_pdf, run_cli
from raybed import LocalRay
from workbench.config import Config
from workbench.executors.cluster import ClusterError, RayCluster
from workbench.pipeline import Workbench
from workbench.records import FailureKind, ParseJob
from workbench.index import current_generation
from workbench.files import file_hash, open_checked

pytestmark = pytest.mark.slow
WORDS = ("policy travel receipt ledger budget quarter audit report staff leave shuttle parking contract "
         "vendor invoice security backup server network archive payroll pension").split()


@pytest.fixture(scope="module")
def ray_cluster():
    cluster = LocalRay(workers=2)
    yield cluster
    cluster.stop()


def notes(folder, n: int, seed: int = 1):
    """``n`` Markdown files of 12 paragraphs each (real text enough for several chunks)."""
    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        paras = [" ".join(rnd.choice(WORDS) for _ in range(60)) + "." for _ in range(12)]
        (folder / f"note{i:02d}.md").write_text(f"# Note {i} of the {folder.name} folder\n\n" + "\n\n".join(paras))
    return folder


def workbench(index, embedder) -> Workbench:
    return Workbench(Config().with_index_dir(index), embedder=embedder)


def snapshot(wb: Workbench):
    chunks = sorted((c.chunk_id, c.doc_id, c.path, c.ordinal, c.text) for c in wb.chunks())
    ids, vectors = wb.embeddings()
    return chunks, dict(zip(ids, vectors))


def test_cluster_index_equals_the_local_one_and_both_nodes_work(tmp_path, embedder, ray_cluster):
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE, docs)
    notes(docs / "notes", 12)
    local = workbench(tmp_path / "local", embedder)
    local.ingest(docs, progress=False)
    wb = workbench(tmp_path / "cluster", embedder)

    report = wb.ingest(docs, progress=False, cluster=ray_cluster.address)

    assert report.ok and report.published and len(report.added) == 21
    assert report.cluster == ray_cluster.address
    assert len(report.nodes) == 2 and all(n.files > 0 and n.chunks > 0 for n in report.nodes)
    assert sum(n.files for n in report.nodes) == 21 and not any(n.lost for n in report.nodes)
    assert sum(n.embedded for n in report.nodes) >= report.chunks_embedded > 0  # (a text shared by two
    # files in flight at once is embedded by both)
    assert {"lock", "plan", "connect", "cluster", "write", "publish"} <= set(report.stage_seconds)
    assert report.stage_seconds["cluster"] > 0
    (local_chunks, local_vecs), (chunks, vecs) = snapshot(local), snapshot(wb)
    assert chunks == local_chunks  # same documents, chunk ids and texts
    assert vecs.keys() == local_vecs.keys()
    assert min(float(vecs[i] @ local_vecs[i]) for i in vecs) > 0.99  # within bf16 tolerance
    question = "How many days of annual leave can be carried over?"
    assert wb.search(question, k=1)[0].chunk.chunk_id == local.search(question, k=1)[0].chunk.chunk_id

    # an unchanged re-sync does not even connect to the cluster
    again = wb.reindex(progress=False, cluster=ray_cluster.address)
    assert not again.published and again.nodes == () and again.chunks_added == 0
    # one changed file: only it goes to the cluster, and its unchanged passages come from the cache
    note = docs / "notes" / "note03.md"
    note.write_text(note.read_text() + "\n\nA new closing paragraph about the quasar ledger.\n")
    changed = wb.reindex(progress=False, cluster=ray_cluster.address)
    assert changed.changed == (str(note),) and sum(n.files for n in changed.nodes) == 1
    assert changed.chunks_from_cache > 0 and 0 < changed.chunks_embedded < changed.chunks_added
    assert "quasar ledger" in wb.search("quasar ledger", k=1)[0].chunk.text


def test_cli_cluster_ship_files_reports_bad_files_like_a_local_run(tmp_path, embedder, ray_cluster):
    docs = notes(tmp_path / "docs", 4, seed=2)
    make_pdf(docs / "plan.pdf", ["The migration plan moves the archive to the new server in March."])
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40)
    encrypt_pdf(docs / "plan.pdf", docs / "locked.pdf", "secret")
    local = workbench(tmp_path / "local", embedder).ingest(docs, progress=False)

    out = run_cli("ingest", str(docs), "--index", str(tmp_path / "cluster"), "--cluster", ray_cluster.address,
                  "--ship-files", "--json")

    assert out.returncode == 1, out.stderr[-2000:]  # some files failed: exit 1, the rest indexed
    report = json.loads(out.stdout)
    failed = {f["path"]: f["reason"] for f in report["failed"]}
    assert failed == {f.path: f.reason for f in local.failed}
    assert set(failed) == {str(docs / "corrupt.pdf"), str(docs / "locked.pdf")}
    assert sorted(report["added"]) == sorted(local.added) and report["chunks_added"] == local.chunks_added
    assert len(report["nodes"]) == 2 and sum(n["files"] for n in report["nodes"]) == 7  # each failure once
    hits = json.loads(run_cli("search", "In which month is the migration?", "--index",
                              str(tmp_path / "cluster"), "--json", "-k", "1").stdout)
    assert hits[0]["path"] == str(docs / "plan.pdf")


def test_a_node_parses_shipped_bytes_and_refuses_content_it_was_not_planned_with(tmp_path, embedder, ray_cluster):
    pdf = make_pdf(tmp_path / "plan.pdf", ["The migration plan moves the archive in March."])
    nowhere = "/nonexistent-on-every-node/plan.pdf"
    job = ParseJob(nowhere, "default", file_hash(str(pdf)), 1).to_dict()
    cluster = RayCluster(Config().replace("cluster", address=ray_cluster.address), embedder, open_checked)
    try:
        actor = cluster.actors[0].handle
        shipped = json.loads(cluster.ray.get(actor.parse.remote(job, pdf.read_bytes())))
        unseen = json.loads(cluster.ray.get(actor.parse.remote(job, None)))
        other = json.loads(cluster.ray.get(actor.parse.remote(job, b"%PDF-1.7 something else")))
    finally:
        cluster.close()
    assert shipped["error"] is None and shipped["path"] == nowhere
    assert "archive in March" in shipped["docs"][0]["chunks"][0]["text"]
    assert unseen["retry"] and "not visible on cluster node" in unseen["error"]
    assert other["retry"] and "not what the sync planned" in other["error"] and not other.get("docs")


def test_a_file_changed_under_the_cluster_is_not_indexed_and_is_retried_next_run(tmp_path, embedder, ray_cluster):
    docs = notes(tmp_path / "docs", 20, seed=6)
    late = docs / "note19.md"
    wb = workbench(tmp_path / "index", embedder)

    def on_file(path, error):
        if not late.read_text().startswith("Rewritten"):
            late.write_text("Rewritten after the sync planned it: the quasar ledger closes in June.")

    report = wb.ingest(docs, progress=False, cluster=ray_cluster.address, on_file=on_file)
    [failure] = report.failed
    assert failure.path == str(late) and failure.kind is FailureKind.CLUSTER
    assert "not what the sync planned" in failure.reason and "tried again on the next run" in failure.reason
    assert str(late) not in {c.path for c in wb.chunks()} and len(report.added) == 19
    again = wb.reindex(progress=False, cluster=ray_cluster.address)
    assert again.ok and again.added == (str(late),)
    assert "quasar ledger closes in June" in wb.search("When does the quasar ledger close?", k=1)[0].chunk.text


def test_a_worker_node_killed_mid_ingest_loses_no_file(tmp_path, embedder, ray_cluster):
    docs = notes(tmp_path / "docs", 30, seed=3)
    wb = workbench(tmp_path / "index", embedder)
    victim = ray_cluster.workers[-1]
    done = []

    def on_file(path, error):
        done.append(path)
        if len(done) == 2:
            ray_cluster.kill_worker(victim)  # kill -9 of its raylet and its workers

    try:
        report = wb.ingest(docs, progress=False, cluster=ray_cluster.address, on_file=on_file)
    finally:
        ray_cluster.add_worker()  # back to two worker nodes for the next test
    assert report.ok and report.published and len(report.added) == 30 and len(done) == 30
    lost = [n for n in report.nodes if n.lost]
    assert len(lost) == 1 and any("was lost during the run" in n for n in report.notes)
    assert {c.path for c in wb.chunks()} == {str(p) for p in docs.iterdir()}
    assert wb.search("Note 29 of the docs folder", k=3)


def test_losing_every_worker_publishes_nothing(tmp_path, embedder, ray_cluster):
    docs = notes(tmp_path / "docs", 3, seed=4)
    wb = workbench(tmp_path / "index", embedder)
    wb.ingest(docs, progress=False)  # generation 1, built locally
    before = snapshot(wb)[0]
    notes(tmp_path / "docs" / "more", 20, seed=5)

    def on_file(path, error):
        for node in list(ray_cluster.workers):
            ray_cluster.kill_worker(node)

    try:
        with pytest.raises(ClusterError, match="every worker .* was lost; nothing was published"):
            wb.ingest(docs, progress=False, cluster=ray_cluster.address, on_file=on_file)
    finally:
        ray_cluster.add_worker()
        ray_cluster.add_worker()
    assert current_generation(tmp_path / "index") == 1
    assert snapshot(wb)[0] == before and wb.search("Note 1 of the docs folder", k=1)
    # and the next run, with the cluster back, completes the same sync
    report = wb.ingest(docs, progress=False, cluster=ray_cluster.address)
    assert report.ok and len(report.added) == 20 and report.generation == 2


def test_an_unreachable_cluster_is_a_clear_error(tmp_path, embedder):
    wb = workbench(tmp_path / "index", embedder)
    with pytest.raises(ClusterError, match="cannot reach the Ray cluster at '127.0.0.1:9'"):
        wb.ingest(notes(tmp_path / "docs", 1), progress=False, cluster="127.0.0.1:9")
    assert current_generation(tmp_path / "index") is None
