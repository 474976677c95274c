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
    subject = str(msg.get("subject", "") or "").strip()
    header = "\n".join(f"{k}: {msg[k]}" for k in ("From", "To", "Cc", "Date", "Subject") if msg.get(k))
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
    seen: set[str] = set()
    for attachment in msg.iter_attachments():
        name = attachment.get_filename() or "attachment"
        if name in seen:
            name = f"{len(seen)}-{name}"
        seen.add(name)
        if format_for(name) is None:
            errors[name] = "unsupported attachment type"
            continue
        try:
            payload = attachment.get_payload(decode=True) or b""
            for doc in parse_bytes(payload, name, limits):
                docs.append(ParsedDocument(format=doc.format, title=doc.title, blocks=doc.blocks,
                                           part=name, metadata={"attached_to": subject}))
        except ParseError as exc:
            errors[name] = str(exc)
    meta = {k.lower(): str(msg[k]) for k in ("From", "To", "Date", "Subject", "Message-ID") if msg.get(k)}
    if errors:
        meta["attachment_errors"] = json.dumps(errors)
    mail = ParsedDocument(format="email", title=subject or stem, blocks=tuple(blocks), metadata=meta)
    return [mail, *docs]
