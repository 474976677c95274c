"""Embedding runtimes: the choice per CPU, the checked ONNX export, and what a fresh process loads.

The ONNX tests export the real all-MiniLM-L6-v2 (the session fixture's copy) and compare it with
torch on real sentences; the CLI tests run `workbench` as fresh processes, the way cron does, and
look at which heavy libraries they imported.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import SAMPLE, run_cli
from workbench.config import EmbeddingSettings
from workbench.embed import choose_runtime
from workbench.hardware import CpuInfo, cpu_info
from workbench.errors import ConfigError

AMX = CpuInfo("Intel Xeon", 2, frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}))
AVX2 = CpuInfo("AMD EPYC", 2, frozenset({"avx2", "fma"}))
SENTENCES = [
    "Full-time employees accrue 25 days of paid annual leave per calendar year, credited monthly.",
    "The shuttle bus leaves car park D at 06:00 and then every 10 minutes until 20:00.",
    "Use R CMD INSTALL --library=/opt/R/site to install a source package into another library.",
    "Travellers to high-risk destinations register their itinerary with the security desk.",
    "Revenue 2025: EUR 1,304m (+4.2%); EBIT margin 11.8%.",
    "ok",
]


def test_auto_takes_openvino_bf16_where_native_and_float32_elsewhere_with_onnx_queries():
    amx = choose_runtime(EmbeddingSettings(), AMX, onnx_ok=True, openvino_ok=True)
    assert amx.documents == ("openvino", "bfloat16") and amx.queries == ("onnx", "float32")
    avx2 = choose_runtime(EmbeddingSettings(), AVX2, onnx_ok=True, openvino_ok=True)
    assert avx2.documents == ("openvino", "float32") and avx2.queries == ("onnx", "float32")
    assert "no native bf16" in avx2.describe()
    # without OpenVINO (or without a checked ONNX copy, or on a GPU): torch, bf16 where native
    amx = choose_runtime(EmbeddingSettings(), AMX, onnx_ok=True)
    assert amx.documents == ("torch", "bfloat16") and amx.queries == ("onnx", "float32")
    assert choose_runtime(EmbeddingSettings(), AVX2, True).documents == ("torch", "float32")
    assert choose_runtime(EmbeddingSettings(), AMX, False, "no tokenizer.json", openvino_ok=True).documents[0] == "torch"
    assert choose_runtime(EmbeddingSettings(device="cuda"), AMX, True, openvino_ok=True).documents == ("torch", "bfloat16")


def test_int8_and_explicit_runtimes_are_honoured_and_impossible_pairs_refused():
    assert choose_runtime(EmbeddingSettings(dtype="int8"), AVX2, True).documents == ("onnx", "int8")
    assert choose_runtime(EmbeddingSettings(runtime="onnx"), AMX, True).documents == ("onnx", "float32")
    torch_only = choose_runtime(EmbeddingSettings(runtime="torch"), AVX2, True)
    assert torch_only.documents == torch_only.queries == ("torch", "float32")  # no ONNX anywhere
    with pytest.raises(ConfigError, match="needs runtime"):
        choose_runtime(EmbeddingSettings(runtime="onnx", dtype="bfloat16"), AMX, True)
    with pytest.raises(ConfigError, match="needs runtime"):
        choose_runtime(EmbeddingSettings(runtime="torch", dtype="int8"), AMX, True)
    with pytest.raises(ConfigError, match="custom model code"):
        choose_runtime(EmbeddingSettings(runtime="onnx"), AMX, False, "custom model code")
    fallback = choose_runtime(EmbeddingSettings(), AVX2, False, "no tokenizer.json")
    assert fallback.documents == fallback.queries == ("torch", "float32")
    assert choose_runtime(EmbeddingSettings(runtime="openvino"), AVX2, True, openvino_ok=True).documents == ("openvino", "float32")
    with pytest.raises(ConfigError, match="needs the openvino package"):
        choose_runtime(EmbeddingSettings(runtime="openvino"), AMX, True, openvino_ok=False)
    with pytest.raises(ConfigError, match="needs runtime"):
        choose_runtime(EmbeddingSettings(runtime="openvino", dtype="int8"), AMX, True, openvino_ok=True)
    with pytest.raises(ConfigError, match="run on the CPU"):
        choose_runtime(EmbeddingSettings(runtime="openvino", device="cuda"), AMX, True, openvino_ok=True)


def test_the_onnx_export_reproduces_torch_and_int8_stays_close(embedder, tmp_path):
    from workbench.config import Config
    from workbench.embed import load_embedder

    onnx32 = load_embedder(Config().embedding.model_copy(update={"runtime": "onnx"}), tmp_path)
    int8 = load_embedder(Config().embedding.model_copy(update={"dtype": "int8"}), tmp_path)
    torch32 = load_embedder(Config().embedding.model_copy(update={"runtime": "torch", "dtype": "float32"}), None)
    ref = torch32.embed_documents(SENTENCES)
    got = onnx32.embed_documents(SENTENCES)
    assert onnx32.loaded == ["onnx float32"] and torch32.loaded == ["torch float32"]
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert (got * ref).sum(1).min() >= 0.9999
    q = onnx32.embed_query("annual leave days")
    assert float(q @ ref[0]) == pytest.approx(float(torch32.embed_query("annual leave days") @ ref[0]), abs=1e-4)
    assert int(np.argmax(ref @ q)) == 0
    low = int8.embed_documents(SENTENCES)
    assert int8.loaded == ["onnx int8"]
    cos = (low * ref).sum(1)
    assert cos[:-1].min() >= 0.99 and cos[-1] >= 0.97  # int8 is worst on a one-word text ("ok")
    [folder] = tmp_path.iterdir()
    record = json.loads((folder / "export.json").read_text())
    assert record["fp32_min_cosine"] >= 0.9999 and record["int8_min_cosine"] >= 0.97
    assert oct((folder / "model.fp32.onnx").stat().st_mode & 0o777) == "0o600"
    # the token counts the chunker budgets with come from the same tokenizer as sentence-transformers
    assert onnx32.count_tokens(SENTENCES) == torch32._get(("torch", "float32")).count_tokens(SENTENCES)


def _fresh_process(*args: str, env: dict | None = None) -> dict:
    """Run `workbench ARGS` in a new interpreter; return its exit code, output and heavy imports."""
    import subprocess
    import sys

    code = ("import sys, json\nfrom workbench.cli import main\nrc = main(sys.argv[1:])\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'onnxruntime', 'openvino') "
            "if m in sys.modules)\n"
            "print('\\n@@' + json.dumps({'rc': rc, 'heavy': heavy}))\n")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **(env or {})})
    assert "@@" in out.stdout, out.stderr[-2000:]
    text, _, tail = out.stdout.rpartition("\n@@")
    return {**json.loads(tail), "out": text, "err": out.stderr}


def test_a_fresh_search_never_imports_torch_and_an_unchanged_resync_loads_no_model(tmp_path):
    import shutil

    index, docs = str(tmp_path / "index"), tmp_path / "docs"
    shutil.copytree(SAMPLE, docs)
    first = run_cli("ingest", str(docs), "--index", index)
    assert first.returncode == 0, first.stderr
    assert list((tmp_path / "index" / "models").glob("*/model.fp32.onnx")), "ingest exports the query model"
    search = _fresh_process("search", "How many days of annual leave can be carried over?", "-k", "3", "--index", index)
    assert search["rc"] == 0 and "employee-handbook" in search["out"].split("\n2.")[0]
    assert search["heavy"] == ["onnxruntime"], search["heavy"]
    again = _fresh_process("ingest", str(docs), "--index", index)
    assert again["rc"] == 0 and "9 unchanged" in again["out"]
    assert again["heavy"] == [], f"an unchanged re-sync loaded {again['heavy']}"
    (docs / "new-policy.md").write_text("# Bicycle allowance\n\nStaff who cycle to work receive EUR 30 a month.\n")
    added = _fresh_process("ingest", str(docs), "--index", index)
    assert added["rc"] == 0 and "1 added" in added["out"], added["out"]
    # documents embed on OpenVINO from the ONNX copy the first ingest made: no torch in the process
    assert added["heavy"] == ["onnxruntime", "openvino"], added["heavy"]
    status = _fresh_process("status", "--index", index)
    assert status["heavy"] == []
    assert "runtime:" in status["out"] and "for queries" in status["out"] and "cores" in status["out"]


def test_status_and_choice_follow_an_avx2_only_cpu(tmp_path):
    out = _fresh_process("status", "--index", str(tmp_path / "none"), "--json", env={"WORKBENCH_CPU": "avx2"})
    data = json.loads(out["out"])
    assert data["embedding_runtime"].startswith("openvino float32 for documents, onnx float32 for queries")
    assert "avx512" not in data["cpu"] and "amx" not in data["cpu"] and "WORKBENCH_CPU=avx2" in data["cpu"]


TOC = "\n".join(f"{i}.{j} Section about topic {i}{j} . . . . . . . . . . {10 * i + j}" for i in range(1, 4) for j in range(1, 4))
INDEX = "\n".join(f"{name}, {page}" for name, page in [("install.packages", 23), ("library", 7), ("Rscript", 41),
                                                        ("R CMD check", 55), ("vignettes", 61), ("zlib", 12)])


def _chunk(text: str, headings: tuple[str, ...] = ()):
    from workbench.records import Chunk

    return Chunk(chunk_id=1, doc_id="d", ordinal=0, text=text, start=0, end=len(text), headings=headings)


def test_contents_and_index_pages_are_recognised_and_prose_and_tables_are_not():
    from workbench.chunk import is_navigation

    assert is_navigation(_chunk(TOC))
    assert is_navigation(_chunk(INDEX, ("R Installation", "Concept index")))
    assert not is_navigation(_chunk(INDEX, ("R Installation", "Packages")))  # a list of page-like numbers under a real heading
    table = "\n".join(f"Revenue region {r} 2025 . {1000 + r}" for r in range(8))  # a financial table, not leaders
    assert not is_navigation(_chunk(table))
    assert not is_navigation(_chunk(SENTENCES[0] * 3, ("Indexes",)))  # PostgreSQL's chapter on indexes is content
    assert not is_navigation(_chunk("Index\n" + SENTENCES[1], ("Index",)))  # too short to tell: embedded


def test_a_table_of_contents_is_searchable_by_words_but_not_embedded(make_wb, tmp_path):
    from conftest import make_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "manual.pdf", [TOC, "Installing packages: run install.packages with the name of the package. "
                                   "Packages are installed into the first library on the library path."])
    wb = make_wb()
    report = wb.ingest(docs, progress=False)
    assert report.chunks_lexical_only == 1 and report.chunks_embedded == report.chunks_added - 1
    assert "contents/index pages not embedded" in report.summary()
    [toc] = [c for c in wb.chunks() if c.page == 1]
    assert [h.chunk.chunk_id for h in wb.search("Section about topic 22", k=3, mode="lexical")][0] == toc.chunk_id
    assert toc.chunk_id not in [h.chunk.chunk_id for h in wb.search("Section about topic 22", k=5, mode="dense")]
    assert toc.chunk_id in [h.chunk.chunk_id for h in wb.search("Section about topic 22", k=5)]  # hybrid: via BM25
    ids, vectors = wb.embeddings()
    assert toc.chunk_id not in ids and len(ids) == len(vectors) == report.chunks_added - 1
    (docs / "manual.pdf").unlink()  # deleting the document removes its lexical-only record too
    gone = wb.ingest(docs, progress=False)
    assert gone.published and wb.status().chunks == 0


def test_price_lists_statements_and_numbered_cover_limits_are_embedded():
    from workbench.chunk import is_navigation

    limits = "\n".join(["Buildings cover limit 1,500", "Contents cover limit 2,500", "Jewellery limit 1,000",
                        "Bicycles limit 500 each", "Excess 250"])
    assert not is_navigation(_chunk(limits, ("Home insurance", "Contents")))  # '1,500' is an amount, not a page
    statement = "\n".join(["Revenue ..... 1500", "Cost of sales ..... 512", "Gross profit ..... 988",
                           "Overheads ..... 300", "Operating profit ..... 688"])
    assert not is_navigation(_chunk(statement))  # dot leaders, but the numbers do not rise like pages
    assert not is_navigation(_chunk(INDEX, ("Funds", "An index")))
    assert is_navigation(_chunk(INDEX, ("Manual", "E Function and variable index")))


def test_a_hostile_index_line_is_read_in_linear_time():
    import time

    from workbench.chunk import is_navigation

    hostile = ("install" + " " * 200_000 + "1" + " " * 200_000 + "x\n") * 6
    started = time.perf_counter()
    assert not is_navigation(_chunk(hostile, ("Index",)))
    assert time.perf_counter() - started < 1.0  # a bound on a pathological input, not a benchmark


def test_openvino_reproduces_torch_in_float32_and_in_this_cpus_bf16(embedder):
    from workbench.config import Config
    from workbench.embed import load_embedder

    settings = Config().embedding
    torch32 = load_embedder(settings.model_copy(update={"runtime": "torch", "dtype": "float32"}), None)
    ref = torch32.embed_documents(SENTENCES)
    for dtype, floor in (("float32", 0.9999), ("bfloat16" if cpu_info().bf16 else "float32", 0.999)):
        ov = load_embedder(settings.model_copy(update={"runtime": "openvino", "dtype": dtype}), embedder.cache_dir)
        got = ov.embed_documents(SENTENCES)
        assert ov.loaded == [f"openvino {dtype}"]
        assert got.shape == ref.shape and got.dtype == np.float32
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert (got * ref).sum(1).min() >= floor, (dtype, (got * ref).sum(1))
        assert ov.count_tokens(SENTENCES) == torch32.count_tokens(SENTENCES)


def test_many_batches_in_flight_on_openvino_and_onnx_keep_every_text_with_its_own_vector(embedder):
    """Texts of mixed lengths in one call, in small batches: they are sorted by token count, run
    several batches at once (OpenVINO's streams), and must come back in the caller's order."""
    from workbench.config import Config
    from workbench.embed import load_embedder

    paragraphs = [p.strip() for name in ("onboarding.md", "release-notes.txt")
                  for p in (SAMPLE / name).read_text().splitlines() if len(p.strip()) > 20]
    n = len(paragraphs)
    # 1 to 4 consecutive lines each, starting everywhere: 20 different texts, lengths out of order
    texts = [" ".join(paragraphs[(i + k) % n] for k in range(1 + i % 4)) for i in range(2 * n)]
    assert n >= 8 and len(set(texts)) == len(texts) and len({len(t) for t in texts}) >= 12
    settings = Config().embedding.model_copy(update={"batch_size": 3})
    ref = load_embedder(settings.model_copy(update={"runtime": "torch", "dtype": "float32"}), None).embed_documents(texts)
    for runtime in ("openvino", "onnx"):
        got = load_embedder(settings.model_copy(update={"runtime": runtime, "dtype": "float32"}),
                            embedder.cache_dir).embed_documents(texts)
        similarity = got @ ref.T
        assert (similarity.argmax(1) == np.arange(len(texts))).all(), runtime
        assert np.diag(similarity).min() >= 0.9999, (runtime, np.diag(similarity))


def test_auto_falls_back_to_torch_when_openvino_disagrees_and_says_so(embedder, monkeypatch):
    import workbench.embed.openvino as embed_openvino
    from workbench.config import Config
    from workbench.embed import load_embedder
    from workbench.errors import ModelNotFoundError

    monkeypatch.setattr(embed_openvino, "MIN_PLUGIN_COSINE", 1.01)  # no plugin can pass: the check refuses it
    auto = load_embedder(Config().embedding, embedder.cache_dir)
    assert auto.choice.documents[0] == "openvino", auto.choice.describe()
    vectors = auto.embed_documents(SENTENCES[:2])
    assert auto.loaded == [f"torch {auto.dtype}"] and vectors.shape == (2, auto.dim)
    assert "OpenVINO did not load" in auto.document_fallback and "differs from the checked ONNX copy" in auto.document_fallback
    assert auto.choice.documents[0] == "torch" and "OpenVINO did not load" in auto.choice.describe()
    explicit = load_embedder(Config().embedding.model_copy(update={"runtime": "openvino"}), embedder.cache_dir)
    with pytest.raises(ModelNotFoundError, match="set \\[embedding\\] runtime"):
        explicit.embed_documents(SENTENCES[:1])


def test_openvino_is_installed_without_its_telemetry_package():
    import importlib.util

    assert importlib.util.find_spec("openvino") is not None, "make setup installs openvino"
    assert importlib.util.find_spec("openvino_telemetry") is None, "openvino must be installed with --no-deps"


def test_queries_fall_back_to_torch_when_the_onnx_copy_cannot_be_written(tmp_path):
    from workbench.config import Config
    from workbench.embed import load_embedder

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where INDEX/models should be")
    emb = load_embedder(Config().embedding, blocked / "models")
    q = emb.embed_query("annual leave")
    assert q.shape == (emb.dim,) and emb.loaded == [f"torch {emb.dtype}"]
    assert "no ONNX copy" in emb.query_fallback


def test_many_small_batches_keep_each_chunk_with_its_vector_and_embed_a_repeated_text_once(make_wb, tmp_path, monkeypatch):
    import workbench.ingest as ingest

    monkeypatch.setattr(ingest, "EMBED_BATCH", 2)  # many small batches
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):  # every file (one title and name: one identity) repeats two paragraphs, plus one of its own
        (docs / f"d{i}").mkdir()
        (docs / f"d{i}" / "note.md").write_text(f"# Note\n\n{SENTENCES[0]}\n\n# Shuttle\n\n{SENTENCES[1]}\n\n"
                                                f"# Own\n\nThis note number {i} is about topic {i * 7}.\n")
    wb = make_wb()
    report = wb.ingest(docs, progress=False)
    distinct = {(c.text, c.headings) for c in wb.chunks()}
    assert report.chunks_added == len(wb.chunks()) == 18
    assert report.chunks_embedded == len({c.text_hash + "|".join(c.headings) for c in wb.chunks()}) <= len(distinct)
    assert report.chunks_embedded + report.chunks_from_cache == 18
    ids, vectors = wb.embeddings()
    assert {c.title for c in wb.chunks()} == {"Note"}  # the identity: the title, which holds the file name
    texts = wb.embedder.embed_documents([ingest.document_input(c.text, c.headings) for c in wb.chunks(ids)])
    identity = wb.embedder.embed_documents(["Note"])
    expected = ingest.mix_identity(texts, np.repeat(identity, len(texts), axis=0), wb.config.chunking.identity_weight)
    assert ((vectors * expected).sum(1) > 0.999).all()  # every chunk id carries its own text's vector
