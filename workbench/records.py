"""Typed, frozen records passed between stages. No I/O here.

Flow: a loader yields `ParsedDocument` (a list of `Block`s); the chunker turns a `Document`'s
blocks into `Chunk`s; search returns `Hit`s; ingestion returns an `IngestReport`; `IndexStatus`
describes a published index. Every record converts to plain JSON-able data with `to_dict()`.
Outcomes code branches on are enum members (`FailureKind`, `Refusal`, `WeakEvidence`, `AnswerFlag`),
each carrying its sentence for people; a `Reason` is one such member with its sentence filled in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


def _to_dict(obj: Any) -> Any:
    own = getattr(type(obj), "to_dict", None)
    if own is not None and own is not _Record.to_dict and not isinstance(obj, type):
        return own(obj)  # a record that says how it is written (e.g. `Citation`)
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


class _Record:
    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output (paths become strings, tuples lists)."""
        return _to_dict(self)


DENY = "!"  # a document's reader entry "!x" denies x (an NT deny ACE), whatever else allows it

@dataclass(frozen=True, slots=True)
class Block(_Record):
    """One structural unit a loader found: a paragraph, heading, table, slide text or sheet row.

    ``page`` is the 1-based page (PDF) or slide (PPTX) number; ``sheet`` the spreadsheet name;
    ``headings`` the heading path above the block (outermost first).
    """

    text: str
    page: int | None = None
    sheet: str | None = None
    headings: tuple[str, ...] = ()
    kind: str = "text"  # text | heading | table | row


@dataclass(frozen=True, slots=True)
class OcrPage(_Record):
    """A page read by OCR: its number (1-based) and the mean confidence (0-100) of its ``words``."""

    page: int
    confidence: float
    words: int = 0


@dataclass(frozen=True, slots=True)
class ParsedDocument(_Record):
    """What a loader returns for one file, or one part of it (an e-mail attachment). ``ocr_pages``
    are its pages read by OCR (the catalog keeps them), ``ocr_seconds`` the parser time they took,
    ``tables_seconds`` the time spent finding and reading its tables."""

    format: str
    title: str
    blocks: tuple[Block, ...]
    part: str = ""  # "" for the file itself; the attachment name for e-mail attachments
    metadata: dict[str, str] = field(default_factory=dict)
    ocr_pages: tuple[OcrPage, ...] = ()
    ocr_seconds: float = 0.0
    tables_seconds: float = 0.0

    @property
    def text(self) -> str:
        """The extracted text; chunk character spans index into this string."""
        return "\n\n".join(b.text for b in self.blocks)

    @classmethod
    def from_dict(cls, d: dict) -> "ParsedDocument":
        """The inverse of `to_dict` (parser workers and cluster nodes send documents as JSON)."""
        blocks = tuple(Block(**{**b, "headings": tuple(b["headings"])}) for b in d["blocks"])
        return cls(format=d["format"], title=d["title"], blocks=blocks, part=d["part"], metadata=d["metadata"],
                   ocr_pages=tuple(OcrPage(**p) for p in d.get("ocr_pages", ())),  # absent: a worker of the
                   ocr_seconds=d.get("ocr_seconds", 0.0),  # previous version
                   tables_seconds=d.get("tables_seconds", 0.0))  # (absent: (a cluster part-way through an upgrade)


@dataclass(frozen=True, slots=True)
class Document(_Record):
    """A catalogued document (one file, or one attachment of an e-mail)."""

    doc_id: str
    collection: str
    path: str
    part: str
    title: str
    format: str
    size: int
    mtime: float
    content_hash: str
    groups: tuple[str, ...] = ()
    language: str = "und"
    n_chunks: int = 0

    @property
    def display_path(self) -> str:
        return f"{self.path} » {self.part}" if self.part else self.path


@dataclass(frozen=True, slots=True)
class Chunk(_Record):
    """A retrievable passage. ``start``/``end`` are offsets in the document's extracted text."""

    chunk_id: int
    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    page: int | None = None
    sheet: str | None = None
    headings: tuple[str, ...] = ()
    text_hash: str = ""
    collection: str = ""
    path: str = ""
    part: str = ""
    title: str = ""
    format: str = ""
    identity: str = ""  # the document's identity line, mixed into the passage's vector (set when chunked; not stored)

    @property
    def display_path(self) -> str:
        return f"{self.path} » {self.part}" if self.part else self.path

    @property
    def location(self) -> str:
        """Human label of where the chunk sits: 'page 3', 'slide 2', 'sheet Budget'."""
        parts = []
        if self.page is not None:
            parts.append(f"{'slide' if self.format == 'pptx' else 'page'} {self.page}")
        if self.sheet:
            parts.append(f"sheet {self.sheet}")
        return ", ".join(parts)

    @property
    def label(self) -> str:
        """Where the passage sits, for people: 'page 3, Leave > Carry-over'."""
        return ", ".join(x for x in (self.location, " > ".join(self.headings)) if x)


@dataclass(frozen=True, slots=True)
class Hit(_Record):
    """A search result: a chunk, its fused score (higher is better) and its rank (1-based)."""

    chunk: Chunk
    score: float
    rank: int
    dense_score: float | None = None  # cosine, when the dense side found it
    lexical_score: float | None = None  # BM25, when the lexical side found it
    context: tuple[Chunk, ...] = ()  # neighbouring chunks, when retrieval.neighbors > 0
    ocr_confidence: float | None = None  # mean word confidence (0-100) when its page was read by OCR

    def __str__(self) -> str:
        c = self.chunk
        where = c.label
        snippet = " ".join(c.text.split())[:160]
        parts = [f"score {self.score:.3f}"]
        if self.dense_score is not None:
            parts.append(f"cosine {self.dense_score:.2f}")
        if self.lexical_score is not None:
            parts.append(f"bm25 {self.lexical_score:.1f}")
        if self.ocr_confidence is not None:
            parts.append(f"read by OCR, confidence {self.ocr_confidence:.0f}%")
        return f"{self.rank}. [{', '.join(parts)}] {c.display_path}{' (' + where + ')' if where else ''}\n   {snippet}"

    def _repr_html_(self) -> str:
        from workbench.display import hit_html

        return hit_html(self)


@dataclass(frozen=True, slots=True)
class Filters(_Record):
    """Restrictions applied inside both searches. Empty fields restrict nothing.

    ``groups``: None means no access restriction; a tuple keeps documents shared with any of
    those groups (documents with no groups are left out: see `workbench.access`).
    """

    collections: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    path_glob: str | None = None
    modified_after: float | None = None
    modified_before: float | None = None
    groups: tuple[str, ...] | None = None

    @property
    def restricts(self) -> bool:
        return bool(self.collections or self.formats or self.path_glob or self.modified_after is not None
                    or self.modified_before is not None or self.groups is not None)

    def admits(self, doc: "Document") -> bool:
        """Whether ``doc`` passes: the rule `Catalog` applies in SQL, for one document (the read
        rule of `workbench.access` is the ``groups`` part)."""
        import fnmatch

        return ((not self.collections or doc.collection in self.collections)
                and (not self.formats or doc.format in self.formats)
                and (not self.path_glob or fnmatch.fnmatchcase(doc.path, self.path_glob))
                and (self.modified_after is None or doc.mtime >= self.modified_after)
                and (self.modified_before is None or doc.mtime < self.modified_before)
                and (self.groups is None or (bool(set(doc.groups) & set(self.groups))
                                             and not {DENY + g for g in self.groups} & set(doc.groups))))


@dataclass(frozen=True, slots=True)
class SearchTrace(_Record):
    """How a search ran: which sides, which languages, how long (for notebooks and answers)."""

    mode: str
    query_language: str
    used_dense: bool
    generation: int = 0
    dense_ms: float = 0.0
    lexical_ms: float = 0.0
    allowed: int | None = None
    lexical_terms: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Principal(_Record):
    """The user a request acts for, and where their groups came from (for the audit log)."""

    name: str
    groups: tuple[str, ...] = ()
    is_admin: bool = False
    source: str = "local"  # "local", "ldap" or "oidc" (the operator: "local")
    subject: str = ""  # the directory's id for them (LDAP DN, OpenID sub), if any


@dataclass(frozen=True, slots=True)
class SourceView(_Record):
    """A chunk, its document, and the text just before and after it."""

    chunk: Chunk
    document: Document
    before: str
    after: str
    ocr_confidence: float | None = None  # mean word confidence when the passage's page was read by OCR

    @property
    def is_pdf(self) -> bool:
        return self.document.format == "pdf" and not self.document.part and self.chunk.page is not None


class FailureKind(str, Enum):
    """Why a file is in a report's ``failed`` or ``skipped`` list, for code (the reason is for people)."""

    PARSE = "parse"  # the parser could not read it (corrupt, encrypted, hostile, over a parse bound)
    TOO_LARGE = "too_large"  # over [ingest] max_file_mb; re-checked when the limit changes
    UNSUPPORTED = "unsupported"  # not a supported type (skipped)
    SYMLINK = "symlink"  # symbolic links are not followed (skipped)
    UNREADABLE = "unreadable"  # the operating system refused to read it
    MISSING_SOURCE = "missing_source"  # a source folder is gone; its documents were kept
    ACCESS_FILE = "access_file"  # a malformed access file (its folder is admins-only)
    REFUSED = "refused"  # an upload refused before parsing (type, size, name)
    CLUSTER = "cluster"  # a cluster fault, not the file's: not remembered, the next run tries it again


@dataclass(frozen=True, slots=True)
class FileFailure(_Record):
    """A file (or attachment) that could not be indexed, with the reason and its kind."""

    path: str
    reason: str
    collection: str = ""
    kind: FailureKind = FailureKind.PARSE

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class FileInfo(_Record):
    """A file a source lists, by stat alone (no bytes read): where, how large, when last modified."""

    path: str
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class ParseJob(_Record):
    """One file to read into a generation: what a parser worker (local or on a cluster node) needs to
    parse it, chunk it and give its documents the ids the writer will use."""

    path: str
    collection: str
    content_hash: str
    generation: int


@dataclass(frozen=True, slots=True)
class ChunkedFile(_Record):
    """One parsed file on its way to the index: each document with its id and chunks, or the reason
    it could not be read. ``vectors`` (text hash -> vector) are those a cluster worker already
    embedded; ``node`` is where it was parsed ("local" in this process's parser pool)."""

    path: str
    error: str | None = None
    docs: tuple[tuple[ParsedDocument, str, tuple[Chunk, ...]], ...] = ()
    vectors: dict[str, Any] = field(default_factory=dict)
    node: str = "local"
    retry: bool = False  # the error is the cluster's (a node died, a path it cannot see): try again next run


@dataclass(frozen=True, slots=True)
class NodeWork(_Record):
    """What one cluster node did in an ingest run."""

    node: str
    files: int = 0
    chunks: int = 0
    embedded: int = 0
    parse_s: float = 0.0  # seconds its actor spent parsing and chunking
    embed_s: float = 0.0  # seconds its actor spent embedding
    lost: bool = False  # the node (or its actor) died during the run; its files went to others


@dataclass(frozen=True, slots=True)
class AccessExplanation(_Record):
    """Why a file gets the readers it gets (``workbench access explain``), and whether a user may read it."""

    path: str
    collection: str  # the collection whose sources hold the file ("" when none does)
    permissions_from: str  # "files" or "posix" ([access] from)
    steps: tuple[str, ...]  # what was read, nearest first: access files, owners, modes, ACL entries
    groups: tuple[str, ...]  # the readers this gives now (workbench groups, @user:NAME, @everyone)
    indexed_groups: tuple[str, ...] | None  # what the published index holds (None: not indexed); differs until reindex
    user: str = ""  # the user asked about ("" : none)
    user_groups: tuple[str, ...] = ()  # their groups (from the directory, for directory users)
    readable: bool | None = None  # whether that user may read the file now (None: no user asked about)

    def __str__(self) -> str:
        lines = [f"{self.path}", f"  collection: {self.collection or '(in no source of this index)'}",
                 f"  permissions from: {self.permissions_from}"]
        lines += [f"  - {step}" for step in self.steps]
        lines.append(f"  readers: {', '.join(self.groups) or 'admins only'}")
        if self.indexed_groups is not None and tuple(self.indexed_groups) != tuple(self.groups):
            lines.append(f"  in the published index: {', '.join(self.indexed_groups) or 'admins only'} "
                         "(run `workbench reindex` to apply the change)")
        if self.user:
            lines.append(f"  {self.user} (groups: {', '.join(self.user_groups) or 'none'}): "
                         f"{'may read it' if self.readable else 'may NOT read it'}")
        return "\n".join(lines)


_STAGES = {k: i for i, k in enumerate(("lock", "plan", "connect", "cluster", "parse", "chunk", "embed", "write", "publish"))}


@dataclass(frozen=True, slots=True)
class IngestReport(_Record):
    """What one ingest/reindex run did. ``ok`` is False when any file failed."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: int = 0
    failed: tuple[FileFailure, ...] = ()
    skipped: tuple[FileFailure, ...] = ()  # unsupported types, symlinks: listed, not errors
    chunks_added: int = 0
    chunks_embedded: int = 0
    chunks_from_cache: int = 0
    chunks_lexical_only: int = 0  # tables of contents and back-of-book indexes: BM25 only, not embedded
    regrouped: int = 0  # documents whose readers changed (access file, POSIX permissions, default), not re-embedded
    ocr_pages: int = 0  # pages (of PDFs and image files) read by OCR in this run
    ocr_seconds: float = 0.0  # the parser time those pages took
    generation: int = 0
    published: bool = False
    seconds: float = 0.0
    notes: tuple[str, ...] = ()  # things worth knowing that are not failures (e.g. no fast query model)
    cluster: str = ""  # the Ray cluster address that parsed and embedded ("" = this process)
    nodes: tuple[NodeWork, ...] = ()  # per cluster node: files, chunks, seconds
    # seconds per stage: lock, plan, parse (waiting for the parsers), chunk, embed, write, publish; and,
    # inside parse, the parsers' own time on tables and OCR (summed over parser processes)
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """One line, for cron logs."""
        return (
            f"generation {self.generation}{' (new)' if self.published else ' (unchanged)'}: "
            f"{len(self.added)} added, {len(self.changed)} changed, {len(self.renamed)} renamed, "
            f"{len(self.deleted)} deleted, {self.unchanged} unchanged, {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped; "
            + (f"access changed for {self.regrouped} documents; " if self.regrouped else "") +
            f"{self.chunks_added} chunks written ({self.chunks_embedded} embedded, "
            f"{self.chunks_from_cache} from cache"
            + (f", {self.chunks_lexical_only} contents/index pages not embedded" if self.chunks_lexical_only else "")
            + f") in {self.seconds:.1f}s"
            + (f"; {self.ocr_pages} pages read by OCR in {self.ocr_seconds:.1f}s" if self.ocr_pages else "")
            + (f" on {len(self.nodes)} cluster node{'s' if len(self.nodes) > 1 else ''}" if self.nodes else "")
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  FAILED {f}" for f in self.failed]
        lines += [f"  skipped {f}" for f in self.skipped]
        lines += [f"  note: {n}" for n in self.notes]
        if self.stage_seconds:
            inner = {"tables", "ocr"}
            parts = [f"{k} {v:.1f}" + (f" (tables {self.stage_seconds.get('tables', 0):.1f}, ocr "
                                        f"{self.stage_seconds.get('ocr', 0):.1f} in the parsers)" if k == "parse" else "")
                     for k, v in sorted(self.stage_seconds.items(), key=lambda kv: _STAGES.get(kv[0], 99)) if k not in inner]
            lines.append("  seconds: " + ", ".join(parts))
        lines += [f"  node {n.node}: {n.files} files, {n.chunks} chunks, {n.embedded} embedded, "
                  f"parse {n.parse_s:.1f}s, embed {n.embed_s:.1f}s" + (" (LOST during the run)" if n.lost else "")
                  for n in self.nodes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from workbench.display import report_html

        return report_html(self)


class Hits(list):
    """Search results (a plain list of `Hit`) that display as a table in Jupyter; ``trace`` (a
    `SearchTrace`) says how the search ran, when the search that made them recorded it."""

    trace: SearchTrace | None = None

    def __init__(self, hits=(), trace: SearchTrace | None = None) -> None:
        super().__init__(hits)
        self.trace = trace

    def __str__(self) -> str:
        return "\n".join(str(h) for h in self) if self else "no matching chunks"

    def _repr_html_(self) -> str:
        from workbench.display import hits_html

        return hits_html(self)


@dataclass(frozen=True, slots=True)
class IndexStatus(_Record):
    """A published index at a glance."""

    index_dir: str
    generation: int
    documents: int
    chunks: int
    collections: dict[str, int]
    sources: tuple[dict[str, str], ...]
    failures: tuple[FileFailure, ...]
    embedding_model: str
    embedding_dim: int
    published_at: str
    embedding_runtime: str = ""  # which runtime/dtype embeds documents and queries here, and why
    cpu: str = ""  # the CPU model, cores and flags that choice was made for
    vector_index: str = ""  # what searches the vectors: exact or IVF, its size and its recall at publish
    lexical_index: str = ""  # what answers BM25 queries: the catalog's FTS5 table or BM25 matrices
    ocr_low_confidence: tuple[str, ...] = ()  # pages read by OCR below [ocr] low_confidence: "path, page n: 41%"
    sign_in: str = ""  # where the web app's users come from: local accounts, an LDAP directory, an OpenID provider
    access_changed: int = 0  # documents whose readers the last published sync changed (without re-embedding)

    def __str__(self) -> str:
        cols = ", ".join(f"{k} ({v} docs)" for k, v in sorted(self.collections.items())) or "none"
        lines = [
            f"index:        {self.index_dir}",
            f"generation:   {self.generation} (published {self.published_at or 'never'}"
            + (f"; access changed for {self.access_changed} documents" if self.access_changed else "") + ")",
            f"documents:    {self.documents}",
            f"chunks:       {self.chunks}",
            f"collections:  {cols}",
            f"embedding:    {self.embedding_model} ({self.embedding_dim} dims)",
        ]
        if self.embedding_runtime:
            lines.append(f"  runtime:    {self.embedding_runtime}")
        if self.cpu:
            lines.append(f"  cpu:        {self.cpu}")
        if self.vector_index:
            lines.append(f"vector index: {self.vector_index}")
        if self.lexical_index:
            lines.append(f"lexical index: {self.lexical_index}")
        lines += [f"sources:      {len(self.sources)}"]
        lines += [f"  {s['collection']}: {s['root']}" + (f" (permissions: {s['permissions']})" if s.get("permissions") else "")
                  for s in self.sources]
        if self.sign_in:
            lines.append(f"sign-in:      {self.sign_in}")
        lines.append(f"failed files: {len(self.failures)}")
        lines += [f"  {f}" for f in self.failures]
        if self.ocr_low_confidence:
            lines.append(f"pages read by OCR with low confidence: {len(self.ocr_low_confidence)}")
            lines += [f"  {p}" for p in self.ocr_low_confidence]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from workbench.display import status_html

        return status_html(self)


@dataclass(frozen=True, slots=True)
class Citation(_Record):
    """Source number n of an answer: the chunk it points to (file, page, passage), not a copy of it."""

    number: int
    chunk: Chunk
    ocr_confidence: float | None = None  # mean word confidence (0-100) when the passage was read by OCR

    SNIPPET_CHARS = 300

    @property
    def chunk_id(self) -> int:
        return self.chunk.chunk_id

    @property
    def doc_id(self) -> str:
        return self.chunk.doc_id

    @property
    def path(self) -> str:
        return self.chunk.path

    @property
    def part(self) -> str:
        return self.chunk.part

    @property
    def title(self) -> str:
        return self.chunk.title

    @property
    def location(self) -> str:
        return self.chunk.location

    @property
    def page(self) -> int | None:
        return self.chunk.page

    @property
    def snippet(self) -> str:
        """The passage on one line, cut at `SNIPPET_CHARS`."""
        return " ".join(self.chunk.text.split())[: self.SNIPPET_CHARS]

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the number and where it leads (the stored form of feedback and `ask --json`)."""
        return {"number": self.number, "chunk_id": self.chunk_id, "doc_id": self.doc_id, "path": self.path,
                "part": self.part, "title": self.title, "location": self.location, "page": self.page,
                "snippet": self.snippet, "ocr_confidence": self.ocr_confidence}

    @property
    def ocr_note(self) -> str:
        """"read by OCR (confidence 91%)" for a passage read by OCR, else ""."""
        return "" if self.ocr_confidence is None else f"read by OCR (confidence {self.ocr_confidence:.0f}%)"

    def __str__(self) -> str:
        where = f", {self.location}" if self.location else ""
        ocr = f" — {self.ocr_note}" if self.ocr_note else ""
        return f"[{self.number}] {self.title} — {self.path}{' » ' + self.part if self.part else ''}{where}{ocr}"


class _Outcome(str, Enum):
    """An outcome kind: its value is a short code (what JSON shows), ``text`` the sentence people
    read, a format string that `says` fills in. Code compares members, never sentences."""

    def __new__(cls, code: str, text: str) -> "_Outcome":
        member = str.__new__(cls, code)
        member._value_ = code
        member.text = text
        return member

    def says(self, **values: Any) -> "Reason":
        """This outcome with its sentence filled in from ``values``."""
        return Reason(self, self.text.format(**values))


@dataclass(frozen=True, slots=True)
class Reason(_Record):
    """One outcome: its ``kind`` (an enum member, for code) and its ``text`` (for people; ``str()``)."""

    kind: _Outcome
    text: str

    def __str__(self) -> str:
        return self.text


class WeakEvidence(_Outcome):
    """Why passages that passed the evidence gate may still not support an answer."""

    NO_NUMBER = "no_number", "the question asks for a number and no retrieved passage contains one"
    LOW_OCR = "low_ocr", ("the best passage was read by OCR with low confidence ({best:.0f}% < {below:g}%, "
                          "[ocr] low_confidence)")


class Refusal(_Outcome):
    """Why an answer was refused (all but `NO_ANSWER_IN_SOURCES` before the model was called)."""

    NO_MATCH = "no_match", "no passage in the documents matched the question"
    TOO_FAR = "too_far", ("the closest passage is too far from the question (similarity {best:.2f} < {limit:g}, "
                          "answer.min_dense_score)")
    FEW_TERMS = "few_terms", ("the best passage shares only {share:.0%} of the question's terms (< {limit:.0%}, "
                              "answer.min_term_overlap)")
    NO_NUMBER = "no_number", WeakEvidence.NO_NUMBER.text
    NO_ANSWER_IN_SOURCES = "no_answer_in_sources", "the model found no answer in the sources"
    DEGENERATE = "degenerate", ("the model repeated itself instead of answering and was stopped: ask again, "
                                "perhaps in other words")


class AnswerFlag(_Outcome):
    """What `Answer.flags` points out about an answer."""

    REFUSED = "refused", "refused: {reason}"
    INVENTED_CITATIONS = "invented_citations", "dropped citations to sources that do not exist: {numbers}"
    UNCITED = "uncited", "{n} sentence(s) without a citation"
    UNSUPPORTED_FIGURES = "unsupported_figures", "{n} sentence(s) with figures not found in the sources they cite"
    WEAK_EVIDENCE = "weak_evidence", "weak evidence: {reason}"


@dataclass(frozen=True, slots=True)
class Timings(_Record):
    """How long an answer took and how many tokens it used (0 where the model was not called)."""

    retrieval_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token_s: float = 0.0
    tokens_per_s: float = 0.0
    total_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Answer(_Record):
    """A grounded answer: text with [n] markers, the citations they resolve to, and how it was made.

    A ``refusal`` (a `Reason` of kind `Refusal`) says the documents do not cover the question (the
    model may not have been called); ``weakness`` (of kind `WeakEvidence`) why the evidence may not
    support the answer. ``cited_numbers`` are the valid markers the text uses (checked by
    `workbench.cite`); ``invented_citations`` were dropped from ``text``; ``uncited_sentences`` carry
    no citation; ``unsupported_figures`` are cited sentences with a figure none of their cited
    passages holds (`workbench.cite.unsupported_figures`).
    """

    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    hits: tuple[Hit, ...] = ()
    refusal: Reason | None = None
    standalone_question: str = ""
    invented_citations: tuple[int, ...] = ()
    uncited_sentences: tuple[str, ...] = ()
    generation: int = 0
    model: str = ""
    timings: Timings = Timings()
    cited_numbers: tuple[int, ...] = ()
    weakness: Reason | None = None  # why the evidence may not support an answer (None: nothing known against it)
    unsupported_figures: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    @property
    def refusal_reason(self) -> str:
        """Why the answer was refused, for people ("" when it was not)."""
        return "" if self.refusal is None else self.refusal.text

    @property
    def weak_evidence(self) -> str:
        """Why the evidence may not support the answer, for people ("" when nothing is known against it)."""
        return "" if self.weakness is None else self.weakness.text

    def to_dict(self) -> dict[str, Any]:
        """Plain data; the refusal and the weakness as their sentences and, for code, their kinds."""
        out = {f.name: _to_dict(getattr(self, f.name)) for f in dataclasses.fields(self)}
        refusal, weakness = out.pop("refusal"), out.pop("weakness")
        return {**out, "refused": self.refused, "refusal_reason": self.refusal_reason,
                "refusal_kind": refusal and refusal["kind"], "weak_evidence": self.weak_evidence,
                "weak_evidence_kind": weakness and weakness["kind"]}

    @property
    def cited(self) -> tuple[Citation, ...]:
        """The citations the text actually refers to."""
        return tuple(c for c in self.citations if c.number in self.cited_numbers)

    def __str__(self) -> str:
        lines = [self.text, ""]
        lines += [str(c) for c in (self.cited or self.citations)]
        if self.invented_citations:
            lines.append(f"(dropped invented citations: {list(self.invented_citations)})")
        return "\n".join(lines).strip()

    def _repr_html_(self) -> str:
        from workbench.display import answer_html

        return answer_html(self)

    def flags(self) -> list[Reason]:
        """What is worth pointing out about this answer: `Reason`s of kind `AnswerFlag`."""
        out = []
        if self.refusal is not None:
            out.append(AnswerFlag.REFUSED.says(reason=self.refusal))
        if self.invented_citations:
            out.append(AnswerFlag.INVENTED_CITATIONS.says(numbers=list(self.invented_citations)))
        if self.uncited_sentences:
            out.append(AnswerFlag.UNCITED.says(n=len(self.uncited_sentences)))
        if self.unsupported_figures:
            out.append(AnswerFlag.UNSUPPORTED_FIGURES.says(n=len(self.unsupported_figures)))
        if self.weakness is not None:
            out.append(AnswerFlag.WEAK_EVIDENCE.says(reason=self.weakness))
        return out
