"""The `Source` protocol: where files come from, with their content identity and permissions.

A source is one root given to `ingest` (re-synced by `reindex`) in one collection. It lists its
files by stat alone (`scan`), hashes one on demand (`content_hash`, for the sync's plan), opens
one so that what is read is what was planned (`open`: a descriptor of those bytes, or
FileCheckError), and says which groups may read a file (`groups_for`). The sync plan hashes, the
parser sandbox and a cluster driver shipping files read through these methods. Not yet: the
source viewer (`workbench.viewer.open_original`) and a cluster node reading a shared mount open
local paths with the same checks (`workbench.files.open_checked`); a remote source brings its
own route for them. Leaves out: deciding what
changed (`workbench.sync`) and parsing (`workbench.load`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from workbench.records import FileFailure, FileInfo


@runtime_checkable
class Source(Protocol):
    root: str  # what the catalog stores for this source (a path, or a URL for remote sources)
    collection: str
    permissions: str  # where its permissions come from, for `workbench status` (e.g. "access files")

    def exists(self) -> bool:
        """False when the source cannot be reached now (its documents are then kept, not deleted)."""
        ...

    def scan(self, include_hidden: bool = False) -> tuple[list[FileInfo], list[FileFailure]]:
        """The supported files under the root (by stat alone), and those skipped with a reason."""
        ...

    def content_hash(self, path: str) -> str:
        """The content hash the sync records for ``path`` (OSError when it cannot be read)."""
        ...

    def open(self, path: str, content_hash: str | None = None) -> int:
        """A read-only descriptor at offset 0 of ``path``'s bytes, only if they have ``content_hash``
        when given; FileCheckError (the reason) otherwise. The caller closes it."""
        ...

    def groups_for(self, path: str) -> tuple[str, ...]:
        """The groups that may read ``path`` (empty: everyone signed in)."""
        ...
