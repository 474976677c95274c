"""The index: published generations on disk, their catalog, and the two searches of each.

- `workbench.index.generations`: the folder's layout, CURRENT, and atomic writes;
- `workbench.index.catalog`: the SQLite catalog of a generation (every SQL query of the index);
- `workbench.index.base`: the `VectorSearch` and `LexicalSearch` interfaces, one filter type;
- `workbench.index.vectors`: FAISS, exact (`FlatSearch`) or IVF (`IvfSearch`), built at publish;
- `workbench.index.lexical`: BM25, bm25s matrices (`MatrixSearch`) or FTS5 (`Fts5Search`);
- `workbench.index.cache`: the embedding cache shared by all generations;
- `workbench.index.reader` / `writer`: one generation read, the next one built and published.

Leaves out: deciding what changes (`workbench.sync`, `workbench.ingest`) and ranking
(`workbench.retrieve`).
"""

from __future__ import annotations

from workbench.index.base import LexicalSearch, VectorSearch
from workbench.index.generations import current_generation
from workbench.index.reader import IndexReader
from workbench.index.writer import IndexWriter

__all__ = ["IndexReader", "IndexWriter", "LexicalSearch", "VectorSearch", "current_generation"]
