"""The staff web app (Gradio): sign-in, chat with cited answers, source viewer, admin uploads.

Shipped in the ``workbench`` distribution under its own top-level name, so that it cannot collide
with another ``apps`` package; the library never imports it: `workbench serve` finds it through
the ``workbench.apps`` entry point. It is a client of the public API (`workbench`,
`workbench.stores`) like the notebooks and the CLI.

- `app`: `build_app(workbench)` → ``gr.Blocks``, `create_server` (login, sessions, source viewer),
  `serve`, `main`;
- `guard`: the ASGI wall against other sites' pages, unknown hosts and non-admin uploads;
- `render`: records → safe Markdown/HTML.
"""

from __future__ import annotations

from workbench_web.app import GradioTokens, build_app, concurrency_for, create_server, main, serve

__all__ = ["GradioTokens", "build_app", "concurrency_for", "create_server", "main", "serve"]
