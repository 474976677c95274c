"""The staff web app (Gradio in FastAPI): sign-in, chat with cited answers, source viewer, admin uploads.

Shipped in the ``workbench`` distribution under its own top-level name, so that it cannot collide
with another ``apps`` package; the library never imports it: `workbench serve` finds it through
the ``workbench.apps`` entry point. It is a client of the public API (`workbench`,
`workbench.stores`) like the notebooks and the CLI, and keeps its own state (sign-in sessions).

- `app`: `serve` (uvicorn) and `main` (the command line);
- `server`: `create_server`, putting the parts below together into one FastAPI app;
- `pages`: `build_app` → the ``gr.Blocks`` (what the user sees) and which event calls which handler;
- `handlers`: what the page's events do (ask, rate, upload, re-index...), the server-side `Conversation`;
- `signin`: who a request is (session cookie or SSO header), POST /login, GET /logout;
- `sessions`: sign-in sessions and failed-login delays, in memory;
- `viewer`: the source viewer's routes (/source/{chunk_id}, its page image and file);
- `guard`: the ASGI wall against other sites' pages, unknown hosts, unused routes, non-admin uploads;
- `gate`: what a client may put into the page's events;
- `render`: records → safe Markdown/HTML.
"""

from __future__ import annotations

from workbench_web.app import main, serve
from workbench_web.pages import build_app
from workbench_web.server import create_server

__all__ = ["build_app", "create_server", "main", "serve"]
