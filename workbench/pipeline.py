"""`Workbench`: the one public object that notebooks, the CLI and the web app drive.

It holds the config and its parts (embedder, LLM, reranker: given, or loaded on first use, each
under its own lock), and always reads the latest published generation (a `reindex` by another
process is picked up by the next call, no restart). It is the only module that wires stages
together: ingestion order lives in `workbench.ingest`, answering in `workbench.answer` (handed
a search function and the model), and this class routes calls, applies the asker's rights
(`workbench.access`) and records what must be audited. Leaves out: any stage's own logic.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.access import OPERATOR
from workbench.config import Config, load_config
from workbench.errors import AuditError, EmptyIndexError, InvalidInputError, WorkbenchError
from workbench.index import IndexReader, current_generation
from workbench.records import (
    Answer,
    Chunk,
    Document,
    Filters,
    Hits,
    IndexStatus,
    IngestReport,
    Principal,
    SearchTrace,
    SourceView,
)
from workbench.services.uploads import Uploads
from workbench.services.views import SourceViews

if TYPE_CHECKING:
    from workbench.embed import Embedder
    from workbench.generate import LLM
    from workbench.remote import RemoteWorkbench
    from workbench.rerank import Reranker
    from workbench.viewer import Original



def check_collection(name: str) -> str:
    """``name`` if it is a usable collection name (it also names a folder for uploads)."""
    if not name or not name.replace("-", "").replace("_", "").isalnum() or not name.isascii():
        raise InvalidInputError(f"collection name {name!r}: use letters, digits, '-' and '_'")
    return name




def _checked_embedder(embedder):
    """``embedder`` if it is a complete `workbench.embed.Embedder` (or None), else InvalidInputError
    naming what it lacks, so that a hand-made one fails here and not halfway through an ingest."""
    if embedder is None:
        return None
    from workbench.embed.base import missing_members

    missing = missing_members(embedder)
    if missing:
        raise InvalidInputError(f"the embedder handed in lacks {', '.join(missing)}: see "
                                "workbench.embed.Embedder (or wrap it: workbench.embed.load_embedder)")
    return embedder


class Workbench:
    """Open with `Workbench.open("workbench.toml")`; then `ingest`, `reindex`, `search`, `status`."""

    def __init__(self, config: Config, *, embedder: Embedder | None = None, llm: LLM | None = None,
                 reranker: Reranker | None = None) -> None:
        """``config`` and, optionally, parts already loaded (a notebook's model, a test's fake): a part
        not given is loaded from the config on first use. A given reranker is always used."""
        self.config = config
        self._embedder = _checked_embedder(embedder)
        self._llm = llm
        self._reranker = reranker
        self._reranker_given = reranker is not None
        self._reader: IndexReader | None = None
        self._users = None
        self._accounts = None
        # the web app calls from many threads: one lock per resource, so that loading a model (minutes
        # for Llama 3.1 on a CPU) never blocks work that does not need that model
        self._embedder_lock = threading.Lock()
        self._llm_lock = threading.Lock()
        self._reader_lock = threading.Lock()
        self._uploads = Uploads(config, lambda: self.audit, self.ingest)
        self._views = SourceViews(self.reader, lambda: self.audit, lambda: self.config)

    def replace(self, config: Config | None = None, **parts) -> "Workbench":
        """A Workbench on the same index with the same parts, except ``config`` and the ``parts``
        (embedder, llm, reranker) given: ``wb.replace(llm=other_model)``."""
        kept = {"embedder": self._embedder, "llm": self._llm,
                "reranker": self._reranker if self._reranker_given else None}
        unknown = set(parts) - set(kept)
        if unknown:
            raise TypeError(f"unknown parts {sorted(unknown)}: use embedder, llm or reranker")
        return Workbench(config or self.config, **{**kept, **parts})

    @classmethod
    def open(cls, config: str | os.PathLike | Config | None = None, index_dir: str | os.PathLike | None = None
             ) -> "Workbench":
        """From a config file (or a `Config`, or the defaults), optionally with another index folder."""
        cfg = config if isinstance(config, Config) else load_config(config)
        if index_dir is not None:
            cfg = cfg.with_index_dir(index_dir)
        return cls(cfg)

    @staticmethod
    def connect(url: str, key: str | None = None, **options) -> "RemoteWorkbench":
        """A workbench server's documents through its REST API, with a personal key (``key``, else the
        ``WORKBENCH_KEY`` environment variable): search, ask, ask_stream, source and original_file
        return the same records as here, for what the key's user may read (`workbench.remote`)."""
        from workbench.remote import RemoteWorkbench

        return RemoteWorkbench(url, key, **options)

    def __repr__(self) -> str:
        return f"Workbench(index={str(self.index_dir)!r}, generation={current_generation(self.index_dir)})"

    @property
    def index_dir(self) -> Path:
        return self.config.index.dir

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (seconds), then kept."""
        with self._embedder_lock:
            if self._embedder is None:
                from workbench.embed import load_embedder

                self._embedder = load_embedder(self.config.embedding, self.config.index.dir / "models")
        return self._embedder

    @property
    def llm(self) -> LLM:
        """The configured language model, loaded on first use, then kept."""
        with self._llm_lock:
            if self._llm is None:
                from workbench.generate import load_llm

                self._llm = load_llm(self.config.llm)
        return self._llm

    @property
    def llm_max_concurrency(self) -> int:
        """Answers the configured LLM backend can generate at once (its own statement; loads nothing)."""
        from workbench.generate import backend_class

        return self.config.llm.max_concurrency or backend_class(self.config.llm.backend).max_concurrency

    @property
    def upload_types(self) -> list[str]:
        """File name suffixes that can be ingested ('.pdf', '.docx', ...)."""
        from workbench.load import SUFFIXES

        return sorted(SUFFIXES)

    @property
    def llm_loaded(self) -> bool:
        """Whether the language model is in memory (the first question loads it otherwise)."""
        return self._llm is not None

    def reader(self) -> IndexReader | None:
        """The latest published generation (reopened when a newer one was published)."""
        generation = current_generation(self.index_dir)
        with self._reader_lock:
            if self._reader is not None and self._reader.generation != generation:
                self._reader = None  # not closed: another thread may still be reading it; GC closes it
            if self._reader is None and generation is not None:
                self._reader = IndexReader.open(self.index_dir, self.config.index)
            return self._reader

    def _check_question(self, question: str) -> str:
        """``question`` if it is within ``[answer] max_question_chars``, else WorkbenchError."""
        limit = self.config.answer.max_question_chars
        if len(question or "") > limit:
            raise InvalidInputError(f"the question is {len(question):,} characters long; the limit is {limit:,} "
                                 "(answer.max_question_chars): shorten it")
        return question

    def _searchable_reader(self) -> IndexReader:
        """The current generation, or EmptyIndexError saying how to fill it."""
        reader = self.reader()
        if reader is None or reader.catalog.counts()[1] == 0:
            raise EmptyIndexError(f"the index at {self.index_dir} is empty: run `workbench ingest FOLDER` first")
        return reader

    # ---- ingestion --------------------------------------------------------------------------
    def ingest(self, paths: str | os.PathLike | Iterable[str | os.PathLike], collection: str = "default",
               wait_s: float = 0.0, progress: bool = True, on_file=None, cluster: str | None = None,
               ship_files: bool | None = None) -> IngestReport:
        """Parse, chunk, embed and publish every supported file under ``paths`` into ``collection``.

        Each path becomes a source that `reindex` re-syncs later. Files that fail are listed in the
        report with their reason; the rest are indexed. Raises IndexBusyError when another writer
        holds the index longer than ``wait_s`` seconds. ``on_file(path, error)`` is called as each
        parsed file is done (``error`` None on success). ``cluster`` (a Ray address, or "auto") and
        ``ship_files`` override ``[cluster]`` for this run: parsing and embedding then run on the
        cluster's nodes, and this process writes the index.
        """
        from workbench.ingest import run_ingest
        from workbench.sources import root_of

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        roots = [root_of(p) for p in paths]
        missing = [str(r) for r in roots if isinstance(r, Path) and not r.exists()]
        if missing:
            raise WorkbenchError(f"no such file or folder: {', '.join(missing)}")
        check_collection(collection)
        return run_ingest(self._ingest_config(cluster, ship_files), self.embedder, [(r, collection) for r in roots],
                          wait_s, progress, on_file)

    def _ingest_config(self, cluster: str | None, ship_files: bool | None) -> Config:
        """The config with ``[cluster]`` overridden for one run (None keeps the configured value)."""
        values = {k: v for k, v in (("address", cluster), ("ship_files", ship_files)) if v is not None}
        return self.config.replace("cluster", **values) if values else self.config

    def upload(self, files: Iterable[tuple[str, str | os.PathLike]], collection: str = "uploads",
               wait_s: float = 30.0, on_file=None, groups=None, principal=None) -> tuple[IngestReport, list]:
        """Put uploaded files (display name, temp path) into ``<index>/uploads/<collection>/`` and ingest.

        Returns the ingest report and a list of FileFailure for uploads refused before parsing
        (unsupported type, over ``[web] max_upload_mb``). Names are made safe (`workbench.stores.uploads`).
        Each file is parsed first in a private staging folder: one that cannot be read is reported
        in the report's ``failed`` and never enters the folder, so a bad re-upload keeps the good
        version that was there. ``groups`` (the uploader's choice) are written for these files into
        the folder's access file; None keeps what a re-uploaded file had, else the folder's rules and
        the collection default apply (no groups = admins only). Each file's outcome is audited for
        ``principal``.
        """
        check_collection(collection)
        return self._uploads.upload(files, collection, wait_s, on_file, groups, principal)

    def reindex(self, wait_s: float = 0.0, progress: bool = True, principal: Principal | None = None,
                cluster: str | None = None, ship_files: bool | None = None) -> IngestReport:
        """Re-sync every source ingested before (safe from cron: one writer at a time); audited.
        ``cluster``/``ship_files`` as for `ingest`."""
        from workbench.ingest import run_ingest
        from workbench.sources import root_of

        reader = self.reader()
        sources = reader.catalog.sources() if reader else []
        if not sources:
            raise WorkbenchError(f"nothing to re-index in {self.index_dir}: run `workbench ingest FOLDER` first")
        entry = self.audit.record(principal.name if principal else OPERATOR, "reindex", "started", outcome="started")
        report = run_ingest(self._ingest_config(cluster, ship_files), self.embedder,
                            [(root_of(s["root"]), s["collection"]) for s in sources], wait_s, progress)
        self.audit.finish(entry, "done", text=report.summary(), generation=report.generation)
        return report

    # ---- reading ----------------------------------------------------------------------------
    def status(self) -> IndexStatus:
        """The published index at a glance, with the embedding runtime this process would use (read
        from the model's files and the CPU's flags; no weights are loaded)."""
        from workbench.services.status import index_status

        return index_status(self.config, self.reader(), lambda: self.embedder.describe())

    def explain_access(self, path: str | os.PathLike, user: str | Principal | None = None):
        """Why ``path`` gets the readers it gets: an `AccessExplanation` (the access files, or the POSIX
        owner, mode and ACL entries, read now; what the published index holds; whether ``user``, a
        name resolved like ``--as-user`` or a `Principal`, may read it now)."""
        from workbench.access import explain

        principal = self.principal(user) if isinstance(user, str) else user
        reader = self.reader()
        sources = reader.catalog.sources() if reader is not None else []
        resolved = str(path) if str(path).lower().startswith("smb://") else str(Path(path).expanduser().resolve())
        indexed = None
        if reader is not None:
            indexed = next((d for d in reader.catalog.documents() if d.path == resolved and not d.part), None)
        return explain(resolved, self.config, sources, indexed, principal)

    def documents(self, collection: str | None = None, principal: Principal | None = None) -> list[Document]:
        """The catalogued documents (of ``collection``; only those ``principal`` may read, if given)."""
        from workbench.access import can_read

        reader = self.reader()
        docs = reader.catalog.documents(collection) if reader else []
        return [d for d in docs if can_read(principal, d)]

    def collections(self, principal: Principal | None = None) -> dict[str, int]:
        """{collection: documents} counting only what ``principal`` may read (None: everything)."""
        counts: dict[str, int] = {}
        for d in self.documents(principal=principal):
            counts[d.collection] = counts.get(d.collection, 0) + 1
        return counts

    def chunks(self, ids: list[int] | None = None, collection: str | None = None) -> list[Chunk]:
        """Chunks by id (in that order), or every chunk (of ``collection``) when ``ids`` is None."""
        reader = self.reader()
        if reader is None:
            return []
        if ids is None:
            docs = reader.catalog.documents(collection)
            ids = reader.catalog.chunk_ids_of(d.doc_id for d in docs)
        return reader.catalog.chunks(ids)

    def embeddings(self, ids: list[int] | None = None):
        """(chunk ids, their stored vectors as an n × dim float32 array), read back from the index.

        ``ids`` None means every chunk. Chunks searched by BM25 only (tables of contents and
        back-of-book indexes, which are not embedded) have no vector and are left out of both.
        Raises EmptyIndexError when nothing is published yet.
        """
        from workbench.explore import embeddings

        reader = self._searchable_reader()
        ids = [c.chunk_id for c in self.chunks()] if ids is None else [int(i) for i in ids]
        lexical_only = reader.catalog.lexical_only_ids()
        ids = [i for i in ids if i not in lexical_only]
        return ids, embeddings(reader, ids)

    def near_duplicates(self, threshold: float = 0.9, limit: int = 50) -> list[tuple[Chunk, Chunk, float]]:
        """Pairs of passages whose embeddings are at least ``threshold`` cosine-similar, most similar first."""
        from workbench.explore import near_duplicate_pairs

        ids, vectors = self.embeddings()
        pairs = near_duplicate_pairs(ids, vectors, threshold, limit)
        by_id = {c.chunk_id: c for c in self.chunks(sorted({i for p in pairs for i in p[:2]}))}
        return [(by_id[a], by_id[b], score) for a, b, score in pairs]

    def search(self, query: str, k: int = 5, collection: str | Iterable[str] | None = None,
               mode: str | None = None, filters: Filters | None = None,
               principal: Principal | None = None) -> Hits:
        """The k best chunks for ``query``, best first.

        ``mode``: 'hybrid' (default from config), 'dense' or 'lexical'. ``collection`` is a
        shortcut for ``filters=Filters(collections=...)``; filters apply inside the search.
        ``principal`` (a `Principal`) limits results to what that user may read;
        None acts as the operator (everything).
        """
        return self.search_with_trace(query, k, collection, mode, filters, principal)[0]

    def search_with_trace(self, query: str, k: int = 5, collection: str | Iterable[str] | None = None,
                          mode: str | None = None, filters: Filters | None = None,
                          principal: Principal | None = None) -> tuple[Hits, SearchTrace]:
        """Like `search`, plus a `SearchTrace` (query language, sides used, timings)."""
        from workbench.access import filters_for
        from workbench.retrieve import search

        self._check_question(query)
        reader = self._searchable_reader()
        filters = filters_for(principal, filters)
        if collection:
            cols = (collection,) if isinstance(collection, str) else tuple(collection)
            filters = dataclasses.replace(filters, collections=cols)
        if mode not in (None, "hybrid", "dense", "lexical"):
            raise InvalidInputError(f"search mode {mode!r}: use 'hybrid', 'dense' or 'lexical'")
        hits, trace = search(reader, self.embedder.embed_query, query, k, self.config.retrieval, filters, mode,
                             self.reranker)
        if principal is not None:
            self.audit.record(principal, "search", query, trace.generation, [h.chunk.chunk_id for h in hits])
        return Hits(hits, trace), trace

    @property
    def reranker(self) -> Reranker | None:
        """The reranker given to the constructor, else the configured cross-encoder, else None."""
        if self._reranker_given:
            return self._reranker
        name = self.config.retrieval.reranker
        if name is None:
            return None
        if self._reranker is None or self._reranker.name != name:
            from workbench.rerank import CrossEncoderReranker

            self._reranker = CrossEncoderReranker(name, self.embedder.device)
        return self._reranker

    # ---- answers ----------------------------------------------------------------------------
    def ask_stream(self, question: str, history: Sequence[tuple[str, str]] = (), k: int | None = None,
                   filters: Filters | None = None, principal: Principal | None = None) -> Iterator[str | Answer]:
        """Yield the answer's text pieces as they are generated, then the `Answer` record.

        ``history``: earlier (question, answer) pairs; a follow-up is rewritten into a stand-alone
        question before retrieval. Refuses without calling the model when evidence is too thin.
        ``principal``: answer only from documents that user may read (None = the operator).
        """
        from workbench.access import filters_for
        from workbench.answer import answer_stream

        self._check_question(question)
        self._searchable_reader()  # fail early, before loading the LLM
        user = principal or OPERATOR
        entry: list[int] = []

        def on_sources(hits, generation) -> None:  # recorded before a word is generated, or no answer
            try:
                entry.append(self.audit.record(user, "ask", question, generation, [h.chunk.chunk_id for h in hits],
                                               outcome="asked"))
            except Exception as exc:  # noqa: BLE001 - any failure to record refuses the answer
                print(f"workbench: audit log {self.audit.path} not writable: {exc}", file=sys.stderr)
                raise AuditError("the question could not be recorded in the audit log, so it is not answered: "
                                 "an administrator should check the server's log") from None

        allowed = filters_for(principal, filters)
        parts = dict(search=lambda q, n: self.search_with_trace(q, k=n, filters=allowed)[0], llm=lambda: self.llm,
                     settings=self.config.answer, max_new_tokens=self.config.llm.max_new_tokens,
                     ocr_below=self.config.ocr.low_confidence)
        try:
            for item in answer_stream(question, history=history, k=k, on_sources=on_sources, **parts):
                if isinstance(item, Answer) and entry:
                    self.audit.finish(entry[0], "refused" if item.refused else "answered",
                                      [h.chunk.chunk_id for h in item.hits])
                yield item
        except GeneratorExit:  # closed before the answer was complete: the asker went away
            if entry:
                self.audit.finish(entry[0], "cancelled")
            raise
        except Exception:
            if entry:
                self.audit.finish(entry[0], "failed")
            raise

    def ask(self, question: str, history: Sequence[tuple[str, str]] = (), k: int | None = None,
            filters: Filters | None = None, on_token: Callable[[str], None] | None = None,
            principal: Principal | None = None) -> Answer:
        """The grounded `Answer` to ``question`` (``on_token(piece)`` sees the text as it streams)."""
        from workbench.answer import final_answer

        return final_answer(self.ask_stream(question, history, k, filters, principal), on_token)

    # ---- people, feedback and sources (the web app's needs) -------------------------------------
    @property
    def users(self):
        """The `UserStore` of this index (``<index>/users.sqlite``)."""
        if self._users is None:
            from workbench.stores.users import UserStore

            self._users = UserStore(self.index_dir)
        return self._users

    @property
    def audit(self):
        """The `AuditLog` of this index (``<index>/audit.sqlite``)."""
        from workbench.stores.audit import AuditLog

        return AuditLog(self.index_dir)

    @property
    def keys(self):
        """The `KeyStore` of this index (``<index>/keys.sqlite``): personal API keys."""
        from workbench.stores.keys import KeyStore

        return KeyStore(self.index_dir)

    @property
    def feedback(self):
        """The `FeedbackStore` of this index (``<index>/feedback.sqlite``)."""
        from workbench.stores.feedback import FeedbackStore

        return FeedbackStore(self.index_dir)

    @property
    def accounts(self):
        """`workbench.services.accounts.Accounts`: sign-in and look-up across local users and the directory."""
        if self._accounts is None:
            from workbench.identity import directory_for
            from workbench.services.accounts import Accounts

            self._accounts = Accounts(self.users, self.config, directory_for(self.config))
        return self._accounts

    def principal(self, name: str) -> Principal:
        """The `Principal` for user ``name``: a web-app user, else a person of the configured LDAP/AD
        directory (read now, so ``--as-user`` shows what a colleague would see); NotFoundError when
        neither knows the name."""
        return self.accounts.principal(name)

    def source(self, chunk_id: int, principal: Principal | None = None) -> SourceView:
        """The `SourceView` of a chunk: passage, surrounding text, document (audited as a ``view``).

        Raises NotFoundError when the chunk does not exist in the current generation or
        ``principal`` may not read its document (the two are not told apart).
        """
        return self._views.source(chunk_id, principal)

    def page_image(self, chunk_id: int, principal: Principal | None = None, width_px: int = 1000,
                   wait_s: float | None = None) -> bytes:
        """PNG of the PDF page a chunk sits on (NotFoundError for other formats or no access); audited
        as a ``page``. Rendered in a bounded worker process (`workbench.viewer.render_pdf_page`)."""
        return self._views.page_image(chunk_id, principal, width_px, wait_s)

    def original_file(self, chunk_id: int, principal: Principal | None = None) -> "Original":
        """The indexed file a chunk came from, opened (an `workbench.viewer.Original`: read from it, then
        close it), only if it is still the file that was indexed (see `workbench.viewer.open_original`).
        NotFoundError when gone, changed, swapped or not readable; audited as a ``download``."""
        return self._views.original_file(chunk_id, principal)

    # ---- interoperability -------------------------------------------------------------------
    def as_retriever(self, k: int = 5, mode: str | None = None, filters=None):
        """A LangChain `BaseRetriever` over this index."""
        from workbench.adapters import WorkbenchRetriever

        return WorkbenchRetriever(workbench=self, k=k, mode=mode, filters=filters)

    def as_embeddings(self):
        """The embedding model as LangChain `Embeddings`."""
        from workbench.adapters import WorkbenchEmbeddings

        return WorkbenchEmbeddings(self)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
