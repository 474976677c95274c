"""`[access] from = "posix"`: readers from real files' owners, groups, mode bits and POSIX ACLs (set
with `setfacl`), through the Python API, `reindex` and `workbench access explain`.

The POSIX users and groups are the system's own (adm, users, daemon), mapped to workbench groups by
``[access] posix_groups``. Runs as root (CI does), which may chown and chgrp.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import run_cli
from workbench.access import EVERYONE, user_group
from workbench.config import Config
from workbench.pipeline import Workbench
from workbench.records import Principal

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setfacl"),
                                reason="needs root and Debian's acl package (make setup-directory)")

FIN, STAFF, DAEMON, ANY = (Principal("fin", ("finance",)), Principal("stf", ("staff",)), Principal("daemon", ()),
                           Principal("someone", ()))
TEXTS = {"open.txt": "Canteen menu OPEN-3310: soup on Mondays.",
         "ledger.txt": "General ledger LEDGER-7720: the reserve is 1.2 million.",
         "acl.txt": "Roster ACL-5150: the night shift starts at ten.",
         "closed/inside.txt": "Audit plan INSIDE-9044: the auditors arrive in March.",
         "owner-denied.txt": "Draft DENIED-6611: world-readable, but not by its owner.",
         "override/hr.txt": "Appraisal OVERRIDE-2025: the access file decides here."}


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


@pytest.fixture()
def site(tmp_path, embedder):
    docs = tmp_path / "docs"
    for rel, text in TEXTS.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text)
    for folder in (docs, docs / "override"):
        os.chmod(folder, 0o755)
    os.chmod(docs / "open.txt", 0o644)                       # anyone
    sh("chgrp", "adm", str(docs / "ledger.txt"))
    os.chmod(docs / "ledger.txt", 0o640)                     # group adm -> finance
    sh("chown", "daemon:daemon", str(docs / "acl.txt"))
    os.chmod(docs / "acl.txt", 0o600)
    sh("setfacl", "-m", "g:users:r", str(docs / "acl.txt"))  # owner daemon, and group users -> staff
    sh("chgrp", "adm", str(docs / "closed"))
    os.chmod(docs / "closed", 0o750)                         # only adm may pass through
    os.chmod(docs / "closed" / "inside.txt", 0o644)          # world-readable, inside a closed folder
    os.chmod(docs / "owner-denied.txt", 0o004)               # owner ---, group ---, other r--
    os.chmod(docs / "override" / "hr.txt", 0o644)
    (docs / "override" / ".workbench-access").write_text('groups = ["hr"]\n')
    cfg = Config().with_index_dir(tmp_path / "index").replace(
        "access", posix_groups={"adm": ["finance"], "users": ["staff"]})
    cfg = cfg.model_copy(update={"access": cfg.access.model_copy(update={"permissions_from": "posix"})})
    wb = Workbench(cfg, embedder=embedder)
    report = wb.ingest(docs, collection="shares", progress=False)
    assert report.ok, report
    toml = tmp_path / "workbench.toml"
    toml.write_text('[index]\ndir = "index"\n[access]\nfrom = "posix"\nposix_groups = { adm = ["finance"], '
                    'users = ["staff"] }\n')
    return {"wb": wb, "docs": docs, "cfg": toml}


def groups_of(wb, rel: str, docs) -> tuple[str, ...]:
    return next(d.groups for d in wb.documents() if d.path == str(docs / rel))


def finds(wb, who: Principal, code: str) -> bool:
    hits = wb.search(code, k=10, principal=who)
    return any(code in h.chunk.text for h in hits)


def test_readers_follow_owner_group_mode_and_acls(site):
    wb, docs = site["wb"], site["docs"]
    assert EVERYONE in groups_of(wb, "open.txt", docs)
    assert groups_of(wb, "ledger.txt", docs) == ("finance", user_group("root"))
    assert set(groups_of(wb, "acl.txt", docs)) == {"staff", user_group("daemon")}
    assert groups_of(wb, "closed/inside.txt", docs) == ("finance", user_group("root"))  # the folder decides
    assert groups_of(wb, "owner-denied.txt", docs) == ()  # "anyone but the owner" cannot be said: closed
    assert groups_of(wb, "override/hr.txt", docs) == ("hr",)  # an access file wins over POSIX
    assert finds(wb, ANY, "OPEN-3310") and not finds(wb, ANY, "LEDGER-7720")
    assert finds(wb, FIN, "LEDGER-7720") and not finds(wb, STAFF, "LEDGER-7720")
    assert finds(wb, STAFF, "ACL-5150") and finds(wb, DAEMON, "ACL-5150") and not finds(wb, FIN, "ACL-5150")
    assert finds(wb, FIN, "INSIDE-9044") and not finds(wb, STAFF, "INSIDE-9044")
    assert not any(finds(wb, p, "DENIED-6611") for p in (ANY, FIN, STAFF, DAEMON))


def test_a_changed_acl_changes_access_at_reindex_without_re_embedding(site):
    wb, docs = site["wb"], site["docs"]
    assert not finds(wb, STAFF, "LEDGER-7720")
    sh("setfacl", "-m", "g:users:r", str(docs / "ledger.txt"))  # staff may now read the ledger
    sh("setfacl", "-m", "m::---", str(docs / "acl.txt"))  # the mask takes the group entries' rights away
    report = wb.reindex(progress=False)
    assert report.regrouped == 2 and report.chunks_embedded == 0 and not report.changed
    assert wb.status().access_changed == 2 and "access changed for 2 documents" in str(wb.status())
    assert finds(wb, STAFF, "LEDGER-7720")
    assert not finds(wb, STAFF, "ACL-5150") and finds(wb, DAEMON, "ACL-5150")  # the owner is not masked
    shutil.move(docs / "open.txt", docs / "closed" / "open.txt")  # moved into the closed folder
    wb.reindex(progress=False)
    assert not finds(wb, ANY, "OPEN-3310") and finds(wb, FIN, "OPEN-3310")


def test_access_explain_shows_the_entries_read_and_the_decision(site):
    docs, cfg = site["docs"], str(site["cfg"])
    done = run_cli("access", "explain", str(docs / "acl.txt"), "--config", cfg)
    assert done.returncode == 0, done.stderr
    assert "owner daemon" in done.stdout and "group:users:r--" in done.stdout and "staff" in done.stdout
    as_json = run_cli("access", "explain", str(docs / "closed" / "inside.txt"), "--config", cfg, "--json")
    data = json.loads(as_json.stdout)
    assert data["groups"] == ["finance", "@user:root"] and data["permissions_from"] == "posix"
    assert any("closed (folder)" in step and "group adm" in step for step in data["steps"])
    wb = site["wb"]
    assert wb.explain_access(docs / "ledger.txt", FIN).readable is True
    assert wb.explain_access(docs / "ledger.txt", STAFF).readable is False
    assert "may NOT read it" in str(wb.explain_access(docs / "ledger.txt", STAFF))
    assert "access file" in " ".join(wb.explain_access(docs / "override" / "hr.txt").steps)
    status = run_cli("status", "--config", cfg).stdout
    assert "permissions: POSIX owner, group, mode and ACLs" in status
