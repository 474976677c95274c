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

FIN, STAFF, ANY = Principal("fin", ("finance",)), Principal("stf", ("staff",)), Principal("someone", ())
DANA = "wbtposix-dana"  # a regular account (uid 1000 and up) made for these tests: owners of that kind grant
OWNER = Principal(DANA, ())
EXCLUDED = Principal(DANA, ("staff",))  # in staff, but shut out of excluded.txt by a user ACL entry
TEXTS = {"open.txt": "Canteen menu OPEN-3310: soup on Mondays.",
         "ledger.txt": "General ledger LEDGER-7720: the reserve is 1.2 million.",
         "acl.txt": "Roster ACL-5150: the night shift starts at ten.",
         "closed/inside.txt": "Audit plan INSIDE-9044: the auditors arrive in March.",
         "owner-denied.txt": "Draft DENIED-6611: world-readable, but not by its owner.",
         "override/hr.txt": "Appraisal OVERRIDE-2025: the access file decides here.",
         "excluded.txt": "Rota EXCLUDED-4242: staff may read this, except one person.",
         "loose/odd.txt": "Memo LOOSE-1717: a writable access file cannot open this."}


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


@pytest.fixture(scope="module")
def account():
    """A regular POSIX account for the duration of these tests."""
    subprocess.run(["userdel", DANA], capture_output=True)
    sh("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", DANA)
    yield DANA
    subprocess.run(["userdel", DANA], capture_output=True)


@pytest.fixture()
def site(tmp_path, embedder, account):
    for folder in [tmp_path, *tmp_path.parents]:  # pytest's own folders are 0700: let everyone pass, as /srv does
        if str(folder).startswith("/tmp/") and folder.stat().st_uid == 0:
            os.chmod(folder, 0o755)
    docs = tmp_path / "docs"
    for rel, text in TEXTS.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text)
    for folder in (docs, docs / "override", docs / "loose"):
        os.chmod(folder, 0o755)
    os.chmod(docs / "open.txt", 0o644)                       # anyone
    sh("chgrp", "adm", str(docs / "ledger.txt"))
    os.chmod(docs / "ledger.txt", 0o640)                     # group adm -> finance
    sh("chown", f"{DANA}:root", str(docs / "acl.txt"))
    os.chmod(docs / "acl.txt", 0o600)
    sh("setfacl", "-m", "g:users:r", str(docs / "acl.txt"))  # owner dana, and group users -> staff
    sh("chgrp", "users", str(docs / "excluded.txt"))
    os.chmod(docs / "excluded.txt", 0o640)
    sh("setfacl", "-m", f"u:{DANA}:---", str(docs / "excluded.txt"))  # staff, except dana
    os.chmod(docs / "loose" / "odd.txt", 0o600)  # root only
    (docs / "loose" / ".workbench-access").write_text('groups = ["staff"]\n')
    os.chmod(docs / "loose" / ".workbench-access", 0o666)  # anyone could have written it: not trusted
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
    assert [f.path for f in report.failed] == [str(docs / "loose" / ".workbench-access")], report  # untrusted
    assert "ignored" in report.failed[0].reason
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
    assert groups_of(wb, "ledger.txt", docs) == ("finance",)  # owner root is a system account: grants nothing
    assert set(groups_of(wb, "acl.txt", docs)) == {"staff", user_group(DANA)}
    assert groups_of(wb, "closed/inside.txt", docs) == ("finance",)  # the folder decides who gets in
    assert not [g for g in groups_of(wb, "owner-denied.txt", docs) if not g.startswith("!")]  # nobody
    assert groups_of(wb, "override/hr.txt", docs) == ("hr",)  # a trusted access file wins over POSIX
    assert groups_of(wb, "excluded.txt", docs) == ("staff", "!" + user_group(DANA))
    assert groups_of(wb, "loose/odd.txt", docs) == ()  # the writable access file is ignored: root only
    assert finds(wb, ANY, "OPEN-3310") and not finds(wb, ANY, "LEDGER-7720")
    assert finds(wb, FIN, "LEDGER-7720") and not finds(wb, STAFF, "LEDGER-7720")
    assert finds(wb, STAFF, "ACL-5150") and finds(wb, OWNER, "ACL-5150") and not finds(wb, FIN, "ACL-5150")
    assert finds(wb, FIN, "INSIDE-9044") and not finds(wb, STAFF, "INSIDE-9044")
    assert not any(finds(wb, p, "DENIED-6611") for p in (ANY, FIN, STAFF, OWNER))
    assert finds(wb, STAFF, "EXCLUDED-4242") and not finds(wb, EXCLUDED, "EXCLUDED-4242")  # as the kernel says
    assert not finds(wb, STAFF, "LOOSE-1717")


def test_a_changed_acl_changes_access_at_reindex_without_re_embedding(site):
    wb, docs = site["wb"], site["docs"]
    assert not finds(wb, STAFF, "LEDGER-7720")
    sh("setfacl", "-m", "g:users:r", str(docs / "ledger.txt"))  # staff may now read the ledger
    sh("setfacl", "-m", "m::---", str(docs / "acl.txt"))  # the mask takes the group entries' rights away
    report = wb.reindex(progress=False)
    assert report.regrouped == 2 and report.chunks_embedded == 0 and not report.changed
    assert wb.status().access_changed == 2 and "access changed for 2 documents" in str(wb.status())
    assert finds(wb, STAFF, "LEDGER-7720")
    assert not finds(wb, STAFF, "ACL-5150") and finds(wb, OWNER, "ACL-5150")  # the owner is not masked
    shutil.move(docs / "open.txt", docs / "closed" / "open.txt")  # moved into the closed folder
    wb.reindex(progress=False)
    assert not finds(wb, ANY, "OPEN-3310") and finds(wb, FIN, "OPEN-3310")


def test_access_explain_shows_the_entries_read_and_the_decision(site):
    docs, cfg = site["docs"], str(site["cfg"])
    done = run_cli("access", "explain", str(docs / "acl.txt"), "--config", cfg)
    assert done.returncode == 0, done.stderr
    assert f"owner {DANA}" in done.stdout and "group:users:r--" in done.stdout and "staff" in done.stdout
    as_json = run_cli("access", "explain", str(docs / "closed" / "inside.txt"), "--config", cfg, "--json")
    data = json.loads(as_json.stdout)
    assert data["groups"] == ["finance"] and data["permissions_from"] == "posix"
    assert any("closed (folder)" in step and "group adm" in step for step in data["steps"])
    wb = site["wb"]
    assert wb.explain_access(docs / "ledger.txt", FIN).readable is True
    assert wb.explain_access(docs / "ledger.txt", STAFF).readable is False
    assert "may NOT read it" in str(wb.explain_access(docs / "ledger.txt", STAFF))
    assert "access file" in " ".join(wb.explain_access(docs / "override" / "hr.txt").steps)
    status = run_cli("status", "--config", cfg).stdout
    assert "permissions: POSIX owner, group, mode and ACLs" in status
