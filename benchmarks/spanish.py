"""Spanish questions over Spanish passages: lexical, dense, plain fusion and the default pipeline.

A small hand-written set (tests/data/es_passages.json: 10 passages, 14 questions) ingested through
the real pipeline with all-MiniLM-L6-v2 (an English model), among up to 600 Spanish distractor
paragraphs from Debian's `debian-reference-es` (apt-get install debian-reference-es) when present. Prints, per run, the share of
questions whose right passage ranks first. 'plain fusion' forces equal-weight RRF with the dense
side on; the default pipeline detects Spanish, which is not in [retrieval] dense_languages, and
answers from BM25 with the Spanish stemmer alone. Run: `.venv/bin/python benchmarks/spanish.py`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import machine

import workbench  # noqa: F401
from workbench.config import Config
from workbench.pipeline import Workbench

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "es_passages.json"
DISTRACTORS = Path("/usr/share/debian-reference")


def distractors(limit: int = 600) -> list[str]:
    from workbench.load import parse_bytes

    out: list[str] = []
    for page in sorted(DISTRACTORS.glob("*.es.html")):
        for doc in parse_bytes(page.read_bytes(), page.name):
            out += [b.text for b in doc.blocks if len(b.text.split()) >= 25]
    return out[:limit]


def main() -> None:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "es"
        src.mkdir()
        for name, text in data["passages"].items():
            (src / f"{name}.txt").write_text(text, encoding="utf-8")
        extra = distractors()
        for i, text in enumerate(extra):
            (src / f"debian-reference-{i:04d}.txt").write_text(text, encoding="utf-8")
        print(f"{len(data['passages'])} target passages, {len(extra)} distractor paragraphs, "
              f"{len(data['questions'])} questions")
        cfg = Config().with_index_dir(Path(tmp) / "index")
        wb = Workbench(cfg.replace("index", lexical=sys.argv[1]) if len(sys.argv) > 1 else cfg)
        print(machine.describe(wb.embedder))
        wb.ingest(src, progress=False)
        default = wb.config
        forced = default.model_copy(update={"retrieval": default.retrieval.model_copy(
            update={"dense_languages": ("en", "es")})})
        runs = [("lexical (BM25, Spanish stemmer)", default, "lexical"), ("dense (MiniLM)", default, "dense"),
                ("plain fusion (dense forced on)", forced, "hybrid"), ("default pipeline", default, None)]
        for name, cfg, mode in runs:
            wb.config = cfg
            top1 = sum(Path(wb.search(q, k=1, mode=mode)[0].chunk.path).stem == want for q, want in data["questions"])
            print(f"{name:34s} top-1 {top1}/{len(data['questions'])} = {top1 / len(data['questions']):.0%}")


if __name__ == "__main__":
    main()
