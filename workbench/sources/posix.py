"""Who may read a file on a Linux file system: its owner, group, mode bits and POSIX ACL entries.

`posix_readers(path)` is the set of POSIX identities that may read ``path``: read permission on
the file, and search (``x``) permission on every folder above it up to ``/``, intersected; users
POSIX shuts out although a group of theirs may read (an owner or named ACL user without the bit)
are marked ``!`` and become deny entries. An identity is ``u:NAME`` (a user), ``g:NAME`` (a group) or `ANYONE`
(the "other" class: every user of the system). Permissions follow POSIX.1e: the owner's bits, named
users and groups and the owning group limited by the ACL mask, then "other". Where POSIX would
decide by the first matching class (an owner without read on a world-readable file may not read
it), "other" counts only when every more specific class has the permission too; otherwise only the
named identities count. So access fails closed: what cannot be expressed as "these users and
groups" grants less, never more. An intersection of two different groups (a file readable by
``finance`` in a folder searchable by ``staff`` only) grants nothing, because group membership is
not known here.

`posix_groups` maps the identities to workbench groups: `ANYONE` to `workbench.access.EVERYONE`
(every signed-in user), a user to `workbench.access.user_group` (that one user), a group through
``[access] posix_groups`` or else by its own name. System accounts (uid below 1000, and the
workbench's own) grant nothing; system groups (gid below 1000) only through the table. Identities
without a name (a uid with no passwd entry) or whose names are not valid workbench names grant
nothing. `describe` says in words what
each path component grants (for ``workbench access explain``).

Leaves out: default ACLs (they shape new files, not who reads existing ones), SMB/NT ACLs, and
group membership (a user denied as a user but allowed through a group stays denied).
"""

from __future__ import annotations

import errno
import functools
import grp
import os
import pwd
import stat
import struct
from pathlib import Path

ANYONE = "*"
_ACL_XATTR = "system.posix_acl_access"
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
R, X = 4, 1


@functools.lru_cache(maxsize=4096)
def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


@functools.lru_cache(maxsize=4096)
def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"#{gid}"


def acl_of(path: Path) -> list[tuple[int, int, int]]:
    """The ACL entries (tag, permission bits, id) of ``path``; [] when it has none beyond its mode."""
    try:
        raw = os.getxattr(path, _ACL_XATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, getattr(errno, "ENOATTR", errno.ENODATA)):
            return []
        raise
    if len(raw) < 4 or struct.unpack_from("<I", raw)[0] != 2 or (len(raw) - 4) % 8:
        raise ValueError(f"{path}: its POSIX ACL is not in a format this reader knows")
    return [struct.unpack_from("<HHI", raw, off) for off in range(4, len(raw), 8)]


def _user_token(uid: int) -> str:
    """``u:NAME``, or ``s:NAME`` for a system account (uid below 1000) or this process's own, which
    grant nothing: no member of staff signs in as root or as the workbench's service account."""
    system = uid < 1000 or uid == 65534 or uid == os.getuid()  # 65534: nobody
    return f"{'s' if system else 'u'}:{_user(uid)}"


def _group_token(gid: int) -> str:
    """``g:NAME``, or ``G:NAME`` for a system group (gid below 1000), which grants only when
    ``[access] posix_groups`` lists it."""
    return f"{'G' if gid < 1000 or gid == 65534 else 'g'}:{_group(gid)}"


def _classes(path: Path) -> tuple[list[tuple[str, int]], int]:
    """(identity, permission bits) of every class that names someone, owner first, and the "other" bits."""
    st = os.lstat(path)
    acl = acl_of(path)
    mask = next((perm for tag, perm, _ in acl if tag == _MASK), 7)
    owner = [(_user_token(st.st_uid), (st.st_mode >> 6) & 7)]
    if not acl:
        return owner + [(_group_token(st.st_gid), (st.st_mode >> 3) & 7)], st.st_mode & 7
    named = []
    for tag, perm, ident in acl:
        if tag == _USER:
            named.append((_user_token(ident), perm & mask))
        elif tag == _GROUP_OBJ:
            named.append((_group_token(st.st_gid), perm & mask))
        elif tag == _GROUP:
            named.append((_group_token(ident), perm & mask))
    other = next((perm for tag, perm, _ in acl if tag == _OTHER), st.st_mode & 7)
    return owner + named, other


def readers_with(path: Path, bit: int) -> frozenset[str]:
    """The identities that have permission ``bit`` (R or X) on ``path``, and ``!``-marked the users
    POSIX shuts out although a group or "other" has it (the owner, or a named ACL user, without the
    bit: their own entry decides before any group's). See the module for "other"."""
    classes, other = _classes(path)
    allowed = {who for who, perm in classes if perm & bit}
    denied = {"!" + who for who, perm in classes if who[0] in "us" and not perm & bit}
    if other & bit and all(perm & bit for _, perm in classes):
        allowed.add(ANYONE)
    return frozenset(allowed | denied)


def _split(readers: frozenset[str]) -> tuple[set[str], set[str]]:
    return {r for r in readers if not r.startswith("!")}, {r for r in readers if r.startswith("!")}


def intersect(a: frozenset[str], b: frozenset[str]) -> frozenset[str]:
    """Who is allowed in both sets (`ANYONE` is everyone, so it leaves the other set as it is), and
    who either shuts out."""
    (allow_a, deny_a), (allow_b, deny_b) = _split(a), _split(b)
    if ANYONE in allow_a:
        allowed = allow_a | allow_b if ANYONE in allow_b else allow_b
    elif ANYONE in allow_b:
        allowed = allow_a
    else:
        allowed = allow_a & allow_b
    return frozenset(allowed | deny_a | deny_b)


def posix_readers(path: str | os.PathLike, passable=None) -> frozenset[str]:
    """Who may read ``path``: read on it, and search on every folder above it, up to ``/`` (a folder
    above the ingested one that shuts people out shuts them out of everything below it).
    ``passable(folder)``, when given, answers `readers_with(folder, X)` (a caller's cache)."""
    path = Path(path)
    passable = passable or (lambda folder: readers_with(folder, X))
    readers = readers_with(path, R)
    for folder in path.parents:
        readers = intersect(readers, passable(folder))
    return readers


def posix_groups(readers: frozenset[str], table: dict[str, list[str]]) -> tuple[str, ...]:
    """Workbench reader entries for POSIX ``readers`` (see module), in a stable order: allowed ones,
    then ``!@user:NAME`` for the users shut out."""
    from workbench.access import EVERYONE, NAME_RE, user_group
    from workbench.records import DENY

    out: list[str] = []
    for who in sorted(readers, key=lambda r: (r.startswith("!"), r)):
        kind, name = who.lstrip("!")[0], who.lstrip("!")[2:]
        if who == ANYONE:
            out.append(EVERYONE)
        elif who.startswith("!"):
            if kind in "us" and NAME_RE.match(name):
                out.append(DENY + user_group(name))
        elif kind == "u" and NAME_RE.match(name):
            out.append(user_group(name))
        elif kind == "g":
            out.extend(table.get(name, [name] if NAME_RE.match(name) else []))
        elif kind == "G":
            out.extend(table.get(name, []))
    return tuple(dict.fromkeys(out))


def describe(path: Path, bit: int) -> str:
    """One line: ``path``'s owner, group, mode, ACL and who has ``bit`` on it."""
    st = os.lstat(path)
    acl = acl_of(path)
    names = {_USER: lambda i: f"user:{_user(i)}", _GROUP: lambda i: f"group:{_group(i)}"}
    extra = ", ".join(f"{names[t](i)}:{_rwx(p)}" for t, p, i in acl if t in names)
    mask = next((f", mask {_rwx(p)}" for t, p, _ in acl if t == _MASK), "")
    who = ", ".join(sorted(_words(w) for w in readers_with(path, bit))) or "nobody"
    kind = "folder" if stat.S_ISDIR(st.st_mode) else "file"
    return (f"{path} ({kind}): owner {_user(st.st_uid)}, group {_group(st.st_gid)}, mode "
            f"{stat.filemode(st.st_mode)}{'; ACL ' + extra if extra else ''}{mask} → "
            f"{'read' if bit == R else 'pass through'}: {who}")


def _rwx(perm: int) -> str:
    return "".join(c if perm & b else "-" for c, b in (("r", 4), ("w", 2), ("x", 1)))


def _words(who: str) -> str:
    """An identity in words: "anyone", "user alice", "group finance", "not user bob"."""
    if who == ANYONE:
        return "anyone"
    prefix = "not " if who.startswith("!") else ""
    kind, name = who.lstrip("!")[0], who.lstrip("!")[2:]
    label = {"u": "user", "s": "system user", "g": "group", "G": "system group"}[kind]
    return f"{prefix}{label} {name}"
