"""Retrieval quality on Cranfield: dense, lexical and hybrid through the real pipeline, one table.

Ingests the 1,400 abstracts (../shared/eval/cranfield, or the folder given) as text files with
the default settings, then runs the 225 queries in each mode. Conventions (from the collection's
README): nDCG@10 uses gain = 5 - code for codes 1..4 and 0 for -1; MAP, R@100 and MRR count
codes 1..4 as relevant. A document's rank is that of its best chunk. The fusion-weight rows show
how the default weights were chosen. Run: `make bench-retrieval`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import machine

import workbench  # noqa: F401
from workbench.config import Config
from workbench.evaluate import evaluate_search, load_cranfield, write_corpus
from workbench.pipeline import Workbench

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "eval" / "cranfield"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    docs, queries, qrels = load_cranfield(folder)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(docs, Path(tmp) / "cranfield")
        cfg = Config().with_index_dir(Path(tmp) / "index")
        wb = Workbench(cfg.replace("index", lexical=sys.argv[2]) if len(sys.argv) > 2 else cfg)
        print(machine.describe(wb.embedder))
        t = time.perf_counter()
        report = wb.ingest(corpus, progress=False)
        print(f"ingested {len(report.added)} abstracts, {report.chunks_added} chunks in {time.perf_counter() - t:.1f}s")
        doc_key = lambda hit: Path(hit.chunk.path).stem  # noqa: E731
        rows = [("dense", {}, "dense"), ("lexical (BM25, stemmed)", {}, "lexical"), ("hybrid (default)", {}, None)]
        rows += [(f"hybrid dense_weight={w}", {"dense_weight": w}, "hybrid") for w in (0.5, 1.5, 2.0)]
        rows += [("hybrid fusion=relative", {"fusion": "relative"}, "hybrid")]
        print(f"{'run':32s} {'nDCG@10':>8s} {'MAP':>7s} {'R@100':>7s} {'MRR':>7s}")
        base = wb.config
        for name, overrides, mode in rows:
            wb.config = base.model_copy(update={"retrieval": base.retrieval.model_copy(update=overrides)})
            m = evaluate_search(lambda q, n: wb.search(q, k=n, mode=mode), queries, qrels, doc_key)
            print(f"{name:32s} {m['nDCG@10']:8.4f} {m['MAP']:7.4f} {m['R@100']:7.4f} {m['MRR']:7.4f}")
        print(f"({int(m['queries'])} queries with judgments)")


if __name__ == "__main__":
    main()
