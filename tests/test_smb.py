"""Windows file shares as a source, against a real Samba server on loopback (`smbbed`): SMB 2/3 read
by smbprotocol, NT ACLs (allow, deny, inheritance) turned into readers, re-sync, an unreachable
share, the source viewer, the CLI, and credentials kept out of everything the workbench writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from smbbed import PASSWORD_ENV, Samba

from conftest import make_pdf, run_cli
from workbench.config import Config
from workbench.errors import ConfigError
from workbench.pipeline import Workbench
from workbench.records import FailureKind, Principal

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("smbd"),
                                reason="needs root and Debian's samba (make setup-directory)")

READ, FULL = 0x1200A9, 0x1F01FF
DECOY = "x%2F..%2F..%2Ffin%2Fsalaries.txt"
ALICE, BOB, CAROL, NOBODY = (Principal("alice", ("finance", "staff")), Principal("bob", ("finance",)),
                             Principal("carol", ("staff",)), Principal("nobody", ()))


@pytest.fixture(scope="module")
def share(tmp_path_factory):
    with Samba() as smb:
        smb.mkdir("fin")
        # the share's root passes Everyone down; these folders stop inheritance ("disable inheritance")
        smb.set_acl("fin", [("allow", "finance", "OI|CI", READ)], protected=True)
        smb.write("fin/budget.txt", b"Budget BUDGET-4410: travel is capped at 2,000 per quarter.")
        smb.write("fin/salaries.txt", b"Salaries SALARY-8821: the review moves pay by 3 percent.")
        smb.set_acl("fin/salaries.txt", [("deny", "alice", "", READ), ("allow", "finance", "", READ)])
        smb.mkdir("staff")
        smb.set_acl("staff", [("allow", "staff", "OI|CI", READ)], protected=True)
        smb.write("staff/canteen.txt", b"Canteen CANTEEN-1207: soup is served from noon.")
        smb.write("staff/handbook.pdf", make_pdf(tmp_path_factory.mktemp("pdf") / "h.pdf",
                                                 ["Handbook HANDBOOK-3390: badges are renewed in May."]).read_bytes())
        smb.mkdir("open")
        smb.set_acl("open", [("allow", "everyone", "OI|CI", READ)], protected=True)
        smb.write("open/notice.txt", b"Notice NOTICE-5002: the car park closes on Friday.")
        smb.write("open/.hidden.txt", b"never listed")
        # a legal Windows name that decodes to a path elsewhere: must stay this one file
        smb.write(f"open/{DECOY}", b"Decoy DECOY-1313: this is not the salaries file.")
        yield smb


@pytest.fixture(scope="module")
def wb(share, tmp_path_factory, embedder):
    os.environ[PASSWORD_ENV] = share.service_password
    sids = {share.sid("finance"): ["finance"], share.sid("staff"): ["staff"], share.sid("alice"): ["user:alice"],
            share.sid("bob"): ["user:bob"], share.sid("carol"): ["user:carol"]}
    config = Config().with_index_dir(tmp_path_factory.mktemp("smb") / "index").replace("smb", **share.smb_settings(),
                                                                                       sids=sids)
    config = config.model_copy(update={"access": config.access.model_copy(update={"permissions_from": "native"})})
    bench = Workbench(config, embedder=embedder)
    report = bench.ingest(share.url(), collection="shares", progress=False)
    assert report.ok, report
    yield bench
    os.environ.pop(PASSWORD_ENV, None)


def groups_of(wb, share, rel):
    return next(d.groups for d in wb.documents() if d.path == share.url(rel))


def finds(wb, who, code):
    return any(code in h.chunk.text for h in wb.search(code, k=10, principal=who))


def test_a_share_is_indexed_with_the_readers_its_nt_acls_give(wb, share):
    from workbench.sources.smb import share_url

    decoy = share_url(share.host, share.port, share.share, f"open/{DECOY}")
    assert {d.path for d in wb.documents()} == {share.url(r) for r in (
        "fin/budget.txt", "fin/salaries.txt", "staff/canteen.txt", "staff/handbook.pdf", "open/notice.txt")} | {decoy}
    assert finds(wb, NOBODY, "DECOY-1313") and not finds(wb, NOBODY, "SALARY-8821")  # read as itself, its own ACL
    assert groups_of(wb, share, "fin/budget.txt") == ("finance",)  # inherited from its folder
    assert groups_of(wb, share, "fin/salaries.txt") == ("finance", "!@user:alice")  # deny ACE for alice
    assert groups_of(wb, share, "open/notice.txt") == ("@everyone",)
    assert finds(wb, BOB, "SALARY-8821") and not finds(wb, ALICE, "SALARY-8821")  # alice is denied, bob not
    assert finds(wb, ALICE, "BUDGET-4410") and not finds(wb, CAROL, "BUDGET-4410")
    assert finds(wb, CAROL, "HANDBOOK-3390") and not finds(wb, BOB, "HANDBOOK-3390")  # a PDF read over SMB
    assert finds(wb, NOBODY, "NOTICE-5002") and not finds(wb, NOBODY, "CANTEEN-1207")


def test_acl_changes_and_moves_change_access_at_reindex_without_re_embedding(wb, share):
    unchanged = wb.reindex(progress=False)
    assert unchanged.chunks_embedded == 0 and unchanged.regrouped == 0 and unchanged.unchanged == 6
    share.set_acl("staff/canteen.txt", [("allow", "finance", "", READ)], protected=True)  # staff no more
    share.move("fin/budget.txt", "staff/budget.txt")  # the file keeps fin's ACEs on the server
    report = wb.reindex(progress=False)
    assert report.chunks_embedded == 0 and report.renamed and report.regrouped >= 1
    assert finds(wb, BOB, "CANTEEN-1207") and not finds(wb, CAROL, "CANTEEN-1207")
    # the server keeps the ACEs it inherited from fin; staff passes others down: only who both allow
    assert groups_of(wb, share, "staff/budget.txt") == ()  # nobody (admins), until the server propagates
    assert not finds(wb, CAROL, "BUDGET-4410") and not finds(wb, BOB, "BUDGET-4410")
    # what propagating the new folder's permissions on the server (Explorer, icacls /reset) writes on the file
    share.set_acl("staff/budget.txt", [("allow", "staff", "I", READ)])
    wb.reindex(progress=False)
    assert groups_of(wb, share, "staff/budget.txt") == ("staff",)
    assert finds(wb, CAROL, "BUDGET-4410") and not finds(wb, BOB, "BUDGET-4410")


def test_the_source_viewer_and_downloads_read_the_file_from_the_share(wb, share):
    hit = next(h for h in wb.search("NOTICE-5002", k=10) if "NOTICE-5002" in h.chunk.text)
    with wb.original_file(hit.chunk.chunk_id, NOBODY) as original:
        assert original.file.read() == (share.folder / "open" / "notice.txt").read_bytes()
    denied = next(h for h in wb.search("SALARY-8821", k=10) if "SALARY-8821" in h.chunk.text)
    with pytest.raises(Exception):
        wb.original_file(denied.chunk.chunk_id, ALICE)
    (share.folder / "open" / "notice.txt").write_bytes(b"Notice NOTICE-5002: changed behind the index's back.")
    with pytest.raises(Exception, match="changed since it was indexed"):
        wb.original_file(hit.chunk.chunk_id, NOBODY)


def test_an_unreachable_share_deletes_nothing(tmp_path, embedder):
    with Samba() as smb:
        smb.write("a/one.txt", b"First ONE-7711 text.")
        os.environ[PASSWORD_ENV] = smb.service_password
        config = Config().with_index_dir(tmp_path / "index").replace("smb", **smb.smb_settings())
        bench = Workbench(config, embedder=embedder)
        assert bench.ingest(smb.url(), collection="s", progress=False).ok
    report = bench.reindex(progress=False)  # the server is gone
    assert not report.ok and any(f.kind == FailureKind.MISSING_SOURCE for f in report.failed)
    assert len(bench.documents()) == 1 and report.deleted == ()


def test_credentials_are_refused_in_addresses_and_kept_out_of_everything(wb, share, tmp_path):
    with pytest.raises(ConfigError, match="must not hold a user name or password"):
        wb.ingest(f"smb://svc:{share.service_password}@127.0.0.1:{share.port}/docs", collection="x", progress=False)
    cfg = tmp_path / "workbench.toml"
    sids = ", ".join(f'"{share.sid(g)}" = ["{g}"]' for g in ("finance", "staff"))
    cfg.write_text(f'[index]\ndir = "{wb.index_dir}"\n[access]\nfrom = "native"\n[smb]\nusername = "{share.service_user}"'
                   f'\ndomain = "{share.domain}"\npassword_env = "{PASSWORD_ENV}"\nsids = {{ {sids} }}\n')
    env = {**os.environ, PASSWORD_ENV: share.service_password}
    added = run_cli("users", "add", "carol", "--groups", "staff", "--password-stdin", "--config", str(cfg),
                    input="carol's long password\n", env=env)
    assert added.returncode == 0, added.stderr
    outputs = [run_cli("reindex", "--config", str(cfg), env=env), run_cli("status", "--config", str(cfg), env=env),
               run_cli("access", "explain", share.url("fin/salaries.txt"), "--as-user", "carol", "--config", str(cfg),
                       env=env)]
    explain = outputs[2].stdout
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert outputs[2].returncode == 0, outputs[2].stderr
    assert "NT ACLs of the share" in outputs[1].stdout
    assert f"deny {share.sid('alice')}" in explain and "finance" in explain and "carol" in explain
    assert "may NOT read it" in explain
    secret = share.service_password.encode()
    for done in outputs:
        assert secret not in (done.stdout + done.stderr).encode()
    for path in Path(wb.index_dir).rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), f"the share's password is in {path}"


def test_the_web_app_serves_share_documents_by_their_nt_acls(wb, share, tmp_path):
    from webkit import Server, signed_in

    cfg = tmp_path / "workbench.toml"
    sids = ", ".join(f'"{share.sid(g)}" = ["{g}"]' for g in ("finance", "staff"))
    cfg.write_text(f'[index]\ndir = "{wb.index_dir}"\n[access]\nfrom = "native"\n[smb]\nusername = "{share.service_user}"'
                   f'\ndomain = "{share.domain}"\npassword_env = "{PASSWORD_ENV}"\nsids = {{ {sids}, '
                   f'"{share.sid("alice")}" = ["user:alice"] }}\n[llm]\nmax_new_tokens = 20\n')
    env = {**os.environ, PASSWORD_ENV: share.service_password}
    for name, groups in (("alice", "finance,staff"), ("bob", "finance")):
        done = run_cli("users", "add", name, "--groups", groups, "--password-stdin", "--config", str(cfg),
                       input=f"{name}'s long password\n", env=env)
        assert done.returncode == 0, done.stderr
    # the previous test re-indexed without alice's SID in the table: her deny then denied everyone
    assert "!@everyone" in groups_of(wb, share, "fin/salaries.txt")
    assert run_cli("reindex", "--config", str(cfg), env=env).returncode == 0
    assert groups_of(wb, share, "fin/salaries.txt") == ("finance", "!@user:alice")
    salaries = next(h.chunk.chunk_id for h in wb.search("SALARY-8821", k=10) if "SALARY-8821" in h.chunk.text)
    server = Server(cfg, env=env)
    try:
        with signed_in(server.url, "bob", "bob's long password") as bob, \
                signed_in(server.url, "alice", "alice's long password") as alice:
            assert bob.get(f"source/{salaries}").status_code == 200
            original = bob.get(f"source/{salaries}/file")
            assert original.status_code == 200
            assert original.content == (share.folder / "fin" / "salaries.txt").read_bytes()  # read from the share
            assert alice.get(f"source/{salaries}").status_code == 404  # her deny ACE holds in the web app
            assert alice.get(f"source/{salaries}/file").status_code == 404
    finally:
        server.stop()
    assert share.service_password not in server.log_path.read_text()
