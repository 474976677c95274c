"""Full ingest speed: the workbench against the canonical LangChain pipeline, in one run.

Baseline (what peers do): PyPDFLoader -> RecursiveCharacterTextSplitter(1000, 200) ->
HuggingFaceEmbeddings(all-MiniLM-L6-v2, same local files) -> FAISS.from_documents.
Workbench: `Workbench.ingest` (pypdfium2 in a bounded worker, structure-aware chunks, bf16 where
the CPU has it, embedding cache, SQLite catalog + FTS, atomic publish). Model loading is excluded
from both timings. Then an unchanged re-ingest, and peak memory (RSS of the process tree, sampled).

Run: `make bench-ingest` (about 1,800 pages), or `python benchmarks/ingest_speed.py --large
--skip-langchain` for the 10,000-page memory run (needs lilypond-doc-pdf too).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import psutil
from corpus import build

import workbench  # noqa: F401  (offline switches)


class PeakRSS:
    """Samples the RSS of this process and all its children every 50 ms."""

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                total = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                total = 0
            self.peak = max(self.peak, total)
            self._stop.wait(0.05)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def langchain_ingest(files: list[Path], model_path: str) -> tuple[float, int, float]:
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    emb = HuggingFaceEmbeddings(model_name=model_path, model_kwargs={"device": "cpu"},
                                encode_kwargs={"normalize_embeddings": True})
    emb.embed_query("warm up")
    with PeakRSS() as mem:
        t = time.perf_counter()
        docs = [d for f in files for d in PyPDFLoader(str(f)).load()]
        chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
        FAISS.from_documents(chunks, emb)
        seconds = time.perf_counter() - t
    return seconds, len(chunks), mem.peak


def workbench_ingest(corpus: Path, index: Path):
    from workbench.config import Config
    from workbench.pipeline import Workbench

    wb = Workbench(Config().with_index_dir(index))
    wb.embedder.embed_query("warm up")
    with PeakRSS() as mem:
        report = wb.ingest(corpus, progress=False)
    rerun = wb.ingest(corpus, progress=False)
    return report, rerun, mem.peak, wb.embedder.dtype


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true", help="add refman, the US C++ edition and LilyPond manuals")
    ap.add_argument("--skip-langchain", action="store_true", help="only the workbench (memory run)")
    args = ap.parse_args()
    from workbench.embed import resolve_model_path

    with tempfile.TemporaryDirectory() as tmp:
        files, pages = build(Path(tmp) / "corpus", large=args.large)
        print(f"corpus: {len(files)} PDFs, {pages} pages")
        report, rerun, wb_peak, dtype = workbench_ingest(Path(tmp) / "corpus", Path(tmp) / "index")
        for failure in report.failed:  # e.g. a picture-only PDF: reported, not fatal
            print(f"  failed: {failure}")
        wb_s = report.seconds
        print(f"workbench  {wb_s:7.1f} s  {pages / wb_s:6.1f} pages/s  {report.chunks_added} chunks  "
              f"peak RSS {wb_peak / 2**30:.2f} GiB  (embedding dtype {dtype})")
        print(f"re-ingest unchanged: {rerun.seconds:.2f} s = {100 * rerun.seconds / wb_s:.2f}% of the full ingest "
              f"({rerun.unchanged} files unchanged, published={rerun.published})")
        if not args.skip_langchain:
            lc_s, lc_chunks, lc_peak = langchain_ingest(files, resolve_model_path("all-MiniLM-L6-v2"))
            print(f"langchain  {lc_s:7.1f} s  {pages / lc_s:6.1f} pages/s  {lc_chunks} chunks  "
                  f"peak RSS {lc_peak / 2**30:.2f} GiB")
            print(f"speed ratio workbench/langchain: {lc_s / wb_s:.2f}x")


if __name__ == "__main__":
    main()
