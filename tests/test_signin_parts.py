"""Unit tests of the sign-in parts that need no server: the session refresh round, the pending
OpenID sign-ins, the user store's identity rules and the cap on wrong directory passwords."""

from __future__ import annotations

import pytest

from workbench.config import Config
from workbench.errors import WorkbenchError
from workbench.identity.base import DirectoryUser, map_groups
from workbench.identity.oidc import Pending
from workbench.services.accounts import MAX_FAILED_BINDS, Accounts
from workbench.stores.users import UserStore
from workbench_web.oidc import PER_CLIENT, PendingSignIns
from workbench_web.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_failing_refresh_does_not_stop_the_others_and_fails_closed(tmp_path):
    users = UserStore(tmp_path)
    for name in ("ann", "ben", "cy"):
        users.sign_in_external(name, "ldap", f"uid={name}", ["staff"])
    asked = []

    def refresh(name, grant):
        asked.append(name)
        if name == "ann":
            raise KeyError("an odd answer")  # not a directory error: the round must go on
        return name != "cy", grant  # cy is gone from the directory

    clock = Clock()
    store = SessionStore(users, idle_s=3600, max_s=7200, clock=clock, refresh=refresh, refresh_s=60)
    tokens = {n: store.start(users.get(n)) for n in ("ann", "ben", "cy")}
    clock.now += 61
    assert store.refresh_due() == 2
    assert sorted(asked) == ["ann", "ben", "cy"]
    assert store.user_of(tokens["ben"]) == "ben"
    assert store.user_of(tokens["ann"]) is None and store.user_of(tokens["cy"]) is None
    asked.clear()
    clock.now += 10
    assert store.refresh_due() == 0 and asked == []  # not due again before refresh_s


def test_expired_sessions_are_ended_without_asking_the_directory(tmp_path):
    users = UserStore(tmp_path)
    users.sign_in_external("ann", "ldap", "uid=ann", ["staff"])
    asked = []
    clock = Clock()
    store = SessionStore(users, idle_s=100, max_s=7200, clock=clock,
                         refresh=lambda n, g: (asked.append(n) or True, g), refresh_s=60)
    token = store.start(users.get("ann"))
    clock.now += 101
    assert store.refresh_due() == 1 and asked == [] and store.user_of(token) is None


def test_one_client_cannot_push_out_everyone_elses_pending_sign_ins():
    pending = PendingSignIns(clock=lambda: 0.0)
    mine = Pending("victim-state", "nonce-secret-1", "verifier-secret-2", 0.0)
    pending.add(mine, "10.0.0.1")
    for i in range(PER_CLIENT * 50):
        pending.add(Pending(f"flood-{i}", "n", "v", 0.0), "10.0.0.66")
    assert pending.take("victim-state") == mine
    assert pending.take("victim-state") is None  # once only
    assert pending.take("flood-0") is None and pending.take(f"flood-{PER_CLIENT * 50 - 1}") is not None
    assert "secret" not in repr(mine) and "victim-state" in repr(mine)  # nonce and PKCE verifier stay out of reprs


def test_a_name_belongs_to_the_identity_that_first_signed_in_with_it(tmp_path):
    users = UserStore(tmp_path)
    users.add("root", "break-glass-pass", ["admin"])
    with pytest.raises(WorkbenchError, match="another account"):
        users.sign_in_external("root", "oidc", "sub-x", ["admin"])  # never takes over a local account
    assert users.get("root").source == "local"
    users.sign_in_external("kate", "oidc", "sub-kate", ["staff"])
    with pytest.raises(WorkbenchError, match="users remove kate"):
        users.sign_in_external("kate", "oidc", "sub-mallory", ["staff"])
    with pytest.raises(WorkbenchError):
        users.sign_in_external("kate", "ldap", "uid=kate,ou=people", ["staff"])
    before = users.get("kate")
    users.sign_in_external("bob", "ldap", "uid=bob,ou=people", ["staff"])
    moved = users.sign_in_external("bob", "ldap", "uid=bob,ou=finance", ["finance"])  # the directory decides
    assert moved.subject == "uid=bob,ou=finance" and users.get("kate") == before
    assert users.verify("kate", "") is None and users.verify("bob", "anything") is None  # no passwords here
    users.refresh_groups("bob", ["admin"], "uid=bob,ou=people")  # a stale session's refresh changes nothing
    assert users.get("bob").groups == ("finance",)


class CountingDirectory:
    source = "ldap"

    def __init__(self) -> None:
        self.binds = 0

    def authenticate(self, name, password):
        self.binds += 1
        return DirectoryUser(name, ("staff",), "ldap", f"uid={name}") if password == "right-pass" else None

    def lookup(self, name):
        return DirectoryUser(name, ("staff",), "ldap", f"uid={name}")


def test_wrong_directory_passwords_are_capped_below_the_directorys_lockout(tmp_path):
    directory = CountingDirectory()
    accounts = Accounts(UserStore(tmp_path), Config(), directory, clock=Clock())
    for _ in range(MAX_FAILED_BINDS + 5):
        assert accounts.sign_in("dora", "wrong") is None
    assert directory.binds == MAX_FAILED_BINDS  # the rest never reached the directory
    assert accounts.sign_in("dora", "right-pass") is None  # paused for this name, from every client
    accounts.clock.now += 901
    assert accounts.sign_in("dora", "right-pass").name == "dora"


def test_unmapped_groups_grant_nothing_and_keys_match_dn_or_name():
    table = {"cn=finance,ou=groups,dc=x": ["finance"], "Staff": ["staff"]}
    assert map_groups(["CN=Finance,OU=Groups,DC=x", "cn=staff,ou=groups,dc=x", "cn=other,dc=x"], table) == (
        "finance", "staff")
    assert map_groups(["cn=finance-analysts,ou=groups,dc=x"], table) == ()
