"""E-mail (.eml): headers and body as one document, each attachment as a document of its own.

The body prefers text/plain and falls back to the HTML part (through the HTML loader). An
attachment of a supported type is parsed by its own loader, with part = its file name; one that
fails is recorded in the e-mail's metadata (key 'attachment_errors') and does not fail the mail.
Leaves out: S/MIME decryption, inline images, calendar invites.
"""

from __future__ import annotations

import email
import email.policy
import json

from workbench.errors import ParseError
from workbench.records import Block, ParsedDocument


def load_email(data: bytes, stem: str, limits) -> list[ParsedDocument]:
    from workbench.load import format_for, parse_bytes
    from workbench.load.text import paragraphs
    from workbench.load.web import load_html

    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
    except Exception as exc:  # the stdlib parser is lenient; this is a last resort
        raise ParseError(f"unreadable e-mail ({exc})") from None
    if not msg.keys():
        raise ParseError("not an e-mail message (no headers found)")
    subject = _header(msg, "Subject").strip()
    header = "\n".join(f"{k}: {_header(msg, k)}" for k in ("From", "To", "Cc", "Date", "Subject") if _header(msg, k))
    blocks = [Block(text=header, headings=(subject,) if subject else (), kind="heading")]
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is not None:
        try:
            content = body.get_content()
        except (LookupError, UnicodeError, ValueError):  # an unknown or lying charset: read the bytes leniently
            from workbench.load.text import decode_text

            content = decode_text(body.get_payload(decode=True) or b"")
        if body.get_content_type() == "text/html":
            content_blocks = [b.text for b in load_html(content.encode("utf-8"), stem).blocks]
        else:
            content_blocks = paragraphs(content.replace("\r\n", "\n"))
        blocks += [Block(text=p, headings=(subject,) if subject else ()) for p in content_blocks]
    docs: list[ParsedDocument] = []
    errors: dict[str, str] = {}
    taken: set[str] = {""}  # "" is the message itself
    for attachment in msg.iter_attachments():
        try:
            filename = attachment.get_filename()
        except (IndexError, ValueError, TypeError, AttributeError, LookupError):
            filename = None  # a malformed Content-Disposition: the stdlib parser raises on some
        name = _unique(filename or "attachment", taken)
        if format_for(name) is None:
            errors[name] = "unsupported attachment type"
            continue
        try:
            payload = attachment.get_payload(decode=True) or b""
            for doc in parse_bytes(payload, name, limits):  # an attached e-mail gives several parts
                part = name if not doc.part else _unique(f"{name} » {doc.part}", taken)
                docs.append(ParsedDocument(format=doc.format, title=doc.title, blocks=doc.blocks,
                                           part=part, metadata={**{k: v for k, v in doc.metadata.items()
                                                                   if k.startswith("ocr_")}, "attached_to": subject},
                                           ocr_pages=doc.ocr_pages, ocr_seconds=doc.ocr_seconds,
                                           tables_seconds=doc.tables_seconds))
        except ParseError as exc:
            errors[name] = str(exc)
    meta = {k.lower(): _header(msg, k) for k in ("From", "To", "Date", "Subject", "Message-ID") if _header(msg, k)}
    if errors:
        meta["attachment_errors"] = json.dumps(errors)
    mail = ParsedDocument(format="email", title=subject or stem, blocks=tuple(blocks), metadata=meta)
    return [mail, *docs]


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``a (2).txt``, ``a (3).txt``... for ``a.txt``: the first not in ``taken`` (which it
    joins), keeping the extension that picks the parser. Part names identify a file's documents, so
    two attachments with one name must not share it."""
    dot = name.rfind(".")
    stem, suffix = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem} ({n}){suffix}"
    taken.add(candidate)
    return candidate


def _header(msg, name: str) -> str:
    """A header's text; the raw value when the stdlib's structured parser fails on a malformed one
    (it raises IndexError on some broken addresses), "" when absent."""
    try:
        return str(msg.get(name, "") or "")
    except (IndexError, ValueError, TypeError, AttributeError, LookupError):
        raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), "")
        return str(raw)
