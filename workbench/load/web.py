"""HTML (the stdlib's streaming HTMLParser) and Markdown (markdown-it-py), with their heading hierarchy.

HTML: scripts, styles, navigation, headers, footers, asides and forms are dropped; the text inside
<main>/<article> is kept when there is any, else the whole body. Parsing is event-driven with no
tree (10,000-level nesting costs neither recursion nor a depth limit that loses text) and yields
heading, paragraph, list-item and table-row blocks. Markdown: top-level blocks
keep their source text; ATX/setext headings form the heading path. Leaves out: rendering,
images, link targets.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from workbench.errors import ParseError
from workbench.load.text import decode_text
from workbench.records import Block, ParsedDocument

_DROP = {"script", "style", "noscript", "nav", "header", "footer", "aside", "form", "template",
         "svg", "iframe", "button", "select", "head", "title"}
_BLOCK = {"p", "div", "li", "pre", "blockquote", "dd", "dt", "figcaption", "caption", "section",
          "article", "main", "ul", "ol", "dl", "table", "tr", "br", "hr", "address", "body"}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", re.I)


class _Collector(HTMLParser):
    """Streams parser events into blocks; keeps no tree, so nesting depth costs nothing."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.buf: list[str] = []
        self.blocks: list[tuple[bool, Block]] = []  # (inside <main>/<article>, block)
        self.stack: list[tuple[int, str]] = []
        self.skip: list[str] = []
        self.main_depth = 0
        self.heading_level = 0
        self.title_parts: list[str] = []
        self.in_title = False

    def _flush(self, kind: str = "text") -> None:
        text = " ".join("".join(self.buf).split())
        self.buf.clear()
        if not text:
            return
        if kind == "heading":
            self.stack = [(lvl, t) for lvl, t in self.stack if lvl < self.heading_level] + [(self.heading_level, text)]
        self.blocks.append((self.main_depth > 0, Block(text=text, headings=tuple(t for _, t in self.stack), kind=kind)))

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _DROP and tag not in ("br", "hr"):
            self.skip.append(tag)
            return
        if self.skip:
            return
        if tag in ("main", "article"):
            self.main_depth += 1
        if tag in _HEADINGS:
            self._flush()
            self.heading_level = _HEADINGS[tag]
        elif tag in _BLOCK:
            self._flush("row" if tag == "tr" else "text")
        elif tag in ("td", "th"):
            self.buf.append(" | " if self.buf else "")

    def handle_endtag(self, tag) -> None:
        if tag == "title":
            self.in_title = False
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.pop()
            return
        if tag in _HEADINGS and self.heading_level:
            self._flush("heading")
            self.heading_level = 0
        elif tag == "tr":
            self._flush("row")
        elif tag in _BLOCK:
            self._flush()
        if tag in ("main", "article") and self.main_depth:
            self._flush()
            self.main_depth -= 1

    def handle_data(self, data) -> None:
        if self.in_title:
            self.title_parts.append(data)
        elif not self.skip:
            self.buf.append(data)


def _decode_html(data: bytes) -> str:
    m = _META_CHARSET.search(data[:4096])
    if m:
        try:
            return data.decode(m.group(1).decode("ascii"))
        except (LookupError, UnicodeDecodeError):
            pass
    return decode_text(data)


def load_html(data: bytes, stem: str) -> ParsedDocument:
    parser = _Collector()
    try:
        parser.feed(_decode_html(data))
        parser.close()
    except (AssertionError, ValueError) as exc:
        raise ParseError(f"unreadable HTML ({exc})") from None
    parser._flush()
    in_main = [b for inside, b in parser.blocks if inside]
    blocks = in_main or [b for _, b in parser.blocks]
    title = " ".join("".join(parser.title_parts).split()) or stem
    return ParsedDocument(format="html", title=title, blocks=tuple(blocks))


def load_markdown(data: bytes, stem: str) -> ParsedDocument:
    from markdown_it import MarkdownIt

    text = decode_text(data)
    lines = text.split("\n")
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    stack: list[tuple[int, str]] = []
    blocks: list[Block] = []
    for i, tok in enumerate(tokens):
        if tok.level != 0 or tok.map is None or tok.nesting == -1:
            continue
        if tok.type == "heading_open":
            level = int(tok.tag[1])
            heading = " ".join(tokens[i + 1].content.split())
            stack = [(lvl, t) for lvl, t in stack if lvl < level] + [(level, heading)]
            blocks.append(Block(text=heading, headings=tuple(t for _, t in stack), kind="heading"))
            continue
        source = "\n".join(lines[tok.map[0] : tok.map[1]]).strip()
        if source and tok.type != "hr":
            kind = "table" if tok.type == "table_open" else "text"
            blocks.append(Block(text=source, headings=tuple(t for _, t in stack), kind=kind))
    title = next((b.text for b in blocks if b.kind == "heading"), stem)
    return ParsedDocument(format="markdown", title=title, blocks=tuple(blocks))
