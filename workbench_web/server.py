"""The server around the page: `create_server(workbench)` puts the staff app's parts together.

In order: the settings are checked (single sign-on by header only on a loopback address and only
with the proxy's secret), uploads get a private folder under the index, the page is built
(`workbench_web.pages`), then one FastAPI app (no API description pages) gets the error pages and
source viewer (`workbench_web.viewer`), sign-in and sign-out (`workbench_web.signin`, and through the
OpenID provider `workbench_web.oidc`; sessions of directory users re-read their groups), the Gradio app
mounted at / with Gradio's own routes reading our sessions (`workbench_web.sessions.GradioTokens`),
the REST API and the MCP server for personal keys (`workbench_web.api`, `workbench_web.mcp`), and
around everything the guard (`workbench_web.guard`) with the event gate (`workbench_web.gate`),
which caps each user's questions in flight (`questions_of`).

Safe defaults of the mounted app: no SSR/node server, no MCP, no PWA, no monitoring or run history,
no footer links, no error details, no extra file paths, uploads capped at ``[web] max_upload_mb``.
Leaves out: running it (`workbench_web.app.serve`) and what each part does inside.
"""

import os
import shutil
from pathlib import Path

from workbench import Workbench, WorkbenchError
from workbench.net import is_loopback
from workbench.services.apicalls import KeyCalls
from workbench_web.api import add_api_routes
from workbench_web.gate import EventGate, shapes_of
from workbench_web.guard import WebGuard, origin_of, public_origins
from workbench_web.mcp import add_mcp_route
from workbench_web.pages import CSS, build_app
from workbench_web.sessions import GradioTokens, LoginThrottle, SessionStore
from workbench_web.oidc import add_oidc_routes, oidc_client, refresher
from workbench_web.signin import Identity, add_signin_routes, audit, gradio_auth, proxy_secret
from workbench_web.viewer import add_error_pages, add_viewer_routes


def create_server(wb: Workbench, host: str | None = None, port: int | None = None):
    """A FastAPI app serving the staff app at / and the source viewer at /source/{chunk_id}.

    Sign-in (POST /login) and sign-out (GET /logout) are answered here, not by Gradio (see
    `workbench_web.signin`). With ``[web] trusted_user_header`` set, the user name comes from that
    header (single sign-on through a reverse proxy), only together with the proxy's shared secret,
    and the server must listen on a loopback address only.
    """
    from fastapi import FastAPI

    web = wb.config.web
    host = host or web.host
    port = port if port is not None else web.port
    if web.trusted_user_header and not is_loopback(host):
        raise WorkbenchError(f"[web] trusted_user_header is set but the app would listen on {host}: single sign-on "
                             "by header is only safe behind a reverse proxy on the same machine; use host 127.0.0.1")
    secret = proxy_secret(web)
    uploads = private_upload_dir(wb)
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)  # read by gr.Blocks and Gradio's app as they are created
    demo = build_app(wb)
    demo.GRADIO_CACHE = str(uploads)
    wb.accounts  # noqa: B018 - a wrong [auth.ldap] setting stops the start here, not every sign-in later
    oidc = None if web.trusted_user_header else oidc_client(wb, web.public_url or f"http://{host}:{port}")
    sessions = SessionStore(wb.users, web.session_idle_s, web.session_max_s, refresh=refresher(wb, oidc),
                            refresh_s=wb.config.auth.refresh_s)
    throttle = LoginThrottle(web.login_attempts, web.lockout_s, per_client=web.login_concurrency)
    https = bool(web.public_url) and origin_of(web.public_url).startswith("https://")
    identity = Identity(wb, sessions, secret)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    add_error_pages(app)
    add_viewer_routes(app, wb, identity.principal_of)
    add_signin_routes(app, wb, identity, throttle, https)
    calls = KeyCalls(wb)
    add_api_routes(app, wb, calls, signed_in=lambda request: identity.guard_user(dict(request.headers)))
    add_mcp_route(app, wb, calls, oidc)
    if oidc is not None:
        add_oidc_routes(app, wb, identity, oidc, https)
    app = mount_page(app, demo, wb, identity, uploads)
    add_guard(app, wb, demo, identity, host, port)
    app.state.sessions = sessions
    app.state.stop_refresher = sessions.start_refresher()
    return app


def private_upload_dir(wb: Workbench) -> Path:
    """``<index>/web-uploads``: where Gradio keeps uploads until they are processed (0700, emptied at start)."""
    folder = wb.index_dir / "web-uploads"
    shutil.rmtree(folder, ignore_errors=True)  # leftovers of a previous run: nobody will process them now
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def mount_page(app, demo, wb: Workbench, identity: Identity, uploads: Path):
    """``app`` with the page mounted at / (after the routes above, which answer first)."""
    import gradio as gr
    from starlette.routing import Mount

    web = wb.config.web
    app = gr.mount_gradio_app(app, demo, path="", max_file_size=f"{int(web.max_upload_mb * 1024)}kb",
                              allowed_paths=[], ssr_mode=False, mcp_server=False, pwa=False, show_error=False,
                              footer_links=[], enable_monitoring=False, run_history=False, css=CSS,
                              **gradio_auth(web, identity))
    inner = next(r.app for r in app.routes if isinstance(r, Mount))
    inner.tokens = GradioTokens(identity.sessions)  # Gradio's own routes (upload, files, config, queue) see our sessions
    inner.uploaded_file_dir = str(uploads)
    identity.gradio_app = inner
    # Gradio checks that files in event inputs were uploaded only in apps started with launch(), which
    # sets this; a mounted app never does, so say it here (the event gate refuses such inputs first)
    demo.has_launched = True
    return app


def add_guard(app, wb: Workbench, demo, identity: Identity, host: str, port: int) -> None:
    """The guard around everything, with the event gate read from the page's events."""
    web = wb.config.web

    def is_admin(name: str) -> bool:
        try:
            return wb.principal(name).is_admin
        except WorkbenchError:  # gone, or the directory cannot be asked: not an admin now
            return False

    async def refused(user: str, what: str) -> None:
        await audit(wb, user, "refused", what)

    gate = EventGate(shapes_of(demo), per_user=web.questions_per_user, in_flight=lambda user: questions_of(demo, user))
    header = web.trusted_user_header
    app.add_middleware(WebGuard, origins=public_origins(web, host, port), user_of=identity.guard_user,
                       is_admin=is_admin, gate=gate, max_body=int(web.max_request_kb * 1024), on_refused=refused,
                       single_headers=(header,) if header else ())


def questions_of(demo, user: str) -> int:
    """Questions of ``user`` waiting in Gradio's queue or being answered (events of the "llm" group)."""
    q = demo._queue
    waiting = [e for eq in list(q.event_queue_per_concurrency_id.values()) for e in list(eq.queue)]
    running = [e for job in list(q.active_jobs) if job for e in job]
    return sum(1 for e in (*waiting, *running) if e.username == user and e.concurrency_id == "llm")
