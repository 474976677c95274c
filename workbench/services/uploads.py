"""The upload workflow: files a signed-in user hands over, checked, parsed, placed and ingested.

Each file is checked (type, size), parsed first in a private staging folder (one that cannot be
read never enters the uploads folder, so a bad re-upload keeps the good version), moved into
``<index>/uploads/<collection>/``, given the groups the uploader chose (written into the
folder's access file), audited, and ingested on this machine. Leaves out: where and how a file is
placed (`workbench.stores.uploads`), parsing (`workbench.load`) and ingestion (`workbench.ingest`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from workbench.access import OPERATOR
from workbench.config import Config
from workbench.records import IngestReport, Principal


class Uploads:
    """Uploads into one index: ``audit`` gives its `AuditLog`, ``ingest`` is `Workbench.ingest`."""

    def __init__(self, config: Config, audit: Callable, ingest: Callable[..., IngestReport]) -> None:
        self.config, self.audit, self.ingest = config, audit, ingest
        self.index_dir = config.index.dir

    def upload(self, files: Iterable[tuple[str, str | os.PathLike]], collection: str, wait_s: float = 30.0,
               on_file=None, groups=None, principal: Principal | None = None) -> tuple[IngestReport, list]:
        """See `Workbench.upload`."""
        import secrets
        import shutil

        from workbench.access import parse_groups, write_access_file
        from workbench.errors import UploadRefusedError
        from workbench.ingest import try_parse
        from workbench.records import FailureKind, FileFailure
        from workbench.stores.uploads import check_upload, place_upload, upload_dir

        folder = upload_dir(self.index_dir, collection)
        user = principal.name if principal else OPERATOR
        chosen = parse_groups(groups) if groups is not None else None
        refused, staged = [], {}
        staging = self.index_dir / "upload-staging" / secrets.token_hex(8)
        try:
            for name, path in files:
                try:
                    clean = check_upload(path, name, self.config.web.max_upload_mb)
                except UploadRefusedError as exc:
                    refused.append(FileFailure(name, exc.reason, collection, FailureKind.REFUSED))
                    self.audit().record(user, "upload", f"{collection}/{name}: refused: {exc.reason}")
                    if on_file is not None:
                        on_file(name, exc.reason)
                    continue
                staged[clean] = place_upload(staging, path, clean)
            unreadable = []
            for path, error in try_parse(self.config, [str(p) for p in staged.values()]).items():
                if error is not None:
                    clean = Path(path).name
                    unreadable.append(FileFailure(str(folder / clean), error, collection))
                    self.audit().record(user, "upload", f"{collection}/{clean}: not readable: {error}")
                    if on_file is not None:
                        on_file(str(folder / clean), error)
                    del staged[clean]
            if not staged:
                return IngestReport(failed=tuple(unreadable)), refused
            stored = [place_upload(folder, p, clean, move=True) for clean, p in staged.items()]
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if chosen is not None:  # none chosen: a re-uploaded file keeps the groups it had (never widened)
            write_access_file(folder, self.config.access.file_name, {p.name: chosen for p in stored})
        for path in stored:  # recorded before indexing: the file is in place whatever happens next
            self.audit().record(user, "upload", f"{collection}/{path.name} (groups: "
                              f"{', '.join(chosen) if chosen else 'as before, or the folder rules'})")
        # uploads are parsed here, never on a cluster: its nodes do not see this index's upload folder
        report = self.ingest(folder, collection, wait_s=wait_s, progress=False, on_file=on_file, cluster="")
        return dataclasses.replace(report, failed=(*unreadable, *report.failed)), refused

