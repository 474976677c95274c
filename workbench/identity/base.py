"""What a directory tells about a person, and how its groups become workbench groups.

A `DirectoryUser` is one person as an identity source (LDAP/AD, or an OpenID provider) reports
them: the workbench user name, the workbench groups their directory groups map to, where they come
from and the directory's own id for them (an LDAP DN, an OpenID ``sub``). `Directory` is what an
LDAP/AD backend offers: check a password, and look a person up again (sign-in, session refresh,
``--as-user``). `map_groups` applies the ``[auth] groups`` table: directory groups that are not
listed grant nothing.

Leaves out: talking to any server (`workbench.identity.ldap`, `workbench.identity.oidc`), storing
users (`workbench.stores.users`) and sessions (`workbench_web.sessions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from workbench.records import _Record

LOCAL, LDAP, OIDC = "local", "ldap", "oidc"  # where a user comes from (`User.source`, the audit log)


@dataclass(frozen=True, slots=True)
class DirectoryUser(_Record):
    """One person as a directory reports them, groups already mapped (see module)."""

    name: str  # the workbench user name (a valid NAME_RE name)
    groups: tuple[str, ...]  # workbench groups, after [auth] groups
    source: str  # LDAP or OIDC
    subject: str  # the directory's id: an LDAP DN, an OpenID provider's ``sub``
    directory_groups: tuple[str, ...] = ()  # what the directory said (DNs or names), before mapping


@runtime_checkable
class Directory(Protocol):
    """An LDAP/AD directory: password checks and look-ups (see `workbench.identity.ldap.LdapDirectory`)."""

    source: str

    def authenticate(self, name: str, password: str) -> DirectoryUser | None:
        """The user when ``name`` exists, may sign in (matches the user filter) and ``password`` is
        right; None otherwise (an empty password is always None: LDAP would bind anonymously)."""
        ...

    def lookup(self, name: str) -> DirectoryUser | None:
        """The user as the directory has them now; None when gone or disabled (no password needed)."""
        ...


def group_keys(group: str) -> tuple[str, ...]:
    """The names a directory group may be listed under: its DN and its first RDN's value, lower-cased.

    ``"CN=Finance,OU=Groups,DC=corp"`` → ``("cn=finance,ou=groups,dc=corp", "finance")``; a plain
    name (an OpenID claim's value) → itself.
    """
    text = group.strip()
    keys = [text.lower()]
    first = text.split(",", 1)[0]
    if "=" in first:
        keys.append(first.split("=", 1)[1].strip().lower())
    return tuple(dict.fromkeys(k for k in keys if k))


def map_groups(directory_groups: Iterable[str], table: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """Workbench groups granted by ``directory_groups`` through ``table`` ([auth] groups).

    Keys of ``table`` match a group's DN or its name, case-insensitively; unlisted groups grant
    nothing. Order follows the table; duplicates are dropped.
    """
    have = {key for group in directory_groups for key in group_keys(group)}
    granted: list[str] = []
    for key, groups in table.items():
        if key.strip().lower() in have:
            granted.extend(groups)
    return tuple(dict.fromkeys(granted))
