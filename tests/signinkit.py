"""A small site for the directory sign-in tests: a staff document and a finance document, ingested.

`docs_site` writes ``workbench.toml`` with the ``[auth]`` settings a test gives and returns the
config path and the chunk ids of each document (the source viewer answers 404 for a chunk its user
may not read, so ``GET /source/ID`` shows a user's rights through the real server).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from workbench.config import Config, load_config
from workbench.pipeline import Workbench

STAFF_TEXT = "Staff notice CANARY-STAFF-1180: the canteen opens at 7:30 from Monday."
FINANCE_TEXT = "Payroll memo CANARY-FIN-5521: the bonus pool for 2027 is 4.2 million."


def toml_value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def auth_toml(auth: dict) -> str:
    """``auth`` (with ``ldap`` / ``oidc`` sub-tables) as TOML tables."""
    lines = ["[auth]"] + [f"{k} = {toml_value(v)}" for k, v in auth.items() if k not in ("ldap", "oidc")]
    for sub in ("ldap", "oidc"):
        if sub in auth:
            lines += [f"[auth.{sub}]"] + [f"{k} = {toml_value(v)}" for k, v in auth[sub].items()]
    return "\n".join(lines) + "\n"


def docs_site(base: Path, embedder, auth: dict, web: str = "") -> dict:
    """Ingest the two documents under ``base``; ``workbench.toml`` there holds ``auth`` and ``web``."""
    docs = base / "docs"
    for group, text in (("staff", STAFF_TEXT), ("finance", FINANCE_TEXT)):
        (docs / group).mkdir(parents=True)
        (docs / group / f"{group}.txt").write_text(text)
        (docs / group / ".workbench-access").write_text(f'groups = ["{group}"]\n')
    cfg = base / "workbench.toml"
    cfg.write_text(f'[index]\ndir = "index"\n[llm]\nmax_new_tokens = 30\n[web]\n{web}\n' + auth_toml(auth))
    load_config(cfg)  # the settings a user would write must validate
    wb = Workbench(Config().with_index_dir(base / "index"), embedder=embedder)
    for group in ("staff", "finance"):
        assert wb.ingest(docs / group, collection=group, progress=False).ok
    chunks = {("finance" if "CANARY-FIN" in c.text else "staff"): c.chunk_id
              for c in wb.chunks()}
    return {"cfg": cfg, "index": base / "index", "chunks": chunks}


def eventually(check, timeout: float = 30.0) -> bool:
    """Whether ``check()`` becomes true within ``timeout`` seconds (sessions refresh in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False
