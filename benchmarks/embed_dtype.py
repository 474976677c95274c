"""bf16 against fp32 for the embedder: speed and retrieval quality, in one run.

Embeds the 1,400 Cranfield abstracts and 225 queries (../shared/eval/cranfield) with
all-MiniLM-L6-v2 in float32 and in bfloat16, times the document embedding, and scores dense
retrieval (nDCG@10 with gain = 5 - code, codes -1 -> 0; MAP and R@100 count codes 1..4 as
relevant) for both. The workbench's dtype='auto' picks bf16 only on CPUs with AVX-512 BF16/AMX.
Run: `python benchmarks/embed_dtype.py [CRANFIELD_DIR]`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import workbench  # noqa: F401
from workbench.config import EmbeddingSettings
from workbench.embed import cpu_has_bf16, load_embedder
from workbench.evaluate import evaluate, load_cranfield

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "eval" / "cranfield"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    docs, queries, qrels = load_cranfield(folder)
    ids, texts = list(docs), list(docs.values())
    print(f"CPU has native bf16: {cpu_has_bf16()}; {len(texts)} documents, {len(queries)} queries")
    results = {}
    for dtype in ("float32", "bfloat16"):
        emb = load_embedder(EmbeddingSettings(dtype=dtype))
        emb.embed_documents(texts[:64])
        t = time.perf_counter()
        dv = emb.embed_documents(texts)
        seconds = time.perf_counter() - t
        qv = np.stack([emb.embed_query(q) for q in queries.values()])
        order = np.argsort(-(qv @ dv.T), axis=1)[:, :100]
        rankings = {qid: [ids[j] for j in row] for qid, row in zip(queries, order)}
        results[dtype] = (seconds, evaluate(rankings, qrels), dv)
        m = results[dtype][1]
        print(f"{dtype:9s} {seconds:6.1f} s  {len(texts) / seconds:6.1f} docs/s  nDCG@10 {m['nDCG@10']:.4f}  "
              f"MAP {m['MAP']:.4f}  R@100 {m['R@100']:.4f}")
    cos = (results["float32"][2] * results["bfloat16"][2]).sum(axis=1)
    print(f"speed ratio bf16/fp32: {results['float32'][0] / results['bfloat16'][0]:.2f}x; cosine(bf16, fp32) per "
          f"document: min {cos.min():.4f}, mean {cos.mean():.4f}")


if __name__ == "__main__":
    main()
