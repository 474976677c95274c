"""The analysts' notebooks run top to bottom (nbclient, real kernel, real small models), in order.

Executed copies (with outputs) are written to test-artifacts/notebooks/ for inspection; the
committed notebooks carry no outputs.
"""

from __future__ import annotations

import os

import nbformat
import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
OUT = ROOT / "test-artifacts" / "notebooks"
CRANFIELD = ROOT.parent / "shared" / "eval" / "cranfield"


def test_the_four_notebooks_exist_and_are_committed_without_outputs():
    assert [p.stem for p in NOTEBOOKS] == ["01_ingest", "02_explore_index", "03_ask", "04_evaluate"]
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        assert book.cells[0].cell_type == "markdown"
        for cell in book.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name} has outputs"
                assert cell.execution_count is None, f"{path.name} has outputs"


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory):
    """Notebooks write into a scratch folder; answers stay short with the tiny model."""
    saved = dict(os.environ)
    os.environ["WORKBENCH_NOTEBOOK_DIR"] = str(tmp_path_factory.mktemp("notebook-work"))
    os.environ["WORKBENCH_NOTEBOOK_MAX_NEW_TOKENS"] = "32"
    os.environ["WORKBENCH_CRANFIELD"] = str(CRANFIELD)
    OUT.mkdir(parents=True, exist_ok=True)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, notebook_env):
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()  # raises CellExecutionError with the cell and traceback on any error
    finally:
        nbformat.write(book, OUT / path.name)
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("text/html" in o.get("data", {}) or "image/png" in o.get("data", {}) for o in outputs)
