"""Retrieval latency at 10k and 100k chunks, and LLM time-to-first-token / tokens per second.

Retrieval: real FAISS (exact inner product) and real SQLite FTS5 through `workbench.retrieve`,
with the real MiniLM embedding each query. The chunks are the Cranfield abstracts repeated
with their vectors jittered (Gaussian noise, sigma 0.05, renormalised) up to the target size,
written straight into a generation with `IndexWriter` (embedding 100k chunks would only measure
the embedder again). p50/p95 over the 225 Cranfield queries, per mode. LLM: the SmolLM2 GGUF
through the transformers backend in-process, and through the openai backend against
`workbench llm-serve` serving the same model, and through llama-cpp-python (the llamacpp backend)
on the same GGUF file. Tokens are counted with the model's tokenizer. Run: `make bench-latency`
(ARGS=--retrieval-only skips the LLM part).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine
import numpy as np

import workbench  # noqa: F401
from workbench.analyze import terms
from workbench.config import Config, LLMSettings
from workbench.embed import load_embedder
from workbench.evaluate import load_cranfield
from workbench.generate import load_llm
from workbench.records import Chunk, Document
from workbench.retrieve import search
from workbench.store import IndexReader, IndexWriter

ROOT = Path(__file__).resolve().parents[1]
CRANFIELD = ROOT.parent / "shared" / "eval" / "cranfield"


def build(index: Path, n: int, texts: list[str], vecs: np.ndarray, model: str) -> IndexReader:
    rng = np.random.default_rng(0)
    with IndexWriter(index, model, vecs.shape[1]) as w:
        for start in range(0, n, 5000):
            ids = list(range(start + 1, min(n, start + 5000) + 1))
            doc = Document(doc_id=f"d{start}", collection="bench", path=f"/bench/{start}.txt", part="", title="bench",
                           format="text", size=1, mtime=0.0, content_hash="x", language="en")
            w.catalog.insert_document(doc, "/bench", "", {})
            chunks = [Chunk(chunk_id=i, doc_id=doc.doc_id, ordinal=i - start, text=texts[i % len(texts)], start=0,
                            end=len(texts[i % len(texts)])) for i in ids]
            w.catalog.insert_chunks(chunks, [(" ".join(terms(c.text, "en")), "") for c in chunks])
            v = vecs[[i % len(texts) for i in ids]] + rng.normal(0, 0.05, (len(ids), vecs.shape[1])).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            w.add_vectors(ids, v.astype(np.float32))
        w.publish()
    return IndexReader.open(index)


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


def retrieval(tmp: Path) -> None:
    docs, queries, _ = load_cranfield(CRANFIELD)
    cfg = Config()
    emb = load_embedder(cfg.embedding, Path(tmp) / "models")  # queries on ONNX Runtime, as users get
    print(machine.describe(emb))
    texts = list(docs.values())
    vecs = emb.embed_documents(texts)
    print(f"{'chunks':>8s} {'mode':8s} {'p50 ms':>8s} {'p95 ms':>8s}   (end to end: query embedding + search + fetch)")
    for n in (10_000, 100_000):
        reader = build(tmp / f"i{n}", n, texts, vecs, emb.name)
        for mode in ("dense", "lexical", "hybrid"):
            times = []
            for q in queries.values():
                t = time.perf_counter()
                search(reader, emb.embed_query, q, 10, cfg.retrieval, mode=mode)
                times.append((time.perf_counter() - t) * 1000)
            print(f"{n:8d} {mode:8s} {pct(times, 50):8.1f} {pct(times, 95):8.1f}")
        reader.close()
    million(texts, vecs, emb, list(queries.values()))


def million(texts: list[str], vecs: np.ndarray, emb, queries: list[str], n: int = 1_000_000) -> None:
    """The dense side at 1M vectors per `[index] kind`: exact (IndexFlatIP) against the workbench's
    own IVF index (`workbench.vector_index`: the build, the search and the recall measurement that a
    publish runs), p50/p95 per query and recall@10 against exact on the Cranfield queries, without
    and with a filter that leaves 10% of the chunks readable (the ID selector inside the IVF search).
    """
    import faiss

    from workbench import vector_index

    rng = np.random.default_rng(1)
    data = np.empty((n, vecs.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        idx = np.arange(start, min(n, start + 100_000)) % len(vecs)
        block = vecs[idx] + rng.normal(0, 0.05, (len(idx), vecs.shape[1])).astype(np.float32)
        data[start:start + len(idx)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    qv = np.stack([emb.embed_query(q) for q in queries]).astype(np.float32)
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(vecs.shape[1]))
    flat.add_with_ids(data, np.arange(1, n + 1, dtype=np.int64))
    del data
    allowed = np.sort(rng.choice(np.arange(1, n + 1), n // 10, replace=False))
    exact, times = {}, {}
    for label, sel in (("all", None), ("10% readable", allowed)):
        t0, exact[label] = [], []
        for q in qv:
            t = time.perf_counter()
            exact[label].append([i for i, _ in vector_index.search(flat, None, q, 10, sel, 1, 0)])
            t0.append((time.perf_counter() - t) * 1000)
        times[label] = t0
        print(f"1M vectors, {label:12s}: exact       p50 {pct(t0, 50):7.2f} ms  p95 {pct(t0, 95):7.2f} ms")
    t = time.perf_counter()
    ivf = vector_index.build_ivf(flat)
    build_s = time.perf_counter() - t
    print(f"  IVF{ivf.nlist},Flat built at publish in {build_s:.0f} s (trained on {64 * ivf.nlist:,} vectors)")
    for nprobe in (8, 32, 64):
        t = time.perf_counter()
        at_publish = vector_index.measure_recall(flat, ivf, nprobe)
        measure_s = time.perf_counter() - t
        for label, sel in (("all", None), ("10% readable", allowed)):
            got_t, recall = [], []
            for q, truth in zip(qv, exact[label]):
                t = time.perf_counter()
                got = [i for i, _ in vector_index.search(flat, ivf, q, 10, sel, nprobe, 0)]
                got_t.append((time.perf_counter() - t) * 1000)
                recall.append(len(set(got) & set(truth)) / 10)
            print(f"  nprobe {nprobe:3d}, {label:12s}: p50 {pct(got_t, 50):7.2f} ms  p95 {pct(got_t, 95):7.2f} ms  "
                  f"recall@10 vs exact {statistics.mean(recall):.3f}  "
                  f"({pct(times[label], 50) / pct(got_t, 50):.1f}x exact's p50)")
        print(f"  nprobe {nprobe:3d}: recall@10 as measured at publish (stored vectors) {at_publish:.3f} "
              f"in {measure_s:.1f} s")


def llm_timings() -> None:
    messages = [{"role": "system", "content": "You are brief."},
                {"role": "user", "content": "Explain in three sentences why aircraft wings have flaps."}]

    def measure(llm, label: str) -> None:
        list(llm.stream(messages, 8))  # warm up
        ttfts, rates = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            first, pieces = None, []
            for piece in llm.stream(messages, 96):
                first = first or time.perf_counter() - t0
                pieces.append(piece)
            total = time.perf_counter() - t0
            n = len(llm_tok.tokenize("".join(pieces)))
            ttfts.append(first)
            rates.append(n / max(total - first, 1e-6))
        print(f"{label:44s} first token {statistics.median(ttfts):6.3f} s   {statistics.median(rates):6.1f} tokens/s")

    local = load_llm(LLMSettings())
    llm_tok = local.tokenizer
    measure(local, "transformers (SmolLM2 GGUF, in-process)")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "llm-serve", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        url = re.search(r"(http://\S+/v1)", proc.stdout.readline()).group(1)
        measure(load_llm(LLMSettings(backend="openai", base_url=url)), "openai (same model behind workbench llm-serve)")
    finally:
        proc.terminate()
        proc.wait(10)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("llamacpp: not installed (make setup-llamacpp); not measured")
        return
    measure(load_llm(LLMSettings(backend="llamacpp")), "llamacpp (same GGUF, llama-cpp-python)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        retrieval(Path(tmp))
    if "--retrieval-only" not in sys.argv:
        llm_timings()


if __name__ == "__main__":
    main()
