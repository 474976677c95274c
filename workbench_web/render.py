"""Turning workbench records into what the staff app shows: safe Markdown and HTML.

Model output is untrusted: every ASCII punctuation character is backslash-escaped before it goes
into the chat's Markdown, so the model (or a document it quotes) cannot make a link, an image, a
raw-HTML tag or an auto-link; only the citation markers the workbench checked become links, to
this app's own source viewer. HTML built here escapes every value it inserts. Nothing here calls
the pipeline.
"""

from __future__ import annotations

import html
import re
import time

from workbench.records import Answer, Citation, IndexStatus

_SPECIAL = set("\\`*_[](){}<>#!|~&$@")  # @: no e-mail (mailto) auto-links
_MARKER = re.compile(r"\\\[(\d+)\\\]")  # an escaped "[n]"
_AUTOLINK = re.compile(r"(?i)(://|www\.)")


def escape_markdown(text: str) -> str:
    """``text`` that Markdown renders literally: no links, images, HTML, emphasis, maths or auto-links.

    Characters that start Markdown or HTML syntax are backslash-escaped, and ``://`` / ``www.``
    are broken up so that no renderer turns a bare address into a link.
    """
    text = "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)
    return _AUTOLINK.sub(lambda m: ":\\/\\/" if m.group(1) == "://" else m.group(1)[:3] + "\\.", text)


def source_href(chunk_id: int) -> str:
    """The viewer URL of a passage, relative so that it works under a reverse-proxy prefix."""
    return f"source/{int(chunk_id)}"


def _where(c: Citation) -> str:
    return c.location or (c.part or "")


def answer_markdown(text: str, citations: tuple[Citation, ...] = ()) -> str:
    """Model text made safe, each valid [n] a link to source n's viewer, and a line of source links.

    The line lists the cited sources, or, when the model cited none, every passage it was given.
    """
    by_number = {c.number: c for c in citations}

    def link(m: re.Match) -> str:
        c = by_number.get(int(m.group(1)))
        if c is None:
            return m.group(0)
        label = escape_markdown(f"{c.title}{', ' + _where(c) if _where(c) else ''}").replace('"', "'")
        return f'[\\[{c.number}\\]]({source_href(c.chunk_id)} "{label}")'

    escaped = escape_markdown(text)
    body = _MARKER.sub(link, escaped)
    cited = {int(n) for n in _MARKER.findall(escaped)} & set(by_number)
    listed = [by_number[n] for n in sorted(cited)] or list(citations)
    if not listed:
        return body
    label = "Sources" if cited else "Passages the answer was drawn from (the model cited none)"
    chips = " ".join(f"[\\[{c.number}\\]]({source_href(c.chunk_id)})" for c in listed)
    return f"{body}\n\n*{label}:* {chips}"


def sources_html(answer: Answer | None) -> str:
    """The sources panel: each cited document with title, location, passage and an open link."""
    if answer is None:
        return "<div class='wb-empty'>Sources of the answer appear here.</div>"
    if answer.refused:
        reason = html.escape(answer.refusal_reason or "the documents do not cover this question")
        return f"<div class='wb-empty'>No sources: {reason}.</div>"
    shown = answer.cited or answer.citations
    items = []
    for c in shown:
        where = html.escape(_where(c))
        open_label = f"Open at {where}" if c.page is not None else "Open in context"
        items.append(
            f"<div class='wb-source' id='wb-src-{c.number}'>"
            f"<div class='wb-source-head'><span class='wb-num'>[{c.number}]</span> "
            f"<b>{html.escape(c.title)}</b>{' · ' + where if where else ''}</div>"
            f"<div class='wb-passage'>{html.escape(c.snippet)}</div>"
            + (f"<div class='wb-ocr'>{html.escape(c.ocr_note)}</div>" if c.ocr_note else "") +
            f"<a class='wb-open' href='{source_href(c.chunk_id)}' target='_blank' rel='noopener'>{open_label}</a>"
            "</div>")
    return "".join(items) or "<div class='wb-empty'>The answer cites no source.</div>"


def status_html(status: IndexStatus) -> str:
    """Index status for admins: counts, last sync, collections, failed files."""
    published = status.published_at or "never"
    rows = [("Documents", status.documents), ("Passages (chunks)", status.chunks),
            ("Index generation", status.generation), ("Last sync", published),
            ("Embedding model", status.embedding_model or "-")]
    rows += [(k, v) for k, v in (("Embedding runtime", status.embedding_runtime), ("CPU", status.cpu)) if v]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    cols = "".join(f"<li>{html.escape(k)}: {v} document{'' if v == 1 else 's'}</li>" for k, v in sorted(status.collections.items()))
    fails = "".join(f"<li><code>{html.escape(f.path)}</code>: {html.escape(f.reason)}</li>" for f in status.failures)
    return (f"<table class='wb-status'>{table}</table>"
            f"<h4>Collections</h4><ul>{cols or '<li>none yet</li>'}</ul>"
            f"<h4>Files that could not be read ({len(status.failures)})</h4><ul>{fails or '<li>none</li>'}</ul>")


def upload_rows_markdown(rows: list[tuple[str, str, str]]) -> str:
    """Per-file upload results as a Markdown table (file, result, detail), values escaped."""
    if not rows:
        return ""
    lines = ["| File | Result | Detail |", "|---|---|---|"]
    lines += [f"| {escape_markdown(n)} | {escape_markdown(r)} | {escape_markdown(d)} |" for n, r, d in rows]
    return "\n".join(lines)


def feedback_rows(entries) -> list[list[str]]:
    """Feedback entries as table rows for a Dataframe (newest first)."""
    return [[time.strftime("%Y-%m-%d %H:%M", time.localtime(f.created_at)), f.user, "helpful" if f.rating > 0 else "not helpful",
             f.comment, f.question, f.answer[:500], ", ".join(f"[{c['number']}] {c['title']}" for c in f.citations),
             str(f.generation)] for f in entries]


def source_page(view, file_href: str, image_href: str | None) -> str:
    """A stand-alone HTML page showing one passage in its document (the citation's target)."""
    doc, chunk = view.document, view.chunk
    title = html.escape(doc.title)
    where = html.escape(chunk.location or "")
    heading = " › ".join(html.escape(h) for h in chunk.headings)
    image = (f"<figure><img id='wb-page' src='{html.escape(image_href)}' alt='{title}, {where}'>"
             f"<figcaption>{title} — {where}</figcaption></figure>") if image_href else ""
    open_label = f"Open the PDF at {where}" if view.is_pdf else "Download the original file"
    ocr = "" if view.ocr_confidence is None else (
        f"<p id='wb-ocr'>This page was read by OCR (mean word confidence {view.ocr_confidence:.0f}%): "
        "check the original for the exact wording and figures.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}{' — ' + where if where else ''}</title>
<style>
 body {{ font-family: system-ui, sans-serif; max-width: 72rem; margin: 1.5rem auto; padding: 0 1rem; color: #1f2937; }}
 header p {{ color: #4b5563; margin: .25rem 0; }}
 .wb-layout {{ display: grid; grid-template-columns: {'minmax(0,1fr) minmax(0,1fr)' if image_href else '1fr'}; gap: 1.5rem; }}
 figure {{ margin: 0; }} figure img {{ width: 100%; border: 1px solid #d1d5db; }}
 figcaption {{ color: #6b7280; font-size: .9rem; }}
 .wb-text {{ white-space: pre-wrap; line-height: 1.5; background: #f9fafb; padding: 1rem; border-radius: .5rem; }}
 mark {{ background: #fde68a; }}
 a.wb-button {{ display: inline-block; margin: .75rem 0; padding: .5rem .9rem; background: #2563eb; color: white;
               border-radius: .4rem; text-decoration: none; }}
</style></head>
<body>
<header><h1 id="wb-title">{title}</h1>
<p id="wb-where">{where}{' · ' + heading if heading else ''}</p>
<p>{html.escape(doc.format.upper())} · collection {html.escape(doc.collection)} · {html.escape(doc.display_path.rsplit('/', 1)[-1])}</p>
{ocr}
<a class="wb-button" id="wb-open" href="{html.escape(file_href)}">{open_label}</a></header>
<div class="wb-layout">{image}
<div class="wb-text" id="wb-context">{html.escape(view.before)}<mark id="wb-passage">{html.escape(chunk.text)}</mark>{html.escape(view.after)}</div>
</div></body></html>"""


def key_row(key) -> list[str]:
    """One row of the API keys table (never the secret; the label is shown as plain text by the Dataframe)."""
    from workbench.stores.keys import when

    return [key.id, key.label, ", ".join(key.scopes), when(key.created_at), when(key.last_used),
            when(key.expires_at) if key.expires_at else "never", key.state]
