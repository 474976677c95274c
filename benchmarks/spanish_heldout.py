"""Held-out Spanish questions over the paragraphs of Debian's Spanish reference manual.

Every paragraph of 25 words or more of `debian-reference-es` (apt-get install debian-reference-es;
about 600) is one document; each question in `benchmarks/spanish_questions.jsonl` was written in
Spanish by reading one paragraph (of 40 words or more) and names that paragraph's id. The script
reports, on the same questions, the share whose paragraph ranks first (and in the top 5) for:

- plain BM25: bm25s with the Spanish Snowball stemmer and Spanish stop words, default k1/b
  (the baseline the issue measured 0.917 with on encyclopedia paragraphs);
- the workbench's default pipeline (`search` as a user runs it), and its lexical, dense and
  hybrid modes;
- the same with `[index] lexical = "fts5"` (SQLite FTS5's bm25, the engine before BM25 matrices).

    .venv/bin/python benchmarks/spanish_heldout.py                 # the comparison
    .venv/bin/python benchmarks/spanish_heldout.py list [CHAPTER]  # paragraph ids and openings
    .venv/bin/python benchmarks/spanish_heldout.py show ID         # one paragraph
    .venv/bin/python benchmarks/spanish_heldout.py check           # every question names a paragraph
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

SOURCE = Path("/usr/share/debian-reference")
QUESTIONS = HERE / "spanish_questions.jsonl"
MIN_WORDS = 25


def paragraphs() -> dict[str, str]:
    """{id: text} of every paragraph of 25+ words; ids are '<chapter>-<n>' in reading order."""
    from workbench.load import parse_bytes

    pages = sorted(SOURCE.glob("*.es.html"))
    if not pages:
        sys.exit("missing corpus; run: apt-get install debian-reference-es")
    out: dict[str, str] = {}
    for page in pages:
        n = 0
        for doc in parse_bytes(page.read_bytes(), page.name):
            for block in doc.blocks:
                if len(block.text.split()) >= MIN_WORDS:
                    out[f"{page.name.split('.')[0]}-{n:03d}"] = block.text
                    n += 1
    return out


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def check(questions: list[dict], paras: dict[str, str]) -> int:
    bad, seen = 0, set()
    for n, q in enumerate(questions, 1):
        problems = []
        if q.get("paragraph") not in paras:
            problems.append(f"unknown paragraph {q.get('paragraph')!r}")
        elif len(paras[q["paragraph"]].split()) < 40:
            problems.append("paragraph under 40 words")
        if q.get("paragraph") in seen:
            problems.append("second question on the same paragraph")
        seen.add(q.get("paragraph"))
        if len(str(q.get("question", "")).split()) < 4:
            problems.append("question under 4 words")
        if problems:
            bad += 1
            print(f"line {n}: " + "; ".join(problems))
    print(f"{len(questions)} questions; {bad} with problems")
    return bad


def plain_bm25(paras: dict[str, str], questions: list[dict]) -> list[list[str]]:
    """Top-5 paragraph ids per question from bm25s with the Spanish stemmer and stop words."""
    import bm25s
    import Stemmer

    ids = list(paras)
    stemmer = Stemmer.Stemmer("spanish")
    retriever = bm25s.BM25()  # default k1 = 1.5, b = 0.75
    retriever.index(bm25s.tokenize(list(paras.values()), stopwords="es", stemmer=stemmer, show_progress=False),
                    show_progress=False)
    tokens = bm25s.tokenize([q["question"] for q in questions], stopwords="es", stemmer=stemmer, show_progress=False)
    docs, _ = retriever.retrieve(tokens, k=5, show_progress=False)
    return [[ids[int(i)] for i in row] for row in docs]


def report(name: str, ranked: list[list[str]], questions: list[dict]) -> None:
    n = len(questions)
    top1 = sum(r[:1] == [q["paragraph"]] for r, q in zip(ranked, questions))
    top5 = sum(q["paragraph"] in r[:5] for r, q in zip(ranked, questions))
    print(f"  {name:44s} top-1 {top1:3d}/{n} = {top1 / n:.3f}   top-5 {top5 / n:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="run", choices=("run", "list", "show", "check"))
    ap.add_argument("args", nargs="*")
    ap.add_argument("--questions", default=str(QUESTIONS), help="question file (JSON lines)")
    opts = ap.parse_args()
    paras = paragraphs()
    if opts.command == "list":
        for pid, text in paras.items():
            if (not opts.args or pid.startswith(opts.args[0])) and len(text.split()) >= 40:
                print(f"{pid}  {' '.join(text.split())[:160]}")
        return
    if opts.command == "show":
        print(paras[opts.args[0]])
        return
    questions = load_questions(opts.questions)
    if check(questions, paras):
        sys.exit(1)
    if opts.command == "check":
        return
    import machine

    from workbench.config import Config
    from workbench.pipeline import Workbench

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "es"
        src.mkdir()
        for pid, text in paras.items():
            (src / f"{pid}.txt").write_text(text, encoding="utf-8")
        wb = Workbench(Config().with_index_dir(Path(tmp) / "index"))
        print(machine.describe(wb.embedder))
        print(f"{len(paras)} paragraphs of debian-reference-es, {len(questions)} held-out questions")
        wb.ingest(src, progress=False)
        report("plain BM25 (bm25s, Snowball es, stop words)", plain_bm25(paras, questions), questions)
        default = wb.config
        forced = default.replace("retrieval", dense_languages=("en", "es"))  # MiniLM on Spanish, fused anyway
        for name, cfg, mode in (("workbench default pipeline", default, None), ("workbench lexical", default, "lexical"),
                                ("workbench dense", default, "dense"),
                                ("workbench hybrid, dense forced on for Spanish", forced, "hybrid")):
            wb.config = cfg
            ranked = [[Path(h.chunk.path).stem for h in wb.search(q["question"], k=5, mode=mode)] for q in questions]
            report(name, ranked, questions)
        wb.config = default
        # the lexical engine before: SQLite FTS5's bm25 (IDF floored at zero for common words)
        fts = Workbench(Config().with_index_dir(Path(tmp) / "index-fts5").replace("index", lexical="fts5"),
                        embedder=wb.embedder)
        fts.ingest(src, progress=False)
        for name, mode in (("workbench default pipeline, lexical = fts5", None), ("workbench lexical, fts5", "lexical")):
            ranked = [[Path(h.chunk.path).stem for h in fts.search(q["question"], k=5, mode=mode)] for q in questions]
            report(name, ranked, questions)


if __name__ == "__main__":
    main()
