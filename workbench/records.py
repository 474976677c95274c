"""Typed, frozen records passed between stages. No I/O here.

Flow: a loader yields `ParsedDocument` (a list of `Block`s); the chunker turns a `Document`'s
blocks into `Chunk`s; search returns `Hit`s; ingestion returns an `IngestReport`; `IndexStatus`
describes a published index. Every record converts to plain JSON-able data with `to_dict()`.
"""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _to_dict(obj: Any) -> Any:
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
class ParsedDocument(_Record):
    """What a loader returns for one file, or one part of it (an e-mail attachment)."""

    format: str
    title: str
    blocks: tuple[Block, ...]
    part: str = ""  # "" for the file itself; the attachment name for e-mail attachments
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The extracted text; chunk character spans index into this string."""
        return "\n\n".join(b.text for b in self.blocks)


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


@dataclass(frozen=True, slots=True)
class Hit(_Record):
    """A search result: a chunk, its fused score (higher is better) and its rank (1-based)."""

    chunk: Chunk
    score: float
    rank: int
    dense_score: float | None = None  # cosine, when the dense side found it
    lexical_score: float | None = None  # BM25, when the lexical side found it
    context: tuple[Chunk, ...] = ()  # neighbouring chunks, when retrieval.neighbors > 0

    def __str__(self) -> str:
        c = self.chunk
        where = ", ".join(x for x in (c.location, " > ".join(c.headings)) if x)
        snippet = " ".join(c.text.split())[:160]
        parts = [f"score {self.score:.3f}"]
        if self.dense_score is not None:
            parts.append(f"cosine {self.dense_score:.2f}")
        if self.lexical_score is not None:
            parts.append(f"bm25 {self.lexical_score:.1f}")
        return f"{self.rank}. [{', '.join(parts)}] {c.display_path}{' (' + where + ')' if where else ''}\n   {snippet}"

    def _repr_html_(self) -> str:
        c = self.chunk
        return (
            f"<div><b>{self.rank}.</b> <code>{html.escape(c.display_path)}</code> "
            f"{html.escape(c.location)} <i>{html.escape(' > '.join(c.headings))}</i> "
            f"score {self.score:.3f}<br><small>{html.escape(c.text[:400])}</small></div>"
        )


@dataclass(frozen=True, slots=True)
class FileFailure(_Record):
    """A file (or attachment) that could not be indexed, with the reason."""

    path: str
    reason: str
    collection: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


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
    regrouped: int = 0  # documents whose readers changed (access file or collection default), not re-embedded
    generation: int = 0
    published: bool = False
    seconds: float = 0.0

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
            f"{self.chunks_from_cache} from cache) in {self.seconds:.1f}s"
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  FAILED {f}" for f in self.failed]
        lines += [f"  skipped {f}" for f in self.skipped]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(f.path)}</code></td><td>{html.escape(f.reason)}</td></tr>"
            for f in self.failed
        )
        table = f"<table><tr><th>failed file</th><th>reason</th></tr>{rows}</table>" if rows else ""
        lists = [(name, items) for name, items in (
            ("added", self.added), ("changed", self.changed),
            ("renamed", [f"{a} → {b}" for a, b in self.renamed]), ("deleted", self.deleted),
            ("skipped", [str(f) for f in self.skipped])) if items]
        details = "".join(
            f"<details><summary>{name} ({len(items)})</summary><ul>"
            + "".join(f"<li><code>{html.escape(str(i))}</code></li>" for i in items) + "</ul></details>"
            for name, items in lists)
        return f"<div><p>{html.escape(self.summary())}</p>{table}{details}</div>"


class Hits(list):
    """Search results (a plain list of `Hit`) that display as a table in Jupyter."""

    def __str__(self) -> str:
        return "\n".join(str(h) for h in self) if self else "no matching chunks"

    def _repr_html_(self) -> str:
        if not self:
            return "<p>no matching chunks</p>"
        rows = []
        for h in self:
            c = h.chunk
            rows.append(
                f"<tr><td>{h.rank}</td><td>{h.score:.3f}</td>"
                f"<td>{'' if h.dense_score is None else f'{h.dense_score:.2f}'}</td>"
                f"<td>{'' if h.lexical_score is None else f'{h.lexical_score:.1f}'}</td>"
                f"<td><b>{html.escape(c.title)}</b><br><code>{html.escape(c.display_path)}</code> "
                f"{html.escape(c.location)}</td><td><small>{html.escape(' '.join(c.text.split())[:300])}</small></td></tr>")
        return ("<table><tr><th>#</th><th>score</th><th>cosine</th><th>bm25</th><th>document</th><th>passage</th></tr>"
                + "".join(rows) + "</table>")


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

    def __str__(self) -> str:
        cols = ", ".join(f"{k} ({v} docs)" for k, v in sorted(self.collections.items())) or "none"
        lines = [
            f"index:        {self.index_dir}",
            f"generation:   {self.generation} (published {self.published_at or 'never'})",
            f"documents:    {self.documents}",
            f"chunks:       {self.chunks}",
            f"collections:  {cols}",
            f"embedding:    {self.embedding_model} ({self.embedding_dim} dims)",
            f"sources:      {len(self.sources)}",
        ]
        lines += [f"  {s['collection']}: {s['root']}" for s in self.sources]
        lines.append(f"failed files: {len(self.failures)}")
        lines += [f"  {f}" for f in self.failures]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(str(self)) + "</pre>"


@dataclass(frozen=True, slots=True)
class Citation(_Record):
    """Source number n of an answer, pointing back to the file, page and passage."""

    number: int
    chunk_id: int
    doc_id: str
    path: str
    part: str
    title: str
    location: str
    page: int | None
    snippet: str

    def __str__(self) -> str:
        where = f", {self.location}" if self.location else ""
        return f"[{self.number}] {self.title} — {self.path}{' » ' + self.part if self.part else ''}{where}"


@dataclass(frozen=True, slots=True)
class Answer(_Record):
    """A grounded answer: text with [n] markers, the citations they resolve to, and how it was made.

    ``refused`` answers say the documents do not cover the question (the model may not have been
    called: see ``refusal_reason``). ``invented_citations`` were dropped from ``text``;
    ``uncited_sentences`` carry no citation. ``timings``: retrieval_ms, prompt_tokens,
    completion_tokens, time_to_first_token_s, tokens_per_s, total_s.
    """

    question: str
    text: str
    citations: tuple[Citation, ...] = ()
    hits: tuple[Hit, ...] = ()
    refused: bool = False
    refusal_reason: str = ""
    standalone_question: str = ""
    invented_citations: tuple[int, ...] = ()
    uncited_sentences: tuple[str, ...] = ()
    generation: int = 0
    model: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def cited(self) -> tuple[Citation, ...]:
        """The citations the text actually refers to."""
        import re

        used = {int(n) for n in re.findall(r"\[(\d+)\]", self.text)}
        return tuple(c for c in self.citations if c.number in used)

    def __str__(self) -> str:
        lines = [self.text, ""]
        lines += [str(c) for c in (self.cited or self.citations)]
        if self.invented_citations:
            lines.append(f"(dropped invented citations: {list(self.invented_citations)})")
        return "\n".join(lines).strip()

    def _repr_html_(self) -> str:
        import re

        key = f"wb{id(self):x}"  # anchors unique to this answer, so several answers share a notebook
        body = html.escape(self.text)
        body = re.sub(r"\[(\d+)\]", rf'<a href="#{key}-\1">[\1]</a>', body)
        scores = {i: h for i, h in enumerate(self.hits, start=1)}
        items = []
        for c in self.citations:
            h = scores.get(c.number)
            score = ""
            if h is not None:
                parts = [f"score {h.score:.3f}"] + ([f"cosine {h.dense_score:.2f}"] if h.dense_score is not None else []) \
                    + ([f"bm25 {h.lexical_score:.1f}"] if h.lexical_score is not None else [])
                score = f" <small>({', '.join(parts)})</small>"
            cited = " ✓" if c in self.cited else ""
            items.append(f'<li id="{key}-{c.number}"><b>[{c.number}]</b>{cited} {html.escape(c.title)} — '
                         f"<code>{html.escape(c.path)}</code> {html.escape(c.location)}{score}<br>"
                         f"<small>{html.escape(c.snippet)}</small></li>")
        t = self.timings
        meta = (f"generation {self.generation} · {html.escape(self.model)} · retrieval {t.get('retrieval_ms', 0):.0f} ms"
                f" · first token {t.get('time_to_first_token_s', 0):.2f} s · {t.get('tokens_per_s', 0):.1f} tok/s"
                f" · total {t.get('total_s', 0):.2f} s")
        flags = "".join(f"<li>{html.escape(f)}</li>" for f in self.flags())
        return (f"<div><p>{body}</p><ol style='list-style:none'>{''.join(items)}</ol><small>{meta}</small>"
                f"{'<ul>' + flags + '</ul>' if flags else ''}</div>")

    def flags(self) -> list[str]:
        out = []
        if self.refused:
            out.append(f"refused: {self.refusal_reason}")
        if self.invented_citations:
            out.append(f"dropped citations to sources that do not exist: {list(self.invented_citations)}")
        if self.uncited_sentences:
            out.append(f"{len(self.uncited_sentences)} sentence(s) without a citation")
        return out
