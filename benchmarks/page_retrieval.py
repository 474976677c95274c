"""Page-level retrieval on 21 long real manuals: does search put the right page first?

The questions (`benchmarks/page_questions/*.jsonl`) were written by reading the pages: each names
its manual (`doc`), its gold page(s) (1-based physical pages, as the workbench cites them), a short
answer, and an ``evidence`` phrase copied from the gold page, which `check` verifies against the
text the workbench extracts. Kinds: ``fact`` (a statement on one page), ``table`` (one cell of a
table, asked by its row and column) and ``names-document`` (the question names the manual, whose
pages do not repeat that name).

    .venv/bin/python benchmarks/page_retrieval.py              # hit@1/5/10 for dense, lexical, hybrid
    .venv/bin/python benchmarks/page_retrieval.py --answers    # and answers through the configured LLM
    .venv/bin/python benchmarks/page_retrieval.py check        # verify every question's evidence
    .venv/bin/python benchmarks/page_retrieval.py parse        # PDF parsing pages/s, tables off vs on
    .venv/bin/python benchmarks/page_retrieval.py text DOC PAGE    # a page's text (for writing questions)
    .venv/bin/python benchmarks/page_retrieval.py grep DOC WORDS   # the pages of DOC that hold WORDS

Leaves out: page hits of passages that straddle two pages are counted for the page the workbench
cites (the passage's last page).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import corpus  # noqa: E402

CACHE = Path.home() / ".cache" / "workbench-bench"
QUESTIONS = HERE / "page_questions"
KINDS = ("fact", "table", "names-document")
# Config changes per variant ((section, key, value), ...) and what they show.
VARIANTS = {
    "before": (("chunking", "identity_weight", 0.0), ("ingest", "pdf_tables", False)),
    "identity": (("ingest", "pdf_tables", False),),
    "default": (),
}
VARIANT_TEXT = {
    "before": "no document identity in the embedded input, PDF tables as running text",
    "identity": "document identity mixed into passage vectors (point 3), PDF tables as running text",
    "default": "the default: identity mixed in, and PDF tables as rows with headers (point 2)",
}


def norm(text: str) -> str:
    """Lower case, hyphenated line ends joined, runs of white space as one space."""
    text = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text)
    text = text.replace("\ufb01", "fi").replace("\ufb02", "fl").replace("\u2019", "'").replace("\u2018", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2013", "-").replace("\u2014", "-")
    return " ".join(text.lower().split())


def load_questions(files=None) -> list[dict]:
    out = []
    for path in sorted(files or QUESTIONS.glob("*.jsonl")):
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            if line.strip():
                q = json.loads(line)
                q["_where"] = f"{Path(path).name}:{n}"
                out.append(q)
    return out


class Pages:
    """Page texts of the corpus, extracted once per manual."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._texts: dict[str, list[str]] = {}

    def of(self, doc: str) -> list[str]:
        if doc not in self._texts:
            self._texts[doc] = corpus.page_texts(self.folder / doc)
        return self._texts[doc]


def check(questions: list[dict], pages: Pages) -> int:
    """Print every question whose evidence is not on a gold page (and where else it is); return the count."""
    bad = 0
    ids = set()
    for q in questions:
        problems = []
        for key in ("id", "doc", "question", "pages", "evidence", "kind", "answer"):
            if key not in q:
                problems.append(f"missing {key}")
        if problems:
            print(f"{q['_where']}: {', '.join(problems)}")
            bad += 1
            continue
        if q["id"] in ids:
            problems.append("duplicate id")
        ids.add(q["id"])
        if q["doc"] not in corpus.PAGE_CORPUS:
            print(f"{q['_where']} {q['id']}: unknown doc {q['doc']}")
            bad += 1
            continue
        if q["kind"] not in KINDS:
            problems.append(f"kind must be one of {KINDS}")
        texts = pages.of(q["doc"])
        ev = norm(q["evidence"])
        found = [i + 1 for i, t in enumerate(texts) if ev in norm(t)]
        if len(ev) < 15:
            problems.append("evidence under 15 characters")
        if not set(found) & set(q["pages"]):
            problems.append(f"evidence not on gold pages {q['pages']} (found on {found[:10]})")
        elif set(found) - set(q["pages"]):
            problems.append(f"evidence also on pages {sorted(set(found) - set(q['pages']))[:10]}: add them or pick a narrower phrase")
        if q["kind"] == "names-document" and False:
            pass
        if problems:
            print(f"{q['_where']} {q['id']}: " + "; ".join(problems))
            bad += 1
    print(f"{len(questions)} questions over {len({q.get('doc') for q in questions})} manuals; {bad} with problems")
    return bad


def parse_speed(folder: Path) -> None:
    """Parse every manual with [ingest] pdf_tables off, then on, in this process: pages/s and tables."""
    import time

    import machine

    from workbench.load import LoadLimits
    from workbench.load.pdf import load_pdf

    print(machine.describe(None))
    totals = {False: 0.0, True: 0.0}
    pages = tables = 0
    for name in corpus.PAGE_CORPUS:
        data = (folder / name).read_bytes()
        row = []
        for on in (False, True):
            started = time.perf_counter()
            doc = load_pdf(data, name, LoadLimits(pdf_tables=on))
            totals[on] += time.perf_counter() - started
            row.append(time.perf_counter() - started)
        n = len(corpus.page_texts(folder / name))
        pages += n
        tables += int(doc.metadata.get("tables", 0))
        print(f"  {name:28s} {n:5d} pages  off {row[0]:6.2f}s  on {row[1]:6.2f}s  tables {doc.metadata.get('tables', 0)}")
    print(f"{pages} pages: tables off {pages / totals[False]:.1f} pages/s, on {pages / totals[True]:.1f} pages/s "
          f"(ratio {totals[False] / totals[True]:.2f}), {tables} tables")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="run", choices=("run", "check", "text", "grep", "parse"))
    ap.add_argument("args", nargs="*")
    ap.add_argument("--answers", action="store_true", help="also answer the questions with the configured LLM")
    ap.add_argument("--answer-limit", type=int, default=0, help="answer only the first N questions (0: all)")
    ap.add_argument("--questions", nargs="*", help="question files (default: benchmarks/page_questions/*.jsonl)")
    ap.add_argument("--variants", nargs="*", default=["default"], choices=sorted(VARIANTS),
                    help="index variants to compare in one run (each has its own cached index)")
    opts = ap.parse_args()
    folder = CACHE / "page-corpus"
    corpus.build_pages(folder)
    pages = Pages(folder)
    if opts.command == "text":
        doc, page = opts.args
        print(pages.of(doc)[int(page) - 1])
    elif opts.command == "grep":
        doc, words = opts.args[0], norm(" ".join(opts.args[1:]))
        for i, t in enumerate(pages.of(doc)):
            if words in norm(t):
                print(i + 1)
    elif opts.command == "parse":
        parse_speed(folder)
    elif opts.command == "check":
        sys.exit(1 if check(load_questions(opts.questions), pages) else 0)
    else:
        run(load_questions(opts.questions), folder, pages, opts.answers, opts.variants, opts.answer_limit)


MODES = ("dense", "lexical", "hybrid")


def is_hit(hit, q) -> bool:
    return Path(hit.chunk.path).name == q["doc"] and hit.chunk.page in q["pages"]


def first_rank(hits, q) -> int | None:
    return next((h.rank for h in hits if is_hit(h, q)), None)


def table(rows: dict[str, list[int | None]], n: int) -> None:
    print(f"  {'':28s} {'n':>4s} {'hit@1':>6s} {'hit@5':>6s} {'hit@10':>6s} {'MRR':>6s}")
    for name, ranks in rows.items():
        k = len(ranks)
        at = [sum(1 for r in ranks if r is not None and r <= c) / k for c in (1, 5, 10)]
        mrr = sum(1 / r for r in ranks if r is not None) / k
        print(f"  {name:28s} {k:4d} {at[0]:6.3f} {at[1]:6.3f} {at[2]:6.3f} {mrr:6.3f}")


def table_row_questions(questions, folder: Path) -> set[str]:
    """Ids of the table questions whose gold page has a table the PDF loader reads as rows."""
    from workbench.load.pdf import load_pdf

    rows: dict[str, set[int]] = {}
    out = set()
    for q in questions:
        if q["kind"] != "table":
            continue
        if q["doc"] not in rows:
            doc = load_pdf((folder / q["doc"]).read_bytes(), q["doc"])
            rows[q["doc"]] = {b.page for b in doc.blocks if b.kind == "row"}
        if rows[q["doc"]] & set(q["pages"]):
            out.add(q["id"])
    return out


def run(questions, folder, pages, answers, variants, answer_limit=0):
    from workbench.config import Config
    from workbench.pipeline import Workbench

    import machine

    bad = check(questions, pages)
    if bad:
        sys.exit(f"{bad} questions fail their check; fix them first")
    ruled = table_row_questions(questions, folder)
    print(f"{len(ruled)} of the table questions are on pages whose table the PDF loader reads as rows with headers")
    for variant in variants:
        cfg = Config().with_index_dir(CACHE / f"page-index-{variant}")
        for section, key, value in VARIANTS[variant]:
            cfg = cfg.replace(section, **{key: value})
        wb = Workbench(cfg)
        if variant == variants[0]:
            print(machine.describe(wb.embedder))
        report = wb.ingest(folder, progress=False)
        print(f"\n== {variant}: {VARIANT_TEXT[variant]}\n  {report.summary()}")
        for mode in MODES:
            ranks = [first_rank(wb.search(q["question"], k=10, mode=mode), q) for q in questions]
            rows = {f"{mode} (all)": ranks}
            for kind in KINDS:
                rows[f"{mode} {kind}"] = [r for r, q in zip(ranks, questions) if q["kind"] == kind]
            rows[f"{mode} table, as rows"] = [r for r, q in zip(ranks, questions) if q["id"] in ruled]
            table(rows, len(questions))
        if answers:
            answer_stats(wb, questions[:answer_limit] if answer_limit else questions)


def answer_stats(wb, questions) -> None:
    """Answers through the configured LLM: refused, flagged as weak, cited a gold page, held the answer."""
    n = len(questions)
    refused = weak = cites_gold = holds = 0
    seconds = []
    for q in questions:
        a = wb.ask(q["question"])
        seconds.append(a.timings.total_s)
        refused += a.refused
        weak += bool(a.weak_evidence)
        cites_gold += any(is_hit(c, q) for c in a.citations if c.number in a.cited_numbers)
        holds += norm(q["answer"]) in norm(a.text)
    seconds.sort()
    print(f"  answers ({wb.config.llm.backend} {wb.config.llm.model}): {n} questions, refused {refused}, "
          f"weak evidence {weak}, cited a gold page {cites_gold} ({cites_gold / n:.0%}), "
          f"text holds the short answer {holds} ({holds / n:.0%}), median {seconds[n // 2]:.1f} s per answer")


if __name__ == "__main__":
    main()
