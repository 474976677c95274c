"""The workbench's exceptions. Each message says what went wrong and what to do next."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: anything the CLI prints as a one-line error instead of a traceback."""

    exit_code = 2


class ConfigError(WorkbenchError):
    """The config file is missing, malformed, or names an unknown setting."""


class ModelNotFoundError(WorkbenchError):
    """A model named in the config cannot be loaded from disk (the workbench never downloads)."""


class IndexMismatchError(WorkbenchError):
    """The index on disk was built with another embedding model or schema."""


class IndexBusyError(WorkbenchError):
    """Another process holds the index's write lock."""

    exit_code = 75  # EX_TEMPFAIL: cron can retry later


class EmptyIndexError(WorkbenchError):
    """A search was asked of an index that has no documents yet."""


class NotFoundError(WorkbenchError):
    """A source, user or document does not exist, or the asker may not see it."""


class ParseError(Exception):
    """A loader could not read one file. The message is the reason shown in the ingest report."""


class AuditError(WorkbenchError):
    """An action that must be audited could not be recorded, so it was not carried out."""


class UploadRefusedError(WorkbenchError):
    """An uploaded file was refused before parsing (type not supported, too large, unusable name)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason
