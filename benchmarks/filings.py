"""Financial filings: the right page, the right figure, and the ingest speed, on real 10-Q reports.

The development set is `../shared/eval/sec-10q` (20 quarterly reports of AAPL, AMZN, INTC, MSFT and
NVDA; 195 reviewed questions and answers; read from there, never copied in). It has no page-level
gold, so `gold` builds it the way the page benchmark's was built, from evidence checked against
the pages: the figures of each reviewed answer ('$82,959 million', '2.3%') are looked up in the
text the workbench extracts from each report the question spans, and the pages holding the most of
them are that report's gold pages. The result is `filings_gold.jsonl` (question number, kind,
reports, gold pages, the figures that located them; no question text). Questions whose answers
carry no figure found in their reports have no gold and are counted apart.

    .venv/bin/python benchmarks/filings.py gold                 # rebuild filings_gold.jsonl
    .venv/bin/python benchmarks/filings.py                      # retrieval (all modes), parse and ingest speed
    .venv/bin/python benchmarks/filings.py --skip-speed         # retrieval only
    .venv/bin/python benchmarks/filings.py --answers 20         # and 20 answers through the configured LLM

Retrieval: each question searches all 20 reports (k = 10) in dense, lexical and hybrid mode.
Single-report questions: page hit@1/5/10 and MRR (a hit is a gold page of a gold report), per mode
and per kind (single-chunk / multi-chunk, table / text), and report@5 (the right report in the top
5, whatever the page). Multi-report questions: the share of the
reports each spans that appear in its top 10, and the share of questions with all of them there.
Speed: PDF parsing pages/s with tables off and on (this process, same bytes), then a full ingest
with the workbench's defaults against the canonical LangChain pipeline (benchmarks/ingest_speed.py)
in the same run, with the workbench's seconds per stage. Answers: the share of answer sentences
whose figures are found in the passages they cite (`workbench.cite.unsupported_figures`), and how
many answers were stopped as degenerate. The index is cached under ~/.cache/workbench-bench.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import machine  # noqa: E402

EVAL = HERE.parent.parent / "shared" / "eval" / "sec-10q"
GOLD = HERE / "filings_gold.jsonl"
CACHE = Path.home() / ".cache" / "workbench-bench"
MODES = ("dense", "lexical", "hybrid")
_FIGURE = re.compile(r"(?<![\w.])\$?\(?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d{3,})\)?%?(?![\w])")
_YEAR = re.compile(r"^(19|20)\d{2}$")


def questions() -> list[dict]:
    with open(EVAL / "qna_data.csv", newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def answer_figures(answer: str) -> list[str]:
    """The figures of a reviewed answer as the reports print them ('82,959', '2.3'), years and
    bare counts under 100 left out."""
    out = []
    for m in _FIGURE.finditer(answer):
        value = m.group(1)
        if _YEAR.match(value) or (value.isdigit() and int(value) < 100):
            continue
        out.append(value)
    return list(dict.fromkeys(out))


def page_texts(path: Path) -> list[str]:
    import corpus

    return [" ".join(t.split()) for t in corpus.page_texts(path)]


def build_gold() -> None:
    docs = sorted(p.name for p in (EVAL / "docs").glob("*.pdf"))
    texts = {d: page_texts(EVAL / "docs" / d) for d in docs}
    out, missing = [], 0
    for n, q in enumerate(questions()):
        spans = [d for d in docs if fnmatch.fnmatch(d, q["Source Docs"].strip())]
        figures = answer_figures(q["Answer"])
        pages = {}
        for d in spans:
            counts = [(sum(1 for f in figures if re.search(rf"(?<![\d,.]){re.escape(f)}(?![\d,]|\.\d)", t)), i + 1)
                      for i, t in enumerate(texts[d])]
            best = max((c for c, _ in counts), default=0)
            if best:
                pages[d] = [p for c, p in counts if c == best]
        missing += not pages
        out.append({"q": n, "kind": q["Question Type"], "chunk": q["Source Chunk Type"], "docs": spans,
                    "pages": pages, "figures": figures})
    GOLD.write_text("".join(json.dumps(r) + "\n" for r in out))
    print(f"{len(out)} questions, {len(out) - missing} with gold pages, {missing} without; written to {GOLD}")


def load_gold() -> list[dict]:
    return [json.loads(line) for line in GOLD.read_text().splitlines() if line.strip()]


def index_for(variant: str, config_changes: dict):
    from workbench.config import Config
    from workbench.pipeline import Workbench

    folder = CACHE / f"filings-{variant}"
    config = Config().with_index_dir(folder)
    for section, values in config_changes.items():
        config = config.replace(section, **values)
    wb = Workbench(config)
    report = wb.ingest(EVAL / "docs", progress=False)
    if report.added or report.changed:
        print(f"  indexed {variant}: {report.summary()}")
    return wb


def retrieval(wb, gold: list[dict], qs: list[dict]) -> None:
    singles = [g for g in gold if g["kind"] != "Multi-Doc RAG" and g["pages"]]
    multis = [g for g in gold if g["kind"] == "Multi-Doc RAG" and len(g["docs"]) > 1]
    print(f"single-report questions with gold pages: {len(singles)} "
          f"(of {sum(1 for g in gold if g['kind'] != 'Multi-Doc RAG')}); multi-report: {len(multis)}")
    groups = {"all": singles}
    for key in ("Single-Doc Single-Chunk RAG", "Single-Doc Multi-Chunk RAG"):
        groups[key.split()[1].lower()] = [g for g in singles if g["kind"] == key]
    for key in ("Table", "Text"):
        groups[key.lower()] = [g for g in singles if g["chunk"] == key]
    print(f"{'mode':8} {'questions':14} {'n':>4} {'hit@1':>6} {'hit@5':>6} {'hit@10':>7} {'MRR':>6}   {'report@5':>8}")
    for mode in MODES:
        ranks, reports = {}, {}
        for g in singles:
            hits = wb.search(qs[g["q"]]["Question"], k=10, mode=mode)
            ranks[g["q"]] = next((r for r, h in enumerate(hits, 1)
                                  if Path(h.chunk.path).name in g["pages"]
                                  and h.chunk.page in g["pages"][Path(h.chunk.path).name]), None)
            reports[g["q"]] = any(Path(h.chunk.path).name in g["docs"] for h in hits[:5])
        for name, items in groups.items():
            rs = [ranks[g["q"]] for g in items]
            n = max(1, len(rs))
            print(f"{mode:8} {name:14} {len(rs):4} {sum(1 for r in rs if r and r <= 1) / n:6.3f} "
                  f"{sum(1 for r in rs if r and r <= 5) / n:6.3f} {sum(1 for r in rs if r) / n:7.3f} "
                  f"{sum(1 / r for r in rs if r) / n:6.3f}   {sum(reports[g['q']] for g in items) / n:8.3f}")
    print(f"{'mode':8} multi-report: share of spanned reports in the top 10 / questions with all of them")
    for mode in MODES:
        covered, total, complete = 0, 0, 0
        for g in multis:
            hits = wb.search(qs[g["q"]]["Question"], k=10, mode=mode)
            found = {Path(h.chunk.path).name for h in hits} & set(g["docs"])
            covered, total, complete = covered + len(found), total + len(g["docs"]), complete + (len(found) == len(g["docs"]))
        print(f"{mode:8} {covered / max(1, total):.3f} of {total} reports   {complete}/{len(multis)} questions complete")


def parse_speed() -> None:
    from workbench.load import LoadLimits
    from workbench.load.pdf import load_pdf

    files = sorted((EVAL / "docs").glob("*.pdf"))
    data = [f.read_bytes() for f in files]
    import pypdfium2

    pages = sum(len(pypdfium2.PdfDocument(d)) for d in data)
    seconds = {}
    for on in (False, True):
        started = time.perf_counter()
        found = sum(int(load_pdf(d, "x", LoadLimits(pdf_tables=on)).metadata.get("tables", 0)) for d in data)
        seconds[on] = time.perf_counter() - started
        print(f"parse, tables {'on ' if on else 'off'}: {seconds[on]:6.1f} s  {pages / seconds[on]:6.1f} pages/s  "
              f"({found} tables)")
    print(f"tables cost {seconds[True] - seconds[False]:.1f} s = {(seconds[True] - seconds[False]) / seconds[False]:.2f}x "
          f"the text extraction ({pages} pages)")


def langchain_ingest(files: list[Path], model_path: str) -> tuple[float, int, int, list[str]]:
    """The canonical LangChain pipeline of benchmarks/ingest_speed.py, file by file: PyPDFLoader
    refuses some filings (pypdf's limits), which are left out (and named) rather than ending the run."""
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    emb = HuggingFaceEmbeddings(model_name=model_path, model_kwargs={"device": "cpu"},
                                encode_kwargs={"normalize_embeddings": True})
    emb.embed_query("warm up")
    started = time.perf_counter()
    docs, failed = [], []
    for f in files:
        try:
            docs += PyPDFLoader(str(f)).load()
        except Exception:  # noqa: BLE001 - pypdf's LimitReachedError and the like
            failed.append(f.name)
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
    FAISS.from_documents(chunks, emb)
    return time.perf_counter() - started, len(chunks), len(docs), failed


def ingest_speed() -> None:
    from workbench.config import Config
    from workbench.embed import resolve_model_path
    from workbench.pipeline import Workbench

    files = sorted((EVAL / "docs").glob("*.pdf"))
    import pypdfium2

    pages = sum(len(pypdfium2.PdfDocument(str(f))) for f in files)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, tables in (("tables on", True), ("tables off", False)):
            wb = Workbench(Config().with_index_dir(Path(tmp) / name).replace("ingest", pdf_tables=tables))
            if not results:
                print(machine.describe(wb.embedder))
            wb.embedder.embed_documents(["warm up"])
            wb.embedder.prepare_queries()
            report = wb.ingest(EVAL / "docs", progress=False)
            results[name] = report.seconds
            stages = ", ".join(f"{k} {v:.1f}" for k, v in report.stage_seconds.items())
            print(f"workbench ({name}): {report.seconds:6.1f} s  {pages / report.seconds:6.1f} pages/s  "
                  f"{report.chunks_added} chunks  [{stages}]")
            embed = report.stage_seconds.get("embed", 0.0)
            if tables:
                tables_s = report.stage_seconds.get("tables", 0.0)
                share = tables_s / max(1e-9, report.stage_seconds.get("parse", 0.0) - tables_s + embed)
                print(f"  tables / (text extraction + embed) = {share:.3f} (target 0.2); embedding bound {pages / max(embed, 1e-9):.1f} pages/s, "
                      f"whole ingest at {embed / report.seconds:.0%} of it")
    lc_s, lc_chunks, lc_pages, lc_failed = langchain_ingest(files, resolve_model_path("all-MiniLM-L6-v2"))
    print(f"langchain: {lc_s:6.1f} s  {lc_pages / lc_s:6.1f} pages/s  {lc_chunks} chunks  "
          f"({len(lc_failed)} reports PyPDFLoader could not read, left out of its time: {', '.join(lc_failed) or 'none'})")
    for name, seconds in results.items():  # pages per second, as LangChain read fewer pages
        print(f"speed ratio workbench ({name}) / langchain, pages/s: {(pages / seconds) / (lc_pages / lc_s):.2f}x")


def answers(wb, gold: list[dict], qs: list[dict], n: int) -> None:
    from workbench.cite import unsupported_figures
    from workbench.records import Refusal

    picked = [g for g in gold if g["kind"] != "Multi-Doc RAG" and g["chunk"] == "Table"][:n]
    sentences = supported = failed = refused = 0
    for g in picked:
        answer = wb.ask(qs[g["q"]]["Question"])
        if answer.refusal is not None and answer.refusal.kind is Refusal.DEGENERATE:
            failed += 1
            continue
        if answer.refused:
            refused += 1
            continue
        checked, unsupported = unsupported_figures(answer.text, {i: h.chunk.text for i, h in enumerate(answer.hits, 1)})
        sentences += checked
        supported += checked - len(unsupported)
    print(f"answers: {len(picked)} asked, {refused} refused, {failed} stopped as degenerate; "
          f"{supported}/{sentences} sentences with figures had them in their cited passages "
          f"({supported / max(1, sentences):.0%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="run", choices=["run", "gold"])
    ap.add_argument("--skip-speed", action="store_true", help="retrieval only")
    ap.add_argument("--skip-retrieval", action="store_true", help="speed only")
    ap.add_argument("--answers", type=int, default=0, help="answer this many table questions through the LLM")
    ap.add_argument("--variant", default="default", help="name of the cached index (another code version, say)")
    args = ap.parse_args()
    if not EVAL.is_dir():
        sys.exit(f"the development set is not at {EVAL}: it lives beside the checkout in ../shared/eval/sec-10q")
    if args.command == "gold":
        build_gold()
        return
    import workbench  # noqa: F401  (offline switches)

    qs, gold = questions(), load_gold()
    if not args.skip_retrieval or args.answers:
        wb = index_for(args.variant, {})
        print(machine.describe(wb.embedder))
        if not args.skip_retrieval:
            retrieval(wb, gold, qs)
        if args.answers:
            answers(wb, gold, qs, args.answers)
    if not args.skip_speed:
        parse_speed()
        ingest_speed()


if __name__ == "__main__":
    main()
