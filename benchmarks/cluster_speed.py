"""Ingest pages/s in this process against a real Ray cluster of 1 and of 2 worker nodes, in one run.

The corpus is the seven R manuals of r-doc-pdf (677 pages; `corpus.MANUALS`). Three runs, each into
a fresh index with a fresh embedding cache, so every chunk is parsed and embedded:

  local    `workbench ingest` in this process (all cores: torch threads + one parser process)
  1 node   `--cluster`: a head that only coordinates and one worker node of --cpus CPUs
  2 nodes  the same head and two such worker nodes

The nodes are separate `ray start` process trees on this machine (tests/raybed.py). With
--cpus 1 on a 2-core machine, "2 nodes" uses the same cores as "local": the 2-vs-1 ratio is the
scaling from one node to two, the 2-nodes-vs-local ratio the cost of the cluster path. Each run
also reports its stage seconds (driver: plan, write, publish; nodes: parse, embed), which the
README's capacity plan is computed from. Ratios are within this one run.

  make bench-cluster                 # ARGS="--cpus 1 --manuals 7"
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import machine
from corpus import MANUALS, build, page_count

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from raybed import LocalRay  # noqa: E402


def ingest(corpus: Path, index: Path, cluster: str | None):
    from workbench.config import Config
    from workbench.pipeline import Workbench

    wb = Workbench(Config().with_index_dir(index))
    started = time.perf_counter()
    report = wb.ingest(corpus, progress=False, cluster=cluster)
    seconds = time.perf_counter() - started
    assert report.ok and report.published, report
    return report, seconds


def line(name: str, pages: int, report, seconds: float, base: float | None) -> str:
    ratio = f"  {base / seconds:5.2f}x local" if base else ""
    return (f"{name:8s} {seconds:7.1f} s  {pages / seconds:6.2f} pages/s  {report.chunks_added} chunks, "
            f"{report.chunks_embedded} embedded{ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpus", type=int, default=1, help="CPUs of each worker node (default 1)")
    ap.add_argument("--manuals", type=int, default=7, help="how many R manuals (default all 7, 677 pages)")
    args = ap.parse_args()
    print(machine.describe())
    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    files, _ = build(work / "corpus")
    keep = {Path(p).name for p in MANUALS[:args.manuals] if "r-doc-pdf" in p}
    for f in files:
        if f.name.split("-", 1)[1] not in keep:
            f.unlink()
    pages = sum(page_count(str(f)) for f in (work / "corpus").iterdir())
    print(f"corpus: {len(keep)} R manuals, {pages} pages; worker nodes of {args.cpus} CPU(s) each\n")

    from workbench.embed import load_embedder
    from workbench.config import Config

    load_embedder(Config().embedding).embed_documents(["warm the page cache for the model files"])
    results = {}
    results["local"] = ingest(work / "corpus", work / "local", None)
    cluster = LocalRay(workers=1, cpus_per_worker=args.cpus)
    try:
        results["1 node"] = ingest(work / "corpus", work / "one", cluster.address)
        cluster.add_worker()
        results["2 nodes"] = ingest(work / "corpus", work / "two", cluster.address)
    finally:
        cluster.stop()
    base = results["local"][1]
    for name, (report, seconds) in results.items():
        print(line(name, pages, report, seconds, base if name != "local" else None))
    one, two = results["1 node"][1], results["2 nodes"][1]
    print(f"\nscaling 1 -> 2 worker nodes: {one / two:.2f}x (2.00x would be linear)")
    for name, (report, seconds) in results.items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in report.stage_seconds.items())
        print(f"{name:8s} stages (s): {stages}")
        for n in report.nodes:
            print(f"         node {n.node}: {n.files} files, {n.chunks} chunks, {n.embedded} embedded, "
                  f"parse {n.parse_s:.1f} s, embed {n.embed_s:.1f} s")
    two_report = results["2 nodes"][0]
    busy = sum(n.parse_s + n.embed_s for n in two_report.nodes)
    driver = sum(v for k, v in two_report.stage_seconds.items() if k in ("plan", "write", "publish"))
    print(f"\nnode throughput: {pages / busy:.2f} pages per busy node-second ({args.cpus} CPU per node; "
          f"{pages} pages / {busy:.1f} node-seconds of parse+embed on the 2-node run)")
    print(f"driver (single writer): {driver:.1f} s of plan+write+publish for {pages} pages = "
          f"{pages / driver:.0f} pages/s ceiling before the writer limits the cluster")


if __name__ == "__main__":
    main()
