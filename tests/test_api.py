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
        "Answer", "Chunk", "Citation", "Config", "ConfigError", "Document", "EmptyIndexError", "FileFailure", "Hit", "IndexBusyError",
        "IndexMismatchError", "IndexStatus", "IngestReport", "ModelNotFoundError", "Workbench", "WorkbenchError",
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
    assert cfg.index.dir == tmp_path / "my-index" and cfg.chunking.max_tokens == 128
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
    assert report.ok and "9 added" in report.summary() and "<table" not in report._repr_html_()
    hits = wb.search("Who manages the Hamburg office?", k=3)
    assert hits[0].chunk.path.endswith("offices.xlsx") and hits[0].chunk.sheet == "Offices"
    assert "Jonas Weber" in hits[0].chunk.text and "offices.xlsx" in hits[0]._repr_html_()
    assert "generation:   1" in str(wb.status()) and "<pre>" in wb.status()._repr_html_()
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
