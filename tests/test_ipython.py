"""Jupyter integration in a real IPython shell: the rich displays and the %search / %%ask magics."""

from __future__ import annotations

import re

import pytest


@pytest.fixture(scope="module")
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "workbench")
    return ip


def html_of(shell, obj) -> str:
    data, _ = shell.display_formatter.format(obj)
    assert "text/html" in data, f"{type(obj).__name__} has no HTML display"
    return data["text/html"]


def test_search_magic_returns_hits_shown_as_a_table(shell, sample_wb):
    shell.user_ns["wb"] = sample_wb
    hits = shell.run_line_magic("search", "-k 3 --mode lexical unused leave days carried over")
    assert len(hits) == 3
    assert hits[0].chunk.title == "Northwind Aero Employee Handbook 2026"
    page = html_of(shell, hits)
    assert page.count("<tr>") == 4
    assert "page 2" in page
    assert "bm25" in page
    assert str(hits).startswith("1. [score")


def test_search_magic_reports_bad_arguments(shell, sample_wb):
    from IPython.core.error import UsageError

    shell.user_ns["wb"] = sample_wb
    with pytest.raises(UsageError):
        shell.run_line_magic("search", "--mode sideways leave")


def test_ask_magic_streams_into_the_cell_and_returns_the_answer(shell, sample_wb):
    from IPython.utils.capture import capture_output

    shell.user_ns["wb"] = sample_wb
    with capture_output() as captured:
        answer = shell.run_cell_magic("ask", "-k 3", "When does the shuttle bus leave car park D?\n")
    streamed = [o.data.get("text/html", "") for o in captured.outputs]
    assert len(streamed) >= 1
    assert "searching" in streamed[0]
    assert not answer.refused
    assert answer.text
    assert len(answer.citations) == 3
    page = html_of(shell, answer)
    assert "Shuttle timetable" in page
    assert re.search(r"score \d\.\d{3}", page)
    assert "tok/s" in page
    for n in re.findall(r'href="#(wb[0-9a-f]+-\d+)"', page):  # citation links point at listed sources
        assert f'id="{n}"' in page


def test_ask_magic_needs_a_question(shell, sample_wb):
    shell.user_ns["wb"] = sample_wb
    with pytest.raises(ValueError, match="write the question"):
        shell.run_cell_magic("ask", "", "   \n")


def test_reports_and_status_display_richly(shell, make_wb, tmp_path):
    from conftest import make_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "a.pdf", ["Alpha page about turbines."])
    (docs / "bad.pdf").write_bytes(b"%PDF-1.7 not really")
    wb = make_wb()
    report = wb.ingest(docs, progress=False)
    page = html_of(shell, report)
    assert "bad.pdf" in page
    assert "<details><summary>added (1)</summary>" in page
    assert "a.pdf" in page
    status = html_of(shell, wb.status())
    assert "generation" in status.lower()
    assert "bad.pdf" in status


def test_magics_act_as_a_named_user(shell, sample_wb):
    from workbench.errors import NotFoundError

    shell.user_ns["wb"] = sample_wb
    sample_wb.users.add("guest", "a long password", "visitors")  # no document is shared with "visitors"
    assert len(shell.run_line_magic("search", "--as-user guest annual leave")) == 0
    assert len(shell.run_line_magic("search", "annual leave")) > 0  # the operator reads everything
    with pytest.raises(NotFoundError):
        shell.run_line_magic("search", "--as-user nobody annual leave")
