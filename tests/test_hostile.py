"""A corpus of hostile and broken files ingested in one batch, and a fuzz run of the loaders.

Every hostile file must be reported with a reason (or, where the format allows it, read safely
within its bounds), the good files beside them indexed, and the whole batch bounded in time. The
fuzz run feeds mutated files of every format through the real sandboxed parser pool: no crash
escapes, nothing hangs. Counts go to test-artifacts/security/{hostile,fuzz}.json.
"""

from __future__ import annotations

import json
import os
import random
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import (ROOT, bytes_of, encrypt_pdf, make_docx, make_eml, make_pdf, make_pptx, make_xlsx, make_zip_bomb,
                      run_cli)

OUT = ROOT / "test-artifacts" / "security"
LAUGHS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"""


def _billion_laughs_docx(path: Path, tmp: Path) -> Path:
    """A real DOCX whose document.xml is replaced by the billion-laughs entity bomb."""
    good = zipfile.ZipFile(make_docx(tmp / "base.docx"))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for item in good.infolist():
            z.writestr(item, LAUGHS if item.filename == "word/document.xml" else good.read(item.filename))
    return path


def hostile_corpus(folder: Path, tmp: Path) -> dict[str, str]:
    """Write the corpus; returns {file name: what it is}."""
    folder.mkdir(parents=True)
    real_pdf = make_pdf(tmp / "real.pdf", ["Fuel system overview " * 40, "Hydraulics " * 40])
    data = real_pdf.read_bytes()
    files = {
        "corrupt.pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n" + bytes(random.Random(1).randbytes(4000)), "corrupt PDF"),
        "truncated.pdf": (data[: len(data) // 2], "truncated PDF"),
        "header-only.pdf": (b"%PDF-1.4\n", "a PDF header and nothing else"),
        "random.docx": (random.Random(2).randbytes(20000), "random bytes named .docx"),
        "random.pptx": (random.Random(3).randbytes(20000), "random bytes named .pptx"),
        "random.xlsx": (random.Random(4).randbytes(20000), "random bytes named .xlsx"),
        "junk.txt": (random.Random(5).randbytes(50000), "binary junk named .txt"),
        "junk.md": (random.Random(6).randbytes(50000), "binary junk named .md"),
        "junk.csv": (b"\x00\x01\x02\xff" * 10000, "binary junk named .csv"),
        "empty.docx": (b"", "0-byte DOCX"),
        "text-as.pdf": (b"just some text pretending to be a PDF\n" * 50, "text named .pdf"),
        "nested.html": (("<div>" * 10000 + "deeply nested text" + "</div>" * 10000).encode(), "10,000-level nested HTML"),
        "broken.eml": (b"From: a\nContent-Type: multipart/mixed; boundary=XYZ\n\n--XYZ\nContent-Type: application/pdf\n"
                       b"Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=x.pdf\n\n!!!notbase64",
                       "e-mail with a corrupt attachment"),
    }
    for name, (content, _) in files.items():
        (folder / name).write_bytes(content)
    encrypt_pdf(real_pdf, folder / "encrypted.pdf", "secret")
    make_zip_bomb(folder / "bomb.docx", mb=700)
    make_zip_bomb(folder / "bomb.xlsx", member="xl/worksheets/sheet1.xml", mb=700)
    _billion_laughs_docx(folder / "laughs.docx", tmp)
    with open(folder / "sparse-2gb.txt", "wb") as f:  # 2 GB, sparse: over max_file_mb, never read
        f.truncate(2 * 2**30)
    what = {name: label for name, (_, label) in files.items()}
    what.update({"encrypted.pdf": "password-protected PDF", "bomb.docx": "DOCX zip bomb (700 MB)",
                 "bomb.xlsx": "XLSX zip bomb (700 MB)", "laughs.docx": "billion-laughs XML in DOCX",
                 "sparse-2gb.txt": "2 GB sparse file"})
    return what


def test_a_hostile_batch_is_reported_file_by_file_and_the_rest_indexed(tmp_path):
    docs = tmp_path / "docs"
    what = hostile_corpus(docs, tmp_path)
    make_pdf(docs / "good-manual.pdf", ["Good manual: the fuel pump is inspected every 600 hours."])
    (docs / "good-notes.md").write_text("# Notes\n\nThe hangar doors close at 22:00.\n")
    make_eml(docs / "good-mail.eml")
    cfg = tmp_path / "workbench.toml"
    cfg.write_text('[index]\ndir = "index"\n[ingest]\nparse_timeout_s = 30\nparse_memory_mb = 1536\n'
                   'max_unzipped_mb = 256\n')
    started = time.monotonic()
    done = run_cli("ingest", str(docs), "--json", "--config", str(cfg), timeout=600)
    seconds = time.monotonic() - started
    assert done.returncode == 1, done.stderr  # 1: some files failed, the rest was indexed
    report = json.loads(done.stdout)
    failed = {Path(f["path"]).name: f["reason"] for f in report["failed"]}
    added = {Path(p).name for p in report["added"]}
    assert {"good-manual.pdf", "good-notes.md", "good-mail.eml"} <= added
    handled_safely = {}
    for name, label in what.items():
        if name in failed:
            assert len(failed[name]) > 10, (name, failed[name])
        else:  # formats that can be read safely must have been read within bounds
            assert name in added, (name, label)
            assert name in ("nested.html", "laughs.docx", "broken.eml"), (name, label)
            handled_safely[name] = label
    hits = json.loads(run_cli("search", "lol lol lol", "--json", "-k", "50", "--config", str(cfg)).stdout)
    assert sum(len(h["text"]) for h in hits) < 100_000  # no entity was expanded into the index
    assert seconds < 300, f"the hostile batch took {seconds:.0f} s"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "hostile.json").write_text(json.dumps({
        "hostile_files": len(what), "reported_with_reason": len([n for n in what if n in failed]),
        "read_safely": handled_safely, "good_files_indexed": 3, "seconds": round(seconds, 1),
        "reasons": {n: failed[n] for n in what if n in failed}}, indent=2))


# ---- fuzzing ----------------------------------------------------------------------------------

def _seeds(tmp: Path) -> dict[str, bytes]:
    return {
        ".pdf": make_pdf(tmp / "s.pdf", ["Seed page one about engines.", "Seed page two."]).read_bytes(),
        ".docx": bytes_of(make_docx, ".docx", tmp), ".pptx": bytes_of(make_pptx, ".pptx", tmp),
        ".xlsx": bytes_of(make_xlsx, ".xlsx", tmp), ".eml": bytes_of(make_eml, ".eml", tmp),
        ".html": b"<html><body><main><h1>Title</h1><p>Para <b>bold</b> &amp; text</p><table><tr><td>1</td></tr>"
                 b"</table></main></body></html>",
        ".md": b"# Title\n\n## Section\n\nSome *text* with [a link](x) and `code`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        ".csv": b"name,value\nalpha,1\nbeta,2\n\"quoted, comma\",3\n",
        ".txt": "Plain text with accents: café, Zürich.\n".encode() * 5,
    }


@pytest.fixture(scope="module")
def fuzz_pool(tmp_path_factory):
    from workbench.load import LoadLimits
    from workbench.load.sandbox import ParserPool

    tmp = tmp_path_factory.mktemp("fuzz")
    stats = {"inputs": 0, "parsed": 0, "reported": 0, "parser_bugs": 0, "worker_deaths_or_timeouts": 0,
             "slowest_s": 0.0, "by_format": {}}
    with ParserPool(1, 20.0, 1024, LoadLimits(max_unzipped_mb=64)) as pool:
        yield pool, _seeds(tmp), tmp, stats
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fuzz.json").write_text(json.dumps(stats, indent=2))


def _mutate(seed: bytes, edits: list[tuple[int, int]], cut: float, splice: int) -> bytes:
    data = bytearray(seed)
    for pos, value in edits:
        if data:
            data[pos % len(data)] = value
    if splice and data:
        at = splice % len(data)
        data[at:at] = data[: min(64, len(data))]
    return bytes(data[: max(1, int(len(data) * cut))])


@settings(max_examples=int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "1500")), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fmt=st.sampled_from([".pdf", ".docx", ".pptx", ".xlsx", ".eml", ".html", ".md", ".csv", ".txt"]),
       edits=st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), max_size=30),
       cut=st.floats(0.05, 1.0), splice=st.integers(0, 2**31))
def test_fuzzed_files_never_crash_or_hang_the_parser(fuzz_pool, fmt, edits, cut, splice):
    pool, seeds, tmp, stats = fuzz_pool
    path = tmp / f"case{fmt}"
    path.write_bytes(_mutate(seeds[fmt], edits, cut, splice))
    started = time.monotonic()
    [outcome] = list(pool.map([str(path)]))
    took = time.monotonic() - started
    stats["inputs"] += 1
    stats["by_format"][fmt] = stats["by_format"].get(fmt, 0) + 1
    stats["slowest_s"] = round(max(stats["slowest_s"], took), 3)
    if outcome.error is None:
        stats["parsed"] += 1
        assert outcome.docs
    else:
        stats["reported"] += 1
        if outcome.error.startswith("parser error ("):  # an unexpected exception, still one file's failure
            stats["parser_bugs"] += 1
            stats.setdefault("parser_bug_examples", {})[fmt] = outcome.error[:160]
        stats["worker_deaths_or_timeouts"] += "worker" in outcome.error or "time limit" in outcome.error
        assert outcome.error.strip()
    assert took < 25, f"{fmt} took {took:.1f} s"
