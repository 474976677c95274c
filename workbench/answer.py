"""Answer wiring: (condense) → retrieve → evidence gate → prompt → stream → check citations.

`answer_stream` yields text pieces as the model produces them and, last, the `Answer`. When
retrieval finds nothing relevant enough (``[answer] min_dense_score`` / ``min_term_overlap``)
it refuses without calling the model. The stage receives its parts (a search function, the
model, its settings) and never reaches back into `Workbench`. Leaves out: conversation storage
(callers pass history), access rights (the search it is handed applies them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence

from workbench.analyze import terms
from workbench.cite import check_citations, degenerate, unsupported_figures
from workbench.config import AnswerSettings
from workbench.generate.base import LLM
from workbench.prompt import build_messages, condense_messages, load_template
from workbench.records import Answer, Citation, Hit, Hits, Reason, Refusal, SearchTrace, Timings, WeakEvidence

CONDENSE_TOKENS = 64


def _citations(hits: Sequence[Hit]) -> tuple[Citation, ...]:
    return tuple(Citation(number=i, chunk=h.chunk, ocr_confidence=h.ocr_confidence) for i, h in enumerate(hits, start=1))


_ASKS_NUMBER = re.compile(r"\b(how (many|much)|what (percentage|percent|share|amount|number|rate|total|price|cost|"
                          r"figure)|cu[aá]nt[oa]s?|qu[eé] (porcentaje|cantidad|importe))\b", re.IGNORECASE)


def asks_for_number(question: str) -> bool:
    """Whether the question asks for a count, an amount, a rate or a share (English and Spanish):
    answers to those are figures. Durations, dates and years are left out (their answers are often
    words: "six months", "every June")."""
    return _ASKS_NUMBER.search(question) is not None


def weak_evidence(question: str, hits: Sequence[Hit], ocr_below: float) -> Reason | None:
    """Why the passages may not support an answer although they passed `evidence_gap` (a `Reason`
    of kind `WeakEvidence`), or None: the question asks for a number and no passage holds a digit
    (the model would have to guess it), or the best passage was read by OCR with a mean word
    confidence under ``ocr_below``."""
    if asks_for_number(question) and hits and not any(re.search(r"\d", h.chunk.text) for h in hits):
        return WeakEvidence.NO_NUMBER.says()
    best = hits[0].ocr_confidence if hits else None
    if best is not None and best < ocr_below:
        return WeakEvidence.LOW_OCR.says(best=best, below=ocr_below)
    return None


def evidence_gap(hits: Sequence[Hit], trace: SearchTrace, settings: AnswerSettings) -> Reason | None:
    """Why the hits are not evidence enough to answer (a `Reason` of kind `Refusal`), or None when they are."""
    if not hits:
        return Refusal.NO_MATCH.says()
    if trace.used_dense:
        best = max((h.dense_score for h in hits if h.dense_score is not None), default=0.0)
        if best < settings.min_dense_score:
            return Refusal.TOO_FAR.says(best=best, limit=settings.min_dense_score)
        return None
    asked = set(trace.lexical_terms)
    top = set(terms(hits[0].chunk.text + " " + " ".join(hits[0].chunk.headings), trace.query_language))
    share = len(asked & top) / len(asked) if asked else 0.0
    if share < settings.min_term_overlap:
        return Refusal.FEW_TERMS.says(share=share, limit=settings.min_term_overlap)
    return None


def condense(llm, template, history: Sequence[tuple[str, str]], question: str) -> str:
    """A stand-alone version of a follow-up question (the question itself when there is no history)."""
    if not history:
        return question
    text = "".join(llm.stream(condense_messages(template, history, question), CONDENSE_TOKENS)).strip()
    first = text.splitlines()[0].strip().strip('"') if text else ""
    return first or question


def answer_stream(question: str, *, search: Callable[[str, int], Hits], llm: Callable[[], LLM],
                  settings: AnswerSettings, max_new_tokens: int, history: Sequence[tuple[str, str]] = (),
                  k: int | None = None, on_sources=None, ocr_below: float = 60.0) -> Iterator[str | Answer]:
    """Yield answer text pieces, then the `Answer`.

    The stage is handed its parts: ``search(query, k)`` returns `Hits` carrying their
    `SearchTrace` (filters and the asker's rights are the caller's business), ``llm()`` returns
    the language model and is called only when the model is needed (a refusal never loads it),
    ``settings`` are ``[answer]``. ``on_sources(hits, generation)`` is called once retrieval is done
    and before anything is generated (the audit log's hook); an exception from it stops the answer.
    A question asking for a number that no passage holds is refused without calling the model; a
    best passage read by OCR under ``ocr_below`` confidence is answered and flagged (`weak_evidence`).
    """
    template = load_template(settings.prompt)
    started = time.perf_counter()
    standalone = question
    if history and settings.condense_followups:
        standalone = condense(llm(), template, history, question)
    hits = search(standalone, k or settings.k)
    trace = hits.trace
    retrieval_ms = (time.perf_counter() - started) * 1000
    generation = trace.generation  # the generation these hits came from, even if a reindex lands now
    if on_sources is not None:
        on_sources(hits, generation)
    gap = evidence_gap(hits, trace, settings)
    weak = weak_evidence(standalone, hits, ocr_below)
    if gap is None and weak is not None and weak.kind is WeakEvidence.NO_NUMBER:
        gap = Refusal.NO_NUMBER.says()
    if gap is not None:
        yield template.refusal
        yield Answer(question=question, text=template.refusal, hits=tuple(hits), refusal=gap,
                     standalone_question=standalone, generation=generation, model="(not called)", weakness=weak,
                     timings=Timings(retrieval_ms=retrieval_ms, total_s=time.perf_counter() - started))
        return
    llm = llm()
    budget = llm.context_window - max_new_tokens - 16
    messages, used = build_messages(template, standalone, hits, llm.count_tokens, budget)
    prompt_tokens = llm.count_tokens(messages)
    t0 = time.perf_counter()
    first = None
    pieces: list[str] = []
    tail, looped = "", False
    stream = llm.stream(messages, max_new_tokens)
    try:
        for piece in stream:
            if first is None:
                first = time.perf_counter() - t0
            pieces.append(piece)
            yield piece
            tail = (tail + piece)[-1500:]
            if degenerate(tail):  # a loop: stop the model now rather than at the token limit
                looped = True
                break
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    elapsed = time.perf_counter() - t0
    raw = "".join(pieces).strip()
    completion = max(1, llm.count_tokens([*messages, {"role": "assistant", "content": raw}]) - prompt_tokens)
    text, cited, invented, uncited = check_citations(raw, len(used), template.refusal)
    refused = template.refusal.rstrip(".") in text and not cited
    refusal = Refusal.DEGENERATE.says() if looped else Refusal.NO_ANSWER_IN_SOURCES.says() if refused else None
    unsupported = [] if refusal else unsupported_figures(text, {n: h.chunk.text for n, h in enumerate(used, 1)})[1]
    yield Answer(
        question=question, text=template.refusal if looped else text or template.refusal, citations=_citations(used),
        hits=tuple(used), refusal=refusal, unsupported_figures=tuple(unsupported),
        standalone_question=standalone, invented_citations=tuple(invented), uncited_sentences=tuple(uncited),
        generation=generation, model=llm.name, cited_numbers=tuple(cited),
        weakness=weak_evidence(standalone, used, ocr_below),
        timings=Timings(retrieval_ms=retrieval_ms, prompt_tokens=prompt_tokens, completion_tokens=completion,
                        time_to_first_token_s=first or elapsed, total_s=time.perf_counter() - started,
                        tokens_per_s=completion / max(elapsed - (first or 0), 1e-6) if completion > 1 else 0.0))



def final_answer(stream: Iterator[str | Answer], on_token: Callable[[str], None] | None = None) -> Answer | None:
    """The `Answer` that ends an answer stream (`answer_stream`, `Workbench.ask_stream`, a remote one),
    handing each text piece before it to ``on_token``."""
    answer = None
    for item in stream:
        if isinstance(item, str):
            if on_token is not None:
                on_token(item)
        else:
            answer = item
    return answer
