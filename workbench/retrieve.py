"""Hybrid retrieval over a published generation, with filters applied inside each search.

Dense: the generation's `VectorSearch` (FAISS, exact or IVF); lexical: its `LexicalSearch` (BM25
over language-aware terms from `workbench.analyze`: bm25s matrices, or the catalog's FTS5 table);
both restricted by the same `Filters` inside the search (`workbench.index`). Passages and their
neighbours come from the catalog; a reader remembers the readable sets it has computed. Both sides give their best
``candidates`` among the allowed chunks only, so a narrow filter still yields its best k. Before fusion, every candidate is scored on both sides (`complete`),
so a passage one side ranks first is not lost because the other never listed it; the rankings
are then fused by weighted reciprocal rank or by relative score. A query in a
language the embedding model does not know (``dense_languages``) is answered by lexical search
alone. Near-duplicate hits are dropped; neighbouring chunks can be attached as context.
Leaves out: the searches themselves and SQL (`workbench.index`), reranking (`workbench.rerank`), answering (`workbench.answer`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import numpy as np

from workbench.analyze import UNDETERMINED, detect_language, terms
from workbench.config import RetrievalSettings
from workbench.records import Filters, Hit, SearchTrace
from workbench.index import IndexReader


def dense_ranking(reader: IndexReader, query: np.ndarray, n: int, filters: Filters) -> list[tuple[int, float]]:
    """(chunk id, cosine) best first, among the chunks ``filters`` allow (the generation's
    `VectorSearch`: exact, or its IVF index)."""
    return reader.vector_search.search(query, n, filters)


def query_terms(reader: IndexReader, query: str, settings: RetrievalSettings) -> tuple[str, tuple[str, ...]]:
    """(detected language, terms). An undetermined query is analysed in every indexed language."""
    lang = detect_language(query, settings.languages)
    langs = [lang] if lang != UNDETERMINED else [*reader.catalog.languages(), UNDETERMINED]
    out: dict[str, None] = {}  # ordered and de-duplicated in linear time
    for lg in langs:
        out.update(dict.fromkeys(terms(query, lg)))
    return lang, tuple(out)[: settings.max_query_terms]


def lexical_ranking(reader: IndexReader, words: Sequence[str], n: int, filters: Filters,
                    heading_weight: float = 0.5) -> list[tuple[int, float]]:
    """(chunk id, BM25) best first, among chunks passing ``filters`` (the generation's
    `LexicalSearch`: BM25 matrices, or the catalog's FTS5 table)."""
    return reader.lexical_search.search(words, n, filters, heading_weight)


def lexical_scores(reader: IndexReader, words: Sequence[str], ids: Sequence[int], heading_weight: float = 0.5
                   ) -> dict[int, float]:
    """BM25 of the given chunks (those matching no word are left out), from the same engine as
    `lexical_ranking`."""
    return reader.lexical_search.scores_of(words, ids, heading_weight)


def complete(reader: IndexReader, query: np.ndarray, words: Sequence[str], dense: list[tuple[int, float]],
             lexical: list[tuple[int, float]], heading_weight: float = 0.5
             ) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Both rankings over every candidate either side found, best first, so that fusion compares
    real scores: a chunk only BM25 listed gets its cosine (one dot product with its stored vector),
    a chunk only the dense side listed gets its BM25 (one query over those chunks). A chunk matching
    no query term stays off the lexical ranking; one without a vector (a table of contents) off the
    dense ranking."""
    dense_score, lexical_score = dict(dense), dict(lexical)
    for cid in [c for c in lexical_score if c not in dense_score]:
        vec = reader.vector_search.vector(cid)
        if vec is not None:
            dense_score[cid] = float(vec @ query)
    missing = [c for c in dense_score if c not in lexical_score]
    lexical_score.update(lexical_scores(reader, words, missing, heading_weight))
    by_score = lambda scores: sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))  # noqa: E731
    return by_score(dense_score), by_score(lexical_score)


def fuse(rankings: Sequence[tuple[float, Sequence[int]]], rrf_k: int = 60) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: score(id) = sum over rankings of w / (rrf_k + rank)."""
    scores: dict[int, float] = {}
    for weight, ids in rankings:
        if weight <= 0:
            continue
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (rrf_k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def fuse_relative(rankings: Sequence[tuple[float, Sequence[tuple[int, float]]]]) -> list[tuple[int, float]]:
    """Relative score fusion: each side's scores min-max normalised over its candidates, then
    summed with weights (a chunk missing from one side gets 0 there)."""
    scores: dict[int, float] = {}
    for weight, ranked in rankings:
        if weight <= 0 or not ranked:
            continue
        values = [s for _, s in ranked]
        lo, hi = min(values), max(values)
        for cid, s in ranked:
            norm = (s - lo) / (hi - lo) if hi > lo else 1.0
            scores[cid] = scores.get(cid, 0.0) + weight * norm
    return sorted(scores.items(), key=lambda kv: -kv[1])


def same_document_threshold(threshold: float, identity_weight: float) -> float:
    """The cosine two passages of one document must reach to count as near-duplicates when both
    vectors were mixed with the same identity vector (weight w): mixing shrinks the distance
    between them by the mixed norm, at most 1 + w, so 1 - cosine shrinks by up to (1 + w)²."""
    return 1 - (1 - threshold) / (1 + identity_weight) ** 2


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _dedupe(reader: IndexReader, ordered: list[int], k: int, threshold: float, chunks: dict) -> list[int]:
    """``ordered`` without repeated texts and near-duplicates, first k. A near-duplicate has a vector
    within ``threshold`` cosine of one kept (within one document, the stricter
    `same_document_threshold`) and the same numbers: two companies' statements pages that differ
    only in their figures are both kept."""
    same_doc = same_document_threshold(threshold, reader.identity_weight)
    kept: list[int] = []
    kept_vecs: list[tuple[str, frozenset, np.ndarray]] = []
    seen_text: set[str] = set()
    for cid in ordered:
        text = " ".join(chunks[cid].text.split())
        if text in seen_text:
            continue
        doc = chunks[cid].doc_id
        numbers = frozenset(_NUMBER.findall(text))
        vec = reader.vector_search.vector(cid) if threshold < 1 else None
        if vec is not None and any(n == numbers and float(vec @ v) >= (same_doc if d == doc else threshold)
                                   for d, n, v in kept_vecs):
            continue
        kept.append(cid)
        seen_text.add(text)
        if vec is not None:
            kept_vecs.append((doc, numbers, vec))
        if len(kept) == k:
            break
    return kept


def search(reader: IndexReader, embed_query, query: str, k: int, settings: RetrievalSettings,
           filters: Filters = Filters(), mode: str | None = None, reranker=None) -> tuple[list[Hit], SearchTrace]:
    """The k best chunks for ``query`` and a trace of how they were found.

    ``embed_query`` is a callable text -> vector, called only when the dense side runs;
    ``reranker`` (a `workbench.rerank.Reranker`) re-orders the fused candidates when given.
    """
    final_k = k
    if reranker is not None:
        k = max(k, settings.rerank_candidates)
    mode = mode or settings.mode
    lang, words = query_terms(reader, query, settings)
    use_dense = mode != "lexical" and (lang == UNDETERMINED or lang in settings.dense_languages or mode == "dense")
    allowed = reader.allowed_ids(filters) if use_dense else None  # for the trace (the search reads the same cache)
    n = max(settings.candidates, k * 2)
    t0 = time.perf_counter()
    qvec = embed_query(query) if use_dense else None
    dense = dense_ranking(reader, qvec, n, filters) if use_dense else []
    t1 = time.perf_counter()
    lexical = lexical_ranking(reader, words, n, filters, settings.heading_weight) if mode != "dense" else []
    if use_dense and mode not in ("dense", "lexical"):
        dense, lexical = complete(reader, qvec, words, dense, lexical, settings.heading_weight)
    t2 = time.perf_counter()
    dense_score, lexical_score = dict(dense), dict(lexical)
    if mode == "dense":
        ordered = [cid for cid, _ in dense]
        fused = dense_score
    elif mode == "lexical" or not use_dense:
        ordered = [cid for cid, _ in lexical]
        fused = lexical_score
    else:
        if settings.fusion == "relative":
            pairs = fuse_relative([(settings.dense_weight, dense), (settings.lexical_weight, lexical)])
        else:
            pairs = fuse([(settings.dense_weight, [c for c, _ in dense]),
                          (settings.lexical_weight, [c for c, _ in lexical])], settings.rrf_k)
        ordered, fused = [c for c, _ in pairs], dict(pairs)
    pool = ordered[: max(k * 3, k + 10)]
    chunks = {c.chunk_id: c for c in reader.catalog.chunks(pool)}
    kept = _dedupe(reader, [c for c in pool if c in chunks], k, settings.dedupe_threshold, chunks)
    ocr = reader.catalog.ocr_pages(chunks[cid].doc_id for cid in kept)
    hits = [Hit(chunk=chunks[cid], score=fused[cid], rank=i, dense_score=dense_score.get(cid),
                lexical_score=lexical_score.get(cid), ocr_confidence=ocr.get(chunks[cid].doc_id, {}).get(chunks[cid].page),
                context=tuple(reader.catalog.neighbours(chunks[cid], settings.neighbors)) if settings.neighbors else ())
            for i, cid in enumerate(kept, start=1)]
    if reranker is not None:
        from workbench.rerank import rerank

        hits = rerank(query, hits, reranker, final_k)
    shown_mode = mode if use_dense or mode == "lexical" else "lexical (query language not in dense_languages)"
    trace = SearchTrace(mode=shown_mode, query_language=lang, used_dense=use_dense, generation=reader.generation,
                        dense_ms=(t1 - t0) * 1000, lexical_ms=(t2 - t1) * 1000,
                        allowed=None if allowed is None else len(allowed), lexical_terms=words)
    return hits, trace


