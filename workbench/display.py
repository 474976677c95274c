"""Rich display of the records in Jupyter: the HTML behind each record's ``_repr_html_``.

Kept apart from `workbench.records` so that the records stay plain data (this module imports none of
them: it reads their fields); every value is escaped.
Leaves out: the web app's rendering (`workbench_web.render`), which has its own safety rules.
"""

from __future__ import annotations

import html
import re


def hit_html(hit) -> str:
    """HTML of one `Hit` for Jupyter."""
    c = hit.chunk
    return (
        f"<div><b>{hit.rank}.</b> <code>{html.escape(c.display_path)}</code> "
        f"{html.escape(c.location)} <i>{html.escape(' > '.join(c.headings))}</i> "
        f"score {hit.score:.3f}<br><small>{html.escape(c.text[:400])}</small></div>"
    )


def report_html(report) -> str:
    """HTML of one `IngestReport` for Jupyter."""
    rows = "".join(
        f"<tr><td><code>{html.escape(f.path)}</code></td><td>{html.escape(f.reason)}</td></tr>"
        for f in report.failed
    )
    table = f"<table><tr><th>failed file</th><th>reason</th></tr>{rows}</table>" if rows else ""
    lists = [(name, items) for name, items in (
        ("added", report.added), ("changed", report.changed),
        ("renamed", [f"{a} → {b}" for a, b in report.renamed]), ("deleted", report.deleted),
        ("skipped", [str(f) for f in report.skipped])) if items]
    details = "".join(
        f"<details><summary>{name} ({len(items)})</summary><ul>"
        + "".join(f"<li><code>{html.escape(str(i))}</code></li>" for i in items) + "</ul></details>"
        for name, items in lists)
    return f"<div><p>{html.escape(report.summary())}</p>{table}{details}</div>"


def hits_html(hits) -> str:
    """HTML of one `Hits` for Jupyter."""
    if not hits:
        return "<p>no matching chunks</p>"
    rows = []
    for h in hits:
        c = h.chunk
        rows.append(
            f"<tr><td>{h.rank}</td><td>{h.score:.3f}</td>"
            f"<td>{'' if h.dense_score is None else f'{h.dense_score:.2f}'}</td>"
            f"<td>{'' if h.lexical_score is None else f'{h.lexical_score:.1f}'}</td>"
            f"<td><b>{html.escape(c.title)}</b><br><code>{html.escape(c.display_path)}</code> "
            f"{html.escape(c.location)}</td><td><small>{html.escape(' '.join(c.text.split())[:300])}</small></td></tr>")
    return ("<table><tr><th>#</th><th>score</th><th>cosine</th><th>bm25</th><th>document</th><th>passage</th></tr>"
            + "".join(rows) + "</table>")


def status_html(status) -> str:
    """HTML of one `IndexStatus` for Jupyter."""
    return "<pre>" + html.escape(str(status)) + "</pre>"


def answer_html(answer) -> str:
    """HTML of one `Answer` for Jupyter."""
    key = f"wb{id(answer):x}"  # anchors unique to this answer, so several answers share a notebook
    body = html.escape(answer.text)
    body = re.sub(r"\[(\d+)\]", rf'<a href="#{key}-\1">[\1]</a>', body)
    scores = {i: h for i, h in enumerate(answer.hits, start=1)}
    items = []
    for c in answer.citations:
        h = scores.get(c.number)
        score = ""
        if h is not None:
            parts = [f"score {h.score:.3f}"] + ([f"cosine {h.dense_score:.2f}"] if h.dense_score is not None else []) \
                + ([f"bm25 {h.lexical_score:.1f}"] if h.lexical_score is not None else [])
            score = f" <small>({', '.join(parts)})</small>"
        cited = " ✓" if c in answer.cited else ""
        items.append(f'<li id="{key}-{c.number}"><b>[{c.number}]</b>{cited} {html.escape(c.title)} — '
                     f"<code>{html.escape(c.path)}</code> {html.escape(c.location)}{score}"
                     f"{' <i>' + html.escape(c.ocr_note) + '</i>' if c.ocr_note else ''}<br>"
                     f"<small>{html.escape(c.snippet)}</small></li>")
    t = answer.timings
    meta = (f"generation {answer.generation} · {html.escape(answer.model)} · retrieval {t.retrieval_ms:.0f} ms"
            f" · first token {t.time_to_first_token_s:.2f} s · {t.tokens_per_s:.1f} tok/s"
            f" · total {t.total_s:.2f} s")
    flags = "".join(f"<li>{html.escape(str(f))}</li>" for f in answer.flags())
    return (f"<div><p>{body}</p><ol style='list-style:none'>{''.join(items)}</ol><small>{meta}</small>"
            f"{'<ul>' + flags + '</ul>' if flags else ''}</div>")
