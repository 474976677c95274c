"""LdapDirectory against a real slapd on loopback (tests/ldapbed.py): sign-in, groups, refusals, outages."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest

from ldapbed import PASSWORDS, PEOPLE, Slapd, user_dn, write_ca
from workbench.config import AuthSettings
from workbench.errors import ConfigError, DirectoryUnavailableError, WorkbenchError
from workbench.identity import LDAP, Directory
from workbench.identity.ldap import LdapDirectory

pytestmark = pytest.mark.skipif(not os.access("/usr/sbin/slapd", os.X_OK),
                                reason="needs Debian's slapd (`make setup-directory`)")

RAISED: list[str] = []  # every message of an exception raised in these tests (checked for the password)


@pytest.fixture(scope="module")
def bed():
    with Slapd() as slapd, pytest.MonkeyPatch.context() as mp:
        for key, value in slapd.env().items():
            mp.setenv(key, value)
        yield slapd


def directory(bed, **overrides) -> LdapDirectory:
    """An LdapDirectory configured as a workbench.toml would be ([auth] from the bed, with overrides)."""
    auth = AuthSettings.model_validate(bed.auth_settings(**overrides))
    return LdapDirectory(auth.ldap, auth.groups)


def raised(kind, call, *args, **kwargs):
    """The exception ``call(*args, **kwargs)`` raises (must be ``kind``), its message kept for the password check."""
    with pytest.raises(kind) as info:
        call(*args, **kwargs)
    RAISED.append(str(info.value))
    return info.value


def test_alice_signs_in_with_her_groups(bed):
    wb = directory(bed)
    assert isinstance(wb, Directory) and wb.source == LDAP
    alice = wb.authenticate("alice", PASSWORDS["alice"])
    assert alice is not None
    assert (alice.name, alice.groups, alice.source, alice.subject) == ("alice", ("staff",), LDAP, user_dn("alice"))
    assert [g.lower() for g in alice.directory_groups] == ["cn=staff,ou=groups,dc=example,dc=org"]
    assert wb.lookup("alice") == alice


def test_name_comes_back_as_stored(bed):
    alice = directory(bed).authenticate("ALICE", PASSWORDS["alice"])
    assert alice is not None and alice.name == "alice"


def test_nested_group_grants_finance_and_the_inner_group_nothing(bed):
    bob = directory(bed).authenticate("bob", PASSWORDS["bob"])
    assert bob is not None and bob.groups == ("staff", "finance")
    dns = {g.lower() for g in bob.directory_groups}
    assert {"cn=finance-analysts,ou=groups,dc=example,dc=org", "cn=finance,ou=groups,dc=example,dc=org"} <= dns
    flat = directory(bed, groups={"finance-analysts": ["analysts"]}).lookup("bob")
    assert flat.groups == ("analysts",)  # the inner group is found; only the table says it grants nothing


def test_group_cycle_ends(bed):
    import ldap3

    admin = bed._admin()
    inner, outer = "cn=finance-analysts,ou=groups,dc=example,dc=org", "cn=finance,ou=groups,dc=example,dc=org"
    admin.modify(inner, {"member": [(ldap3.MODIFY_ADD, [outer])]})  # finance-analysts <-> finance
    try:
        bob = directory(bed).lookup("bob")
        assert bob.groups == ("staff", "finance") and len(bob.directory_groups) == 3
    finally:
        admin.modify(inner, {"member": [(ldap3.MODIFY_DELETE, [outer])]})
        admin.unbind()


def test_nested_none_gives_direct_groups_only(bed):
    bob = directory(bed, nested="none").authenticate("bob", PASSWORDS["bob"])
    assert bob is not None and bob.groups == ("staff",)
    assert "cn=finance,ou=groups,dc=example,dc=org" not in {g.lower() for g in bob.directory_groups}


def test_in_chain_filter_is_accepted_and_direct_groups_still_found(bed):
    # slapd does not know AD's in-chain rule (the term is Undefined there): direct groups still come
    bob = directory(bed, nested="in_chain").lookup("bob")
    assert bob is not None and bob.groups == ("staff",)
    assert "cn=finance-analysts,ou=groups,dc=example,dc=org" in {g.lower() for g in bob.directory_groups}


def test_dora_is_admin(bed):
    dora = directory(bed).authenticate("dora", PASSWORDS["dora"])
    assert dora is not None and dora.groups == ("admin",)


def test_wrong_password_is_none(bed):
    wb = directory(bed)
    assert wb.authenticate("alice", "alice-pass-2") is None
    assert wb.authenticate("alice", PASSWORDS["bob"]) is None
    assert wb.authenticate("nobody", "x-pass") is None


def test_disabled_user_is_refused_and_not_found(bed):
    wb = directory(bed)
    assert wb.authenticate("carol", PASSWORDS["carol"]) is None
    assert wb.lookup("carol") is None
    open_filter = directory(bed, user_filter="(objectClass=inetOrgPerson)")  # the filter is what refuses her
    assert open_filter.authenticate("carol", PASSWORDS["carol"]).name == "carol"


@pytest.mark.parametrize("name", ["*)(uid=*", "alice)(uid=*", "*", "al*", "alice\\", "alice\x00"])
def test_filter_injection_is_refused(bed, name):
    wb = directory(bed)
    assert wb.authenticate(name, PASSWORDS["alice"]) is None
    assert wb.lookup(name) is None


def test_names_are_escaped_even_past_the_name_check(bed, monkeypatch):
    import re

    import workbench.identity.ldap as ldap_module

    monkeypatch.setattr(ldap_module, "NAME_RE", re.compile(r"^.+$"))
    wb = directory(bed)
    assert wb.lookup("alice") is not None  # the permissive check lets names through...
    for name in ("*", "al*", "*)(uid=*", "alice)(uid=*"):
        assert wb.authenticate(name, PASSWORDS["alice"]) is None  # ...and escaping still matches nothing
        assert wb.lookup(name) is None
    bed.add_user("al*", "star-pass-1")  # a literal star: unescaped, "al*" would also match alice (two: None)
    try:
        star = wb.authenticate("al*", "star-pass-1")
        assert star is not None and star.subject == user_dn("al*")
    finally:
        bed.remove_user("al*")
    bed.add_user("r(x)*", "paren-pass-1", groups=("staff",))  # its DN goes into the group filter escaped too
    try:
        assert wb.lookup("r(x)*").groups == ("staff",)
    finally:
        bed.remove_user("r(x)*")


def test_ambiguous_name_is_none(bed):
    wb = directory(bed)
    assert wb.lookup("bob") is not None
    admin = bed._admin()
    try:
        admin.add(f"ou=contractors,{PEOPLE}", ["organizationalUnit"], {"ou": "contractors"})
        admin.add(f"uid=bob,ou=contractors,{PEOPLE}", ["inetOrgPerson"], {"uid": "bob", "cn": "Bob", "sn": "Two",
                                                                         "userPassword": PASSWORDS["bob"]})
        assert wb.lookup("bob") is None
        assert wb.authenticate("bob", PASSWORDS["bob"]) is None
    finally:
        admin.delete(f"uid=bob,ou=contractors,{PEOPLE}")
        admin.delete(f"ou=contractors,{PEOPLE}")
        admin.unbind()
    assert wb.lookup("bob") is not None


@pytest.mark.parametrize("password", ["", " ", "  \t\n", None])
def test_blank_password_is_refused(bed, password):
    assert directory(bed).authenticate("alice", password) is None


@pytest.mark.skipif(shutil.which("ldapwhoami") is None, reason="needs ldap-utils")
def test_this_server_would_accept_an_empty_password_bind(bed):
    """Shows the blank-password test means something: slapd binds a DN with no password anonymously."""
    done = subprocess.run(["ldapwhoami", "-x", "-ZZ", "-H", bed.url, "-D", user_dn("alice"), "-w", ""],
                          env={**os.environ, "LDAPTLS_CACERT": str(bed.ca_file)}, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "anonymous", done.stderr


def test_plaintext_url_is_refused_unless_allowed(bed):
    err = raised(ConfigError, directory, bed, start_tls=False)
    assert "allow_plaintext" in str(err) and "start_tls" in str(err)
    alice = directory(bed, start_tls=False, allow_plaintext=True).authenticate("alice", PASSWORDS["alice"])
    assert alice is not None and alice.groups == ("staff",)


def test_settings_are_checked_at_construction(bed, monkeypatch):
    assert "WB_NO_SUCH" in str(raised(ConfigError, directory, bed, bind_password_env="WB_NO_SUCH"))
    assert "ca_file" in str(raised(ConfigError, directory, bed, ca_file="/no/such/ca.pem"))
    assert "user_filter" in str(raised(ConfigError, directory, bed, user_filter="objectClass=person"))
    assert "start_tls" in str(raised(ConfigError, directory, bed, url="ldaps://127.0.0.1:1"))
    assert "ldap://" in str(raised(ConfigError, directory, bed, url="http://127.0.0.1"))
    assert "bind_password_env" in str(raised(ConfigError, directory, bed, bind_password_env=None))


def test_wrong_ca_is_an_unavailable_error_not_none(bed, tmp_path):
    wb = directory(bed, ca_file=str(write_ca(tmp_path / "other-ca.pem")))
    err = raised(DirectoryUnavailableError, wb.authenticate, "alice", PASSWORDS["alice"])
    assert isinstance(err, WorkbenchError) and not isinstance(err, ConfigError)
    assert bed.url in str(err) and "ca_file" in str(err)
    raised(DirectoryUnavailableError, wb.lookup, "alice")


def test_certificate_must_name_the_host(bed):
    """Through 127.0.0.2 (forwarded to slapd) the certificate (127.0.0.1, localhost) does not match."""
    with forwarder("127.0.0.2", bed.port) as port:
        via_other = f"ldap://127.0.0.2:{port}"
        assert directory(bed, url=via_other, start_tls=False, allow_plaintext=True).lookup("alice") is not None
        err = raised(DirectoryUnavailableError, directory(bed, url=via_other).lookup, "alice")
        assert via_other in str(err) and "does not name 127.0.0.2" in str(err)
    with forwarder("127.0.0.1", bed.port) as port:  # same path, a name the certificate holds
        assert directory(bed, url=f"ldap://127.0.0.1:{port}").lookup("alice") is not None


@contextmanager
def forwarder(host: str, target_port: int):
    """A TCP relay on ``host`` (a free port, yielded) to 127.0.0.1:``target_port``."""
    listener = socket.create_server((host, 0))
    stop = threading.Event()

    def pipe(src, dst):
        with src, dst:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=pipe, args=(client, upstream.dup()), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client.dup()), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_nothing_listening_is_an_unavailable_error_naming_the_url(bed):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ldap://127.0.0.1:{port}"
    wb = directory(bed, url=url)
    for call in (wb.authenticate, wb.lookup):
        args = ("alice", PASSWORDS["alice"]) if call == wb.authenticate else ("alice",)
        err = raised(DirectoryUnavailableError, call, *args)
        assert url in str(err)


def test_silent_server_times_out(bed):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"ldap://127.0.0.1:{silent.getsockname()[1]}"
        wb = directory(bed, url=url, timeout_s=0.5)
        start = time.monotonic()
        err = raised(DirectoryUnavailableError, wb.lookup, "alice")
        assert time.monotonic() - start < 5 and url in str(err)


def test_refused_service_account_or_missing_base_is_unavailable_not_none(bed, monkeypatch):
    err = raised(DirectoryUnavailableError, directory(bed, user_base=f"ou=gone,{bed.base}").lookup, "alice")
    assert "user_base" in str(err)
    monkeypatch.setenv("WB_TEST_LDAP_PASSWORD", "not-the-password")
    err = raised(DirectoryUnavailableError, directory(bed).lookup, "alice")
    assert "bind_dn" in str(err) and bed.url in str(err)


def test_group_removal_and_user_removal_show_at_lookup(bed):
    wb = directory(bed)
    bed.add_user("erin", "erin-pass-1", groups=("staff", "wb-admins"))
    try:
        assert wb.authenticate("erin", "erin-pass-1").groups == ("staff", "admin")
        bed.remove_from_group("erin", "wb-admins")
        assert wb.lookup("erin").groups == ("staff",)
        bed.add_to_group("erin", "finance")
        assert wb.lookup("erin").groups == ("staff", "finance")
    finally:
        bed.remove_user("erin")
    assert wb.lookup("erin") is None
    assert wb.authenticate("erin", "erin-pass-1") is None
    assert wb.lookup("dora").groups == ("admin",)  # others untouched


def test_disable_shows_at_lookup(bed):
    wb = directory(bed)
    bed.add_user("fred", "fred-pass-1", groups=("staff",))
    try:
        assert wb.lookup("fred") is not None
        bed.disable("fred")
        assert wb.lookup("fred") is None
        assert wb.authenticate("fred", "fred-pass-1") is None
    finally:
        bed.remove_user("fred")


def test_concurrent_calls_from_threads(bed):
    from concurrent.futures import ThreadPoolExecutor

    wb = directory(bed)
    names = ["alice", "bob", "dora"] * 6
    with ThreadPoolExecutor(6) as pool:
        users = list(pool.map(lambda n: wb.authenticate(n, PASSWORDS[n]), names))
    assert [u.name for u in users] == names


def test_service_password_never_shown(bed, tmp_path, monkeypatch):
    """repr/str of a directory, and every error message raised in this module, leave the password out."""
    wb = directory(bed)
    raised(DirectoryUnavailableError, directory(bed, ca_file=str(write_ca(tmp_path / "ca.pem"))).lookup, "alice")
    raised(ConfigError, directory, bed, start_tls=False)
    monkeypatch.setenv("WB_TEST_LDAP_PASSWORD", bed.service_password + "-wrong")
    raised(DirectoryUnavailableError, directory(bed).authenticate, "alice", PASSWORDS["alice"])
    for text in (repr(wb), str(wb), *RAISED):  # RAISED: also the messages of the tests above
        assert bed.service_password not in text
        assert PASSWORDS["alice"] not in text
