"""Ranked-retrieval metrics (nDCG@k, MAP, recall@k, MRR) and the Cranfield collection reader.

Pure functions over ranked id lists and graded judgments ``{query_id: {doc_id: gain}}``; a gain
above zero counts as relevant for MAP, recall and MRR. Leaves out: running retrieval (callers pass
rankings) and citation/refusal metrics (they come with grounded answers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

Qrels = Mapping[str, Mapping[str, float]]


def ndcg_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int = 10) -> float:
    dcg = sum(gains.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def average_precision(ranking: Sequence[str], gains: Mapping[str, float]) -> float:
    relevant = {d for d, g in gains.items() if g > 0}
    hits, total = 0, 0.0
    for i, d in enumerate(ranking):
        if d in relevant:
            hits += 1
            total += hits / (i + 1)
    return total / len(relevant) if relevant else 0.0


def recall_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int) -> float:
    relevant = {d for d, g in gains.items() if g > 0}
    return len(relevant & set(ranking[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank(ranking: Sequence[str], gains: Mapping[str, float]) -> float:
    return next((1 / (i + 1) for i, d in enumerate(ranking) if gains.get(d, 0) > 0), 0.0)


def evaluate(rankings: Mapping[str, Sequence[str]], qrels: Qrels, k: int = 10) -> dict[str, float]:
    """Mean metrics over the queries that have at least one relevant document."""
    qids = [q for q in qrels if any(g > 0 for g in qrels[q].values())]
    n = len(qids) or 1
    return {
        f"nDCG@{k}": sum(ndcg_at_k(rankings.get(q, []), qrels[q], k) for q in qids) / n,
        "MAP": sum(average_precision(rankings.get(q, []), qrels[q]) for q in qids) / n,
        "R@100": sum(recall_at_k(rankings.get(q, []), qrels[q], 100) for q in qids) / n,
        "MRR": sum(reciprocal_rank(rankings.get(q, []), qrels[q]) for q in qids) / n,
        "queries": float(len(qids)),
    }


def load_cranfield(folder: str | Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, float]]]:
    """(docs id -> title + text, queries id -> text, qrels) with gain = 5 - code, -1 -> 0."""
    folder = Path(folder)
    docs = {}
    for line in (folder / "docs.jsonl").read_text().splitlines():
        d = json.loads(line)
        title, body = d["title"].strip(), d["text"].strip()
        body = body[len(title):].strip() if body.startswith(title) else body  # abstracts repeat their title
        docs[str(d["doc_id"])] = f"{title}\n\n{body}".strip()
    queries = {str(q["query_id"]): q["text"] for q in map(json.loads, (folder / "queries.jsonl").read_text().splitlines())}
    qrels: dict[str, dict[str, float]] = {}
    for line in (folder / "qrels.trec").read_text().split("\n"):
        if line.strip():
            qid, _, did, rel = line.split()
            code = int(rel)
            qrels.setdefault(qid, {})[did] = float(5 - code) if 1 <= code <= 4 else 0.0
    return docs, queries, qrels


def rank_documents(hits, doc_key) -> list[str]:
    """Document ids in the order of their best chunk."""
    ranking: list[str] = []
    for hit in hits:
        key = doc_key(hit)
        if key not in ranking:
            ranking.append(key)
    return ranking


def evaluate_search(search, queries: Mapping[str, str], qrels: Qrels, doc_key, depth: int = 100,
                    k: int = 10) -> dict[str, float]:
    """Metrics of ``search(query, depth) -> hits`` over ``queries``; ``doc_key(hit)`` names the judged unit."""
    rankings = {qid: rank_documents(search(text, depth), doc_key) for qid, text in queries.items()}
    return evaluate(rankings, qrels, k)


def write_corpus(docs: Mapping[str, str], folder: str | Path) -> Path:
    """One text file per document (``<id>.txt``), for ingesting a labelled collection."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id, text in docs.items():
        if text.strip():
            (folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    return folder
