"""Full ingest speed: the workbench against the canonical LangChain pipeline, in one run.

Baseline (what peers do): PyPDFLoader -> RecursiveCharacterTextSplitter(1000, 200) ->
HuggingFaceEmbeddings(all-MiniLM-L6-v2, same local files) -> FAISS.from_documents.
Workbench: `Workbench.ingest` (pypdfium2 in a bounded worker, structure-aware chunks, bf16 where
the CPU has it, embedding cache, SQLite catalog + FTS, atomic publish). Model loading is excluded
from both timings. Then an unchanged re-ingest, and peak memory (RSS of the process tree, sampled).

Then an unchanged re-ingest and a re-sync after one file changed (the smallest PDF replaced by a
new 5-page PDF), each as a share of the full ingest.

Run: `make bench-ingest` (about 1,800 pages), or `python benchmarks/ingest_speed.py --large
--skip-langchain` for the 10,000-page run. `--as-avx2` holds torch (ours and LangChain's) to AVX2
and makes the workbench choose as on an AVX2-only CPU (see benchmarks/machine.py); `--runtime` and
`--dtype` set [embedding] for the workbench side; `--also torch` adds a second full workbench
ingest with that runtime (into its own index, same process), so two runtimes are compared in one run.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import machine
import psutil
from corpus import build


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


def one_file_changed(files: list[Path]) -> Path:
    """Replace the smallest PDF with a new 5-page one (new text: its chunks must be embedded)."""
    from fpdf import FPDF

    target = min(files, key=lambda f: f.stat().st_size)
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for page in range(5):
        pdf.add_page()
        pdf.multi_cell(0, 6, " ".join(f"Revised section {page}.{i}: the maintenance window moves to "
                                      f"Thursday {i}:00 and the archive keeps {i + page} copies." for i in range(12)))
    pdf.output(str(target))
    return target


def workbench_ingest(corpus: Path, index: Path, files: list[Path], embedding: dict):
    from workbench.config import Config
    from workbench.pipeline import Workbench

    config = Config().with_index_dir(index)
    config = config.replace("embedding", **embedding) if embedding else config
    wb = Workbench(config)
    print(machine.describe(wb.embedder))
    wb.embedder.embed_documents(["warm up"])
    wb.embedder.prepare_queries()  # the one-time ONNX export is not ingest work
    with PeakRSS() as mem:
        report = wb.ingest(corpus, progress=False)
    rerun = wb.ingest(corpus, progress=False)
    original = {f: f.read_bytes() for f in files}
    changed = one_file_changed(files)
    resync = wb.ingest(corpus, progress=False)
    assert resync.changed == (str(changed),), resync
    changed.write_bytes(original[changed])  # LangChain reads the same corpus
    return report, rerun, resync, mem.peak, " ".join(wb.embedder.loaded)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true", help="every PDF under /usr/share/doc, topped up to 10,000 pages")
    ap.add_argument("--skip-langchain", action="store_true", help="only the workbench (memory run)")
    ap.add_argument("--as-avx2", action="store_true", help="hold torch to AVX2; choose as an AVX2-only CPU")
    ap.add_argument("--runtime", choices=["auto", "torch", "onnx", "openvino"], help="[embedding] runtime for the workbench")
    ap.add_argument("--also", choices=["torch", "onnx", "openvino"], help="a second workbench ingest with this runtime")
    ap.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "int8"], help="[embedding] dtype for the workbench")
    args = ap.parse_args()
    if args.as_avx2:
        machine.pretend_avx2()
    import workbench  # noqa: F401  (offline switches)
    from workbench.embed import resolve_model_path

    embedding = {k: v for k, v in (("runtime", args.runtime), ("dtype", args.dtype)) if v}
    with tempfile.TemporaryDirectory() as tmp:
        files, pages = build(Path(tmp) / "corpus", large=args.large)
        print(f"corpus: {len(files)} PDFs, {pages} pages")
        report, rerun, resync, wb_peak, used = workbench_ingest(Path(tmp) / "corpus", Path(tmp) / "index", files, embedding)
        for failure in report.failed:  # e.g. a picture-only PDF: reported, not fatal
            print(f"  failed: {failure}")
        wb_s = report.seconds
        print(f"workbench  {wb_s:7.1f} s  {pages / wb_s:6.1f} pages/s  {report.chunks_added} chunks "
              f"({report.chunks_lexical_only} contents/index chunks not embedded)  "
              f"peak RSS {wb_peak / 2**30:.2f} GiB  (embedding: {used})")
        print(f"re-ingest unchanged: {rerun.seconds:.2f} s = {100 * rerun.seconds / wb_s:.2f}% of the full ingest "
              f"({rerun.unchanged} files unchanged, published={rerun.published})")
        print(f"re-sync, one file changed: {resync.seconds:.2f} s = {100 * resync.seconds / wb_s:.2f}% of the full "
              f"ingest ({resync.chunks_embedded} chunks embedded, {resync.unchanged} files unchanged)")
        if not args.skip_langchain:
            lc_s, lc_chunks, lc_peak = langchain_ingest(files, resolve_model_path("all-MiniLM-L6-v2"))
            print(f"langchain  {lc_s:7.1f} s  {pages / lc_s:6.1f} pages/s  {lc_chunks} chunks  "
                  f"peak RSS {lc_peak / 2**30:.2f} GiB  (torch float32, its default)")
            print(f"speed ratio workbench/langchain: {lc_s / wb_s:.2f}x")
        if args.also:
            other = {**embedding, "runtime": args.also}
            report2, _, _, peak2, used2 = workbench_ingest(Path(tmp) / "corpus", Path(tmp) / "index-also", files, other)
            print(f"workbench  {report2.seconds:7.1f} s  {pages / report2.seconds:6.1f} pages/s  {report2.chunks_added} "
                  f"chunks  peak RSS {peak2 / 2**30:.2f} GiB  (embedding: {used2})")
            print(f"default/{args.also}: {report2.seconds / wb_s:.2f}x" +
                  (f"   speed ratio ({args.also})/langchain: {lc_s / report2.seconds:.2f}x" if not args.skip_langchain else ""))


if __name__ == "__main__":
    main()
