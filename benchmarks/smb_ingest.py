"""SMB ingest against the same files from a local folder, in one run (`make bench-smb`).

A real Samba server on loopback (the tests' `smbbed`: Debian's smbd, signing required, SMB 3.1.1
encryption when ``--encrypt``) shares a copy of the corpus; the workbench ingests the local copy
and the share, alternately, ``--rounds`` times each into fresh indexes with one embedder loaded
once, and prints files/s and MB/s for each and their ratio. It also times the transport alone:
listing, hashing and reading every file (what a re-sync and the parser read) through
`workbench.sources.smb.SmbShare` against the same through the local folder. The corpus: the
bundled sample, the PDFs under /usr/share/doc (up to ``--pdfs``), and the licence texts of
/usr/share/common-licenses. Needs root (the Samba test bed creates accounts).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def corpus(dest: Path, pdfs: int) -> list[Path]:
    import glob

    dest.mkdir(parents=True)
    files = [p for p in (ROOT / "data" / "sample").iterdir() if p.is_file() and not p.name.startswith(".")]
    files += sorted(Path(p) for p in glob.glob("/usr/share/doc/**/*.pdf", recursive=True))[:pdfs]
    files += sorted(p for p in Path("/usr/share/common-licenses").iterdir() if p.is_file())
    from workbench.load import format_for

    out = []
    for i, src in enumerate(files):
        target = dest / f"{i:03d}-{src.name}"
        if format_for(target.name) is None:  # licence texts without a known suffix
            target = target.with_name(target.name + ".txt")
        shutil.copyfile(src, target)
        out.append(target)
    return out


def transport(source, files) -> float:
    started = time.perf_counter()
    listed, _ = source.scan()
    for f in listed:
        fd = source.open(f.path, source.content_hash(f.path))
        os.close(fd)
    assert len(listed) == len(files), (len(listed), len(files))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pdfs", type=int, default=12, help="PDFs from /usr/share/doc in the corpus")
    parser.add_argument("--encrypt", action="store_true", help="require SMB 3 encryption")
    args = parser.parse_args()
    from smbbed import PASSWORD_ENV, Samba

    from workbench.access import AccessRules
    from workbench.config import Config
    from workbench.pipeline import Workbench
    from workbench.sources import LocalFolder, SmbShare

    tmp = Path(tempfile.mkdtemp(prefix="bench-smb-"))
    try:
        files = corpus(tmp / "local", args.pdfs)
        size_mb = sum(f.stat().st_size for f in files) / 2**20
        with Samba() as smb:
            shutil.copytree(tmp / "local", smb.folder / "corpus")
            os.environ[PASSWORD_ENV] = smb.service_password
            base = Config().replace("smb", **smb.smb_settings(encrypt="always" if args.encrypt else "auto"))
            first = Workbench(base.with_index_dir(tmp / "warm"))
            print(machine.describe(first.embedder))
            print(f"corpus: {len(files)} files, {size_mb:.1f} MB; SMB 3 encryption: {'required' if args.encrypt else 'when offered'}")
            first.embedder.embed_documents(["warm up"])
            local_src = LocalFolder(tmp / "local", "c", AccessRules([tmp / "local"], "c", base.access))
            smb_src = SmbShare(smb.url("corpus"), "c", base)
            t_local = min(transport(local_src, files) for _ in range(3))
            t_smb = min(transport(smb_src, files) for _ in range(3))
            print(f"transport (list + hash + read every file, best of 3): local {t_local:.3f} s, SMB {t_smb:.3f} s "
                  f"({len(files) / t_smb:.0f} files/s, {size_mb / t_smb:.1f} MB/s over SMB; {t_smb / t_local:.1f}x local)")
            times: dict[str, list[float]] = {"local": [], "smb": []}
            for r in range(args.rounds):
                for kind, root in (("local", str(tmp / "local")), ("smb", smb.url("corpus"))):
                    wb = Workbench(base.with_index_dir(tmp / f"idx-{kind}-{r}"), embedder=first.embedder)
                    started = time.perf_counter()
                    report = wb.ingest(root, collection="c", progress=False)
                    times[kind].append(time.perf_counter() - started)
                    assert report.ok and len(report.added) == len(files), report
            for kind, ts in times.items():
                mean = sum(ts) / len(ts)
                print(f"ingest {kind:5}: {', '.join(f'{t:.1f}' for t in ts)} s; mean {mean:.1f} s = "
                      f"{len(files) / mean:.2f} files/s, {size_mb / mean:.2f} MB/s")
            ratio = (sum(times["smb"]) / len(times["smb"])) / (sum(times["local"]) / len(times["local"]))
            print(f"SMB ingest takes {ratio:.2f}x the local folder's time on the same files (1.00 = no cost)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
