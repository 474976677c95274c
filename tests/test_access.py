"""Access control: where groups come from, re-grouping without re-embedding, enforcement inside
retrieval (best k for narrow rights), the audit log, and acting as a user from the CLI."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from workbench.access import AccessRules, Principal, write_access_file
from workbench.config import AccessSettings
from workbench.errors import NotFoundError

FINANCE = Principal("fiona", ("finance",))
STAFF = Principal("sam", ("staff",))


def _tree(root):
    (root / "public").mkdir(parents=True)
    (root / "finance" / "payroll").mkdir(parents=True)
    for rel in ("a.txt", "public/p.txt", "finance/f.txt", "finance/payroll/pay.txt", "finance/budget.txt"):
        (root / rel).write_text(rel)
    (root / ".workbench-access").write_text('groups = ["staff"]\n')
    (root / "finance" / ".workbench-access").write_text(
        'groups = ["finance"]\n[files]\n"budget.txt" = ["finance", "board"]\n"payroll/*" = ["payroll"]\n')
    return root


def test_nearest_access_file_and_file_entries_decide(tmp_path):
    root = _tree(tmp_path / "docs")
    rules = AccessRules(root, "default", AccessSettings())
    assert rules.groups_for(root / "a.txt") == ("staff",)
    assert rules.groups_for(root / "public" / "p.txt") == ("staff",)  # inherited from the folder above
    assert rules.groups_for(root / "finance" / "f.txt") == ("finance",)
    assert rules.groups_for(root / "finance" / "budget.txt") == ("finance", "board")
    assert rules.groups_for(root / "finance" / "payroll" / "pay.txt") == ("payroll",)
    assert rules.failures == []


def test_collection_default_and_admins_only_when_nothing_applies(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    assert AccessRules(tmp_path, "hr", AccessSettings(collections={"hr": ["hr"]})).groups_for(tmp_path / "x.txt") == ("hr",)
    assert AccessRules(tmp_path, "other", AccessSettings(collections={"hr": ["hr"]})).groups_for(tmp_path / "x.txt") == ()


def test_a_broken_access_file_is_reported_and_closes_its_folder(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / ".workbench-access").write_text("groups = staff\n")  # not a list
    rules = AccessRules(tmp_path, "default", AccessSettings(collections={"default": ["everyone"]}))
    assert rules.groups_for(tmp_path / "x.txt") == ()
    assert len(rules.failures) == 1
    assert "admins only" in rules.failures[0].reason


def test_upload_choices_are_written_to_the_access_file(tmp_path):
    (tmp_path / ".workbench-access").write_text('groups = ["staff"]\n')
    write_access_file(tmp_path, ".workbench-access", {'odd "name".pdf': ("finance",)})
    write_access_file(tmp_path, ".workbench-access", {"b.pdf": ("hr", "board")})
    rules = AccessRules(tmp_path, "uploads", AccessSettings())
    assert rules.groups_for(tmp_path / 'odd "name".pdf') == ("finance",)
    assert rules.groups_for(tmp_path / "b.pdf") == ("hr", "board")
    assert rules.groups_for(tmp_path / "c.pdf") == ("staff",)


def test_ingest_sets_groups_and_reindex_regroups_without_re_embedding(make_wb, tmp_path):
    root = _tree(tmp_path / "docs")
    wb = make_wb()
    wb.ingest(root, progress=False)
    groups = {d.path.rsplit("/", 1)[-1]: d.groups for d in wb.documents()}
    assert groups["f.txt"] == ("finance",)
    assert groups["a.txt"] == ("staff",)
    assert groups["pay.txt"] == ("payroll",)
    (root / "finance" / ".workbench-access").write_text('groups = ["finance", "audit"]\n')
    report = wb.reindex(progress=False)
    assert report.regrouped == 3
    assert report.chunks_embedded == 0
    assert report.published
    assert "access changed for 3 documents" in report.summary()
    groups = {d.path.rsplit("/", 1)[-1]: d.groups for d in wb.documents()}
    assert groups["pay.txt"] == ("finance", "audit")
    assert groups["budget.txt"] == ("finance", "audit")
    # a collection default set in the config applies at the next reindex too
    (root / ".workbench-access").unlink()
    wb.config = wb.config.replace("access", collections={"default": ["everyone"]})
    report = wb.reindex(progress=False)
    assert report.regrouped == 2
    assert report.chunks_embedded == 0
    assert {d.path.rsplit("/", 1)[-1]: d.groups for d in wb.documents()}["a.txt"] == ("everyone",)


def test_narrow_rights_still_get_their_best_k(make_wb, tmp_path):
    """Forty staff passages about turbines outrank the finance ones; finance still gets five finance hits."""
    root = tmp_path / "docs"
    (root / "fin").mkdir(parents=True)
    for i in range(40):
        (root / f"turbine-{i}.txt").write_text(f"Turbine maintenance note {i}: inspect the turbine blades "
                                               f"and the turbine bearings every {i + 1} weeks.")
    for i in range(5):
        (root / "fin" / f"cost-{i}.txt").write_text(f"Budget line {i}: turbine spare parts cost {1000 + i} euros.")
    (root / ".workbench-access").write_text('groups = ["staff"]\n')
    (root / "fin" / ".workbench-access").write_text('groups = ["finance"]\n')
    wb = make_wb()
    wb.ingest(root, progress=False)
    for mode in ("dense", "lexical", "hybrid"):
        everyone = wb.search("turbine blades inspection", k=5, mode=mode)
        assert all("turbine-" in h.chunk.path for h in everyone)  # the shared top 5 holds no finance passage
        mine = wb.search("turbine blades inspection", k=5, mode=mode, principal=FINANCE)
        assert len(mine) == 5, mode
        assert all("/fin/" in h.chunk.path for h in mine), mode
        assert len(wb.search("turbine", k=5, mode=mode, principal=Principal("x", ("nobody",)))) == 0


def test_source_views_and_files_follow_the_same_rule(make_wb, tmp_path):
    root = _tree(tmp_path / "docs")
    wb = make_wb()
    wb.ingest(root, progress=False)
    fin = next(c for c in wb.chunks() if c.path.endswith("f.txt"))
    assert wb.source(fin.chunk_id, FINANCE).chunk.chunk_id == fin.chunk_id
    for call in (wb.source, wb.original_file):
        with pytest.raises(NotFoundError):
            call(fin.chunk_id, STAFF)


def test_answers_are_audited_with_their_chunks_and_generation(sample_wb):
    sam = Principal("sam", ("staff",))
    answer = sample_wb.ask("When does the shuttle bus leave car park D?", principal=sam)
    sample_wb.search("annual leave", k=2, principal=sam)
    sample_wb.ask("What is the capital of Australia?")
    entries = sample_wb.audit.entries()
    assert [(e.user, e.action) for e in entries] == [("(operator)", "ask"), ("sam", "search"), ("sam", "ask")]
    asked = entries[2]
    assert asked.text == answer.question
    assert asked.generation == answer.generation
    assert asked.chunk_ids == tuple(h.chunk.chunk_id for h in answer.hits)
    assert not asked.refused
    assert entries[0].refused
    assert [e.action for e in sample_wb.audit.entries(user="sam")] == ["search", "ask"]


def test_cli_acts_as_a_user_and_reads_the_audit_log(tmp_path):
    root = _tree(tmp_path / "docs")
    idx = str(tmp_path / "idx")
    assert run_cli("ingest", str(root), "--index", idx).returncode == 0
    assert run_cli("users", "add", "sam", "--groups", "staff", "--password-stdin", "--index", idx,
                   input="a long password\n").returncode == 0
    everything = json.loads(run_cli("search", "finance/f.txt payroll", "-k", "10", "--json", "--index", idx).stdout)
    as_sam = json.loads(run_cli("search", "finance/f.txt payroll", "-k", "10", "--json", "--as-user", "sam",
                                "--index", idx).stdout)
    assert any("finance" in h["path"] for h in everything)
    assert as_sam
    assert not any("/finance/" in h["path"] for h in as_sam)
    nobody = run_cli("search", "x", "--as-user", "mallory", "--index", idx)
    assert nobody.returncode == 2
    assert "no user 'mallory'" in nobody.stderr
    log = run_cli("audit", "--index", idx)
    assert "\tsam\tsearch\t" in log.stdout


def test_file_entries_match_exact_names_and_globs_stay_in_one_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    for rel in ("salary[2026].xlsx", "a.pdf", "sub/b.pdf"):
        (tmp_path / rel).write_text("x")
    (tmp_path / ".workbench-access").write_text(
        'groups = ["staff"]\n[files]\n"salary[2026].xlsx" = ["finance"]\n"*.pdf" = ["public"]\n')
    rules = AccessRules(tmp_path, "default", AccessSettings())
    assert rules.groups_for(tmp_path / "salary[2026].xlsx") == ("finance",)  # exact name, though [..] is glob syntax
    assert rules.groups_for(tmp_path / "a.pdf") == ("public",)
    assert rules.groups_for(tmp_path / "sub" / "b.pdf") == ("staff",)  # "*.pdf" does not reach into sub/


def test_an_exact_entry_wins_over_a_pattern_that_sorts_before_it(tmp_path):
    """The attack of issue 22: an entry named "[a-c]udget.md" (sorted first) must not take over budget.md."""
    for name in ("budget.md", "[a-c]udget.md", "cudget.md"):
        (tmp_path / name).write_text("x")
    write_access_file(tmp_path, ".workbench-access", {"budget.md": ("finance",)})
    write_access_file(tmp_path, ".workbench-access", {"[a-c]udget.md": ("staff",)})
    assert (tmp_path / ".workbench-access").read_text().index("[a-c]") < \
        (tmp_path / ".workbench-access").read_text().index('"budget.md"')  # the pattern comes first in the file
    rules = AccessRules(tmp_path, "default", AccessSettings())
    assert rules.groups_for(tmp_path / "budget.md") == ("finance",)
    assert rules.groups_for(tmp_path / "[a-c]udget.md") == ("staff",)  # its own exact entry
    assert rules.groups_for(tmp_path / "cudget.md") == ("staff",)  # a pattern still matches what nothing names


def test_upload_entries_are_removed_when_the_choice_is_dropped(tmp_path):
    write_access_file(tmp_path, ".workbench-access", {"a.pdf": ("hr",), "b.pdf": ("hr",)})
    write_access_file(tmp_path, ".workbench-access", {"a.pdf": None})
    rules = AccessRules(tmp_path, "uploads", AccessSettings(collections={"uploads": ["staff"]}))
    assert rules.groups_for(tmp_path / "a.pdf") == ("staff",)
    assert rules.groups_for(tmp_path / "b.pdf") == ("hr",)
    write_access_file(tmp_path, ".workbench-access", {"b.pdf": None})
    assert not (tmp_path / ".workbench-access").exists()


# ---- malformed access files fail closed --------------------------------------------------------------

@pytest.mark.parametrize("body, says", [
    ('[files]\nsalaries-2026.xlsx = ["finance"]\n', 'quote file names that contain dots: "salaries-2026.xlsx" = ["finance"]'),
    ('[files]\n"a.pdf" = "finance"\n', 'must be a list of group names in quotes, e.g. "a.pdf" = ["finance"] (got the string "finance")'),
    ('[files]\n"a.pdf" = "finance,xlsx"\n', "got the string"),  # never split at commas like a --groups option
    ('[files]\n"a.pdf" = 3\n', "must be a list of group names"),
    ('[files]\n"a.pdf" = ["finance", 3]\n', "must be a list of group names"),
    ('[files]\n"a.pdf" = [["finance"]]\n', "must be a list of group names"),
    ('[files.sub]\n"a.pdf" = ["finance"]\n', "quote file names that contain dots"),
    ('files = ["a.pdf"]\n', "[files] table"),
    ('groups = "finance"\n', 'groups must be a list of group names in quotes, e.g. groups = ["finance"]'),
    ('groups = "finance,staff"\n', "got the string"),
    ("groups = 7\n", "groups must be a list of group names"),
    ('groups = ["finance", true]\n', "groups must be a list of group names"),
    ('groups = { finance = true }\n', "groups must be a list of group names"),
    ('groups = ["no spaces allowed"]\n', "group name"),
    ('salaries-2026.xlsx = ["finance"]\n', '[files], with its name in quotes: "salaries-2026.xlsx"'),
])
def test_every_bad_value_shape_closes_the_folder_and_says_what_to_do(tmp_path, body, says):
    (tmp_path / "sub").mkdir()
    for rel in ("salaries-2026.xlsx", "a.pdf", "sub/b.pdf"):
        (tmp_path / rel).write_text("x")
    (tmp_path / ".workbench-access").write_text(body)
    rules = AccessRules(tmp_path, "default", AccessSettings(collections={"default": ["everyone"]}))
    for rel in ("salaries-2026.xlsx", "a.pdf", "sub/b.pdf"):
        assert rules.groups_for(tmp_path / rel) == (), rel  # admins only, not the default nor "xlsx"
    assert [f.path for f in rules.failures] == [str(tmp_path / ".workbench-access")]  # reported once
    assert "admins only" in rules.failures[0].reason
    assert says in rules.failures[0].reason


def test_a_list_of_strings_is_still_fine_and_upload_refuses_to_rewrite_a_malformed_file(tmp_path):
    from workbench.errors import WorkbenchError

    (tmp_path / ".workbench-access").write_text('groups = [" staff "]\n[files]\n"a.b.pdf" = []\n')
    rules = AccessRules(tmp_path, "default", AccessSettings())
    assert rules.groups_for(tmp_path / "a.b.pdf") == ()
    assert rules.groups_for(tmp_path / "c.pdf") == ("staff",)
    assert rules.failures == []
    (tmp_path / ".workbench-access").write_text('[files]\nsalaries-2026.xlsx = ["finance"]\n')
    with pytest.raises(WorkbenchError, match="quote file names that contain dots"):
        write_access_file(tmp_path, ".workbench-access", {"new.pdf": ("hr",)})  # would turn it into a rule for "xlsx"
    assert "salaries-2026.xlsx" in (tmp_path / ".workbench-access").read_text()  # left as it was


def _readable(make_wb, idx, principal) -> set[str]:
    return {d.path.rsplit("/", 1)[-1] for d in make_wb(idx).documents(principal=principal)}


def test_cli_reports_an_unquoted_dotted_name_and_the_folder_is_admins_only(make_wb, tmp_path):
    from conftest import make_xlsx

    root = tmp_path / "docs"
    (root / "fin").mkdir(parents=True)
    (root / "welcome.txt").write_text("Welcome to the company handbook.")
    (root / "fin" / "memo.txt").write_text("Finance memo: salaries are reviewed in March.")
    make_xlsx(root / "fin" / "salaries-2026.xlsx")
    (root / ".workbench-access").write_text('groups = ["staff"]\n')
    bad = root / "fin" / ".workbench-access"
    bad.write_text('groups = ["managers"]\n[files]\nsalaries-2026.xlsx = ["finance"]\n')
    idx = tmp_path / "idx"
    result = run_cli("ingest", str(root), "--index", str(idx), "--json")
    assert result.returncode == 1, result.stderr
    failed = {f["path"]: f["reason"] for f in json.loads(result.stdout)["failed"]}
    assert list(failed) == [str(bad)]
    assert 'quote file names that contain dots: "salaries-2026.xlsx" = ["finance"]' in failed[str(bad)]
    assert _readable(make_wb, idx, None) == {"welcome.txt", "memo.txt", "salaries-2026.xlsx"}  # all indexed
    for group in ("finance", "xlsx", "managers"):
        assert _readable(make_wb, idx, Principal("u", (group,))) == set(), group
    assert _readable(make_wb, idx, Principal("u", ("staff",))) == {"welcome.txt"}  # not the folder above either
    everyone_but_admins = Principal("u", ("finance", "xlsx", "managers", "staff"))
    hits = make_wb(idx).search("salaries reviewed in March", k=5, principal=everyone_but_admins)
    assert hits
    assert all("/fin/" not in h.chunk.path for h in hits)
    bad.write_text('groups = ["managers"]\n[files]\n"salaries-2026.xlsx" = ["finance"]\n')  # fixed: quoted
    assert run_cli("reindex", "--index", str(idx)).returncode == 0
    assert _readable(make_wb, idx, Principal("u", ("finance",))) == {"salaries-2026.xlsx"}
    assert _readable(make_wb, idx, Principal("u", ("managers",))) == {"memo.txt"}


# ---- overlapping sources agree --------------------------------------------------------------------

def _company(root):
    (root / "board").mkdir(parents=True)
    (root / "news.txt").write_text("Company news: the canteen reopens on Monday.")
    (root / "board" / "minutes.txt").write_text("Board minutes: the merger vote is scheduled for June.")
    (root / ".workbench-access").write_text('groups = ["board"]\n')  # the child folder has none of its own
    return root


def test_a_nested_source_reads_the_access_files_of_the_source_around_it(tmp_path):
    root = _company(tmp_path / "co")
    minutes = root / "board" / "minutes.txt"
    settings = AccessSettings(collections={"default": ["everyone"]})
    assert AccessRules(root / "board", "default", settings).groups_for(minutes) == ("everyone",)  # alone: stops there
    for roots in ([root, root / "board"], [root / "board", root], [root / "board", root, minutes]):
        assert AccessRules(roots, "default", settings).groups_for(minutes) == ("board",)
    assert AccessRules([minutes], "default", settings).groups_for(minutes) == ("everyone",)  # a single file: its folder
    # a single file does not widen the folder sources next to it: /co/news.txt's folder is /co, not /co/board's limit
    assert AccessRules([root / "board", root / "news.txt"], "default", settings).groups_for(minutes) == ("everyone",)


def test_cli_nested_source_keeps_the_parent_folders_groups_through_ingest_and_reindex(make_wb, tmp_path):
    root = _company(tmp_path / "co")
    idx = str(tmp_path / "idx")
    board, staff = Principal("b", ("board",)), Principal("s", ("staff",))
    for step in (("ingest", str(root)), ("ingest", str(root / "board")), ("reindex",)):
        result = run_cli(*step, "--index", idx)
        assert result.returncode == 0, (step, result.stdout, result.stderr)
        assert _readable(make_wb, idx, board) == {"news.txt", "minutes.txt"}, step
        assert _readable(make_wb, idx, staff) == set(), step
        assert [h.chunk.path for h in make_wb(idx).search("merger vote", k=3, principal=board)][:1] == \
            [str(root / "board" / "minutes.txt")], step


def test_nested_source_first_then_the_folder_around_it(make_wb, tmp_path):
    root = _company(tmp_path / "co")
    wb = make_wb()
    wb.ingest(root / "board", progress=False)
    assert {d.groups for d in wb.documents()} == {()}  # /co is not a source yet: its access file is not read
    report = wb.ingest(root, progress=False)
    assert report.regrouped == 1
    assert {d.groups for d in wb.documents()} == {("board",)}
    assert wb.reindex(progress=False).regrouped == 0
    assert wb.ingest(root / "board", progress=False).regrouped == 0
