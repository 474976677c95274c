"""Where files come from: the `Source` protocol (`base.py`) and one module per kind of source.

- `workbench.sources.local`: a folder or file on this machine (`LocalFolder`).

`source_for` is the one place a root becomes a source. Leaves out: what changed since the last
sync (`workbench.sync`), parsing (`workbench.load`) and running the parsers (`workbench.executors`).
"""

from __future__ import annotations

import os

from workbench.access import AccessRules
from workbench.sources.base import Source
from workbench.sources.local import LocalFolder

__all__ = ["LocalFolder", "Source", "source_for"]


def source_for(root: str | os.PathLike, collection: str, rules: AccessRules) -> Source:
    """The source that reads ``root`` for ``collection`` (today: a local folder or file)."""
    return LocalFolder(root, collection, rules)
