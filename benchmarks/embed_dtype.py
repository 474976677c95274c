"""Embedding runtimes and dtypes against torch float32: speed and quality, in one run.

Two workloads: real PDF chunks (the R manuals, chunked as ingest chunks them: ~214 tokens each)
for speed and the worst per-chunk cosine to torch float32, and Cranfield (1,400 abstracts, 225
judged queries, ../shared/eval/cranfield) for dense nDCG@10 (gain = 5 - code, codes -1 -> 0; MAP
and R@100 count codes 1..4 as relevant). Each row is one (runtime, dtype) the workbench can run:
torch float32 (the baseline, and what LangChain runs), torch bfloat16 (only where the CPU has
native bf16: elsewhere it is emulated and slow), OpenVINO float32 and bfloat16 (the default where
installed), ONNX Runtime float32 and int8. Queries are embedded the same way as the documents of
that row.

Run: `make bench-embed` (add `--as-avx2` on an AVX-512/AMX machine to hold torch to AVX2; see
benchmarks/machine.py), or `python benchmarks/embed_dtype.py --chunks 600 [CRANFIELD_DIR]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import machine
import numpy as np

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "eval" / "cranfield"
PDFS = ["/usr/share/doc/r-doc-pdf/manual/R-exts.pdf", "/usr/share/doc/r-doc-pdf/manual/R-intro.pdf"]


def pdf_chunks(count_tokens, n: int) -> list[str]:
    from workbench.chunk import chunk_document
    from workbench.embed import document_input
    from workbench.load.pdf import load_pdf

    missing = [p for p in PDFS if not Path(p).exists()]
    if missing:
        sys.exit("missing corpus files; run: apt-get install r-doc-pdf\n  " + "\n  ".join(missing))
    texts = []
    for path in PDFS:
        doc = load_pdf(Path(path).read_bytes(), Path(path).stem)
        texts += [document_input(c.text, c.headings) for c in chunk_document(doc, "d", "h", count_tokens, 254, 32)]
    rng = np.random.default_rng(1)
    return [texts[i] for i in rng.permutation(len(texts))[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cranfield", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--chunks", type=int, default=600, help="PDF chunks timed per row (default 600)")
    ap.add_argument("--as-avx2", action="store_true", help="hold torch to AVX2 and choose as an AVX2-only CPU")
    args = ap.parse_args()
    if args.as_avx2:
        machine.pretend_avx2()

    import workbench  # noqa: F401  (offline switches)
    from workbench.config import EmbeddingSettings
    from workbench.embed import load_embedder
    from workbench.hardware import cpu_info
    from workbench.evaluate import evaluate, load_cranfield

    docs, queries, qrels = load_cranfield(args.cranfield)
    ids, abstracts = list(docs), list(docs.values())
    rows = [("torch", "float32"), ("torch", "bfloat16"), ("openvino", "float32"), ("openvino", "bfloat16"),
            ("onnx", "float32"), ("onnx", "int8")]
    if not cpu_info().bf16:
        rows = [r for r in rows if r[1] != "bfloat16"]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "models"
        auto = load_embedder(EmbeddingSettings(), cache)
        print(machine.describe(auto))
        texts = pdf_chunks(auto.count_tokens, args.chunks)
        print(f"{len(texts)} PDF chunks (mean {np.mean(auto.count_tokens(texts)):.0f} tokens); Cranfield "
              f"{len(abstracts)} abstracts, {len(queries)} queries")
        print(f"{'runtime dtype':16s} {'chunks/s':>9s} {'x fp32':>7s} {'min cos':>8s} {'nDCG@10':>8s} {'MAP':>7s} "
              f"{'R@100':>7s}  cranfield docs/s")
        base = {}
        for runtime, dtype in rows:
            emb = load_embedder(EmbeddingSettings(runtime=runtime, dtype=dtype), cache)
            one = emb._get(emb.choice.documents)  # this row's runtime for queries too
            one.embed_documents(texts[:32])
            t = time.perf_counter()
            vectors = one.embed_documents(texts)
            speed = len(texts) / (time.perf_counter() - t)
            t = time.perf_counter()
            dv = one.embed_documents(abstracts)
            cran_speed = len(abstracts) / (time.perf_counter() - t)
            qv = np.stack([one.embed_query(q) for q in queries.values()])
            order = np.argsort(-(qv @ dv.T), axis=1)[:, :100]
            m = evaluate({qid: [ids[j] for j in row] for qid, row in zip(queries, order)}, qrels)
            if not base:
                base = {"speed": speed, "vectors": vectors, "dv": dv}
            cos = min((vectors * base["vectors"]).sum(1).min(), (dv * base["dv"]).sum(1).min())
            print(f"{runtime + ' ' + dtype:16s} {speed:9.1f} {speed / base['speed']:6.2f}x {cos:8.4f} "
                  f"{m['nDCG@10']:8.4f} {m['MAP']:7.4f} {m['R@100']:7.4f}  {cran_speed:.1f}", flush=True)
    print("x fp32: speed against torch float32 in this run; min cos: the worst chunk or abstract's cosine to "
          "torch float32")


if __name__ == "__main__":
    main()
