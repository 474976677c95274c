"""Who is asking, and which documents they may read.

A `Principal` is a signed-in user (or the operator at the CLI / notebook, `ADMIN`). Retrieval,
source views and file downloads all ask this module, so one rule decides everywhere:

- members of the admin group read everything;
- others read documents shared with one of their groups, and (until per-document access control
  lands: collection defaults and access files) documents that carry no groups at all.

Leaves out: where a document's groups come from (ingest) and audit logging.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from workbench.records import Document, _Record


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
    return dataclasses.replace(filters, groups=principal.groups, ungrouped=True)


def can_read(principal: Principal | None, doc: Document) -> bool:
    """The same rule as `filters_for`, for one document."""
    if principal is None or principal.is_admin:
        return True
    return not doc.groups or bool(set(doc.groups) & set(principal.groups))
