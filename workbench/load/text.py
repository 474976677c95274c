"""Plain text: charset detection, a binary-junk guard, and paragraphs as blocks.

Leaves out: any structure beyond blank-line paragraphs (Markdown and HTML have their own loaders).
"""

from __future__ import annotations

import re

from workbench.errors import ParseError
from workbench.records import Block, ParsedDocument

_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def decode_text(data: bytes) -> str:
    """Bytes to str (UTF-8/UTF-16 BOMs honoured, other encodings detected).

    Raises ParseError when the bytes are not text (NUL bytes, or many control characters).
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    elif b"\x00" in data[:65536]:
        raise ParseError("binary content, not text (NUL bytes found)")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            from charset_normalizer import from_bytes

            best = from_bytes(data[: 1 << 20]).best()
            if best is None:
                raise ParseError("binary content, not text (no character encoding fits)") from None
            text = data.decode(best.encoding, errors="replace")
    sample = text[:65536]
    if sample and len(_CONTROL.findall(sample)) > 0.01 * len(sample):
        raise ParseError("binary content, not text (too many control characters)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def load_text(data: bytes, stem: str) -> ParsedDocument:
    paras = paragraphs(decode_text(data))
    first = paras[0].split("\n", 1)[0].strip() if paras else ""
    title = first if 0 < len(first) <= 120 else stem
    return ParsedDocument(format="text", title=title, blocks=tuple(Block(text=p) for p in paras))
