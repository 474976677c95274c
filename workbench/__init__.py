"""workbench: private-document RAG over a local FAISS index and SQLite catalog.

``import workbench`` loads no model and touches no network: it only sets the offline and
no-telemetry switches (see `workbench.privacy`) and exposes the public API below, whose heavy
parts are imported on first use.
"""

from __future__ import annotations

from workbench.privacy import apply_offline_switches

apply_offline_switches()

from workbench.config import Config, load_config  # noqa: E402
from workbench.errors import (  # noqa: E402
    AuditError,
    ConfigError,
    EmptyIndexError,
    IndexBusyError,
    IndexCorruptError,
    IndexMismatchError,
    InvalidInputError,
    ModelNotFoundError,
    NotFoundError,
    UploadRefusedError,
    WorkbenchError,
)
from workbench.records import (  # noqa: E402
    Answer,
    AnswerFlag,
    Chunk,
    Citation,
    Document,
    FailureKind,
    FileFailure,
    Filters,
    Hit,
    Hits,
    IndexStatus,
    IngestReport,
    OcrPage,
    Principal,
    Reason,
    Refusal,
    SearchTrace,
    SourceView,
    Timings,
    WeakEvidence,
)

__all__ = [
    "Answer",
    "AnswerFlag",
    "AuditError",
    "Chunk",
    "Citation",
    "Config",
    "ConfigError",
    "Document",
    "EmptyIndexError",
    "FailureKind",
    "FileFailure",
    "Filters",
    "Hit",
    "Hits",
    "IndexBusyError",
    "IndexCorruptError",
    "IndexMismatchError",
    "IndexStatus",
    "IngestReport",
    "InvalidInputError",
    "ModelNotFoundError",
    "NotFoundError",
    "OcrPage",
    "Principal",
    "Reason",
    "Refusal",
    "SearchTrace",
    "SourceView",
    "Timings",
    "UploadRefusedError",
    "WeakEvidence",
    "Workbench",
    "WorkbenchError",
    "load_config",
]

__version__ = "0.1.0"


def __getattr__(name: str):
    # Workbench pulls in numpy/faiss/sqlite wiring; keep `import workbench` light.
    if name == "Workbench":
        from workbench.pipeline import Workbench

        return Workbench
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """``%load_ext workbench``: registers the ``%search`` and ``%%ask`` magics."""
    from workbench.magics import WorkbenchMagics

    ipython.register_magics(WorkbenchMagics)
