"""The configured embedder, loaded piece by piece: `load_embedder` and `LazyEmbedder`.

Its name, size and token counts come from the model folder's files (no weights loaded), and the
weights load on the first text that really has to be embedded, so a re-sync whose chunks are all
cached never loads a model. Documents go to the runtime `choose_runtime` picks for this CPU
(OpenVINO on the checked ONNX copy: bf16 where the CPU has native bf16, float32 elsewhere; torch
when OpenVINO or the ONNX copy is not there; ONNX Runtime for int8); queries go to ONNX Runtime
float32, which starts in a fraction of a second without torch (and fall back to the document
runtime when the ONNX copy cannot be made). ``RUNTIMES`` names the module of each runtime; one is
imported only when chosen. Leaves out: the embedding cache (it lives with the index) and the
runtimes themselves (one module each beside this).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from workbench.config import EmbeddingSettings
from workbench.embed.base import Runtime, resolve_model_path
from workbench.embed.card import ModelCard, count_tokens
from workbench.embed.choice import choose_runtime
from workbench.errors import ModelNotFoundError, not_on_disk
from workbench.hardware import cpu_info

# runtime name -> (module, class); a plain dict, as in `workbench.generate`
RUNTIMES = {"torch": ("workbench.embed.torch", "SentenceTransformerEmbedder"),
            "onnx": ("workbench.embed.onnx", "OnnxEmbedder"),
            "openvino": ("workbench.embed.openvino", "OpenVinoEmbedder")}


def openvino_available() -> bool:
    """True when the openvino package is installed (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


class LazyEmbedder:
    """The configured embedder, loaded piece by piece: name, size and token counts from the model's
    files at once; the document runtime on the first `embed_documents`; the query runtime on the
    first `embed_query`. Both load at most once (thread-safe)."""

    def __init__(self, settings: EmbeddingSettings, cache_dir: Path | None) -> None:
        self.settings = settings
        self.name = settings.model
        self.path = resolve_model_path(settings.model)
        if not Path(self.path).is_dir():
            raise not_on_disk("the embedding model", settings.model, "[embedding] model")
        self.card = ModelCard(self.path)
        self.cache_dir = cache_dir
        onnx_ok = self.card.onnx_ok and cache_dir is not None
        reason = self.card.onnx_reason or ("no index folder to keep the export in" if cache_dir is None else "")
        self.choice = choose_runtime(settings, cpu_info(), onnx_ok, reason,
                                     openvino_ok=onnx_ok and openvino_available())
        self.runtime, self.dtype = self.choice.documents
        self.device = "cpu" if self.runtime in ("onnx", "openvino") else settings.device
        self.dim = self.card.dim
        self.max_seq_length = self.card.max_seq_length
        # vectors of another precision must not be served from the embedding cache as float32 ones
        self.cache_key = self.name if self.dtype != "int8" else f"{self.name}#int8"
        self.query_fallback = ""  # why queries run on the document runtime after all, if they do
        self.document_fallback = ""  # why documents run on torch after all, if `auto` chose OpenVINO
        self._loaded: dict[tuple[str, str], Runtime] = {}
        self._lock = threading.Lock()
        self._counter = self.card.tokenizer(truncate=False) if self.card.tokenizer_file.exists() else None
        self._hf_counter = None

    def _get(self, which: tuple[str, str]) -> Runtime:
        loaded = self._loaded.get(which)
        if loaded is not None:
            return loaded
        with self._lock:
            if which not in self._loaded:
                self._loaded[which] = self._load(*which)
            return self._loaded[which]

    def _query_embedder(self) -> Runtime:
        which = self.choice.queries
        if which == self.choice.documents or self.query_fallback:
            return self._document_embedder()
        try:
            return self._get(which)
        except (OSError, ModelNotFoundError, ImportError) as exc:  # a read-only index, a refused export
            embedder = self._document_embedder()
            self.query_fallback = f"queries on {self.runtime} {self.dtype}: no ONNX copy ({exc})"
            return embedder

    def _export(self, int8: bool = False) -> Path:
        """The folder of the checked ONNX copy, exported now if it is not there yet."""
        from workbench.embed.export import ensure_export, export_dir  # imports torch only to export

        folder = export_dir(self.cache_dir, self.name, self.card)
        ensure_export(self.card, folder, int8=int8)
        return folder

    def _document_embedder(self) -> Runtime:
        which = self.choice.documents
        try:
            return self._get(which)
        except (OSError, RuntimeError, ModelNotFoundError, ImportError) as exc:
            if which[0] != "openvino" or self.settings.runtime != "auto":
                raise
            # `auto` chose OpenVINO and it cannot run here (an unwritable index folder, a refused check)
            self.document_fallback = f"documents on torch {which[1]}: OpenVINO did not load ({exc})"
            self.choice = replace(self.choice, documents=("torch", which[1]),
                                  reason=f"{self.choice.reason}; {self.document_fallback}")
            self.runtime = "torch"
            self.device = self.settings.device
            return self._get(self.choice.documents)

    def _load(self, runtime: str, dtype: str) -> Runtime:
        module, name = RUNTIMES[runtime]
        cls = getattr(importlib.import_module(module), name)
        if runtime == "torch":
            return cls(self.settings.model_copy(update={"dtype": dtype}))
        return cls(self.name, self.card, self._export(int8=dtype == "int8"), dtype, self.settings.batch_size)

    def prepare_queries(self) -> None:
        """Make sure the query runtime is ready to load fast (exports the ONNX copy once). Ingest
        calls this, so that the first cold `workbench search` does not pay for the export. Raises
        what the export raises (OSError, ModelNotFoundError)."""
        if self.choice.queries[0] == "onnx" and not self.query_fallback:
            with self._lock:
                self._export()

    def describe(self) -> str:
        """The runtimes and precisions chosen, why, and any fallback taken since (for `workbench status`)."""
        text = self.choice.describe()
        return f"{text}; {self.query_fallback}" if self.query_fallback else text

    @property
    def loaded(self) -> list[str]:
        """The runtimes loaded so far, e.g. ['torch bfloat16']."""
        return [f"{r} {d}" for r, d in self._loaded]

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._document_embedder().embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._query_embedder().embed_query(text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._counter is not None:
            return count_tokens(self._counter, texts)
        with self._lock:  # no tokenizer.json: a transformers tokenizer of its own, not the model's (shared by threads)
            if self._hf_counter is None:
                from transformers import AutoTokenizer

                self._hf_counter = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        enc = self._hf_counter(list(texts), add_special_tokens=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]


def load_embedder(settings: EmbeddingSettings, cache_dir: Path | None = None) -> LazyEmbedder:
    """The configured embedder; ``cache_dir`` (INDEX/models) keeps the ONNX export. Nothing heavy
    loads until a text is embedded (see `LazyEmbedder`)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return LazyEmbedder(settings, cache_dir)
