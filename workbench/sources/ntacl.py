"""Who may read a file on a Windows share: its NT security descriptor, turned into reader entries.

`parse_sd` reads a self-relative security descriptor ([MS-DTYP] 2.4.6) as a file server sends it,
bounds-checked (a hostile server's bytes give ValueError, never a crash or a read past the end).
`effective_aces` gives the ACEs that apply to a file: its own explicit ones, and, unless its DACL is
protected, those its folders pass down now (object-inherit for files, container-inherit for
folders, inherit-only and no-propagate honoured), from the share's root down. The ACEs a file
carries as inherited are replaced by what its folders give today, so a file moved to another
folder cannot keep readers its new folder does not give (the server may still hold the old ones).

`stored_and_inherited` combines both views of a moved file fail-closed: who both the stored and the
recomputed ACEs allow, and who either denies. `readers` reads ACEs fail-closed: an allow ACE granting read data (or generic read / all)
adds its SID; a deny ACE denying any of those adds "deny SID", whatever the order of the ACEs (so
a deny wins even where Windows would let an earlier allow decide); a deny ACE whose kind or SID
cannot be read denies everyone; a missing DACL (null) allows everyone, an empty one nobody.
`reader_entries` maps SIDs to the workbench's reader entries through ``[smb] sids`` (SID → groups,
"user:NAME" or "everyone"; Everyone, Authenticated Users and BUILTIN\\Users are everyone): an
allowed SID that maps to nothing grants nothing, a denied SID that maps to nothing denies everyone
(who it is cannot be known). System principals (SYSTEM, CREATOR OWNER, Administrators) are skipped:
workbench admins read everything anyway.

Leaves out: talking to the server (`workbench.sources.smb`), resolving SIDs through AD (a mapping
table only), object ACEs' object types, conditional ACEs' conditions (a conditional allow grants
nothing, a conditional deny denies everyone), and the SACL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from workbench.records import DENY

SE_DACL_PRESENT, SE_DACL_PROTECTED = 0x0004, 0x1000
ALLOW, DENY_TYPE = 0x00, 0x01
OI, CI, NP, IO, INHERITED = 0x01, 0x02, 0x04, 0x08, 0x10
READ_BITS = 0x00000001 | 0x80000000 | 0x10000000  # FILE_READ_DATA, GENERIC_READ, GENERIC_ALL
EVERYONE_SIDS = {"S-1-1-0", "S-1-5-11", "S-1-5-32-545"}  # Everyone, Authenticated Users, BUILTIN\Users
SKIPPED_SIDS = {"S-1-5-18", "S-1-3-0", "S-1-3-1", "S-1-5-32-544"}  # SYSTEM, CREATOR OWNER/GROUP, Administrators
UNKNOWN = "?"  # the SID of an ACE whose layout this reader does not know
OTHER_DENY = {0x06, 0x0A, 0x0C}  # ACCESS_DENIED_OBJECT, _CALLBACK, _CALLBACK_OBJECT ([MS-DTYP] 2.4.4.1)
KNOWN_TYPES = {0x00, 0x01, 0x05, 0x09, 0x0B} | OTHER_DENY | {0x02, 0x03, 0x07, 0x08, 0x0D, 0x0E, 0x0F, 0x10}
# (the allow kinds; the denies; audit and alarm kinds, which grant and deny nothing): any other denies everyone


@dataclass(frozen=True, slots=True)
class Ace:
    """One access control entry: allow (0), deny (1) or another type; its flags, mask and SID."""

    type: int
    flags: int
    mask: int
    sid: str


@dataclass(frozen=True, slots=True)
class SecurityDescriptor:
    """Owner, group, control bits and DACL (None: no DACL, everyone has access)."""

    owner: str | None
    group: str | None
    control: int
    dacl: tuple[Ace, ...] | None

    @property
    def protected(self) -> bool:
        return bool(self.control & SE_DACL_PROTECTED)


def _sid(data: bytes, off: int, end: int | None = None) -> str:
    end = len(data) if end is None else end
    if off + 8 > end:
        raise ValueError("a SID runs past the end of the security descriptor")
    rev, count = data[off], data[off + 1]
    if rev != 1 or count > 15 or off + 8 + 4 * count > end:
        raise ValueError("a SID in the security descriptor is not valid")
    authority = int.from_bytes(data[off + 2:off + 8], "big")
    subs = struct.unpack_from(f"<{count}I", data, off + 8)
    return f"S-{rev}-{authority}" + "".join(f"-{s}" for s in subs)


def parse_sd(data: bytes) -> SecurityDescriptor:
    """The security descriptor in ``data`` (self-relative); ValueError when it is not one."""
    if len(data) < 20:
        raise ValueError("the security descriptor is too short")
    _rev, _sbz, control, o_owner, o_group, _o_sacl, o_dacl = struct.unpack_from("<BBHIIII", data, 0)
    owner = _sid(data, o_owner) if o_owner else None
    group = _sid(data, o_group) if o_group else None
    if not control & SE_DACL_PRESENT or not o_dacl:
        return SecurityDescriptor(owner, group, control, None)
    if o_dacl + 8 > len(data):
        raise ValueError("the DACL runs past the end of the security descriptor")
    _acl_rev, _, acl_size, count, _ = struct.unpack_from("<BBHHH", data, o_dacl)
    end = min(len(data), o_dacl + acl_size)
    aces, pos = [], o_dacl + 8
    for _ in range(count):
        if pos + 8 > end:
            raise ValueError("an ACE runs past the end of the DACL")
        kind, flags, size = struct.unpack_from("<BBH", data, pos)
        if size < 8 or pos + size > end:
            raise ValueError("an ACE has a size that does not fit the DACL")
        (mask,) = struct.unpack_from("<I", data, pos + 4)
        sid = _sid(data, pos + 8, pos + size) if kind in (ALLOW, DENY_TYPE) else UNKNOWN
        aces.append(Ace(kind, flags, mask, sid))
        pos += size
    return SecurityDescriptor(owner, group, control, tuple(aces))


def _passed_to_file(aces: tuple[Ace, ...]) -> list[Ace]:
    return [Ace(a.type, INHERITED, a.mask, a.sid) for a in aces if a.flags & OI]


def _passed_to_folder(aces: tuple[Ace, ...]) -> list[Ace]:
    out = []
    for a in aces:
        if a.flags & NP:
            if a.flags & CI:
                out.append(Ace(a.type, INHERITED, a.mask, a.sid))  # applies to the child folder only
        elif a.flags & CI:
            out.append(Ace(a.type, INHERITED | (a.flags & (OI | CI)), a.mask, a.sid))
        elif a.flags & OI:
            out.append(Ace(a.type, INHERITED | OI | IO, a.mask, a.sid))  # passes on to files deeper down
    return out


def effective_aces(file_sd: SecurityDescriptor, folders: list[SecurityDescriptor]) -> tuple[Ace, ...] | None:
    """The ACEs that apply to a file (see module): ``folders`` are its folders' descriptors from the
    share's root down to its own folder. None when the file has no DACL (everyone)."""
    if file_sd.dacl is None:
        return None
    passed: tuple[Ace, ...] | None = None
    for i, folder in enumerate(folders):
        if folder.dacl is None:
            passed = None
            continue
        if i == 0 or folder.protected or passed is None:
            passed = folder.dacl  # the share's root as it is (nothing above it is seen)
        else:
            passed = tuple(a for a in folder.dacl if not a.flags & INHERITED) + tuple(_passed_to_folder(passed))
    explicit = tuple(a for a in file_sd.dacl if not a.flags & INHERITED)
    if file_sd.protected or passed is None:
        return explicit if file_sd.protected else file_sd.dacl
    return explicit + tuple(_passed_to_file(passed))


def readers(aces: tuple[Ace, ...] | None) -> tuple[frozenset[str], frozenset[str]]:
    """(SIDs allowed to read, SIDs denied reading) by ``aces`` (see module; UNKNOWN denies everyone)."""
    if aces is None:
        return frozenset({"S-1-1-0"}), frozenset()
    allowed, denied = set(), set()
    for ace in aces:
        if ace.flags & IO:  # inherit-only: for children, not for this object
            continue
        if ace.type == ALLOW and ace.mask & READ_BITS:
            allowed.add(ace.sid)
        elif ace.type == DENY_TYPE and ace.mask & READ_BITS:
            denied.add(ace.sid)
        elif ace.type in OTHER_DENY or ace.type not in KNOWN_TYPES:  # object/callback denies, unknown kinds
            denied.add(UNKNOWN)
    return frozenset(allowed), frozenset(denied)


def stored_and_inherited(file_sd: SecurityDescriptor, today_aces: tuple[Ace, ...] | None):
    """(allowed, denied) SIDs that both the file's stored DACL and ``today_aces`` (`effective_aces`:
    what its folders give today) allow, and that either denies: a file moved to another folder keeps
    its old ACEs on the server (Windows and Samba alike) while its new folder passes others down, so
    only who both allow may read it (fail closed), until the server propagates the new folder's ACEs."""
    stored = readers(file_sd.dacl)
    today = readers(today_aces)
    return _both(stored[0], today[0]), stored[1] | today[1]


def _both(a: frozenset[str], b: frozenset[str]) -> frozenset[str]:
    if a & EVERYONE_SIDS:
        return b if not b & EVERYONE_SIDS else a | b
    if b & EVERYONE_SIDS:
        return a
    return a & b


def _entries_of(sid: str, table: dict[str, list[str]]) -> list[str] | None:
    """The reader entries SID ``sid`` stands for; None when it is unknown here."""
    from workbench.access import EVERYONE, user_group

    if sid in EVERYONE_SIDS:
        return [EVERYONE]
    if sid not in table:
        return None
    out = []
    for value in table[sid]:
        out.append(EVERYONE if value == "everyone" else user_group(value[5:]) if value.startswith("user:") else value)
    return out


def reader_entries(allowed: frozenset[str], denied: frozenset[str], table: dict[str, list[str]]) -> tuple[str, ...]:
    """The document's reader entries: allowed ones, and ``!``-marked denied ones (see module)."""
    from workbench.access import EVERYONE

    out: list[str] = []
    for sid in sorted(allowed - SKIPPED_SIDS):
        out += _entries_of(sid, table) or []
    for sid in sorted(denied - SKIPPED_SIDS):
        entries = _entries_of(sid, table) if sid != UNKNOWN else None
        out += [DENY + e for e in (entries if entries is not None else [EVERYONE])]
    return tuple(dict.fromkeys(out))
