"""Who may read what: principals, the one read rule, and where a document's groups come from.

A `Principal` is a signed-in user (or the operator at the CLI / notebook: None or `ADMIN`).
Retrieval, source views, file downloads and the feedback list all use this module, so one rule
decides everywhere:

- members of the admin group read everything;
- others read a document only when it is shared with one of their groups;
- a document with no groups is readable by admins only.

A document's groups are set at ingest and re-computed at every `reindex` (no re-embedding), from,
nearest first: an entry for the file in the nearest access file, that access file's ``groups``, an
access file further up (up to the source folder), the collection's default (``[access] collections``).

Access file (``.workbench-access``, TOML, in any source folder; applies to that folder and below)::

    groups = ["finance", "managers"]        # everything here and below, unless a nearer file says otherwise
    [files]
    "salaries-2026.xlsx" = ["finance"]      # one file (a name or glob, relative to this folder)
    "public/*.pdf" = ["staff"]              # ``*`` stays within one folder level

A malformed access file is reported as a failed file and the documents it covers get no groups
(admins only): access control fails closed. Leaves out: audit logging (`workbench.audit`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

from workbench.records import Document, FileFailure, _Record


@dataclass(frozen=True, slots=True)
class Principal(_Record):
    """The user a request acts for."""

    name: str
    groups: tuple[str, ...] = ()
    is_admin: bool = False


ADMIN = Principal("(operator)", (), True)


def principal_for(user, admin_group: str) -> Principal:
    """The `Principal` of a `workbench.users.User`."""
    return Principal(user.name, tuple(user.groups), admin_group in user.groups)


def filters_for(principal: Principal | None, filters=None):
    """``filters`` narrowed to what ``principal`` may read (None = the operator: unrestricted)."""
    from workbench.retrieve import Filters

    filters = filters or Filters()
    if principal is None or principal.is_admin:
        return filters
    return dataclasses.replace(filters, groups=tuple(principal.groups))


def can_read(principal: Principal | None, doc: Document) -> bool:
    """The same rule as `filters_for`, for one document."""
    if principal is None or principal.is_admin:
        return True
    return bool(set(doc.groups) & set(principal.groups))


@dataclass(frozen=True, slots=True)
class _Rules:
    groups: tuple[str, ...] | None  # None: this file does not set folder-wide groups
    files: tuple[tuple[str, tuple[str, ...]], ...]


_CLOSED = _Rules((), ())  # what a broken access file means: admins only


class AccessRules:
    """Groups for the files of one source (root folder or single file) of one collection."""

    def __init__(self, root: str | Path, collection: str, settings) -> None:
        root = Path(root)
        self.top = root if root.is_dir() else root.parent
        self.file_name = settings.file_name
        self.default = tuple(settings.collections.get(collection, ()))
        self.failures: list[FileFailure] = []
        self.collection = collection
        self._cache: dict[Path, _Rules | None] = {}

    def _rules(self, folder: Path) -> _Rules | None:
        if folder not in self._cache:
            self._cache[folder] = self._read(folder / self.file_name)
        return self._cache[folder]

    def _read(self, path: Path) -> _Rules | None:
        from workbench.users import parse_groups

        if not path.is_file():
            return None
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            unknown = set(data) - {"groups", "files"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)} (use groups = [...] and [files])")
            groups = parse_groups(data["groups"]) if "groups" in data else None
            files = tuple((str(k), parse_groups(v)) for k, v in dict(data.get("files", {})).items())
            return _Rules(groups, files)
        except Exception as exc:  # noqa: BLE001 - any problem in the file closes what it covers
            self.failures.append(FileFailure(str(path), f"access file not valid, its folder is now readable by "
                                             f"admins only: {exc}", self.collection))
            return _CLOSED

    def groups_for(self, path: str | Path) -> tuple[str, ...]:
        """The groups that may read the file at ``path`` (a file under this source)."""
        path = Path(path)
        folder = path.parent
        while True:
            rules = self._rules(folder)
            if rules is not None:
                rel = path.relative_to(folder).as_posix()
                for pattern, groups in rules.files:
                    if _matches(rel, pattern):
                        return groups
                if rules.groups is not None:
                    return rules.groups
            if folder == self.top or self.top not in folder.parents:
                return self.default
            folder = folder.parent


def _matches(rel: str, pattern: str) -> bool:
    """``rel`` (a/b.pdf) is ``pattern``, exactly or as a glob applied segment by segment
    (``*`` never crosses a ``/``; ``[`` in a real file name matches itself)."""
    if rel == pattern:
        return True
    names, parts = rel.split("/"), pattern.split("/")
    return len(names) == len(parts) and all(fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts))


def write_access_file(folder: Path, file_name: str, files: dict[str, tuple[str, ...] | None]) -> Path:
    """Add, replace (or, for None, remove) ``[files]`` entries in ``folder``'s access file; other keys are kept.

    Raises WorkbenchError when the existing file is not valid TOML (fix it first).
    """
    from workbench.errors import WorkbenchError

    path = folder / file_name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"{path}: not valid TOML ({exc}); fix or remove it, then upload again") from None
    entries = {**dict(data.get("files", {})), **{k: list(v) for k, v in files.items() if v is not None}}
    for k, v in files.items():
        if v is None:
            entries.pop(k, None)
    if not entries and "groups" not in data:
        path.unlink(missing_ok=True)
        return path

    def quote(s: str) -> str:
        import json

        return json.dumps(s, ensure_ascii=False)

    lines = []
    if "groups" in data:
        lines.append(f"groups = [{', '.join(quote(g) for g in data['groups'])}]")
    lines.append("[files]")
    lines += [f"{quote(k)} = [{', '.join(quote(g) for g in v)}]" for k, v in sorted(entries.items())]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
