"""Who may read what: principals, the one read rule, and where a document's groups come from.

A `Principal` is a signed-in user (or the operator at the CLI / notebook: None or `ADMIN`).
Retrieval, source views, file downloads and the feedback list all use this module, so one rule
decides everywhere:

- members of the admin group read everything;
- others read a document only when it is shared with one of their groups;
- a document with no groups is readable by admins only.

A document's groups are set at ingest and re-computed at every `reindex` (no re-embedding). Access
files are read from the file's folder upwards, up to the outermost source of the document's collection
that holds the file (a folder ingested into that collection; for a single file ingested on its own, its
folder); access files above that are never read. Walking up, the first access file that says
something about the file decides: its ``[files]`` entry for the file if it has one, else its
``groups``. When none does, the collection's default (``[access] collections``) applies; otherwise
the document gets no groups (admins only). Because the limit is the outermost source, a folder
ingested both on its own and as part of a bigger folder (``ingest /shares/co`` then
``ingest /shares/co/board``) gets the same groups through either source, and after `reindex`.

Access file (``.workbench-access``, TOML, in any source folder; applies to that folder and below)::

    groups = ["finance", "managers"]        # everything here and below, unless a nearer file says otherwise
    [files]
    "salaries-2026.xlsx" = ["finance"]      # one file (a name or glob, relative to this folder)
    "public/*.pdf" = ["staff"]              # ``*`` stays within one folder level

An entry that names a file exactly wins over every pattern; among patterns, the first that matches
(in the file's order) decides.

Quote file names in ``[files]``: TOML reads ``salaries-2026.xlsx = [...]`` (no quotes) as a nested
table, which is an error here. ``groups`` and every ``[files]`` value must be a list of group names
in quotes; anything else (a table, a string, a number, a list holding a non-string), a group name
that is not valid, an unknown key or a TOML syntax error makes the file malformed. A malformed access file is reported as a failed
file (its path and what to fix) and closes its folder and everything below that no nearer access
file covers: those documents get no groups (admins only), whatever the files above or the
collection default say. Access control fails closed. Leaves out: audit logging (`workbench.stores.audit`).
"""

from __future__ import annotations

import dataclasses
import re
import fnmatch
import json
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InvalidInputError
from workbench.records import Document, FailureKind, FileFailure, Filters, Principal

OPERATOR = "(operator)"  # who acts in the audit log for the CLI / notebook user (reads everything)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")  # user and group names


def check_name(name: str, what: str = "user name") -> str:
    """``name`` if it is a valid user or group name, else InvalidInputError saying what is allowed."""
    if not NAME_RE.match(name or ""):
        raise InvalidInputError(f"{what} {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
                                "starting with a letter or digit")
    return name


def parse_groups(groups: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """'a,b' or ['a', 'b'] → ('a', 'b'), validated, duplicates dropped, order kept."""
    if groups is None:
        return ()
    items = groups.split(",") if isinstance(groups, str) else list(groups)
    return tuple(dict.fromkeys(check_name(g.strip(), "group name") for g in items if g.strip()))


ADMIN = Principal("(operator)", (), True)
EVERYONE = "@everyone"  # a document readable by every signed-in user (POSIX "other"); not a valid group name
USER_PREFIX = "@user:"  # a document readable by one user: "@user:alice" (POSIX owner or named ACL user)


def user_group(name: str) -> str:
    """The reader entry that grants one user (``@user:NAME``); never a valid group name, so no group can be it."""
    return USER_PREFIX + name


def reader_groups(principal: Principal) -> tuple[str, ...]:
    """What a document's groups are compared with for ``principal``: their groups, their own entry, everyone."""
    return (*principal.groups, user_group(principal.name), EVERYONE)


def principal_for(user, admin_group: str) -> Principal:
    """The `Principal` of a `workbench.stores.users.User` (or a `workbench.identity.DirectoryUser`)."""
    return Principal(user.name, tuple(user.groups), admin_group in user.groups, user.source, user.subject)


def filters_for(principal: Principal | None, filters=None):
    """``filters`` narrowed to what ``principal`` may read (None = the operator: unrestricted)."""
    filters = filters or Filters()
    if principal is None or principal.is_admin:
        return filters
    return dataclasses.replace(filters, groups=reader_groups(principal))


def can_read(principal: Principal | None, doc: Document) -> bool:
    """The same rule as `filters_for`, for one document (`Filters.admits`: one rule, not two)."""
    return filters_for(principal).admits(doc)


@dataclass(frozen=True, slots=True)
class _Rules:
    groups: tuple[str, ...] | None  # None: this file does not set folder-wide groups
    files: tuple[tuple[str, tuple[str, ...]], ...]


_CLOSED = _Rules((), ())  # what a broken access file means: admins only


def _group_list(value, where: str, name: str | None = None) -> tuple[str, ...]:
    """``value`` if it is a TOML list of group-name strings (validated), else ValueError saying how to write
    it. ``where`` names the setting in the message; ``name`` is the file name of a ``[files]`` entry."""
    if _is_list_of_str(value):
        return parse_groups(value)  # never a bare string: parse_groups would split "a,b" at commas
    if name is not None and isinstance(value, dict):
        leaf = value  # salaries-2026.xlsx = [...] is read as {"salaries-2026": {"xlsx": [...]}}
        while isinstance(leaf, dict) and len(leaf) == 1:
            (key, leaf), = leaf.items()
            name += f".{key}"
        raise ValueError(f"{where} is read as a table, not a list of groups (TOML splits a key without quotes "
                         f"at its dots): quote file names that contain dots: "
                         f"{_toml_line(name, leaf if _is_list_of_str(leaf) else ['finance'])}")
    if isinstance(value, str):
        got = f"the string {json.dumps(value, ensure_ascii=False)}"
    elif isinstance(value, list):
        got = f"a list holding {next(g for g in value if not isinstance(g, str))!r}"
    else:
        got = "a table" if isinstance(value, dict) else repr(value)
    example = _toml_line(name, ["finance"]) if name is not None else 'groups = ["finance"]'
    raise ValueError(f"{where} must be a list of group names in quotes, e.g. {example} (got {got})")


def _is_list_of_str(value) -> bool:
    return isinstance(value, list) and all(isinstance(g, str) for g in value)


def _toml_line(name: str, groups) -> str:
    return f"{json.dumps(name, ensure_ascii=False)} = [{', '.join(json.dumps(g, ensure_ascii=False) for g in groups)}]"


def _parse(data: dict) -> _Rules:
    """The rules of one access file's TOML ``data``; ValueError saying what to fix when it is not valid."""
    unknown = set(data) - {"groups", "files"}
    if unknown:
        hint = ('; a file entry goes under [files], with its name in quotes: "salaries-2026.xlsx" = ["finance"]'
                if any(isinstance(data[k], dict) for k in unknown) else "")
        raise ValueError(f"unknown keys {sorted(unknown)} (use groups = [...] and [files]{hint})")
    groups = _group_list(data["groups"], "groups") if "groups" in data else None
    files = data.get("files", {})
    if not isinstance(files, dict):
        raise ValueError('files must be a [files] table of lines like "salaries-2026.xlsx" = ["finance"]')
    entries = tuple((name, _group_list(value, f"[files] {json.dumps(name, ensure_ascii=False)}", name))
                    for name, value in files.items())
    return _Rules(groups, entries)


def _contains(root: Path, path: Path) -> Path | None:
    """The folder access files are read up to for ``path`` within source ``root`` (None: not in it)."""
    if root in path.parents:
        return root
    return root.parent if root == path else None  # a single file ingested on its own: its folder


class AccessRules:
    """Groups for the files of one collection's sources (folders or single files).

    ``roots`` are the collection's sources (one path or several): access files are read from a
    file's folder up to the outermost of those sources that holds it, so a file reached through a
    nested source gets the same groups as through the folder around it.
    """

    def __init__(self, roots: str | os.PathLike | Iterable[str | os.PathLike], collection: str, settings) -> None:
        roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
        self.roots = tuple(dict.fromkeys(Path(r) for r in roots))
        self.file_name = settings.file_name
        self.default = tuple(settings.collections.get(collection, ()))
        self.failures: list[FileFailure] = []
        self.collection = collection
        self.permissions_from = getattr(settings, "permissions_from", "files")
        self.posix_table = dict(getattr(settings, "posix_groups", {}) or {})
        self._cache: dict[Path, _Rules | None] = {}
        self._passable: dict[Path, frozenset[str]] = {}  # with from = "posix": who may pass through each folder

    def _rules(self, folder: Path) -> _Rules | None:
        if folder not in self._cache:
            self._cache[folder] = self._read(folder / self.file_name)
        return self._cache[folder]

    def _read(self, path: Path) -> _Rules | None:
        if not path.is_file():
            return None
        if self.permissions_from in ("native", "posix") and not _trusted(path):
            self.failures.append(FileFailure(str(path), "access file ignored: with [access] from = \"native\" an "
                                             "access file counts only when root or the workbench's account owns it "
                                             "and nobody else may write it (else anyone who may write the folder "
                                             "could grant readers); the POSIX permissions decide",
                                             self.collection, FailureKind.ACCESS_FILE))
            return None
        try:
            return _parse(tomllib.loads(path.read_text(encoding="utf-8")))
        except Exception as exc:  # noqa: BLE001 - any problem in the file closes what it covers
            self.failures.append(FileFailure(str(path), f"access file not valid, its folder is now readable by "
                                             f"admins only: {exc}", self.collection, FailureKind.ACCESS_FILE))
            return _CLOSED

    def _top(self, path: str | Path) -> Path:
        """The highest folder whose access file counts for ``path``: the outermost source holding it."""
        path = Path(path)
        tops = [t for t in (_contains(r, path) for r in self.roots) if t is not None]
        return min(tops, key=lambda t: len(t.parts)) if tops else path.parent

    def groups_for(self, path: str | Path) -> tuple[str, ...]:
        """The groups that may read the file at ``path`` (a file under one of the sources)."""
        return self.decide(path, explain=False)[0]

    def decide(self, path: str | Path, explain: bool = True) -> tuple[tuple[str, ...], list[str]]:
        """The groups that may read ``path``, and (``explain``) the steps that decided it, in words."""
        path = Path(path)
        top = self._top(path)
        folder = path.parent
        steps: list[str] = []
        while True:
            rules = self._rules(folder)
            where = folder / self.file_name
            if rules is _CLOSED:
                steps.append(f"access file {where}: not valid, so it closes its folder (admins only)")
                return (), steps
            if rules is not None:
                groups = _file_entry(path.relative_to(folder).as_posix(), rules.files)
                if groups is not None:
                    steps.append(f"access file {where}: its [files] entry for {path.relative_to(folder).as_posix()} decides")
                    return groups, steps
                if rules.groups is not None:
                    steps.append(f"access file {where}: its groups decide (for the folder and below)")
                    return rules.groups, steps
                steps.append(f"access file {where}: says nothing about this file")
            if folder == top or top not in folder.parents:
                break
            folder = folder.parent
        if self.permissions_from in ("native", "posix"):
            return self._posix(path, top, steps, explain)
        steps.append(f"no access file decides: the collection default of {self.collection!r}"
                     if self.default else "no access file decides and the collection has no default: admins only")
        return self.default, steps

    def _posix(self, path: Path, top: Path, steps: list[str], explain: bool) -> tuple[tuple[str, ...], list[str]]:
        from workbench.sources.posix import R, X, describe, posix_groups, posix_readers, readers_with

        def passable(folder: Path) -> frozenset[str]:
            if folder not in self._passable:
                self._passable[folder] = readers_with(folder, X)
            return self._passable[folder]

        try:
            readers = posix_readers(path, passable)
            if explain:
                steps.append(describe(path, R))
                steps += [describe(folder, X) for folder in path.parents]
        except (OSError, ValueError) as exc:  # unreadable permissions: closed
            steps.append(f"{path}: its permissions could not be read ({exc}): admins only")
            self.failures.append(FileFailure(str(path), f"permissions not readable, so admins only: {exc}",
                                             self.collection, FailureKind.ACCESS_FILE))
            return (), steps
        groups = posix_groups(readers, self.posix_table)
        from workbench.sources.posix import _words

        shown = ", ".join(sorted(_words(r) for r in readers))
        steps.append(f"POSIX readers along the path: {shown or 'nobody'} → workbench: {', '.join(groups) or 'admins only'}")
        return groups, steps


def _trusted(path: Path) -> bool:
    """Whether an access file was written by root or the workbench's account and only they may change it."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return st.st_uid in (0, os.getuid()) and not st.st_mode & 0o022


def _file_entry(rel: str, entries: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[str, ...] | None:
    """The groups of the ``[files]`` entry for ``rel`` (a/b.pdf): the entry naming it exactly wins over
    every pattern; else the first pattern (in the file's order) that matches it; None when none does.
    So an entry named ``[a-c]udget.md`` gives that one file its groups and cannot take over
    ``budget.md``'s own entry."""
    for name, groups in entries:
        if name == rel:
            return groups
    for pattern, groups in entries:
        if _matches(rel, pattern):
            return groups
    return None


def _matches(rel: str, pattern: str) -> bool:
    """``rel`` (a/b.pdf) matches the glob ``pattern`` applied segment by segment (``*`` never
    crosses a ``/``)."""
    names, parts = rel.split("/"), pattern.split("/")
    return len(names) == len(parts) and all(fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts))


def write_access_file(folder: Path, file_name: str, files: dict[str, tuple[str, ...] | None]) -> Path:
    """Add, replace (or, for None, remove) ``[files]`` entries in ``folder``'s access file; other keys are kept.

    Raises WorkbenchError when the existing file is not a valid access file (fix it first).
    """
    from workbench.errors import WorkbenchError

    path = folder / file_name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        _parse(data)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError, WorkbenchError) as exc:
        raise WorkbenchError(f"{path}: not a valid access file ({exc}); fix or remove it, then upload again") from None
    entries = {**data.get("files", {}), **{k: list(v) for k, v in files.items() if v is not None}}
    for k, v in files.items():
        if v is None:
            entries.pop(k, None)
    if not entries and "groups" not in data:
        path.unlink(missing_ok=True)
        return path

    lines = []
    if "groups" in data:
        lines.append(f"groups = [{', '.join(json.dumps(g, ensure_ascii=False) for g in data['groups'])}]")
    lines.append("[files]")
    lines += [_toml_line(k, v) for k, v in sorted(entries.items())]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def explain(path: str | Path, config, sources: list[dict], indexed=None, principal: Principal | None = None):
    """An `AccessExplanation` of ``path``: the rules read for it (access files, or POSIX owner, mode and
    ACLs with ``[access] from = "posix"``), the readers they give now, what the published index holds
    (``indexed``: its `Document`, if any) and, for ``principal``, whether they may read it now."""
    from workbench.sources.smb import is_share_url

    if is_share_url(str(path)):
        return _explain_share(str(path), config, sources, indexed, principal)
    path = Path(path).expanduser().resolve()
    roots: dict[str, list[Path]] = {}
    for s in sources:
        if not is_share_url(s["root"]):
            roots.setdefault(s["collection"], []).append(Path(s["root"]))
    collection = next((c for c, rs in roots.items() if any(_contains(r, path) for r in rs)), "")
    if indexed is not None:
        collection = indexed.collection
    if collection:
        rules = AccessRules(roots.get(collection, [path.parent]), collection, config.access)
        groups, steps = rules.decide(path)
    else:
        groups, steps = (), ["no source of this index holds this file: ingest its folder first"]
    return _explained(str(path), collection, config, steps, groups, indexed, principal)


def _explain_share(url: str, config, sources: list[dict], indexed, principal):
    """`explain` for a file on an SMB share: its NT ACLs (or the collection default)."""
    from workbench.sources.smb import SmbShare

    source = next((s for s in sources if url.startswith(s["root"].rstrip("/") + "/")), None)
    if source is None:
        return _explained(url, "", config, ["no source of this index holds this file: ingest its share first"], (),
                          indexed, principal)
    share = SmbShare(source["root"], source["collection"], config, config.access.collections.get(source["collection"], ()))
    if share.native:
        groups, steps = share.decide(url)
    else:
        groups, steps = share.default_groups, ["on shares, access files are not read: the collection default decides"]
    return _explained(url, source["collection"], config, steps, groups, indexed, principal)


def _explained(path: str, collection: str, config, steps, groups, indexed, principal):
    from workbench.records import AccessExplanation

    doc_groups = tuple(indexed.groups) if indexed is not None else None
    user = principal.name if principal else ""
    readable = None
    if principal is not None:
        probe = Document("explain", collection, path, "", "", "", 0, 0.0, "", tuple(groups))
        readable = can_read(principal, probe)
    return AccessExplanation(path, collection, getattr(config.access, "permissions_from", "files"),
                             tuple(steps), tuple(groups), doc_groups, user,
                             tuple(principal.groups) if principal else (), readable)
