"""Folder ⇄ catalog diff: which files are new, changed, renamed, deleted or unchanged.

A source (`workbench.sources`) lists its candidate files by stat alone; `plan_sync` compares
them with the catalogued documents of that source and hashes (through the source) only files
whose size or modification time moved. A renamed or moved file is recognised by its content hash
(same bytes, new path) so its embeddings are kept. A file unchanged since it last failed is not
parsed again. Leaves out: listing and reading files (`workbench.sources`); parsing, embedding and
writing (`workbench.ingest`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.files import file_hash
from workbench.records import Document, FailureKind, FileFailure, FileInfo

SIZE_LIMIT_TAG = "(ingest.max_file_mb)"


@dataclass(frozen=True, slots=True)
class ToParse:
    file: FileInfo
    content_hash: str
    replaces: tuple[str, ...] = ()  # doc ids of the previous version (changed files)


@dataclass(slots=True)
class SyncPlan:
    """What to do for one source. Doc-id tuples name every part of a file (mail + attachments)."""

    to_parse: list[ToParse] = field(default_factory=list)
    renamed: list[tuple[str, FileInfo, tuple[str, ...]]] = field(default_factory=list)
    touched: list[tuple[FileInfo, tuple[str, ...]]] = field(default_factory=list)
    deleted: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    failed: list[tuple[FileInfo, str, FailureKind]] = field(default_factory=list)  # (file, reason, kind)
    still_failing: list[FileFailure] = field(default_factory=list)
    unchanged: int = 0
    seen: set[str] = field(default_factory=set)


def plan_sync(files: list[FileInfo], docs: list[Document], failures: dict[str, tuple[int, float, str]],
              max_bytes: int, hasher: Callable[[str], str] = file_hash, reparse: bool = False) -> SyncPlan:
    """Compare scanned files with catalogued documents (and past failures) of one source.
    ``reparse``: parse every indexed file again, changed or not (what is embedded changed)."""
    plan = SyncPlan(seen={f.path for f in files})
    by_path: dict[str, list[Document]] = {}
    for d in docs:
        by_path.setdefault(d.path, []).append(d)
    new: list[ToParse] = []
    for f in files:
        old = by_path.get(f.path)
        ids = tuple(d.doc_id for d in old or ())
        past = failures.get(f.path)
        unchanged_failure = past is not None and past[0] == f.size and past[1] == f.mtime
        if f.size > max_bytes:
            reason = f"file is {f.size / 2**20:.1f} MB, over the {max_bytes / 2**20:g} MB limit {SIZE_LIMIT_TAG}"
            if unchanged_failure and past[2] == reason:
                plan.still_failing.append(FileFailure(f.path, reason, kind=FailureKind.TOO_LARGE))
            else:
                plan.failed.append((f, reason, FailureKind.TOO_LARGE))
            if ids:
                plan.deleted.append((f.path, ids))
            continue
        if unchanged_failure and past[3] is not FailureKind.TOO_LARGE:  # a size failure is re-checked above
            plan.still_failing.append(FileFailure(f.path, past[2], kind=past[3]))
            continue
        if old and old[0].size == f.size and old[0].mtime == f.mtime and not reparse:
            plan.unchanged += 1
            continue
        try:
            digest = hasher(f.path)
        except OSError as exc:
            plan.failed.append((f, f"cannot read file ({exc.strerror})", FailureKind.UNREADABLE))
            continue
        if old and old[0].content_hash == digest and not reparse:
            plan.touched.append((f, ids))
        elif old:
            plan.to_parse.append(ToParse(f, digest, replaces=ids))
        else:
            new.append(ToParse(f, digest))
    vanished = {p: ds for p, ds in by_path.items() if p not in plan.seen}
    by_hash = {ds[0].content_hash: p for p, ds in vanished.items()}
    for item in new:
        old_path = by_hash.pop(item.content_hash, None)
        if old_path is not None:
            plan.renamed.append((old_path, item.file, tuple(d.doc_id for d in vanished.pop(old_path))))
        else:
            plan.to_parse.append(item)
    plan.deleted += [(p, tuple(d.doc_id for d in ds)) for p, ds in vanished.items()]
    return plan
