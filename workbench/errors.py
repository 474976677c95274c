"""The workbench's exceptions: a small tree, each message saying what went wrong and what to do next.

    WorkbenchError                 anything the CLI prints as one line (exit code 2 unless stated)
    ├── ConfigError                the config file is missing, malformed, or names an unknown setting
    ├── InvalidInputError          a value given by the caller is refused (also a ValueError)
    │   ├── UploadRefusedError     an uploaded file refused before parsing: .name, .reason
    │   └── BadRequest             one `llm-serve` request refused: .status (the HTTP status)
    ├── ModelNotFoundError         a model is not on disk (nothing is ever downloaded)
    ├── IndexMismatchError         the index was built with another model or catalog format
    ├── IndexCorruptError          the index on disk is inconsistent (never published that way)
    ├── IndexBusyError             another writer holds the index (exit code 75: retry later)
    ├── EmptyIndexError            nothing to search yet
    ├── NotFoundError              no such source, user or document, or the asker may not see it
    ├── AuditError                 an action that must be audited could not be recorded, so it was not done
    └── ClusterError               the Ray cluster could not be reached, started no worker, or lost them all

    ParseError                     one file could not be parsed: its message is the reason in the
                                   ingest report (a `FileFailure`, with a `FailureKind`), never raised
                                   to callers of `Workbench`
    FileCheckError                 a file that must not be read as it is now: .kind (a `FileCheck`);
                                   its message is the reason in the report, never raised to callers

Each outcome code branches on is a type or an enum member, never a match on a message.
"""

from __future__ import annotations

from enum import Enum


class WorkbenchError(Exception):
    """Base class: anything the CLI prints as a one-line error instead of a traceback."""

    exit_code = 2


class ConfigError(WorkbenchError):
    """The config file is missing, malformed, or names an unknown setting."""


class InvalidInputError(WorkbenchError, ValueError):
    """A value given by the caller is refused (the message says which and what is allowed)."""


class IndexCorruptError(WorkbenchError):
    """The index on disk is not consistent (a generation missing, catalog and vectors disagree)."""


class ModelNotFoundError(WorkbenchError):
    """A model named in the config cannot be loaded from disk (the workbench never downloads)."""


def not_on_disk(what: str, name: str, setting: str, exc: BaseException | None = None, model_id: str = "ID",
                more: str = "") -> ModelNotFoundError:
    """The one error for a model that is not on disk (every loader raises it): what could not be
    loaded and why, that the workbench never downloads, and how to fetch it and name it in ``setting``."""
    why = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    return ModelNotFoundError(f"cannot load {what} {name!r} from disk{why}. The workbench never downloads: fetch "
                              f"it on a connected machine (`hf download {model_id} --local-dir DIR`){more}, copy the "
                              f"folder here, and set {setting} = \"DIR\" in workbench.toml")


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


class UploadRefusedError(InvalidInputError):
    """An uploaded file was refused before parsing (type not supported, too large, unusable name)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


class BadRequest(InvalidInputError):
    """One `llm-serve` request refused before any work: its HTTP status and the message sent back."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ClusterError(WorkbenchError):
    """The Ray cluster could not be reached, started no worker, or lost them all."""


class DirectoryUnavailableError(WorkbenchError):
    """The LDAP directory or the OpenID provider could not be reached or refused the service account
    (not the same as "no such user": nobody is signed out because of it)."""

    exit_code = 69  # EX_UNAVAILABLE


class SignInError(WorkbenchError):
    """A sign-in through the OpenID provider was refused: bad or replayed state, a token that does not
    check out (signature, issuer, audience, expiry, nonce), or a user name the workbench cannot use."""


class SourceUnreachableError(WorkbenchError):
    """A remote source (an SMB share) could not be reached or listed: its documents are kept as they are."""

    exit_code = 69  # EX_UNAVAILABLE


class CallRefused(WorkbenchError):
    """A program's call with a personal key may not go ahead (`workbench.services.apicalls`): ``status``
    is the HTTP status it maps to (401, 403, 429), ``retry_after`` the seconds to wait for 429."""

    def __init__(self, status: int, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class RemoteError(WorkbenchError):
    """A workbench server refused or failed a call of `workbench.remote`: ``status`` (HTTP) and its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status


class FileCheck(str, Enum):
    """Why a file was not read as it is now (`FileCheckError.kind`)."""

    LINK = "link"  # its path leads through a symbolic link
    MISSING = "missing"  # nothing at its path any more
    UNREADABLE = "unreadable"  # the operating system refused to open it
    NOT_REGULAR = "not_regular"  # a folder, a device, a pipe...
    CHANGED = "changed"  # its bytes are not those the sync listed


class FileCheckError(Exception):
    """A file that must not be read as it is now (its message is the reason, for the report)."""

    def __init__(self, kind: FileCheck, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
