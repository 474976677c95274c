"""The `workbench` command as a user runs it: ingest, status, search, reindex, exit codes."""

from __future__ import annotations

import fcntl
import json
import os
import shutil

from conftest import SAMPLE, encrypt_pdf, make_pdf, make_zip_bomb, run_cli


def test_help_reads_well():
    out = run_cli("--help")
    assert out.returncode == 0
    for word in ("ingest", "reindex", "status", "search", "--index", "--json"):
        assert word in out.stdout
    sub = run_cli("reindex", "--help")
    assert "--wait" in sub.stdout and "cron" in sub.stdout.lower() or "lock" in sub.stdout


def test_ingest_status_search_on_the_sample_documents(tmp_path):
    idx = str(tmp_path / "idx")
    ing = run_cli("ingest", str(SAMPLE), "--index", idx, "--collection", "handbook", "--json")
    assert ing.returncode == 0, ing.stderr
    report = json.loads(ing.stdout)
    assert report["ok"]
    assert len(report["added"]) == 9
    assert report["generation"] == 1

    status = json.loads(run_cli("status", "--index", idx, "--json").stdout)
    assert status["documents"] == 10
    assert status["collections"] == {"handbook": 10}
    assert status["embedding_model"] == "all-MiniLM-L6-v2"
    assert status["generation"] == 1

    out = run_cli("search", "How many days of annual leave can be carried over?", "-k", "3", "--index", idx, "--json")
    top = json.loads(out.stdout)[0]
    assert top["path"].endswith("employee-handbook.pdf")
    assert top["page"] == 2
    assert top["headings"] == ["Annual leave"]
    assert "carried over" in top["text"]

    out = run_cli("search", "per diem in Montreal", "--index", idx, "-k", "1")
    assert "travel-policy.docx" in out.stdout
    assert "Per diem rates" in out.stdout

    out = run_cli("search", "How far along is the Hangar 4 construction, in percent?", "--index", idx, "--json", "-k", "1")
    top = json.loads(out.stdout)[0]
    assert top["path"].endswith(".pptx")
    assert top["page"] == 3
    assert top["location"] == "slide 3"

    text = run_cli("status", "--index", idx).stdout
    assert "documents:    10" in text
    assert "handbook (10 docs)" in text


def test_bad_files_are_reported_and_the_rest_is_indexed(tmp_path):
    src = tmp_path / "batch"
    src.mkdir()
    shutil.copy(SAMPLE / "onboarding.md", src)
    good = make_pdf(src / "good.pdf", ["Fire extinguishers are checked every month."])
    (src / "corrupt.pdf").write_bytes(good.read_bytes()[:300])
    encrypt_pdf(good, src / "locked.pdf", user_password="pw")
    encrypt_pdf(good, src / "sec-filing.pdf", user_password="")
    (src / "empty.txt").write_bytes(b"")
    (src / "zero.docx").write_bytes(b"")
    (src / "junk.txt").write_bytes(os.urandom(4096))
    (src / "misnamed.docx").write_text("plain text pretending to be a docx")
    make_zip_bomb(src / "bomb.xlsx", member="xl/workbook.xml", mb=700)
    with open(src / "huge.txt", "wb") as fh:  # sparse: 3 GB on paper, nothing on disk
        fh.truncate(3 << 30)
    (src / "diagram.png").write_bytes(b"\x89PNG\r\n")  # a truncated image: read by OCR, so reported
    (src / "photos.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an archive: not a document, skipped
    cfg = tmp_path / "workbench.toml"
    cfg.write_text('[index]\ndir = "idx"\n[ingest]\nmax_file_mb = 100\n')

    out = run_cli("ingest", str(src), "--config", str(cfg), "--json")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    reasons = {os.path.basename(f["path"]): f["reason"] for f in report["failed"]}
    assert set(reasons) == {"corrupt.pdf", "locked.pdf", "empty.txt", "zero.docx", "junk.txt", "misnamed.docx",
                            "bomb.xlsx", "huge.txt", "diagram.png"}
    assert "password-protected" in reasons["locked.pdf"]
    assert "corrupt" in reasons["corrupt.pdf"]
    assert "empty file" in reasons["empty.txt"]
    assert "empty file" in reasons["zero.docx"]
    assert "binary content" in reasons["junk.txt"]
    assert "not a valid DOCX" in reasons["misnamed.docx"]
    assert "zip bomb" in reasons["bomb.xlsx"] or "over the" in reasons["bomb.xlsx"]
    assert "over the 100 MB limit" in reasons["huge.txt"]
    assert "corrupt or unreadable image" in reasons["diagram.png"]
    assert [os.path.basename(s["path"]) for s in report["skipped"]] == ["photos.zip"]
    assert sorted(os.path.basename(p) for p in report["added"]) == ["good.pdf", "onboarding.md", "sec-filing.pdf"]

    status = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
    assert status["documents"] == 3
    assert len(status["failures"]) == 9
    hit = json.loads(run_cli("search", "fire extinguisher checks", "--config", str(cfg), "--json", "-k", "1").stdout)
    assert hit[0]["path"].endswith(("good.pdf", "sec-filing.pdf"))

    # reindex: the known failures are still reported (non-zero exit), without parsing them again
    again = run_cli("reindex", "--config", str(cfg))
    assert again.returncode == 1
    assert "unchanged since it failed" in again.stdout
    assert again.stdout.splitlines()[0].startswith("generation 1 (unchanged): 0 added")


def test_reindex_exits_75_with_a_message_while_another_writer_holds_the_lock(tmp_path):
    idx = tmp_path / "idx"
    assert run_cli("ingest", str(SAMPLE / "onboarding.md"), "--index", str(idx)).returncode == 0
    fd = os.open(idx / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        out = run_cli("reindex", "--index", str(idx))
    finally:
        os.close(fd)
    assert out.returncode == 75
    assert "is being updated by" in out.stderr
    assert "--wait" in out.stderr
    ok = run_cli("reindex", "--index", str(idx))
    assert ok.returncode == 0
    assert ok.stdout.startswith("generation 1 (unchanged)")


def test_errors_are_one_line_not_tracebacks(tmp_path):
    out = run_cli("search", "anything", "--index", str(tmp_path / "nothing"))
    assert out.returncode == 2
    assert "is empty: run `workbench ingest FOLDER` first" in out.stderr
    assert "Traceback" not in out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[embeding]\nmodel = 'x'\n")
    out = run_cli("status", "--config", str(bad))
    assert out.returncode == 2
    assert "embeding: Extra inputs are not permitted" in out.stderr
    out = run_cli("ingest", str(tmp_path / "missing-folder"), "--index", str(tmp_path / "i"))
    assert out.returncode == 2
    assert "no such file or folder" in out.stderr
