"""Optional cross-encoder reranking behind a narrow `Reranker` interface (off unless configured).

``[retrieval] reranker`` names a sentence-transformers `CrossEncoder` (a local folder or an id
already on disk, e.g. a downloaded cross-encoder/ms-marco-MiniLM-L6-v2). The fused candidates
are re-scored by it and re-ordered. Leaves out: downloading models (never at run time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from workbench.embed import resolve_model_path
from workbench.errors import not_on_disk
from workbench.records import Hit


@runtime_checkable
class Reranker(Protocol):
    def score(self, query: str, texts: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    def __init__(self, model: str, device: str = "cpu") -> None:
        from sentence_transformers import CrossEncoder

        path = resolve_model_path(model)
        try:
            self.model = CrossEncoder(path, device=device, local_files_only=True, trust_remote_code=False,
                                      model_kwargs={"use_safetensors": True})  # never pickle weights
        except (OSError, ValueError) as exc:
            raise not_on_disk("the reranker", model, "[retrieval] reranker", exc, model_id=model) from None
        self.name = model

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return [float(s) for s in self.model.predict([(query, t) for t in texts], show_progress_bar=False)]


def rerank(query: str, hits: Sequence[Hit], reranker: Reranker, k: int) -> list[Hit]:
    """The k best of ``hits`` by the reranker's score (kept in ``Hit.score``), re-numbered."""
    scores = reranker.score(query, [h.chunk.text for h in hits])
    ordered = sorted(zip(scores, range(len(hits))), key=lambda p: -p[0])[:k]
    return [dataclasses.replace(hits[i], score=s, rank=r) for r, (s, i) in enumerate(ordered, start=1)]
