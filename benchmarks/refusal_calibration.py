"""Calibrate the evidence gate ([answer] min_dense_score) on the sample documents.

Prints, for questions the sample documents answer and questions they do not, the best cosine
among the retrieved sources, then the thresholds that separate them. The default in config.py
sits inside the gap. Run: `.venv/bin/python benchmarks/refusal_calibration.py`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import machine

import workbench  # noqa: F401
from workbench.config import Config
from workbench.pipeline import Workbench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from calibration_questions import ANSWERABLE, UNANSWERABLE  # noqa: E402


def best_cosine(wb: Workbench, question: str) -> float:
    hits, trace = wb.search_with_trace(question, k=wb.config.answer.k)
    return max((h.dense_score for h in hits if h.dense_score is not None), default=0.0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wb = Workbench(Config().with_index_dir(Path(tmp) / "index"))
        print(machine.describe(wb.embedder))
        wb.ingest(ROOT / "data" / "sample", progress=False)
        yes = sorted((best_cosine(wb, q), q) for q in ANSWERABLE)
        no = sorted((best_cosine(wb, q), q) for q in UNANSWERABLE)
    for label, rows in (("answerable", yes), ("not covered", no)):
        print(label)
        for score, q in rows:
            print(f"  {score:.3f}  {q}")
    lo, hi = max(s for s, _ in no), min(s for s, _ in yes)
    print(f"highest 'not covered': {lo:.3f}; lowest 'answerable': {hi:.3f}; "
          f"{'separable: any threshold in between' if lo < hi else 'overlap: choose by cost of each error'}")
    print(f"configured answer.min_dense_score = {Config().answer.min_dense_score}")


if __name__ == "__main__":
    main()
