"""LangChain adapters: the workbench's retriever as a `BaseRetriever`, its embedder as `Embeddings`.

So users can compose the workbench into their own chains. Each adapter holds a `Workbench` and
calls its public methods; nothing here ranks or embeds on its own.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict


class WorkbenchRetriever(BaseRetriever):
    """Hybrid search over the workbench index; metadata carries path, page, headings, scores."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    workbench: Any
    k: int = 5
    mode: str | None = None
    filters: Any = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        hits = self.workbench.search(query, k=self.k, mode=self.mode, filters=self.filters)
        return [LCDocument(page_content=h.chunk.text, id=str(h.chunk.chunk_id), metadata={
            "chunk_id": h.chunk.chunk_id, "doc_id": h.chunk.doc_id, "source": h.chunk.path, "part": h.chunk.part,
            "title": h.chunk.title, "page": h.chunk.page, "sheet": h.chunk.sheet, "headings": list(h.chunk.headings),
            "collection": h.chunk.collection, "score": h.score, "dense_score": h.dense_score,
            "lexical_score": h.lexical_score, "start": h.chunk.start, "end": h.chunk.end}) for h in hits]


class WorkbenchEmbeddings(Embeddings):
    """The workbench's embedding model (query and document sides) as LangChain `Embeddings`."""

    def __init__(self, workbench) -> None:
        self.workbench = workbench

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.workbench.embedder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.workbench.embedder.embed_query(text).tolist()
