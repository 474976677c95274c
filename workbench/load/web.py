"""HTML (lxml) and Markdown (markdown-it-py), with their heading hierarchy.

HTML: scripts, styles, navigation, headers, footers, asides and forms are dropped; the main text
(<main>, else <article>, else <body>) is walked once, iteratively (10,000-level nesting costs no
recursion), into heading, paragraph, list-item and table-row blocks. Markdown: top-level blocks
keep their source text; ATX/setext headings form the heading path. Leaves out: rendering,
images, link targets.
"""

from __future__ import annotations

from workbench.errors import ParseError
from workbench.load.text import decode_text
from workbench.records import Block, ParsedDocument

_DROP = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "template",
         "svg", "iframe", "button", "select", "head")
_BLOCK = {"p", "div", "li", "pre", "blockquote", "dd", "dt", "figcaption", "caption", "section",
          "article", "main", "ul", "ol", "dl", "table", "tr", "br", "hr", "address", "td", "th"}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}


class _Collector:
    """Accumulates text and turns it into blocks at block-element boundaries."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.blocks: list[Block] = []
        self.stack: list[tuple[int, str]] = []

    def flush(self, kind: str = "text") -> None:
        text = " ".join("".join(self.buf).split())
        self.buf.clear()
        if not text:
            return
        if kind == "heading":
            return
        self.blocks.append(Block(text=text, headings=tuple(t for _, t in self.stack), kind=kind))

    def heading(self, level: int) -> None:
        text = " ".join("".join(self.buf).split())
        self.buf.clear()
        if text:
            self.stack = [(lvl, t) for lvl, t in self.stack if lvl < level] + [(level, text)]
            self.blocks.append(Block(text=text, headings=tuple(t for _, t in self.stack), kind="heading"))


def load_html(data: bytes, stem: str) -> ParsedDocument:
    import lxml.etree
    import lxml.html

    try:
        root = lxml.html.document_fromstring(data)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise ParseError(f"unreadable HTML ({exc})") from None
    title = " ".join((root.findtext(".//title") or "").split()) or stem
    for el in list(root.iter(*_DROP)):
        el.drop_tree()
    main = root.find(".//main")
    if main is None:
        main = root.find(".//article")
    if main is None:
        main = root.find(".//body")
    if main is None:
        main = root
    out = _Collector()
    for event, el in lxml.etree.iterwalk(main, events=("start", "end")):
        tag = el.tag if isinstance(el.tag, str) else ""
        if event == "start":
            if tag in _BLOCK or tag in _HEADINGS:
                out.flush()
            if tag and el.text:
                out.buf.append(el.text)
            if tag in ("td", "th"):
                out.buf.append(" ")
        else:
            if tag in _HEADINGS:
                out.heading(_HEADINGS[tag])
            elif tag in ("td", "th"):
                out.buf.append(" | ")
            elif tag in _BLOCK:
                out.flush("row" if tag == "tr" else "text")
            if el.tail and el is not main:
                out.buf.append(el.tail)
    out.flush()
    return ParsedDocument(format="html", title=title, blocks=tuple(out.blocks))


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
