"""Retrieval latency and recall at 100k and 1M chunks per index kind, and LLM time-to-first-token.

Retrieval: real FAISS and real SQLite through `workbench.retrieve`, end to end (the real MiniLM
embeds each query on ONNX Runtime, as users get it; the passages are fetched from the catalog).
The chunks are real English text (`Corpus`: Python, PostgreSQL and Debian manuals, R and C++ PDF
manuals) with vectors made from real embeddings, written into one generation with `IndexWriter`
and published with both an IVF index and BM25 matrices, so each kind is timed on the same data:
dense flat/IVF (nprobe 32, 64, 128), lexical FTS5/matrices, hybrid, without and with an access
filter leaving 10% of the chunks readable. Recall@10 is against flat dense search with the same
lexical engine. The queries: 150 Cranfield questions and 150 keyword spans from the corpus (FTS5
at 1M gets a third of them: it is slow). LLM: the SmolLM2 GGUF through the transformers backend
in-process, through the openai backend against `workbench llm-serve`, and through llama-cpp-python.
Run: `make bench-latency` (ARGS=--retrieval-only skips the LLM part; ARGS="--sizes 20000" for a
quick run). Needs: apt-get install python3.11-doc postgresql-doc-15 debian-handbook r-doc-pdf
c++-annotations-pdf.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import corpus
import machine
import numpy as np

import workbench  # noqa: F401
from workbench.analyze import terms
from workbench.config import Config, IndexSettings, LLMSettings
from workbench.embed import load_embedder
from workbench.evaluate import load_cranfield
from workbench.generate import load_llm
from workbench.records import Chunk, Document, Filters
from workbench.retrieve import search
from workbench.index import IndexReader, IndexWriter
from workbench.index.lexical import Fts5Search

ROOT = Path(__file__).resolve().parents[1]
CRANFIELD = ROOT.parent / "shared" / "eval" / "cranfield"


RUN_WORDS, RUNS = 60, 3  # a chunk: 3 runs of 60 words from random places in one document (180 words)
ANCHORS = 2500  # real passages embedded; every chunk's vector is made from those of its runs


class Corpus:
    """``n`` chunks of real text drawn from `corpus.text_pool` (each three 60-word runs from random
    places in one document, so no two are alike and each keeps to its document's topic), with the terms `workbench.analyze` gives them and vectors made from real
    MiniLM embeddings of 2,500 pool passages: a chunk's vector is the normalised sum of the vectors
    of the passages nearest its runs, with Gaussian jitter (sigma 0.02 per dimension). Real text on the lexical
    side (Zipfian terms, real posting-list lengths; each pool word lands in about 40 chunks at 1M,
    so rare terms have longer lists than in a real corpus of that size, which makes the lexical
    figures pessimistic), embedding neighbourhoods of real passages on the dense side."""

    def __init__(self, emb, seed: int = 0) -> None:
        self.pool = corpus.text_pool()
        self.rng = np.random.default_rng(seed)
        cache: dict[str, str] = {}
        self.terms = [[cache.setdefault(w, " ".join(terms(w, "en"))) for w in doc] for doc in self.pool]
        lengths = np.array([len(d) for d in self.pool])
        self.p = lengths / lengths.sum()
        picks = sorted((int(d), int(self.rng.integers(0, max(1, len(self.pool[d]) - 180))))
                       for d in self.rng.choice(len(self.pool), ANCHORS, p=self.p))
        t = time.perf_counter()
        self.anchor_vecs = emb.embed_documents([" ".join(self.pool[d][s:s + 180]) for d, s in picks])
        print(f"{len(self.pool)} documents, {int(lengths.sum()):,} words in the pool; {ANCHORS} passages "
              f"embedded in {time.perf_counter() - t:.0f} s")
        self.anchors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i, (d, s) in enumerate(picks):
            starts, rows = self.anchors.get(d, (np.zeros(0, int), np.zeros(0, int)))
            self.anchors[d] = (np.append(starts, s), np.append(rows, i))

    def _anchor(self, d: int, s: int) -> int:
        if d not in self.anchors:
            return int(self.rng.integers(0, ANCHORS))
        starts, rows = self.anchors[d]
        return int(rows[np.argmin(np.abs(starts - s))])

    def batch(self, n: int) -> tuple[list[str], list[str], np.ndarray]:
        """(texts, term strings, vectors) of ``n`` new chunks."""
        texts, words, vecs = [], [], np.zeros((n, self.anchor_vecs.shape[1]), dtype=np.float32)
        for i in range(n):
            parts, tparts = [], []
            d = int(self.rng.choice(len(self.pool), p=self.p))
            for _ in range(RUNS):
                s = int(self.rng.integers(0, len(self.pool[d]) - RUN_WORDS))
                parts += self.pool[d][s:s + RUN_WORDS]
                tparts += [t for t in self.terms[d][s:s + RUN_WORDS] if t]
                vecs[i] += self.anchor_vecs[self._anchor(d, s)]
            texts.append(" ".join(parts))
            words.append(" ".join(tparts))
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs += self.rng.normal(0, 0.02, vecs.shape).astype(np.float32)
        return texts, words, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    def queries(self, n: int) -> list[str]:
        """``n`` keyword queries: 4-8 consecutive words from random places in the pool."""
        out = []
        for d in self.rng.choice(len(self.pool), n, p=self.p):
            size = int(self.rng.integers(4, 9))
            s = int(self.rng.integers(0, len(self.pool[d]) - size))
            out.append(" ".join(self.pool[d][s:s + size]))
        return out


def build(index: Path, n: int, data: Corpus, model: str, dim: int) -> tuple[IndexReader, float]:
    """A generation of ``n`` chunks (100 documents of n/100 chunks, document i readable by group
    g{i % 10}) published with both an IVF index and BM25 matrices; (reader, publish seconds)."""
    per_doc = n // 100
    settings = IndexSettings(kind="ivf", lexical="matrix")
    with IndexWriter(index, model, dim, search=settings) as w:
        for start in range(0, n, per_doc):
            doc = Document(doc_id=f"d{start}", collection="bench", path=f"/bench/{start}.txt", part="",
                           title="bench", format="text", size=1, mtime=0.0, content_hash="x", language="en",
                           groups=(f"g{start // per_doc % 10}",))
            w.add_document(doc, "/bench", "", {})
            for b in range(start, start + per_doc, 5000):
                ids = list(range(b + 1, min(start + per_doc, b + 5000) + 1))
                texts, words, vecs = data.batch(len(ids))
                w.add_chunks([Chunk(chunk_id=i, doc_id=doc.doc_id, ordinal=i - start, text=t, start=0, end=len(t))
                              for i, t in zip(ids, texts)], [(x, "") for x in words], ids, vecs)
        t = time.perf_counter()
        w.publish()
        publish_s = time.perf_counter() - t
    reader = IndexReader.open(index)
    return reader, publish_s


class As:
    """``reader`` searched as another kind: ``dense`` "flat" searches its vectors exactly, "ivf/N"
    searches its IVF index with nprobe N; ``lexical`` "fts5" answers BM25 from the catalog instead
    of its matrices (everything else is the reader's)."""

    def __init__(self, reader: IndexReader, dense: str, lexical: str) -> None:
        self._reader = reader
        ivf = reader.vector_search  # the benchmark's generations are published with an IVF index
        self.vector_search = ivf.exact() if dense == "flat" else ivf.probing(int(dense.split("/")[1]))
        self.lexical_search = Fts5Search(reader.catalog) if lexical == "fts5" else reader.lexical_search

    def __getattr__(self, name: str):
        return getattr(self._reader, name)


def overlap(got: list[int], truth: list[int]) -> float:
    """Share of ``truth`` found in ``got`` (1 when both are empty)."""
    return len(set(got) & set(truth)) / len(truth) if truth else float(not got)


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p))


def retrieval(tmp: Path, sizes: list[int]) -> None:
    _, cranfield, _ = load_cranfield(CRANFIELD)
    cfg = Config()
    emb = load_embedder(cfg.embedding, Path(tmp) / "models")  # queries on ONNX Runtime, as users get
    print(machine.describe(emb))
    data = Corpus(emb)
    queries = list(cranfield.values())[:150] + data.queries(150)
    print(f"{len(queries)} queries: 150 Cranfield questions and 150 keyword spans from the pool; "
          "times end to end (query embedding, search, fetching the passages)")
    readable = Filters(groups=("g3",))
    for n in sizes:
        t = time.perf_counter()
        reader, publish_s = build(tmp / f"i{n}", n, data, emb.name, emb.dim)
        info, lex = reader.index_info, reader.lexical_info
        print(f"\n{n:,} chunks written in {time.perf_counter() - t - publish_s:.0f} s, published in {publish_s:.0f} s "
              f"(IVF{info['nlist']} {info['build_s']} s, recall@10 at publish {info['recall_at_10']}; "
              f"BM25 matrices {lex['build_s']} s, {lex['bytes'] / 2**20:.0f} MB, {lex['terms']:,} terms)")
        fts5_queries = queries if n <= 100_000 else queries[::3]  # FTS5 at 1M: a third of the queries
        print(f"{'dense':7s} {'lexical':7s} {'mode':8s} {'filter':12s} {'queries':>7s} {'p50 ms':>8s} {'p95 ms':>8s}"
              "  recall@10 vs flat dense + same lexical")
        reference: dict[tuple, list[list[int]]] = {}
        for dense, lexical in (("flat", "fts5"), ("flat", "matrix"), ("ivf/32", "matrix"), ("ivf/64", "matrix"),
                               ("ivf/128", "matrix")):
            view = As(reader, dense, lexical)
            qs = fts5_queries if lexical == "fts5" else queries
            for mode in ("dense", "lexical", "hybrid"):
                if (mode == "dense" and lexical == "fts5") or (mode == "lexical" and dense != "flat"):
                    continue  # the same search as another row
                for label, filters in (("all", Filters()), ("10% readable", readable)):
                    times, got = [], []
                    for q in qs:
                        t = time.perf_counter()
                        hits, _ = search(view, emb.embed_query, q, 10, cfg.retrieval, filters, mode=mode)
                        times.append((time.perf_counter() - t) * 1000)
                        got.append([h.chunk.chunk_id for h in hits])
                    key = (lexical if mode != "dense" else "", mode, label)
                    if dense == "flat":
                        reference[key] = got
                    truth = reference.get(key, got)
                    recall = statistics.mean(overlap(a, b) for a, b in zip(got, truth))
                    print(f"{dense:7s} {lexical if mode != 'dense' else '-':7s} {mode:8s} {label:12s} {len(qs):7d} "
                          f"{pct(times, 50):8.1f} {pct(times, 95):8.1f}  {recall:.3f}")
        for label in ("all", "10% readable"):
            fts, mat = reference[("fts5", "lexical", label)], reference[("matrix", "lexical", label)]
            agree = statistics.mean(overlap(a, b) for a, b in zip(fts, mat[::(1 if n <= 100_000 else 3)]))
            print(f"lexical top-10 shared by FTS5 and the BM25 matrices ({label}): {agree:.3f}")
        reader.close()
        shutil.rmtree(tmp / f"i{n}")


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


def _arg(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [int(x) for x in _arg("--sizes", "100000,1000000").split(",")]
        retrieval(Path(tmp), sizes)
    if "--retrieval-only" not in sys.argv:
        llm_timings()


if __name__ == "__main__":
    main()
