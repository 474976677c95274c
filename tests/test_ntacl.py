"""Unit tests of NT ACL reading (`workbench.sources.ntacl`): hostile descriptor bytes, inheritance,
deny ACEs, and SIDs the mapping does not know. The same code reads real Samba ACLs in test_smb."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.sources.ntacl import (CI, INHERITED, IO, NP, OI, Ace, SecurityDescriptor, effective_aces, parse_sd,
                                     reader_entries, readers)

FIN, HR, ALICE, UNKNOWN = "S-1-5-21-1-2-3-1201", "S-1-5-21-1-2-3-1203", "S-1-5-21-1-2-3-1101", "S-1-5-21-1-2-3-1999"
TABLE = {FIN: ["finance"], HR: ["hr"], ALICE: ["user:alice"]}
READ = 0x1200A9


def sid_bytes(sid: str) -> bytes:
    parts = sid.split("-")
    subs = [int(x) for x in parts[3:]]
    return bytes([1, len(subs)]) + int(parts[2]).to_bytes(6, "big") + struct.pack(f"<{len(subs)}I", *subs)


def sd_bytes(aces, control=0x8004) -> bytes:
    blobs = [struct.pack("<BBHI", kind, flags, 8 + len(sid_bytes(sid)), mask) + sid_bytes(sid)
             for kind, flags, mask, sid in aces]
    acl = struct.pack("<BBHHH", 2, 0, 8 + sum(map(len, blobs)), len(blobs), 0) + b"".join(blobs)
    return struct.pack("<BBHIIII", 1, 0, control, 0, 0, 0, 20) + acl


def sd(aces, protected=False) -> SecurityDescriptor:
    return parse_sd(sd_bytes(aces, 0x9004 if protected else 0x8004))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_descriptor_bytes_give_value_error_or_a_descriptor(data):
    try:
        parsed = parse_sd(data)
    except ValueError:
        return
    assert isinstance(parsed, SecurityDescriptor)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=60))
def test_a_truncated_or_corrupted_real_descriptor_never_reads_past_its_end(tail):
    good = sd_bytes([(0, 0, READ, FIN), (1, 0, READ, ALICE)])
    for cut in range(len(good)):
        try:
            parse_sd(good[:cut] + tail)
        except ValueError:
            pass


def test_a_deny_wins_whatever_the_order_and_maps_to_a_deny_entry():
    allowed, denied = readers(sd([(0, 0, READ, FIN), (1, 0, READ, ALICE)]).dacl)  # allow listed first
    assert allowed == {FIN} and denied == {ALICE}
    assert reader_entries(allowed, denied, TABLE) == ("finance", "!@user:alice")


def test_what_cannot_be_known_fails_closed():
    assert reader_entries(frozenset({UNKNOWN}), frozenset(), TABLE) == ()  # unknown allow: nothing
    assert reader_entries(frozenset({FIN}), frozenset({UNKNOWN}), TABLE) == ("finance", "!@everyone")  # unknown deny
    assert readers(None) == (frozenset({"S-1-1-0"}), frozenset())  # no DACL: everyone
    assert readers(()) == (frozenset(), frozenset())  # an empty DACL: nobody
    object_deny = (Ace(0x06, 0, READ, "?"),)
    assert readers(object_deny)[1] == {"?"}
    assert reader_entries(frozenset({FIN}), frozenset({"?"}), TABLE) == ("finance", "!@everyone")
    assert readers((Ace(0, 0, 0x2, FIN),)) == (frozenset(), frozenset())  # write without read grants no reading


def test_inheritance_follows_the_folders_of_today():
    root = sd([(0, OI | CI, READ, FIN)])
    moved_file = sd([(0, INHERITED, READ, HR)])  # carries what its old folder gave
    assert [a.sid for a in effective_aces(moved_file, [root])] == [FIN]
    protected_folder = sd([(0, OI | CI, READ, HR)], protected=True)
    assert [a.sid for a in effective_aces(sd([]), [root, protected_folder])] == [HR]
    explicit = sd([(1, 0, READ, ALICE)])
    assert {a.sid for a in effective_aces(explicit, [root])} == {ALICE, FIN}
    assert [a.sid for a in effective_aces(sd([(0, 0, READ, HR)], protected=True), [root])] == [HR]


def test_inherit_only_and_no_propagate():
    root = sd([(0, OI | CI | NP, READ, FIN), (0, CI, READ, HR), (0, OI | IO, READ, ALICE)])
    child = sd([])  # a folder under the root
    deeper_file = sd([])
    aces = effective_aces(deeper_file, [root, child])
    # NP: the child folder gets FIN but does not pass it on; HR is container-only (not files);
    # ALICE (object-inherit, not container) reaches files through the child as inherit-only
    assert {a.sid for a in aces} == {ALICE}
    direct_file = effective_aces(sd([]), [root])
    assert {a.sid for a in direct_file} == {FIN, ALICE}
    assert readers(tuple(Ace(0, IO | OI, READ, HR) for _ in range(1)))[0] == frozenset()  # inherit-only: not here
