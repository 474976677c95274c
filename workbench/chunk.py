"""Structure-aware chunking with stable ids and exact character spans.

A chunk never crosses a page, slide, sheet or heading section. Within a section, blocks
(paragraphs, table rows, slide texts) are packed greedily up to ``max_tokens`` of the embedding
model's tokenizer, less the tokens of the heading path that is embedded with them; a block over budget is split at sentence ends, and a sentence over budget at
word windows. Consecutive chunks of a section share up to ``overlap_tokens`` of trailing pieces.
A heading with no body of its own is carried into the next section. ``start``/``end`` index the
document's extracted text (`ParsedDocument.text`). Leaves out: semantic (embedding-based) splits.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workbench.records import Block, Chunk, ParsedDocument, ParseJob

CountTokens = Callable[[Sequence[str]], list[int]]
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n\s*\n")


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    tokens: int
    block: Block


def chunk_id(doc_id: str, content_hash: str, ordinal: int) -> int:
    """A stable positive int64 (the FAISS id) for a document version's n-th chunk."""
    digest = hashlib.blake2b(f"{doc_id}:{content_hash}:{ordinal}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def document_id(job: ParseJob, part: str) -> str:
    """The id of one document (a file, or a part of it) of a parse job: the same wherever the file is
    parsed (this process or a cluster node), unique within the generation that adds it."""
    key = "\0".join((str(job.generation), job.collection, job.path, part, job.content_hash))
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def chunk_file(job: ParseJob, docs: Sequence[ParsedDocument], count_tokens: CountTokens, max_tokens: int,
               overlap_tokens: int, identity: bool = True) -> tuple[tuple[ParsedDocument, str, tuple[Chunk, ...]], ...]:
    """Each parsed document of a job with its id and chunks (the same call locally and on a cluster).
    ``identity``: give every chunk its document's identity line (`document_identity`)."""
    out = []
    for parsed in docs:
        doc_id = document_id(job, parsed.part)
        ident = document_identity(parsed, job.path) if identity else ""
        out.append((parsed, doc_id, tuple(chunk_document(parsed, doc_id, job.content_hash, count_tokens,
                                                         max_tokens, overlap_tokens, ident))))
    return tuple(out)


_YEAR = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)")
# 'for the fiscal year ended June 30, 2021', 'For the quarterly period ended March 31, 2022'
_PERIOD_ENDED = re.compile(
    r"\b((?:fiscal\s+)?(?:year|quarter|quarterly\s+period|period|half[- ]year|six\s+months|three\s+months|"
    r"nine\s+months)\s+ended\s+(?:[A-Z][a-z]{2,8}\.?\s+\d{1,2},?\s+|\d{1,2}\s+[A-Z][a-z]{2,8}\s+)(?:19|20)\d{2})",
    re.IGNORECASE)
_IDENTITY_TEXT = 3000  # characters of a document's start searched for its period
# an SEC filing's cover: the registrant's name on the line above '(Exact name of registrant ...)', or
# on the line after 'Commission File Number ...'
_REGISTRANT = re.compile(r"(?:^|\n)[ \t]*([^\n]{2,80}?)[ \t]*\n[ \t]*\(Exact name of registrant"
                         r"|Commission File Number[^\n]*\n[ \t]*([^\n]{2,80}?)[ \t]*\n", re.IGNORECASE)


def document_identity(parsed: ParsedDocument, path: str) -> str:
    """The line that names a document for each of its passages (mixed into their vectors, and in
    their BM25 heading terms):
    its title, its file (or attachment) name where that says something the title does not, and the
    period it covers when neither names a year ('year ended December 31, 2021', found in the first
    3,000 characters); for an SEC filing, the registrant's name from its cover page and the period
    its cover names ('Apple Inc. · quarterly period ended July 1, 2023'). Financial statements rarely
    repeat the company or period on each page; this lets a question that names them find those
    pages. Leaves out: company names elsewhere in the text, and fiscal quarter numbers (a cover names
    the date the quarter ended, not which quarter of the company's fiscal year it is)."""
    from pathlib import PurePath

    title = " ".join(parsed.title.split())
    stem = PurePath(parsed.part or path).stem
    name = " ".join(stem.replace("_", " ").replace("-", " ").split())
    parts = [title] if title else []
    if name and name.lower() not in " ".join(title.replace("_", " ").replace("-", " ").lower().split()):
        parts.append(name)
    start = parsed.text[:_IDENTITY_TEXT]
    registrant = _REGISTRANT.search(start)
    company = " ".join((registrant.group(1) or registrant.group(2)).split()) if registrant else ""
    if company and company.lower() not in " ".join(parts).lower():
        parts.append(company)
    line = " · ".join(parts)
    if not _YEAR.search(line) or company:
        m = _PERIOD_ENDED.search(start)
        if m:
            line = f"{line} · {' '.join(m.group(1).split())}" if line else " ".join(m.group(1).split())
    return line[:300]


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _spans(text: str, pattern: re.Pattern) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            spans.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    return spans


def _word_windows(text: str, tokens: int, budget: int) -> list[tuple[int, int]]:
    words = [m.span() for m in re.finditer(r"\S+", text)]
    per_window = max(1, int(len(words) * budget / max(tokens, 1) * 0.9))
    return [(words[i][0], words[min(i + per_window, len(words)) - 1][1]) for i in range(0, len(words), per_window)]


def _pieces(blocks: Sequence[Block], offsets: list[int], count: CountTokens, budgets: dict) -> list[_Piece]:
    """Blocks as pieces, splitting over-budget blocks into sentences, then word windows."""
    sizes = count([b.text for b in blocks])
    pieces: list[_Piece] = []
    for block, off, size in zip(blocks, offsets, sizes):
        budget = budgets[block.headings]
        if size <= budget:
            pieces.append(_Piece(off, off + len(block.text), size, block))
            continue
        sentences = _spans(block.text, _SENTENCE_END)
        for (s, e), n in zip(sentences, count([block.text[s:e] for s, e in sentences])):
            windows = [(s, e)] if n <= budget else [(s + a, s + b) for a, b in _word_windows(block.text[s:e], n, budget)]
            wsizes = [n] if n <= budget else count([block.text[a:b] for a, b in windows])
            pieces += [_Piece(off + a, off + b, k, block) for (a, b), k in zip(windows, wsizes)]
    return pieces


def _sections(pieces: list[_Piece]) -> list[list[_Piece]]:
    sections: list[list[_Piece]] = []
    for p in pieces:
        key = (p.block.page, p.block.sheet, p.block.headings)
        prev = sections[-1][-1].block if sections else None
        same = prev is not None and (prev.page, prev.sheet, prev.headings) == key and p.block.kind != "heading"
        heading_only = sections and all(q.block.kind == "heading" for q in sections[-1])
        same_page = prev is not None and (prev.page, prev.sheet) == (p.block.page, p.block.sheet)
        if same or (heading_only and same_page):
            sections[-1].append(p)
        else:
            sections.append([p])
    return sections


def _pack(section: list[_Piece], budget: int, overlap: int) -> list[list[_Piece]]:
    groups: list[list[_Piece]] = []
    current: list[_Piece] = []
    total = 0
    for p in section:
        if current and total + p.tokens > budget:
            groups.append(current)
            carry: list[_Piece] = []
            kept = 0
            for q in reversed(current[1:]):
                if kept + q.tokens > overlap or kept + q.tokens + p.tokens > budget:
                    break
                carry.insert(0, q)
                kept += q.tokens
            current, total = carry, kept
        current.append(p)
        total += p.tokens
    if current:
        groups.append(current)
    return groups


_NAV_HEADING = re.compile(
    r"(?:(?i:appendix\s+)?[A-Z0-9]{1,2}\.?\s+)?(?i:(?:(?:general|subject|alphabetical|concept|function|variable|"
    r"function and variable|environment variable|command|keyword|program|data type|option)\s+)?index|"
    r"(?:table of |short )?contents|list of (?:figures|tables))")
_PAGE = r"(?:\d{1,4}|[ivxlc]{1,6})"
# 'Installing packages . . . . . 23' (a dot leader, then a page)
_LEADER_LINE = re.compile(rf"(?:\.\s?){{3,}}\s*({_PAGE})$", re.IGNORECASE)
# 'install.packages, 23, 45-47' (a word, a comma, page numbers): '1,500' is a number, not an entry
_ENTRY_LINE = re.compile(r"[^\d\s,],\s*\d{1,4}(?:[-–]\d{1,4})?(?:,\s*\d{1,4}(?:[-–]\d{1,4})?)*$")
_TAIL = 40  # only a line's end is matched: a hostile 1 MB line costs nothing


def is_navigation(chunk: Chunk) -> bool:
    """True for a passage that only points elsewhere: a back-of-book index or a table of contents.

    Either its heading is a back-matter title ('Index', 'Concept index', 'E Function and variable
    index', 'Contents', 'List of tables') and 40% or more of its lines are index entries
    ('install.packages, 23') or dot-leader lines, or 60% or more of at least 5 lines are dot-leader
    lines whose page numbers never go down (a table of contents, not a price list). Such passages
    were 12% of the tokens of the R manuals; they stay searchable by BM25 but are not embedded
    (that work is saved, and their vectors match queries about everything and nothing). Leaves out
    running headers and footers: about 1% of the tokens there, not worth the risk of cutting text.
    """
    lines = [line.rstrip()[-_TAIL:] for line in chunk.text.split("\n") if line.strip()]
    if len(lines) < 5:
        return False
    leaders = [m for m in map(_LEADER_LINE.search, lines) if m]
    if chunk.headings and _NAV_HEADING.fullmatch(chunk.headings[-1].strip()):
        entries = sum(bool(_ENTRY_LINE.search(line)) for line in lines)
        return entries + len(leaders) >= 0.4 * len(lines)
    pages = [int(m.group(1)) for m in leaders if m.group(1).isdigit()]
    rising = all(a <= b for a, b in zip(pages, pages[1:]))
    return len(leaders) >= 0.6 * len(lines) and rising


def chunk_document(parsed: ParsedDocument, doc_id: str, content_hash: str, count_tokens: CountTokens,
                   max_tokens: int = 200, overlap_tokens: int = 32, identity: str = "") -> list[Chunk]:
    """Split one parsed document into chunks; ids are stable for (doc_id, content_hash). Each chunk
    carries ``identity`` (`document_identity`) for the embedding stage."""
    blocks = [b for b in parsed.blocks if b.text]
    offsets, pos = [], 0
    for b in parsed.blocks:
        offsets.append(pos)
        pos += len(b.text) + 2
    offsets = [o for o, b in zip(offsets, parsed.blocks) if b.text]
    text = parsed.text
    # the embedded input is "heading path + text": leave room for the heading path in the budget
    paths = list({b.headings for b in blocks})
    prefix = count_tokens([" > ".join(h) for h in paths])
    budgets = {h: max(16, max_tokens - (n + 1 if h else 0)) for h, n in zip(paths, prefix)}
    chunks: list[Chunk] = []
    for section in _sections(_pieces(blocks, offsets, count_tokens, budgets)):
        for group in _pack(section, budgets[section[-1].block.headings], overlap_tokens):
            start, end = group[0].start, group[-1].end
            last = group[-1].block
            body = text[start:end]
            ordinal = len(chunks)
            chunks.append(Chunk(
                chunk_id=chunk_id(doc_id, content_hash, ordinal), doc_id=doc_id, ordinal=ordinal,
                text=body, start=start, end=end, page=last.page, sheet=last.sheet, headings=last.headings,
                text_hash=text_hash(body), format=parsed.format, title=parsed.title, identity=identity,
            ))
    return chunks
