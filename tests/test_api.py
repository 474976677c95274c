"""The public surface: __all__, a light import, the config file, the Python workflow of the README."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLE

import workbench
from workbench.config import load_config
from workbench.errors import ConfigError


def test_public_api_is_pinned():
    assert workbench.__all__ == [
        "Answer", "AnswerFlag", "AuditError", "Chunk", "Citation", "Config", "ConfigError", "Document",
        "EmptyIndexError", "FailureKind", "FileFailure", "Filters", "Hit", "Hits", "IndexBusyError",
        "IndexCorruptError", "IndexMismatchError", "IndexStatus", "IngestReport", "InvalidInputError",
        "ModelNotFoundError", "NotFoundError", "OcrPage", "Principal", "Reason", "Refusal", "SearchTrace",
        "SourceView", "Timings", "UploadRefusedError", "WeakEvidence", "Workbench", "WorkbenchError",
        "load_config",
    ]
    for name in workbench.__all__:
        assert getattr(workbench, name) is not None


def test_import_loads_no_model_library_and_sets_offline_switches():
    code = ("import sys, os, workbench; heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', "
            "'faiss') if m in sys.modules]; print(heavy, os.environ['HF_HUB_OFFLINE'], "
            "os.environ['TRANSFORMERS_OFFLINE'], os.environ['GRADIO_ANALYTICS_ENABLED'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert out.stdout.split() == ["[]", "1", "1", "False"], out.stderr


def test_config_file_relative_index_dir_and_typos(tmp_path):
    cfg_file = tmp_path / "workbench.toml"
    cfg_file.write_text('[index]\ndir = "my-index"\n[chunking]\nmax_tokens = 128\n')
    cfg = load_config(cfg_file)
    assert cfg.index.dir == tmp_path / "my-index"
    assert cfg.chunking.max_tokens == 128
    cfg_file.write_text("[chunking]\nmax_token = 128\n")
    with pytest.raises(ConfigError, match="chunking.max_token: Extra inputs are not permitted"):
        load_config(cfg_file)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_missing_embedding_model_says_what_to_do():
    from workbench.config import EmbeddingSettings
    from workbench.embed import load_embedder
    from workbench.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="never downloads"):
        load_embedder(EmbeddingSettings(model="intfloat/multilingual-e5-small"))


def test_python_workflow_with_rich_reprs(tmp_path, make_wb):
    wb = make_wb()
    report = wb.ingest(SAMPLE, collection="handbook", progress=False)
    assert report.ok
    assert "9 added" in report.summary()
    assert "<table" not in report._repr_html_()
    hits = wb.search("Who manages the Hamburg office?", k=3)
    assert hits[0].chunk.path.endswith("offices.xlsx")
    # the manager's row is one of the two best passages (the holiday sheet, which names "offices" and
    # Hamburg more often, is BM25's first; the dense side prefers the manager's row)
    row = next(h for h in hits[:2] if h.chunk.sheet == "Offices")
    assert "Jonas Weber" in row.chunk.text
    assert "offices.xlsx" in hits[0]._repr_html_()
    assert "generation:   1" in str(wb.status())
    assert "<pre>" in wb.status()._repr_html_()
    docs = {d.display_path.rsplit("/", 1)[-1]: d for d in wb.documents()}
    assert docs["hangar4-announcement.eml » shuttle-notice.txt"].format == "text"
    assert all(d.groups == ("staff",) for d in docs.values())  # data/sample/.workbench-access


def test_the_bundled_workbench_toml_states_the_defaults():
    from conftest import ROOT

    from workbench.config import Config

    bundled, defaults = load_config(ROOT / "workbench.toml"), Config()
    for section in ("index", "embedding", "chunking", "ingest", "retrieval", "llm", "answer"):
        if section == "index":
            assert bundled.index.keep_generations == defaults.index.keep_generations
            assert bundled.index.dir == ROOT / "workbench-index"
        else:
            assert getattr(bundled, section) == getattr(defaults, section), section


def test_a_non_editable_install_ships_the_prompt_templates():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["package-data"]["workbench"] == ["prompts/*.toml"]
    assert (ROOT / "workbench" / "prompts" / "grounded.toml").exists()


def _modules(package: str) -> list:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def test_the_library_never_imports_the_web_app():
    import ast

    for path in _modules("workbench"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in ("workbench_web", "apps")], path


def test_sql_lives_in_the_catalog_and_store_layer():
    allowed = {ROOT / "workbench" / "index" / "catalog.py", ROOT / "workbench" / "index" / "cache.py"}
    for path in _modules("workbench"):
        if path in allowed or "stores" in path.parts:
            continue
        text = path.read_text()
        assert ".execute(" not in text, path
        assert "SELECT " not in text, path


def test_the_readme_layout_names_every_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    for package in ("workbench", "workbench_web"):
        for path in _modules(package):
            name = path.name if path.parent.name in ("workbench", "workbench_web") else f"{path.parent.name}/"
            if name == "__init__.py":
                continue
            assert name.replace(".py", "") in layout, f"{path.relative_to(ROOT)} is missing from the README's layout"


def test_every_exception_of_the_project_is_in_the_error_tree():
    import ast

    from workbench.executors.cluster import ClusterError
    from workbench.errors import BadRequest, InvalidInputError, WorkbenchError

    assert issubclass(ClusterError, WorkbenchError) and issubclass(BadRequest, InvalidInputError)
    for package in ("workbench", "workbench_web"):
        for path in _modules(package):
            if path == ROOT / "workbench" / "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                bases = [ast.unparse(b) for b in node.bases] if isinstance(node, ast.ClassDef) else []
                assert not [b for b in bases if b.endswith(("Error", "Exception"))], \
                    f"{path.relative_to(ROOT)}: {node.name} belongs in workbench/errors.py"


def test_a_handed_in_embedder_is_checked_against_the_protocol_at_once(embedder):
    from workbench.config import Config
    from workbench.errors import InvalidInputError
    from workbench.pipeline import Workbench

    class Partial:  # what a notebook might hand in: the two embedding calls and nothing else
        name, dim = "mine", 384

        def embed_documents(self, texts):
            return embedder.embed_documents(texts)

        def embed_query(self, text):
            return embedder.embed_query(text)

    with pytest.raises(InvalidInputError, match="lacks cache_key, count_tokens, describe, device, prepare_queries"):
        Workbench(Config(), embedder=Partial())
    assert Workbench(Config(), embedder=embedder).embedder is embedder
