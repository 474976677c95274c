"""The torch runtime: the model through sentence-transformers (bf16 on capable CPUs, CUDA when
configured). It loads weights from safetensors only, from disk only. Leaves out: the choice of
this runtime (`workbench.embed.choice`) and loading it lazily (`workbench.embed.lazy`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workbench.config import EmbeddingSettings
from workbench.embed.base import resolve_model_path
from workbench.errors import not_on_disk
from workbench.hardware import cpu_has_bf16


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
            raise not_on_disk("the embedding model", settings.model, "[embedding] model", exc) from None
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
