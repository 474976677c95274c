"""Fresh-process speed of the CLI: `workbench search` and an unchanged `workbench ingest`.

A cron job or a shell user starts a new process for every command, so what counts is the whole
process, imports and model loading included. On the bundled sample index this runs, five times
each and as whole processes:

- `workbench search` with the default settings (queries on ONNX Runtime, no torch import),
- the same search with `[embedding] runtime = "torch"` (the baseline: what every search paid
  before), in the same run,
- `workbench ingest data/sample` when nothing changed (must not load any model),
- `workbench ingest` after one new note was added (its text must be embedded), with the default
  settings (documents on OpenVINO from the index's ONNX copy: no torch import) and with
  `runtime = "torch"`, in the same run.

It prints the medians and the ratio. `--drop-caches` (root only) empties the page cache before every
run, as on a machine that just booted. Run: `make bench-cold`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine

ROOT = Path(__file__).resolve().parents[1]
WORKBENCH = str(Path(sys.executable).with_name("workbench"))
QUERY = "How many days of annual leave can be carried over?"


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(cmd: list[str], runs: int, cold: bool, before=None) -> tuple[float, list[float]]:
    times = []
    for run in range(runs):
        if before is not None:
            before(run)
        if cold:
            drop_caches()
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--drop-caches", action="store_true", help="empty the page cache before each run (root)")
    args = ap.parse_args()
    if args.drop_caches and os.geteuid() != 0:
        sys.exit("--drop-caches needs root (it writes /proc/sys/vm/drop_caches)")
    import workbench  # noqa: F401
    from workbench.config import Config
    from workbench.embed import load_embedder

    print(machine.describe(load_embedder(Config().embedding, Path(tempfile.gettempdir()) / "wb-cold-models")))
    print(f"page cache: {'dropped before every run' if args.drop_caches else 'warm'}; {args.runs} runs each")
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        torch_cfg = Path(tmp) / "torch.toml"
        torch_cfg.write_text('[embedding]\nruntime = "torch"\n')
        subprocess.run([WORKBENCH, "ingest", "data/sample", "--index", str(index)], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        search = [WORKBENCH, "search", QUERY, "-k", "3", "--index", str(index)]
        notes = Path(tmp) / "notes"
        notes.mkdir()
        (notes / "first.md").write_text("# Rooms\n\nMeeting rooms are booked through the facilities desk.\n")
        ingest_notes = [WORKBENCH, "ingest", str(notes), "--index", str(Path(tmp) / "notes-index")]
        subprocess.run(ingest_notes, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def add_note(run: int, runtime: str) -> None:  # new text every run: the embedding cache cannot help
            (notes / f"{runtime}-{run}.md").write_text(f"# Note {runtime} {run}\n\nRoom {run * 17 + len(runtime)} is "
                                                       f"booked for the {runtime} review on day {run}.\n")

        rows = [
            ("workbench search (default: onnx queries)", search, None),
            ("workbench search (runtime = torch)", [*search, "--config", str(torch_cfg)], None),
            ("workbench ingest data/sample (unchanged)", [WORKBENCH, "ingest", "data/sample", "--index", str(index)], None),
            ("workbench ingest, one new note (default)", ingest_notes, lambda run: add_note(run, "default")),
            ("workbench ingest, one new note (torch)", [*ingest_notes, "--config", str(torch_cfg)],
             lambda run: add_note(run, "torch")),
        ]
        medians = {}
        for name, cmd, before in rows:
            median, times = timed(cmd, args.runs, args.drop_caches, before)
            medians[name] = median
            print(f"{name:42s} median {median:5.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})", flush=True)
        a, b = medians[rows[0][0]], medians[rows[1][0]]
        print(f"cold search speed-up, onnx queries against torch: {b / a:.1f}x")
        a, b = medians[rows[3][0]], medians[rows[4][0]]
        print(f"cold ingest of one new note, default against torch: {b / a:.1f}x")


if __name__ == "__main__":
    main()
