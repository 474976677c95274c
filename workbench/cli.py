"""`workbench` command line: a thin client of `Workbench` (no pipeline logic here).

Exit codes: 0 success; 1 some files failed (the rest was indexed); 2 usage or setup error;
75 the index is locked by another writer (cron may retry).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

EPILOG = """examples:
  workbench ingest ./policies ./handbooks --collection hr
  workbench search "travel per diem" -k 5
  workbench ask "How many days of leave can I carry over?"
  workbench status --json
  workbench reindex --wait 600        # from cron
  workbench eval data/sample-questions.csv --answers
  workbench users add alice --groups staff,admin
  workbench access explain docs/finance/budget.xlsx --as-user bob
  workbench serve --port 7860          # behind a reverse proxy on the same host

Every command takes --index DIR (default: [index] dir of workbench.toml, else ./workbench-index),
--config FILE (default: ./workbench.toml if present) and --json."""


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--index", metavar="DIR", help="index folder (overrides [index] dir)")
    g.add_argument("--config", metavar="FILE", help="settings file (default ./workbench.toml if present)")
    g.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="workbench", description="Private-document RAG workbench: ingest folders, keep them in sync, search.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common], help="parse, chunk, embed and publish files or folders",
                       description="Index every supported file under PATH (PDF, DOCX, PPTX, XLSX, CSV, HTML, "
                       "Markdown, text, e-mail). Each PATH is remembered as a source for `reindex`. "
                       "Exits 1 when some files failed (they are listed with reasons; the rest is indexed).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="folder or file to ingest")
    p.add_argument("--collection", default="default", help="collection to put the documents in (default: default)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another writer to finish (default: fail at once)")
    _cluster_args(p)

    p = sub.add_parser("reindex", parents=[common], help="re-sync every source ingested before (for cron)",
                       description="Re-sync all sources: add new files, replace changed ones, follow renames, "
                       "drop deleted ones. Takes the index lock; prints a one-line summary; exits 1 when a file "
                       "failed and 75 when another writer holds the lock.")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another writer to finish (default: fail at once)")
    _cluster_args(p)

    sub.add_parser("status", parents=[common], help="documents, chunks, collections, failures, model, generation",
                   description="Show what the published index holds.")

    p = sub.add_parser("search", parents=[common], help="show the chunks that best match a query",
                       description="Print the best-matching chunks with file, page, heading and score.")
    p.add_argument("query", help="what to look for")
    p.add_argument("-k", type=int, default=5, help="how many chunks (default 5)")
    p.add_argument("--collection", action="append", help="only this collection (repeatable)")
    p.add_argument("--mode", choices=("hybrid", "dense", "lexical"), help="retrieval mode (default: config, hybrid)")
    p.add_argument("--as-user", metavar="NAME", help="only what this user may read: a web-app user, or a person of the [auth.ldap] directory (default: everything)")

    p = sub.add_parser("ask", parents=[common], help="answer a question from the documents, with citations",
                       description="Stream a grounded answer from the configured LLM ([llm] in workbench.toml), "
                       "then list the cited sources. Refuses when the documents do not cover the question. "
                       "--json prints the whole Answer record instead.")
    p.add_argument("question", help="the question")
    p.add_argument("-k", type=int, default=None, help="sources given to the model (default [answer] k)")
    p.add_argument("--collection", action="append", help="only this collection (repeatable)")
    p.add_argument("--as-user", metavar="NAME", help="answer only from what this user (web-app or directory) may read")

    p = sub.add_parser("llm-serve", parents=[common], help="serve the configured LLM over an OpenAI-compatible API",
                       description="Load [llm] once and serve POST /v1/chat/completions (streaming) and GET "
                       "/v1/models, so several processes can share it (point them at it with [llm] backend = "
                       "\"openai\"). Binds to 127.0.0.1 by default; any other address needs an API key. "
                       "Answers are capped at [llm] max_new_tokens, whatever a client asks for.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="require the key held in this environment variable (default: [llm] api_key_env)")
    p.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="generate N answers at once (llamacpp: N contexts over one memory-mapped model; "
                   "transformers: N threads on one model). Default 1. Tell clients with [llm] max_concurrency")
    p.add_argument("--max-waiting", type=int, default=64, metavar="N",
                   help="requests that may wait for a free slot; more get 503 busy at once (default 64)")

    p = sub.add_parser("eval", parents=[common], help="score retrieval (and answers) on a labelled question file",
                       description="Read a question file (CSV or JSONL: question, relevant, answer; see "
                       "README, 'Evaluating') and print nDCG@k, MAP, recall and MRR for dense, lexical and "
                       "hybrid search at document level. --answers also asks the model every question and "
                       "counts answers, refusals and citations.")
    p.add_argument("file", help="the question file (.csv or .jsonl)")
    p.add_argument("-k", type=int, default=10, help="cut-off for nDCG and recall (default 10)")
    p.add_argument("--mode", action="append", choices=("dense", "lexical", "hybrid"),
                   help="only this retrieval mode (repeatable; default all three)")
    p.add_argument("--answers", action="store_true", help="also ask the model (slow: one answer per question)")
    p.add_argument("--as-user", metavar="NAME", help="evaluate what this user (web-app or directory) can find")

    p = sub.add_parser("audit", parents=[common], help="who asked what, when, and what grounded the answers",
                       description="Print the audit log (<index>/audit.sqlite), newest first: time, user, "
                       "action (ask, search, view, download), index generation, chunk ids, text.")
    p.add_argument("--user", help="only this user")
    p.add_argument("--limit", type=int, default=50, help="how many entries (default 50)")

    p = sub.add_parser("serve", parents=[common], help="start the staff web app (chat, sources, uploads)",
                       description="Start the Gradio web app for staff: login, chat with cited answers, source "
                       "viewer; admins also upload, re-index and read feedback. Create users first with "
                       "`workbench users add`. Defaults come from [web] in workbench.toml.")
    p.add_argument("--host", help="address to listen on (default [web] host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default [web] port, 7860)")

    p = sub.add_parser("mcp", parents=[common], help="serve the documents to a local MCP client over stdio",
                       description="Serve the MCP tools search, ask and read_passage over stdio, for an MCP "
                       "client on this machine (a desktop assistant, an agent). Acts as the operator (reads "
                       "everything) unless --as-user names a user. Over the network, use `workbench serve` "
                       "(/mcp) with a personal key instead.")
    p.add_argument("--as-user", metavar="NAME", help="only what this user (web-app or directory) may read")

    p = sub.add_parser("users", help="manage the web app's users: add, list, remove, passwd, groups",
                       description="Users live in <index>/users.sqlite with argon2id password hashes. "
                       "Members of the [web] admin_group (default 'admin') may upload and re-index.")
    users = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    u = users.add_parser("add", parents=[common], help="create a user (asks for the password)")
    u.add_argument("name")
    u.add_argument("--groups", default="", help="comma-separated groups, e.g. staff,admin")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    users.add_parser("list", parents=[common], help="list users and their groups")
    u = users.add_parser("remove", parents=[common], help="delete a user (their open sessions end too)")
    u.add_argument("name")
    u = users.add_parser("passwd", parents=[common], help="set a new password (asks for it)")
    u.add_argument("name")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    u = users.add_parser("groups", parents=[common], help="replace a user's groups")
    u.add_argument("name")
    u.add_argument("groups", help="comma-separated groups ('' for none)")

    p = sub.add_parser("keys", help="personal API keys for other tools: create, list, revoke",
                       description="A key acts as its user, with the user's groups now, for the scopes it holds. "
                       "It is printed once; only its hash is kept (<index>/keys.sqlite).")
    keys = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = keys.add_parser("create", parents=[common], help="a new key for a user (printed once)")
    k.add_argument("--user", required=True, help="whose rights the key has")
    k.add_argument("--name", required=True, help="what uses it, e.g. 'intranet portal'")
    k.add_argument("--expires", default="90d", help="90d, 12h, 30m or 'never' (default 90d)")
    k.add_argument("--scope", default=None, help="comma-separated: search, ask, read (default: all)")
    k = keys.add_parser("list", parents=[common], help="keys: id, user, label, scopes, created, last used, expiry")
    k.add_argument("--user", help="only this user's keys")
    k = keys.add_parser("revoke", parents=[common], help="stop a key at once")
    k.add_argument("id")

    p = sub.add_parser("access", help="explain who may read a file, and why",
                       description="Shows the rules read for a file (access files, or with [access] from = "
                       "\"posix\" its owner, group, mode and ACL entries and its folders'), the readers they give, "
                       "what the published index holds, and whether a user may read it.")
    access = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = access.add_parser("explain", parents=[common], help="why PATH gets the readers it gets")
    a.add_argument("path")
    a.add_argument("--as-user", metavar="NAME", help="also say whether this user (web-app or directory) may read it")
    return parser


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="ADDRESS", default=None,
                   help="parse and embed on this Ray cluster ('auto' = the one running on this machine, or "
                   "HOST:PORT of its head); this process writes the index. Default: [cluster] address")
    p.add_argument("--ship-files", action=argparse.BooleanOptionalAction, default=None,
                   help="with a cluster: send file bytes through Ray instead of a shared mount "
                   "(default: [cluster] ship_files)")


def _run(args: argparse.Namespace) -> int:
    from workbench.pipeline import Workbench

    wb = Workbench.open(args.config, index_dir=args.index)
    progress = sys.stderr.isatty() and not args.json
    if args.command in ("ingest", "reindex"):
        if args.command == "ingest":
            report = wb.ingest(args.paths, collection=args.collection, wait_s=args.wait, progress=progress,
                               cluster=args.cluster, ship_files=args.ship_files)
        else:
            report = wb.reindex(wait_s=args.wait, progress=progress, cluster=args.cluster,
                                ship_files=args.ship_files)
        if args.json:
            _print_json({**report.to_dict(), "ok": report.ok, "summary": report.summary()})
        else:
            print(report)
        return 0 if report.ok else 1
    if args.command == "status":
        status = wb.status()
        _print_json(status.to_dict()) if args.json else print(status)
        return 0
    if args.command == "ask":
        return _ask(wb, args)
    if args.command == "users":
        return _users(wb, args)
    if args.command == "keys":
        return _keys(wb, args)
    if args.command == "access":
        explained = wb.explain_access(args.path, args.as_user)
        _print_json(explained.to_dict()) if args.json else print(explained)
        return 0
    if args.command == "eval":
        return _eval(wb, args)
    if args.command == "audit":
        entries = wb.audit.entries(args.user, args.limit)
        if args.json:
            _print_json([e.to_dict() for e in entries])
        else:
            print("\n".join(str(e) for e in entries) if entries else "the audit log is empty")
        return 0
    if args.command == "serve":
        serve = _app("staff")

        serve(wb, host=args.host, port=args.port)
        return 0
    if args.command == "mcp":
        from workbench.services.mcp import serve_stdio

        serve_stdio(wb, _acting(wb, args))
        return 0
    if args.command == "llm-serve":
        from workbench.serve_llm import serve, server_api_key

        key_env = args.api_key_env or wb.config.llm.api_key_env
        server_api_key(args.host, key_env)  # refuse an open bind before loading the model
        from workbench.errors import WorkbenchError
        from workbench.serve_llm import load_slots

        if args.parallel < 1 or args.max_waiting < 0:
            raise WorkbenchError("--parallel must be at least 1 and --max-waiting at least 0")
        slots = load_slots(wb.config.llm, args.parallel, args.max_waiting, shared=lambda: wb.llm)
        serve(slots, args.host, args.port, key_env, wb.config.llm.max_new_tokens)
        return 0
    hits = wb.search(args.query, k=args.k, collection=args.collection, mode=args.mode, principal=_acting(wb, args))
    if args.json:
        _print_json([{**h.chunk.to_dict(), "score": h.score, "rank": h.rank, "location": h.chunk.location,
                      "dense_score": h.dense_score, "lexical_score": h.lexical_score,
                      "ocr_confidence": h.ocr_confidence} for h in hits])
    else:
        print("\n".join(str(h) for h in hits) if hits else "no matching chunks")
    return 0


def _app(name: str):
    """The ``serve`` function an installed app registers under the ``workbench.apps`` entry point
    (the library never imports an app by name)."""
    from importlib.metadata import entry_points

    from workbench.errors import WorkbenchError

    found = [e for e in entry_points(group="workbench.apps") if e.name == name]
    if not found:
        raise WorkbenchError(f"the {name} web app is not installed: run `make setup` (or `pip install -e .`)")
    return found[0].load()


def _acting(wb, args: argparse.Namespace):
    """The Principal named by --as-user (None: the operator, who reads everything)."""
    name = getattr(args, "as_user", None)
    return wb.principal(name) if name else None


def _ask(wb, args: argparse.Namespace) -> int:
    from workbench.records import AnswerFlag, Filters

    filters = Filters(collections=tuple(args.collection)) if args.collection else None
    principal = _acting(wb, args)
    if args.json:
        answer = wb.ask(args.question, k=args.k, filters=filters, principal=principal)
        _print_json({**answer.to_dict(), "flags": [str(f) for f in answer.flags()]})
        return 0

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    answer = wb.ask(args.question, k=args.k, filters=filters, on_token=show, principal=principal)
    print("\n")
    if answer.refused:
        print(f"(no answer: {answer.refusal_reason})")
    for c in answer.cited or answer.citations:
        print(c)
    for flag in answer.flags():
        if flag.kind is not AnswerFlag.REFUSED:  # said above
            print(f"note: {flag}")
    return 0


def _eval(wb, args: argparse.Namespace) -> int:
    from workbench.evaluate import evaluate_answers, evaluate_retrieval, load_questions

    questions = load_questions(args.file)
    principal = _acting(wb, args)
    retrieval = evaluate_retrieval(wb, questions, args.mode or ("dense", "lexical", "hybrid"), k=args.k,
                                   principal=principal)
    answers = evaluate_answers(wb, questions, principal) if args.answers else None
    if args.json:
        _print_json({"retrieval": retrieval, "answers": answers})
        return 0
    names = [n for n in next(iter(retrieval.values())) if n != "queries"]
    print(f"{len(questions)} questions, {int(next(iter(retrieval.values()))['queries'])} with relevant documents")
    print(f"{'mode':<10}" + "".join(f"{n:>9}" for n in names))
    for mode, metrics in retrieval.items():
        print(f"{mode:<10}" + "".join(f"{metrics[n]:>9.4f}" for n in names))
    if answers:
        a = answers
        print(f"answers: {a['answered']:.0f}/{a['covered']:.0f} covered questions answered, "
              f"{a['cited']:.0f} cite a source, {a['cited_relevant']:.0f} cite a relevant document, "
              f"{a['expected_phrase']:.0f}/{a['with_phrase']:.0f} contain the expected phrase; "
              f"{a['refused_uncovered']:.0f}/{a['questions'] - a['covered']:.0f} uncovered questions refused; "
              f"{a['invented_citations']:.0f} with invented citations; {a['seconds']:.1f} s per question")
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    from workbench.errors import WorkbenchError

    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise WorkbenchError("the two passwords differ; nothing changed")
    return first


def _users(wb, args: argparse.Namespace) -> int:
    store = wb.users
    if args.action == "list":
        people = store.list()
        if args.json:
            _print_json([u.to_dict() for u in people])
        else:
            print("\n".join(str(u) for u in people) if people else "no users yet: `workbench users add NAME`")
        return 0
    if args.action == "add":
        user = store.add(args.name, _password(args), args.groups)
        print(f"added {user.name} (groups: {', '.join(user.groups) or 'none'})")
    elif args.action == "passwd":
        store.set_password(args.name, _password(args))
        print(f"password changed for {args.name}")
    elif args.action == "groups":
        user = store.set_groups(args.name, args.groups)
        print(f"{user.name} now in: {', '.join(user.groups) or 'no groups'}")
    else:
        store.remove(args.name)
        print(f"removed {args.name}")
    return 0


def _keys(wb, args: argparse.Namespace) -> int:
    from workbench.stores.keys import parse_duration, parse_scopes

    store = wb.keys
    if args.action == "create":
        user = wb.users.get(args.user)
        if user is None:
            from workbench.errors import NotFoundError

            raise NotFoundError(f"no user {args.user!r} in the workbench: a directory user signs in to the app once "
                                "first (see `workbench users list`)")
        key, token = store.create(args.user, args.name, parse_scopes(args.scope), parse_duration(args.expires),
                                  user_since=user.created_at)
        if args.json:
            _print_json({**key.to_dict(), "key": token})
        else:
            print(f"{token}\n(shown once: store it now) id {key.id}, user {key.user}, scopes {','.join(key.scopes)}")
        return 0
    if args.action == "list":
        found = store.list(args.user)
        if args.json:
            _print_json([k.to_dict() for k in found])
        else:
            print("\n".join(str(k) for k in found) if found else "no keys yet: `workbench keys create`")
        return 0
    store.revoke(args.id)
    print(f"revoked {args.id}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import workbench  # noqa: F401  (applies the offline switches before any model library loads)
    from workbench.errors import WorkbenchError

    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except WorkbenchError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("workbench: interrupted; the published index is unchanged", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
