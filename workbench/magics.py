"""IPython magics: ``%load_ext workbench``, then ``%search QUERY`` and ``%%ask``.

The magics use the notebook's ``wb`` variable when it holds a `Workbench`, else open one from
./workbench.toml or ../workbench.toml (the project's, seen from notebooks/) and keep it. ``%search`` returns the hits (shown as a table);
``%%ask`` streams the answer into the cell, then shows the `Answer` with its sources and timings
(and returns it, so ``answer = _`` keeps it). ``--as-user NAME`` limits either to what that
web-app user may read; without it the notebook acts as the operator and reads everything.
"""

from __future__ import annotations

import html

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring


@magics_class
class WorkbenchMagics(Magics):
    _own = None

    def workbench(self):
        """The notebook's ``wb`` when it is a Workbench, else one opened from the config (once)."""
        from workbench.pipeline import Workbench

        candidate = self.shell.user_ns.get("wb")
        if isinstance(candidate, Workbench):
            return candidate
        if WorkbenchMagics._own is None:  # ./workbench.toml, else the project's one above notebooks/
            from pathlib import Path

            config = next((p for p in (Path("workbench.toml"), Path("../workbench.toml")) if p.exists()), None)
            WorkbenchMagics._own = Workbench.open(config)
        return WorkbenchMagics._own

    def principal(self, name: str | None):
        """The Principal of user ``name`` (None: the operator)."""
        return self.workbench().principal(name) if name else None

    @magic_arguments()
    @argument("-k", type=int, default=5, help="how many passages (default 5)")
    @argument("--as-user", help="only what this user (web-app or directory) may read")
    @argument("--mode", choices=("hybrid", "dense", "lexical"), help="retrieval mode (default: config)")
    @argument("--collection", action="append", help="only this collection (repeatable)")
    @argument("query", nargs="+", help="what to look for")
    @line_magic
    def search(self, line: str):
        """%search [-k N] [--mode M] [--collection C] [--as-user NAME] QUERY  — the best passages, as a table."""
        args = parse_argstring(self.search, line)
        return self.workbench().search(" ".join(args.query), k=args.k, mode=args.mode, collection=args.collection,
                                       principal=self.principal(args.as_user))

    @magic_arguments()
    @argument("-k", type=int, default=None, help="sources given to the model (default [answer] k)")
    @argument("--collection", action="append", help="only this collection (repeatable)")
    @argument("--as-user", help="answer only from what this web-app user may read")
    @cell_magic
    def ask(self, line: str, cell: str):
        """%%ask [-k N] [--collection C] [--as-user NAME]  then the question in the cell body."""
        from IPython.display import HTML, display

        from workbench.records import Filters

        args = parse_argstring(self.ask, line)
        question = " ".join(cell.split())
        if not question:
            raise ValueError("%%ask: write the question in the cell, below the %%ask line")
        filters = Filters(collections=tuple(args.collection)) if args.collection else None
        handle = display(HTML("<i>searching…</i>"), display_id=True)
        text = ""
        answer = None
        for item in self.workbench().ask_stream(question, k=args.k, filters=filters,
                                                principal=self.principal(args.as_user)):
            if isinstance(item, str):
                text += item
                handle.update(HTML(f"<div style='white-space:pre-wrap'>{html.escape(text)}</div>"))
            else:
                answer = item
        handle.update(HTML(""))
        return answer
