"""Bounded parsing: time limit, memory limit, crashes; the batch goes on."""

from __future__ import annotations

from conftest import make_pdf, make_zip_bomb

from workbench.load import LoadLimits
from workbench.load.sandbox import ParserPool


def test_results_and_failures_for_a_mixed_batch(tmp_path):
    good = make_pdf(tmp_path / "good.pdf", ["Good text."])
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00\x01\x02" * 100)
    with ParserPool(2, 60, 1024, LoadLimits()) as pool:
        out = {o.path: o for o in pool.map([str(good), str(bad)])}
    assert out[str(good)].docs[0].blocks[0].text == "Good text."
    assert "binary content" in out[str(bad)].error


def test_a_parse_over_its_time_limit_is_killed_and_the_batch_goes_on(tmp_path):
    slow = tmp_path / "slow.txt"
    slow.write_text("word " * 2_000_000)
    fine = tmp_path / "fine.md"
    fine.write_text("# Title\n\nBody.")
    # 10 ms is less than any worker needs to start and read a 10 MB file: the first task overruns.
    with ParserPool(1, 0.01, 1024, LoadLimits()) as pool:
        first = next(iter(pool.map([str(slow)])))
        pool.timeout_s = 60
        rest = list(pool.map([str(fine)]))
    assert "timed out after 0.01s" in first.error
    assert rest[0].docs
    assert rest[0].error is None


def test_memory_limit_turns_a_hidden_zip_bomb_into_a_failure(tmp_path):
    bomb = make_zip_bomb(tmp_path / "bomb.docx", mb=400)
    # the declared-size check is disabled here so that only the memory bound stops it
    with ParserPool(1, 120, 300, LoadLimits(max_unzipped_mb=10**6)) as pool:
        [out] = list(pool.map([str(bomb)]))
    assert out.error, out.error
    assert "memory" in out.error or "crashed" in out.error or "zip bomb" in out.error, out.error
