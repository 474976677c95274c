"""Two staff-app processes on one index folder (replicas behind one proxy): a `workbench reindex`
run beside them is seen by both at their next question, and both accept the same users."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLE, run_cli
from test_web_security import ask_http, signed_in
from webkit import Server, add_user

pytestmark = pytest.mark.slow
QUESTION = "Which system do travel receipts go to?"


def everything(messages: list[dict]) -> str:
    return json.dumps(messages, ensure_ascii=False)


def test_two_app_processes_on_one_index_both_see_a_reindex(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for f in SAMPLE.iterdir():
        (docs / f.name).write_bytes(f.read_bytes())
    cfg = tmp_path / "workbench.toml"
    cfg.write_text('[index]\ndir = "index"\n[llm]\nmax_new_tokens = 24\n[access]\ncollections = { default = ["staff"] }\n')
    assert run_cli("ingest", str(docs), "--config", str(cfg)).returncode == 0
    add_user(cfg, "sam", "staff", "replica-test-password")
    one, two = Server(cfg), Server(cfg)
    try:
        clients = [signed_in(s.url, "sam", "replica-test-password") for s in (one, two)]
        for http in clients:
            assert "quasar" not in everything(ask_http(http, QUESTION))
        (docs / "travel-policy.md").write_text("# Travel policy\n\nReceipts go to the quasar-ledger system "
                                               "within 14 days of the trip.\n")
        done = run_cli("reindex", "--config", str(cfg))
        assert done.returncode == 0, done.stderr
        for http in clients:  # neither was restarted: each opens the new generation on its next search
            assert "quasar-ledger" in everything(ask_http(http, QUESTION))
    finally:
        one.stop()
        two.stop()
