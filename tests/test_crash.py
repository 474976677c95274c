"""Atomic publish: a real ingest process killed with SIGKILL leaves the last generation intact,
and the next run finishes the work (reusing the embeddings the killed run had cached)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import ROOT, SAMPLE

from workbench.index import IndexWriter, current_generation

WORDS = ("aileron bearing compressor duct elevator fuselage gearbox hydraulic inlet jig keel landing "
         "manifold nacelle oxygen pylon rudder spar turbine undercarriage valve wing yaw rivet torque "
         "sealant harness bracket flange actuator").split()


def _corpus(folder, n_files: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        paras = [" ".join(rng.choice(WORDS) for _ in range(60)) + "." for _ in range(6)]
        (folder / f"work-order-{i:04d}.md").write_text(f"# Work order {i}\n\n" + "\n\n".join(paras))


def _cached_rows(index) -> int:
    try:
        conn = sqlite3.connect(f"file:{index / 'embeddings.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _assert_generation_one_intact(wb) -> None:
    assert current_generation(wb.index_dir) == 1
    status = wb.status()
    assert status.generation == 1
    assert status.documents == 10
    hit = wb.search("annual leave carried over", k=1)[0]
    assert hit.chunk.path.endswith("employee-handbook.pdf")
    gen = wb.index_dir / "gen" / "000001"
    conn = sqlite3.connect(f"file:{gen / 'catalog.sqlite'}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.slow
def test_sigkill_during_embedding_then_rerun_finishes(tmp_path, make_wb):
    src = tmp_path / "src"
    shutil.copytree(SAMPLE, src)
    wb = make_wb()
    assert wb.ingest(src, progress=False).generation == 1
    baseline = _cached_rows(wb.index_dir)
    _corpus(src / "work-orders", 400)

    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "ingest", str(src), "--index", str(wb.index_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _cached_rows(wb.index_dir) <= baseline:  # a first batch of new embeddings is committed
        assert proc.poll() is None, f"ingest finished before it could be killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "no embeddings appeared"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((wb.index_dir / "gen").glob("*.partial")), "the killed run was mid-generation"
    _assert_generation_one_intact(wb)

    embedded_before_kill = _cached_rows(wb.index_dir) - baseline
    report = wb.ingest(src, progress=False)
    assert report.ok
    assert report.generation == 2
    assert len(report.added) == 400
    # the killed run's vectors are reused: its cache rows are passages and document identities
    # (one per document at most)
    assert embedded_before_kill > 0 and report.chunks_from_cache > 0
    assert report.chunks_from_cache >= embedded_before_kill - len(report.added)
    assert wb.search("work order 123", k=1)
    assert not list((wb.index_dir / "gen").glob("*.partial"))


@pytest.mark.slow
def test_sigkill_at_random_moments_never_breaks_the_published_index(tmp_path, make_wb):
    src = tmp_path / "src"
    shutil.copytree(SAMPLE, src)
    wb = make_wb()
    wb.ingest(src, progress=False)
    _corpus(src / "orders", 60, seed=11)
    for delay in (0.5, 4.0, 6.0, 7.5):
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "ingest", str(src), "--index",
                                 str(wb.index_dir)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        generation = current_generation(wb.index_dir)
        if generation == 1:
            _assert_generation_one_intact(wb)
        else:  # the run got to publish before the kill: then the new generation is complete
            assert generation == 2
            assert wb.status().documents == 70
            break
    final = wb.ingest(src, progress=False)
    assert final.ok
    assert wb.status().documents == 70


@pytest.mark.parametrize("step", ["write_index", "rename", "replace"])
def test_a_failure_at_each_publish_step_keeps_the_old_generation(tmp_path, make_wb, monkeypatch, step):
    import faiss

    wb = make_wb()
    wb.ingest(SAMPLE / "onboarding.md", progress=False)

    def boom(*args, **kwargs):
        raise OSError(f"simulated crash at {step}")

    target = {"write_index": (faiss, "write_index"), "rename": (os, "rename"), "replace": (os, "replace")}[step]
    with pytest.raises(OSError, match="simulated crash"):
        with IndexWriter(wb.index_dir, wb.embedder.name, wb.embedder.dim) as w:
            w.catalog.delete_documents([d.doc_id for d in wb.documents()])
            w.remove_vectors(list(range(0)))
            w.vectors.reset()
            monkeypatch.setattr(*target, boom)
            w.publish()
    monkeypatch.undo()
    wb.close()
    assert wb.status().documents == 1
    assert wb.search("badge reception", k=1)
    assert wb.ingest(SAMPLE, progress=False).generation == 2
