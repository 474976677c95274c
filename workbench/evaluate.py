"""Evaluation: ranked-retrieval metrics, the Cranfield reader, and a user's own labelled questions.

Metrics are pure functions over ranked id lists and graded judgments ``{query_id: {doc_id: gain}}``
(a gain above zero counts as relevant for MAP, recall and MRR). `load_questions` reads a labelled
question file (CSV or JSONL, format below); `evaluate_retrieval` scores dense, lexical and hybrid
search on it at document level, and `evaluate_answers` asks the model each question and counts
citations and refusals. The notebook `04_evaluate`, `workbench eval FILE` and the tests share these.

Question file: CSV with a header, or JSONL, with the fields
  ``question``  the question;
  ``relevant``  the documents that answer it: file names or globs (``handbook*.pdf``), ``;``-separated
                (a list in JSONL); an e-mail attachment is ``mail.eml » attachment.pdf``; empty = the
                documents do not cover it (the model should refuse);
  ``answer``    optional: a phrase a correct answer contains (compared case-insensitively).
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.records import _Record

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
        **({f"R@{k}": sum(recall_at_k(rankings.get(q, []), qrels[q], k) for q in qids) / n} if k != 100 else {}),
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


# ---- a user's own labelled questions ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LabelledQuestion(_Record):
    """One line of a question file: the question, the documents that answer it, an expected phrase."""

    question: str
    relevant: tuple[str, ...] = ()
    answer: str = ""

    @property
    def covered(self) -> bool:
        return bool(self.relevant)


def load_questions(path: str | Path) -> list[LabelledQuestion]:
    """Read a question file (``.csv`` or ``.jsonl``; see the module docstring for the fields)."""
    path = Path(path)
    if not path.exists():
        raise WorkbenchError(f"no question file {path}")
    rows: list[dict] = []
    if path.suffix.lower() == ".jsonl":
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise WorkbenchError(f"{path}:{n}: not JSON ({exc.msg})") from None
    else:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    out = []
    for n, row in enumerate(rows, start=1):
        question = str(row.get("question") or "").strip()
        if not question:
            raise WorkbenchError(f"{path}: entry {n} has no 'question' (fields: question, relevant, answer)")
        relevant = row.get("relevant") or ()
        if isinstance(relevant, str):
            relevant = relevant.split(";")
        out.append(LabelledQuestion(question, tuple(r.strip() for r in relevant if r.strip()),
                                    str(row.get("answer") or "").strip()))
    return out


def document_key(chunk) -> str:
    """How a question file names a document: its file name, plus ' » part' for an attachment.

    Takes anything with ``path`` and ``part`` (a `Chunk` or a `Citation`)."""
    name = Path(chunk.path).name
    return f"{name} » {chunk.part}" if chunk.part else name


def judgments(questions: Sequence[LabelledQuestion], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """qrels for the covered questions: each pattern matched against the indexed document names.

    Raises WorkbenchError naming the question whose pattern matches no document (a typo in the file).
    """
    qrels: dict[str, dict[str, float]] = {}
    for i, q in enumerate(questions):
        if not q.covered:
            continue
        matched = {n for n in names for p in q.relevant if fnmatch.fnmatchcase(n, p)}
        if not matched:
            raise WorkbenchError(f"question {i + 1} ({q.question!r}): no indexed document matches "
                                 f"{'; '.join(q.relevant)}")
        qrels[str(i)] = {n: 1.0 for n in matched}
    return qrels


def evaluate_retrieval(wb, questions: Sequence[LabelledQuestion], modes: Sequence[str] = ("dense", "lexical", "hybrid"),
                       k: int = 10, depth: int = 50, principal=None) -> dict[str, dict[str, float]]:
    """{mode: {nDCG@k, MAP, R@100, R@k, MRR, queries}} over the covered questions, at document level.

    ``principal``: search as that user (documents they may not read count as not found).
    """
    names = sorted({document_key(c) for c in wb.chunks()})
    qrels = judgments(questions, names)
    queries = {qid: questions[int(qid)].question for qid in qrels}
    return {mode: evaluate_search(lambda text, n, m=mode: wb.search(text, k=n, mode=m, principal=principal),
                                  queries, qrels,
                                  lambda h: document_key(h.chunk), depth, k)
            for mode in modes}


def evaluate_answers(wb, questions: Sequence[LabelledQuestion], principal=None) -> dict[str, float]:
    """Ask the model every question; count answers, refusals and citations.

    Returned counts: ``questions``, ``covered``, ``answered`` (covered and not refused),
    ``refused_uncovered`` (correct refusals), ``answered_uncovered`` (should have refused),
    ``cited`` (answers with at least one valid citation), ``cited_relevant`` (citing a relevant
    document), ``invented_citations`` (answers that cited a source that does not exist),
    ``expected_phrase`` (answers containing the file's ``answer`` phrase, of those that give one),
    ``seconds`` (mean time per question).
    """
    stats = dict.fromkeys(("questions", "covered", "answered", "refused_uncovered", "answered_uncovered", "cited",
                           "cited_relevant", "invented_citations", "with_phrase", "expected_phrase", "seconds"), 0.0)
    for q in questions:
        a = wb.ask(q.question, principal=principal)
        stats["questions"] += 1
        stats["seconds"] += a.timings.total_s
        stats["invented_citations"] += bool(a.invented_citations)
        if not q.covered:
            stats["refused_uncovered" if a.refused else "answered_uncovered"] += 1
            continue
        stats["covered"] += 1
        if a.refused:
            continue
        stats["answered"] += 1
        cited = a.cited
        stats["cited"] += bool(cited)
        keys = {document_key(c) for c in cited}
        stats["cited_relevant"] += any(fnmatch.fnmatchcase(key, p) for key in keys for p in q.relevant)
        if q.answer:
            stats["with_phrase"] += 1
            stats["expected_phrase"] += q.answer.lower() in a.text.lower()
    stats["seconds"] /= max(stats["questions"], 1)
    return stats
