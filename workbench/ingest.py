"""Ingestion wiring: sync plan → bounded parsing → chunking → cached embedding → new generation.

`run_ingest` is called by `Workbench.ingest` / `Workbench.reindex`; nothing else calls stages in
this order. Each root becomes a source (`workbench.sources`), which lists, hashes and opens its
files and says who may read them; an executor (`workbench.executors`: the local parser pool, or a
Ray cluster's nodes with ``[cluster] address``) parses and chunks the planned files, and this
process embeds what the executor did not and stays the one writer. A file that fails is
recorded with its reason and the rest of the batch goes on; the generation is published only at the
end, and only when something changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from workbench.access import AccessRules
from workbench.analyze import UNDETERMINED, detect_language, terms
from workbench.chunk import is_navigation, text_hash
from workbench.config import Config
from workbench.embed import Embedder, document_input
from workbench.errors import SourceUnreachableError, WorkbenchError
from workbench.load.sandbox import parser_pool
from workbench.executors import executor_for
from workbench.records import Chunk, Document, FailureKind, FileFailure, IngestReport, ParseJob
from workbench.sources import Source, is_share_url, source_for
from workbench.index import IndexWriter
from workbench.sync import SyncPlan, ToParse, plan_sync

# How a passage's vector is made, recorded in the catalog: an index whose vectors were made another
# way is parsed and embedded again by the next ingest.
EMBEDDING_INPUT = "headings+text, mixed with the document identity's vector"
# how files become passages; an index made by another version is parsed again once (what a user upgrades for)
PARSING = "2: PDF statements as rows under their periods; a filing's registrant and period in its identity"

EMBED_BATCH = 512  # chunks per encode call (sentence-transformers sorts each call by length)


@dataclass
class _Tally:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[FileFailure] = field(default_factory=list)
    skipped: list[FileFailure] = field(default_factory=list)
    unchanged: int = 0
    chunks_added: int = 0
    embedded: int = 0
    cached: int = 0
    lexical_only: int = 0
    regrouped: int = 0
    ocr_pages: int = 0
    ocr_seconds: float = 0.0
    dirty: bool = False
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per stage

    def time(self, stage: str, since: float) -> float:
        """Add the seconds since ``since`` to ``stage``; returns now."""
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - since
        return now


def embedding_inputs(chunks: list[Chunk]) -> tuple[set[int], list[Chunk], list[str], dict[str, str], list[str | None]]:
    """(ids of chunks that get no vector, chunks that do, their text-hash keys, {key: model input},
    the key of each dense chunk's document identity or None). Identities are inputs too: one
    vector per distinct identity, mixed into its passages' vectors (`mix_identity`)."""
    lexical = {c.chunk_id for c in chunks if is_navigation(c)}  # contents/index pages: BM25 only
    dense = [c for c in chunks if c.chunk_id not in lexical]
    texts = [document_input(c.text, c.headings) for c in dense]
    keys = [text_hash(t) for t in texts]
    inputs = dict(zip(keys, texts))
    ident_keys: list[str | None] = []
    for c in dense:
        if c.identity:
            key = text_hash(c.identity)
            inputs[key] = c.identity
            ident_keys.append(key)
        else:
            ident_keys.append(None)
    return lexical, dense, keys, inputs, ident_keys


def mix_identity(text_vectors: np.ndarray, identity_vectors: np.ndarray | None, weight: float) -> np.ndarray:
    """Passage vectors steered toward their document's identity: normalise(text + weight × identity),
    row by row (rows of ``identity_vectors`` that are all zero leave theirs as they are)."""
    if identity_vectors is None or weight <= 0:
        return text_vectors
    mixed = text_vectors + weight * identity_vectors
    return (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32)


class _Embedding:
    """Embeds chunk batches through the cache and appends them to the writer, in this thread.

    Measured (benchmarks/ingest_speed.py, 2 cores): embedding in a background thread while the
    parser process reads ahead made the whole ingest 5-15% slower, not faster: torch's two
    OpenMP threads and the parser then fight over two cores. So parsing and embedding alternate;
    with more cores, ``[ingest] workers`` parses files in parallel instead. Vectors a cluster node
    already computed (`ChunkedFile.vectors`) are taken as they are; the embedder here is then
    never loaded.
    """

    def __init__(self, writer: IndexWriter, embedder: Embedder, tally: _Tally, identity_weight: float = 0.0) -> None:
        self.writer, self.embedder, self.tally = writer, embedder, tally
        self.identity_weight = identity_weight
        self.pending: list[Chunk] = []
        self.given: dict[str, np.ndarray] = {}  # text hash -> vector computed elsewhere
        self.language: dict[str, str] = {}  # doc id -> language of its text
        self.names: dict[str, str] = {}  # doc id -> file (or attachment) name, part of every passage's identity

    def _terms(self, c: Chunk) -> tuple[str, str]:
        """(text terms, heading terms) of a chunk. The heading field carries the document's identity
        on every passage: its title, its file name (a report titled "Annual Report 2021" is often
        named after its company) and the heading path, once each; BM25 weighs that field with
        ``[retrieval] heading_weight`` so it steers without drowning the page text."""
        lang = self.language.get(c.doc_id, UNDETERMINED)
        name = PurePath(self.names.get(c.doc_id, "")).stem.replace("_", " ").replace("-", " ")
        context = " ".join(dict.fromkeys((c.title, name, c.identity, *c.headings)))
        return " ".join(terms(c.text, lang)), " ".join(dict.fromkeys(terms(context, lang)))

    def add(self, chunks: list[Chunk], vectors: dict[str, np.ndarray] | None = None) -> None:
        self.pending += chunks
        self.given.update(vectors or {})
        if len(self.pending) >= EMBED_BATCH:
            self.flush()

    def flush(self) -> None:
        chunks, self.pending = self.pending, []
        given, self.given = self.given, {}
        lexical, dense, keys, inputs, ident_keys = embedding_inputs(chunks)
        cached = self.writer.cache.get(sorted(set(inputs)))
        new = {k: v for k, v in given.items() if k not in cached}
        todo = {k: text for k, text in inputs.items() if k not in cached and k not in new}
        if todo:
            started = time.perf_counter()
            new.update(zip(todo, self.embedder.embed_documents(list(todo.values()))))
            self.tally.time("embed", started)
        started = time.perf_counter()
        if new:
            self.writer.cache.put(list(new), np.stack(list(new.values())))
            cached.update(new)
        vectors = None
        if dense:
            vectors = np.stack([cached[k] for k in keys])
            if any(ident_keys):
                zero = np.zeros(vectors.shape[1], dtype=np.float32)
                idents = np.stack([cached[k] if k else zero for k in ident_keys])
                vectors = mix_identity(vectors, idents, self.identity_weight)
        self.writer.add_chunks(chunks, [self._terms(c) for c in chunks], [c.chunk_id for c in dense], vectors,
                               sorted(lexical))
        self.tally.time("write", started)
        fresh = len(set(keys) & set(new))  # passages embedded now (identities are not counted)
        self.tally.embedded += fresh
        self.tally.cached += len(dense) - fresh
        self.tally.lexical_only += len(lexical)
        self.tally.chunks_added += len(chunks)


def _apply_plan(w: IndexWriter, plan: SyncPlan, collection: str, root: str, t: _Tally) -> None:
    """Deletions, renames and metadata updates that need no parsing."""
    cat = w.catalog
    for path, ids in plan.deleted:
        w.delete_documents(ids)
        t.deleted.append(path)
    for item in plan.to_parse:
        if item.replaces:  # the old version goes now; the new one is added after parsing
            w.delete_documents(item.replaces)
    for old_path, f, ids in plan.renamed:
        for doc_id in ids:
            w.move_document(doc_id, f.path, f.size, f.mtime)
        t.renamed.append((old_path, f.path))
    for f, ids in plan.touched:
        for doc_id in ids:
            w.move_document(doc_id, f.path, f.size, f.mtime)
    for f, reason, kind in plan.failed:
        cat.set_failure(collection, root, f.path, reason, f.size, f.mtime, kind)
    for path, *_ in cat.failure_signatures(collection, root).items():
        if path not in plan.seen:
            cat.clear_failure(collection, path)
    t.unchanged += plan.unchanged + len(plan.touched)
    t.failed += [FileFailure(f.path, reason, collection, kind) for f, reason, kind in plan.failed]
    t.failed += [FileFailure(f.path, f"{f.reason} (unchanged since it failed)", collection, f.kind)
                 for f in plan.still_failing]
    t.dirty |= bool(plan.deleted or plan.to_parse or plan.renamed or plan.touched or plan.failed)


def _regroup(w: IndexWriter, source: Source, t: _Tally) -> None:
    """Re-compute the groups of the source's catalogued documents (as the source says now)."""
    for doc in w.catalog.source_documents(source.collection, source.root):
        groups = source.groups_for(doc.path)
        if groups != doc.groups:
            w.catalog.set_groups(doc.doc_id, groups)
            t.regrouped += 1
            t.dirty = True


def run_ingest(config: Config, embedder: Embedder, sources: list[tuple[Path, str]], wait_s: float = 0.0,
               progress: bool = True, on_file=None) -> IngestReport:
    """Sync each (root, collection) source into a new generation and publish it if anything changed.

    ``on_file(path, error)`` is called after each parsed file (error None when it was read). With
    ``[cluster] address`` set, files are parsed, chunked and embedded on that Ray cluster; if the
    cluster loses every worker, this raises and the published generation stays as it was.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    t = _Tally()
    ing = config.ingest
    ix = config.index
    with IndexWriter(ix.dir, embedder.name, embedder.dim, wait_s, ix.keep_generations,
                     embedder.cache_key, ix) as w:
        started = t.time("lock", started)
        for root, collection in sources:
            w.catalog.upsert_source(str(root), collection)
        weight = config.chunking.identity_weight
        embedding_input = f"{EMBEDDING_INPUT}; identity weight {weight:g}" if weight > 0 else "plain"
        meta = w.catalog.meta() if w.base is not None else {}
        embedded_otherwise = w.base is not None and meta.get("embedding_input", "plain") != embedding_input
        parsed_otherwise = w.base is not None and meta.get("parsing", "1") != PARSING
        reparse = embedded_otherwise or parsed_otherwise
        if embedded_otherwise:
            t.notes.append("every file is parsed and embedded again: how passages are embedded changed "
                           "([chunking] identity_weight)")
        elif parsed_otherwise:
            t.notes.append("every file is parsed again: this version makes passages differently (PDF statements "
                           "as rows, a filing's company and period); unchanged passages keep their vectors")
        t.dirty |= reparse
        w.catalog.set_meta(embedding_input=embedding_input, identity_weight=f"{weight:g}", parsing=PARSING)
        roots: dict[str, list[Path]] = {}
        for s in w.catalog.sources():  # all of a collection's sources, so that nested ones agree on groups
            if not is_share_url(s["root"]):
                roots.setdefault(s["collection"], []).append(Path(s["root"]))
        access = {c: AccessRules(roots.get(c, []), c, config.access) for _, c in sources}
        planned: dict[str, tuple[ToParse, Source]] = {}
        used: list[Source] = []
        for root, collection in sources:
            source = source_for(root, collection, access[collection], config)
            used.append(source)
            if not source.exists():
                n = len(w.catalog.source_documents(collection, source.root))
                t.failed.append(FileFailure(source.root, f"source is missing; its {n} documents were kept "
                                            "(restore it, or remove the source)", collection,
                                            FailureKind.MISSING_SOURCE))
                continue
            try:
                files, skipped = source.scan(ing.include_hidden)
            except SourceUnreachableError as exc:  # gone mid-listing: delete nothing, say so
                t.failed.append(FileFailure(source.root, str(exc), collection, FailureKind.MISSING_SOURCE))
                continue
            t.skipped += [FileFailure(s.path, s.reason, collection) for s in skipped]
            plan = plan_sync(files, w.catalog.source_documents(collection, source.root),
                             w.catalog.failure_signatures(collection, source.root), int(ing.max_file_mb * 2**20),
                             hasher=source.content_hash, reparse=reparse)
            _apply_plan(w, plan, collection, source.root, t)
            _regroup(w, source, t)
            planned.update({item.file.path: (item, source) for item in plan.to_parse})
        t.dirty |= w.search_index_outdated()  # [index] kind changed: the next generation rebuilds it
        jobs = [ParseJob(path, source.collection, item.content_hash, w.generation)
                for path, (item, source) in planned.items()]
        t.time("plan", started)
        bar = tqdm(total=len(jobs), unit="file", desc="ingest", disable=not progress or not jobs)
        emb = _Embedding(w, embedder, t, config.chunking.identity_weight)
        executor = executor_for(config, embedder, lambda path, digest: planned[path][1].open(path, digest),
                                files=len(jobs))
        files = executor.run(jobs, lambda chunks: _uncached(w, chunks))
        try:
            for result in files:
                item, source = planned[result.path]
                collection, root_s, f = source.collection, source.root, item.file
                if result.error is not None and result.retry:  # not the file's fault: not remembered
                    t.failed.append(FileFailure(f.path, result.error + " (tried again on the next run)", collection,
                                                FailureKind.CLUSTER))
                elif result.error is not None:
                    w.catalog.set_failure(collection, root_s, f.path, result.error, f.size, f.mtime)
                    t.failed.append(FileFailure(f.path, result.error, collection))
                else:
                    w.catalog.clear_failure(collection, f.path)
                    (t.changed if item.replaces else t.added).append(f.path)
                    for parsed, doc_id, chunks in result.docs:
                        doc = Document(doc_id=doc_id, collection=collection, path=f.path,
                                       part=parsed.part, title=parsed.title, format=parsed.format,
                                       size=f.size, mtime=f.mtime, content_hash=item.content_hash,
                                       groups=source.groups_for(f.path),
                                       language=detect_language(parsed.text, config.retrieval.languages))
                        emb.language[doc.doc_id] = doc.language
                        emb.names[doc.doc_id] = parsed.part or f.path
                        meta = {**parsed.metadata, "identity": chunks[0].identity} if chunks and chunks[0].identity \
                            else parsed.metadata
                        w.add_document(doc, root_s, parsed.text, meta, parsed.ocr_pages)
                        t.ocr_pages += len(parsed.ocr_pages)
                        t.ocr_seconds += parsed.ocr_seconds
                        for stage, spent in (("tables", parsed.tables_seconds), ("ocr", parsed.ocr_seconds)):
                            if spent:
                                t.seconds[stage] = t.seconds.get(stage, 0.0) + spent
                        emb.add(list(chunks), result.vectors)
                if on_file is not None:
                    on_file(f.path, result.error)
                bar.update(1)
                bar.set_postfix(chunks=t.chunks_added + len(emb.pending), failed=len(t.failed))
            emb.flush()
        finally:
            files.close()  # ends the local parser processes even when a write above raised
            executor.close()
            for stage, seconds in executor.seconds.items():
                t.seconds[stage] = t.seconds.get(stage, 0.0) + seconds
        bar.close()
        for rules in access.values():  # broken access files, read while regrouping or for new files
            t.failed += rules.failures
        for source in used:  # permissions a remote source could not read (those files are admins-only)
            t.failed += getattr(source, "failures", [])
        generation = w.base or 0
        started_publish = time.perf_counter()
        if t.dirty:
            w.catalog.set_meta(access_changed=str(t.regrouped))  # for `workbench status`
            generation = w.publish()
        t.time("publish", started_publish)
    notes = t.notes + list(executor.notes)
    if t.embedded:
        try:  # the ONNX copy for fast cold searches, exported once per model; searches work without it
            embedder.prepare_queries()
        except (OSError, WorkbenchError) as exc:
            notes.append(f"queries will load the embedding model with torch (slower to start): {exc}")
    return IngestReport(
        added=tuple(t.added), changed=tuple(t.changed), renamed=tuple(t.renamed), deleted=tuple(t.deleted),
        unchanged=t.unchanged, failed=tuple(t.failed), skipped=tuple(t.skipped), chunks_added=t.chunks_added,
        chunks_embedded=t.embedded, chunks_from_cache=t.cached, chunks_lexical_only=t.lexical_only,
        regrouped=t.regrouped, ocr_pages=t.ocr_pages, ocr_seconds=round(t.ocr_seconds, 2), generation=generation, published=t.dirty, seconds=time.perf_counter() - started,
        notes=tuple(notes), cluster=executor.address, nodes=executor.node_work(),
        stage_seconds={k: round(v, 3) for k, v in t.seconds.items()})


def _uncached(w: IndexWriter, chunks: list[Chunk]) -> dict[str, str]:
    """{text hash: model input} of the chunks that need a vector and are not in the cache yet."""
    inputs = embedding_inputs(chunks)[3]
    cached = w.cache.get(sorted(set(inputs)))
    return {k: text for k, text in inputs.items() if k not in cached}


def try_parse(config: Config, paths: list[str]) -> dict[str, str | None]:
    """{path: None if it parses, else the reason} through the same bounded parser pool as ingest
    (uploads are checked this way before they replace an indexed file). Nothing is indexed."""
    if not paths:
        return {}
    with parser_pool(config.ingest, config.ocr) as pool:
        return {outcome.path: outcome.error for outcome in pool.map(paths)}
