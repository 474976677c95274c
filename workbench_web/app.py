"""The staff web app: login, chat with cited answers, source viewer; uploads and admin for admins.

`build_app(workbench)` returns the `gr.Blocks`; `create_server(workbench)` wraps it in a FastAPI
app with the source-viewer routes and the login; `serve` runs that with uvicorn; `main()` is the
command line. Every answer, search, source and file goes through `Workbench` with the signed-in
user's `Principal`, so the pipeline's access rule applies here too. No pipeline logic lives here.

Safe defaults: no analytics, no share link, no SSR/node server, no MCP, no API page, the queue
bounded (``[web] queue_size``) with a concurrency limit sized to the LLM backend, the REST routes
that skip the queue closed, uploads capped at ``[web] max_upload_mb``, model output escaped.
Sign-in, sessions and sign-out are the workbench's own (`workbench_web.sessions`: idle and absolute
expiry, revocation when the account changes, failed-login delays per client, password checks off
the event loop); `workbench_web.guard` refuses requests from other sites' pages and non-admin uploads.
Uploaded files wait in a private folder under the index and are deleted once processed.
"""

import argparse
import asyncio
import dataclasses
import hmac
import html
import os
import queue
import shutil
import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

# only the public API: `workbench` (imported first: offline and no-analytics switches before gradio)
# and the server-side stores of `workbench.stores`
from workbench import Answer, EmptyIndexError, Filters, NotFoundError, Workbench, WorkbenchError
from workbench.stores import parse_groups, safe_filename, upload_outcomes
from workbench_web import render
from workbench_web.gate import EventGate, shapes_of
from workbench_web.guard import WebGuard, cookies_of, is_loopback, origin_of, public_origins
from workbench_web.sessions import LoginThrottle, SessionStore

if TYPE_CHECKING:
    import gradio as gr

CSS = """
.wb-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px; margin-bottom: 10px; }
.wb-source-head { margin-bottom: 4px; } .wb-num { font-weight: 700; color: var(--color-accent); }
.wb-passage { font-size: 0.92em; color: var(--body-text-color-subdued); margin: 6px 0; max-height: 9em; overflow: auto; }
.wb-empty { color: var(--body-text-color-subdued); padding: 8px; }
.wb-status th { text-align: left; padding-right: 1em; }
"""
PROXY_SECRET_HEADER = "X-Workbench-Proxy-Secret"
LOGIN_QUEUE_FACTOR = 8  # password checks waiting beyond login_concurrency x this are refused as busy
LOGIN_HOLD_S = 10.0  # failed-login delays up to this are waited out by the server; longer ones are refused
MAX_CHAT_MESSAGES = 40  # of a conversation kept and shown
FOLLOW_UP_TURNS = 3  # earlier (question, answer) turns given to the model with a follow-up question


@dataclass(frozen=True, slots=True)
class Conversation:
    """One browser tab's conversation, kept on the server (Gradio session state), never sent back by
    the client: ``shown`` is what the chat displays (escaped Markdown made here), ``turns`` the
    (question, answer) pairs follow-up questions use. ``owner`` is the user it belongs to."""

    owner: str
    shown: tuple[dict, ...] = ()
    turns: tuple[tuple[str, str], ...] = ()

    def showing(self, *messages: dict) -> "Conversation":
        return dataclasses.replace(self, shown=(*self.shown, *messages)[-MAX_CHAT_MESSAGES:])

    def last_shown(self, content: str) -> "Conversation":
        return dataclasses.replace(self, shown=(*self.shown[:-1], {"role": "assistant", "content": content}))


class GradioTokens(MutableMapping):
    """Gradio's ``app.tokens`` (token → user name) backed by a `SessionStore`.

    Gradio reads it on every authenticated route and deletes from it at /logout; sign-in goes
    through the workbench's own route (`SessionStore.start`), so setting items is refused.
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def __getitem__(self, token: str) -> str:
        user = self.store.user_of(token)
        if user is None:
            raise KeyError(token)
        return user

    def get(self, token, default=None):
        return self.store.user_of(token) or default

    def __contains__(self, token) -> bool:
        return self.store.user_of(token, touch=False) is not None

    def __setitem__(self, token: str, user: str) -> None:
        raise RuntimeError("sign-in goes through the workbench's /login route")

    def __delitem__(self, token: str) -> None:
        self.store.end(token)

    def __iter__(self) -> Iterator[str]:
        return iter([t for t, _ in self.store.tokens()])

    def __len__(self) -> int:
        return len(self.store.tokens())


def concurrency_for(wb: Workbench) -> int:
    """Questions answered at once: ``[web] concurrency``, else what the LLM backend says it can take."""
    return wb.config.web.concurrency or wb.llm_max_concurrency


def _principal(wb: Workbench, request):
    """The signed-in user's Principal, or a gr.Error asking them to sign in again."""
    import gradio as gr

    try:
        return wb.principal(getattr(request, "username", None) or "")
    except NotFoundError:
        raise gr.Error("Your session has ended or your account was removed. Reload the page and sign in "
                       "again.") from None


def _admin(wb: Workbench, request, what: str):
    """The signed-in admin's Principal; anyone else gets a gr.Error, and the attempt is audited."""
    import gradio as gr

    principal = _principal(wb, request)
    if not principal.is_admin:
        wb.audit.record(principal.name, "refused", f"{what}: only administrators can do this", outcome="refused")
        raise gr.Error("Only administrators can do this.")
    return principal


def _remove_uploaded(paths, cache: str) -> None:
    """Delete Gradio's temp copies of ``paths`` (only inside ``cache``) and their now-empty folders."""
    base = Path(cache).resolve()
    for p in paths or ():
        path = Path(str(p)).resolve()
        if base in path.parents:
            path.unlink(missing_ok=True)
            if path.parent != base:
                shutil.rmtree(path.parent, ignore_errors=True)


def private_upload_dir(wb: Workbench) -> Path:
    """``<index>/web-uploads``: where Gradio keeps uploads until they are processed (0700, emptied at start)."""
    folder = wb.index_dir / "web-uploads"
    shutil.rmtree(folder, ignore_errors=True)  # leftovers of a previous run: nobody will process them now
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def build_app(wb: Workbench) -> "gr.Blocks":
    """The staff app's Blocks (launch it with `create_server`/`serve`, which add login and sources)."""
    import gradio as gr

    web = wb.config.web
    upload_types = wb.upload_types

    # uploads nobody submitted are deleted after an hour (submitted ones as soon as they are processed)
    with gr.Blocks(title=web.title, analytics_enabled=False, fill_height=True, delete_cache=(600, 3600)) as demo:
        # server-side state (Gradio keeps it per tab; the event gate makes clients send null for it)
        answer_state = gr.State(None)  # the last Answer, for feedback
        conversation_state = gr.State(None)  # the Conversation (what the chat shows, and earlier turns)
        with gr.Row():
            gr.Markdown(f"## {render.escape_markdown(web.title)}")
            who = gr.Markdown("", elem_id="wb-who")
            gr.Button("Sign out", link="logout", size="sm", variant="secondary", scale=0, elem_id="wb-signout",
                      visible=web.trusted_user_header is None)
        notice = gr.Markdown("", elem_id="wb-notice")
        with gr.Tabs():
            with gr.Tab("Ask", id="ask"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        collection = gr.Dropdown(label="Search in", choices=[("All documents", "")], value="",
                                                 elem_id="wb-collection", interactive=True)
                        chat = gr.Chatbot(label="Answers", height=460, elem_id="wb-chat", buttons=["copy"],
                                          sanitize_html=True, allow_tags=False, render_markdown=True,
                                          placeholder="Ask a question about your organisation's documents. "
                                                      "Answers cite their sources; click a number to see it.")
                        with gr.Row():
                            question = gr.Textbox(label="Your question", placeholder="Type a question and press Enter",
                                                  scale=5, elem_id="wb-question", max_lines=6, autofocus=True,
                                                  max_length=wb.config.answer.max_question_chars)
                            send = gr.Button("Ask", variant="primary", scale=1, elem_id="wb-ask")
                        with gr.Row():
                            new_chat = gr.Button("New conversation", size="sm", elem_id="wb-new")
                            up = gr.Button("Helpful", size="sm", elem_id="wb-up")
                            down = gr.Button("Not helpful", size="sm", elem_id="wb-down")
                        comment = gr.Textbox(label="Comment on the last answer (optional)", lines=1,
                                             elem_id="wb-comment")
                        feedback_note = gr.Markdown("", elem_id="wb-feedback-note")
                    with gr.Column(scale=2):
                        gr.Markdown("### Sources")
                        sources = gr.Markdown(render.sources_html(None), elem_id="wb-sources", latex_delimiters=[])
            with gr.Tab("Admin", id="admin", visible=False) as admin_tab:
                with gr.Row():
                    with gr.Column():
                        gr.Markdown("### Add documents")
                        up_collection = gr.Textbox(label="Collection", value="uploads", elem_id="wb-up-collection")
                        up_groups = gr.Textbox(label="Who may read them (groups, comma-separated)",
                                               placeholder="e.g. staff, finance. Empty: the collection's default; "
                                                           "with none, admins only", elem_id="wb-up-groups")
                        files = gr.File(label=f"Files (up to {web.max_upload_mb:g} MB each)", file_count="multiple",
                                        file_types=upload_types, elem_id="wb-files")
                        upload_btn = gr.Button("Upload and index", variant="primary", elem_id="wb-upload")
                        upload_result = gr.Markdown("", elem_id="wb-upload-result")
                    with gr.Column():
                        gr.Markdown("### Index")
                        status_box = gr.Markdown("", elem_id="wb-status", latex_delimiters=[])
                        with gr.Row():
                            refresh_btn = gr.Button("Refresh", size="sm", elem_id="wb-refresh")
                            reindex_btn = gr.Button("Re-index all sources", size="sm", elem_id="wb-reindex")
                        reindex_note = gr.Markdown("", elem_id="wb-reindex-note")
                gr.Markdown("### Feedback")
                feedback_table = gr.Dataframe(headers=["When", "User", "Rating", "Comment", "Question", "Answer",
                                                       "Cited", "Generation"], interactive=False,
                                              elem_id="wb-feedback", wrap=True)

        # ---- handlers -------------------------------------------------------------------------
        def collection_choices(principal):
            """Only collections holding documents this user may read (names of others are not shown)."""
            return [("All documents", "")] + [(f"{name} ({n})", name)
                                              for name, n in sorted(wb.collections(principal).items())]

        def on_load(request: gr.Request):
            principal = _principal(wb, request)
            status = wb.status()
            choices = collection_choices(principal)
            note = "" if status.chunks else ("**No documents yet.** " + (
                "Add some in the Admin tab." if principal.is_admin else "Ask an administrator to add documents."))
            if status.chunks and len(choices) == 1:
                note = ("**No documents are shared with your groups yet.** Ask an administrator to give your "
                        "groups access (see `workbench users groups`).")
            if status.chunks and not note and not wb.llm_loaded:
                note = ("*The language model is loading (only after a restart; a large model can take minutes). "
                        "You can ask now: the answer starts once it is ready.*")
            groups = ", ".join(principal.groups) or "no groups"
            return (f"Signed in as **{render.escape_markdown(principal.name)}** ({render.escape_markdown(groups)})",
                    note, gr.Dropdown(choices=choices, value=""), gr.Tab(visible=principal.is_admin))

        def ask(message: str, col: str, convo: Conversation | None, request: gr.Request):
            """The new question only: the conversation so far is the server's own (``convo``)."""
            principal = _principal(wb, request)
            message = (message or "").strip() if isinstance(message, str) else ""
            if convo is None or convo.owner != principal.name:
                convo = Conversation(principal.name)
            if not message:
                yield list(convo.shown), gr.skip(), gr.skip(), gr.skip(), convo
                return
            loading = "The language model is loading (only after a restart; this can take a few minutes)…"
            convo = convo.showing({"role": "user", "content": render.escape_markdown(message)},
                                  {"role": "assistant",
                                   "content": "Searching the documents…" if wb.llm_loaded else loading})
            yield list(convo.shown), "", gr.skip(), gr.skip(), convo
            filters = Filters(collections=(col,)) if isinstance(col, str) and col else None
            text, answer = "", None
            try:
                for item in wb.ask_stream(message, history=list(convo.turns[-FOLLOW_UP_TURNS:]), filters=filters,
                                          principal=principal):
                    if isinstance(item, Answer):
                        answer = item
                    else:
                        text += item
                        convo = convo.last_shown(render.escape_markdown(text))
                        yield list(convo.shown), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            except EmptyIndexError:
                convo = convo.last_shown("There are no documents to search yet. " + (
                    "Upload some in the Admin tab." if principal.is_admin else "Ask an administrator to add documents."))
                yield list(convo.shown), gr.skip(), render.sources_html(None), None, convo
                return
            except WorkbenchError as exc:
                convo = convo.last_shown("Sorry, the question could not be answered: " + render.escape_markdown(str(exc)))
                yield list(convo.shown), gr.skip(), render.sources_html(None), None, convo
                return
            shown = render.answer_markdown(answer.text, () if answer.refused else answer.citations)
            if answer.refused:
                shown += "\n\n*" + render.escape_markdown(
                    f"No answer: {answer.refusal_reason}. Try other words, or another collection.") + "*"
            elif answer.weak_evidence:
                shown += "\n\n*" + render.escape_markdown(f"Weak evidence: {answer.weak_evidence}.") + "*"
            convo = dataclasses.replace(convo.last_shown(shown), turns=(*convo.turns, (message, answer.text))[-MAX_CHAT_MESSAGES:])
            yield list(convo.shown), gr.skip(), render.sources_html(answer), answer, convo

        def new_conversation():
            return [], render.sources_html(None), None, None, "", ""

        def rate(rating: int):
            def handler(answer: Answer | None, text: str, request: gr.Request):
                principal = _principal(wb, request)
                if answer is None:
                    return "Ask a question first, then rate its answer.", gr.skip()
                wb.feedback.add(principal.name, answer, rating, text or "")
                return "Thank you: your feedback was saved.", ""
            return handler

        def status_now(request: gr.Request):
            _admin(wb, request, "index status")
            return render.status_html(wb.status()), render.feedback_rows(wb.feedback.list())

        def do_upload(paths, col: str, groups: str, request: gr.Request):
            principal = _admin(wb, request, "upload")
            try:
                for update in _upload(principal, paths, col, groups):
                    yield *update, gr.skip()
            finally:  # the uploaded copies are not kept once processed (the index keeps its own copy)
                _remove_uploaded(paths, demo.GRADIO_CACHE)
            yield gr.skip(), gr.skip(), gr.skip(), None  # empty the file picker: its files are gone

        def _upload(principal, paths, col: str, groups: str):
            col = (col or "uploads").strip()
            try:
                chosen = parse_groups(groups) or None
            except WorkbenchError as exc:
                yield render.escape_markdown(str(exc)), gr.skip(), gr.skip()
                return
            if not paths:
                yield "Choose one or more files first.", gr.skip(), gr.skip()
                return
            names = {str(p): Path(str(p)).name for p in paths}
            rows: list[tuple[str, str, str]] = [(n, "waiting", "") for n in names.values()]
            events: queue.Queue = queue.Queue()
            result: dict = {}

            def on_file(path: str, error: str | None) -> None:
                events.put((Path(path).name, error))

            def work() -> None:
                try:
                    result["report"], result["refused"] = wb.upload(list(zip(names.values(), names)), col,
                                                                    on_file=on_file, groups=chosen,
                                                                    principal=principal)
                except Exception as exc:  # noqa: BLE001 - shown to the admin instead of a bare error
                    result["error"] = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
                finally:
                    events.put(None)

            threading.Thread(target=work, daemon=True).start()
            yield render.upload_rows_markdown(rows) + "\n\nIndexing…", gr.skip(), gr.skip()
            while (event := events.get()) is not None:
                name, error = event
                rows = [(n, ("failed" if error else "read"), error or "") if safe_filename(n) == name or n == name
                        else (n, r, d) for n, r, d in rows]
                yield render.upload_rows_markdown(rows) + "\n\nIndexing…", gr.skip(), gr.skip()
            if "error" in result:
                yield (render.upload_rows_markdown(rows) + f"\n\n**Not indexed:** {render.escape_markdown(result['error'])}",
                       render.status_html(wb.status()), gr.skip())
                return
            report = result["report"]
            final = upload_outcomes([n for n, _, _ in rows], report, result["refused"])
            status = wb.status()
            yield (render.upload_rows_markdown(final) + "\n\n" + render.escape_markdown(report.summary()),
                   render.status_html(status), gr.Dropdown(choices=collection_choices(principal)))

        def do_reindex(request: gr.Request):
            principal = _admin(wb, request, "re-index")
            try:
                report = wb.reindex(wait_s=5.0, progress=False, principal=principal)
            except WorkbenchError as exc:
                return render.escape_markdown(str(exc)), render.status_html(wb.status())
            failed = "".join(f"\n- {render.escape_markdown(str(f))}" for f in report.failed)
            return render.escape_markdown(report.summary()) + failed, render.status_html(wb.status())

        # ---- wiring: questions share the LLM's concurrency; admin work runs one at a time --------------
        limit = concurrency_for(wb)
        quick = dict(api_visibility="private", concurrency_limit=None)  # never wait behind an answer
        demo.load(on_load, None, [who, notice, collection, admin_tab], **quick)
        ask_io = dict(fn=ask, inputs=[question, collection, conversation_state],
                      outputs=[chat, question, sources, answer_state, conversation_state],
                      concurrency_limit=limit, concurrency_id="llm")
        send.click(api_name="ask", api_visibility="undocumented", **ask_io)
        question.submit(api_visibility="private", **ask_io)
        new_chat.click(new_conversation, None, [chat, sources, answer_state, conversation_state, question, feedback_note],
                       **quick)
        up.click(rate(1), [answer_state, comment], [feedback_note, comment], **quick)
        down.click(rate(-1), [answer_state, comment], [feedback_note, comment], **quick)
        admin_tab.select(status_now, None, [status_box, feedback_table], **quick)
        refresh_btn.click(status_now, None, [status_box, feedback_table], **quick)
        upload_btn.click(do_upload, [files, up_collection, up_groups], [upload_result, status_box, collection, files],
                         api_visibility="private",
                         concurrency_limit=1, concurrency_id="admin")
        reindex_btn.click(do_reindex, None, [reindex_note, status_box], api_visibility="private",
                          concurrency_limit=1, concurrency_id="admin")
    demo.queue(max_size=web.queue_size, default_concurrency_limit=limit, api_open=False)
    return demo


def _proxy_secret(web) -> str | None:
    """The single sign-on proxy's shared secret (WorkbenchError when SSO is on without one)."""
    if not web.trusted_user_header:
        return None
    secret = os.environ.get(web.trusted_header_secret_env or "", "")
    if len(secret) < 16:
        raise WorkbenchError("[web] trusted_user_header is set, so the proxy must prove itself with a shared secret: "
                             "set [web] trusted_header_secret_env to the name of an environment variable holding a "
                             f"secret of 16+ characters, and have the proxy send it in the {PROXY_SECRET_HEADER} header")
    return secret


def create_server(wb: Workbench, host: str | None = None, port: int | None = None):
    """A FastAPI app serving the staff app at / and the source viewer at /source/{chunk_id}.

    Sign-in (POST /login) and sign-out (GET /logout) are answered here, not by Gradio: see the module
    docstring. With ``[web] trusted_user_header`` set, the user name comes from that header (single
    sign-on through a reverse proxy), only together with the proxy's shared secret, and the server
    must listen on a loopback address only.
    """
    from fastapi import FastAPI, Form, Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

    web = wb.config.web
    host = host or web.host
    port = port if port is not None else web.port
    header = web.trusted_user_header
    if header and not is_loopback(host):
        raise WorkbenchError(f"[web] trusted_user_header is set but the app would listen on {host}: single sign-on "
                             "by header is only safe behind a reverse proxy on the same machine; use host 127.0.0.1")
    secret = _proxy_secret(web)
    uploads = private_upload_dir(wb)
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)  # read by gr.Blocks and Gradio's app as they are created
    import gradio as gr

    demo = build_app(wb)
    demo.GRADIO_CACHE = str(uploads)
    sessions = SessionStore(wb.users, web.session_idle_s, web.session_max_s)
    throttle = LoginThrottle(web.login_attempts, web.lockout_s, per_client=web.login_concurrency)
    https = bool(web.public_url) and origin_of(web.public_url).startswith("https://")
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    gradio_app = {}

    def cookie_names() -> tuple[str, str]:
        cookie_id = gradio_app["app"].cookie_id
        return f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"

    def token_of(cookies) -> str | None:
        if "app" not in gradio_app:
            return None
        secure, plain = cookie_names()
        return cookies.get(secure) or cookies.get(plain)

    def sso_name(headers) -> str | None:
        given = headers.get(PROXY_SECRET_HEADER.lower(), "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return None
        name = headers.get(header.lower())
        return name if name and wb.users.get(name) else None

    def user_of(request: Request) -> str | None:
        return sso_name(request.headers) if header else sessions.user_of(token_of(request.cookies))

    def principal_of(request: Request):
        name = user_of(request)
        if not name or wb.users.get(name) is None:
            raise NotFoundError("sign in first")
        return wb.principal(name)

    secure_headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                      "Cache-Control": "private, no-store"}

    @app.exception_handler(NotFoundError)
    def not_found(request: Request, exc: Exception) -> HTMLResponse:
        return HTMLResponse(f"<!doctype html><title>Not available</title><p>{html.escape(str(exc))}</p>"
                            "<p><a href='/'>Back to the assistant</a></p>", status_code=404, headers=secure_headers)

    @app.exception_handler(WorkbenchError)
    def unavailable(request: Request, exc: Exception) -> HTMLResponse:  # e.g. a page image over its time limit
        return HTMLResponse(f"<!doctype html><title>Not available now</title><p>{html.escape(str(exc))}</p>",
                            status_code=503, headers=secure_headers)

    @app.get("/source/{chunk_id}", response_class=HTMLResponse)
    def source_page(chunk_id: int, request: Request):
        view = wb.source(chunk_id, principal_of(request))
        file_href = f"{chunk_id}/file" + (f"#page={view.chunk.page}" if view.is_pdf else "")
        image = f"{chunk_id}/page.png" if view.is_pdf else None
        csp = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
        return HTMLResponse(render.source_page(view, file_href, image),
                            headers={**secure_headers, "Content-Security-Policy": csp})

    @app.get("/source/{chunk_id}/page.png")
    def page_png(chunk_id: int, request: Request):
        png = wb.page_image(chunk_id, principal_of(request), wait_s=1.0)  # busy: 503 at once, no thread held
        return Response(png, media_type="image/png", headers=secure_headers)

    @app.get("/source/{chunk_id}/file")
    def original(chunk_id: int, request: Request):
        """The checked file, streamed from the descriptor that was checked (never reopened by path)."""
        opened = wb.original_file(chunk_id, principal_of(request))
        inline = opened.name.lower().endswith(".pdf")

        def chunks():
            with opened:
                while block := opened.file.read(1 << 16):
                    yield block

        disposition = f"{'inline' if inline else 'attachment'}; filename*=utf-8''{quote(opened.name)}"
        return StreamingResponse(chunks(), media_type="application/pdf" if inline else "application/octet-stream",
                                 headers={**secure_headers, "Content-Disposition": disposition,
                                          "Content-Length": str(opened.size)})

    checks = {"waiting": 0}
    check_slots = asyncio.Semaphore(web.login_concurrency)
    busy = object()
    held: dict[str, bool] = {}  # clients with a sign-in waiting out its delay (one each)

    async def check_password(name: str, password: str):
        """users.verify in a worker thread, at most login_concurrency at once: the event loop (pages, answer
        streams) never runs argon2. ``busy`` when too many checks are waiting already."""
        if checks["waiting"] >= web.login_concurrency * LOGIN_QUEUE_FACTOR:
            return busy
        checks["waiting"] += 1
        try:
            async with check_slots:
                return await asyncio.to_thread(wb.users.verify, name, password)
        finally:
            checks["waiting"] -= 1

    def refuse(detail: str) -> JSONResponse:  # Gradio's login page shows any 400 as "Incorrect Credentials"
        return JSONResponse({"detail": detail}, status_code=400, headers=secure_headers)

    async def audit(*args) -> None:  # SQLite and fsync off the event loop
        await asyncio.to_thread(wb.audit.record, *args)

    if not header:
        @app.post("/login")
        @app.post("/login/")
        async def login(request: Request, username: str = Form(""), password: str = Form("")):
            name, client = username.strip()[:200], request.client.host if request.client else "?"
            wait = throttle.begin(client, name)  # reserves the check; cheap refusals are not audited
            if 0 < wait <= LOGIN_HOLD_S and not held.get(client):
                # a short wait is served here instead of refused, so a user who mistyped a few times is
                # let in (a bit later), not told "Incorrect Credentials" with the right password
                held[client] = True
                try:
                    await asyncio.sleep(wait)
                finally:
                    held.pop(client, None)
                wait = throttle.begin(client, name)
            if wait > 0:
                return refuse(f"Too many failed sign-ins from your address: try again in {wait:.0f} s.")
            ok = None  # no check made (busy, or cancelled): nothing counted against the name
            try:
                user = await check_password(name, password)
                if user is busy:
                    return refuse("The server is busy checking other sign-ins: try again in a moment.")
                ok = user is not None
            finally:
                throttle.end(client, name, ok)
            if not ok:
                await audit(name, "login-failed", f"from {client}: wrong name or password")
                return refuse("Incorrect credentials.")
            await audit(user.name, "login", f"from {client}")
            response = JSONResponse({"success": True})
            secure, plain = cookie_names()
            # a browser-session cookie (gone when the browser closes); the server ends it sooner when idle
            response.set_cookie(secure if https else plain, sessions.start(user), httponly=True, samesite="lax",
                                secure=https, path="/")
            return response

        @app.get("/logout")
        def logout(request: Request):
            token = token_of(request.cookies)
            if token:
                sessions.end(token)
            response = RedirectResponse(url="./", status_code=302)
            for name in cookie_names():
                response.delete_cookie(name, path="/", samesite="lax", secure=https, httponly=True)
            return response

    def check_login(name: str, password: str) -> bool:  # never reached: POST /login above answers first
        return False

    auth = dict(auth_dependency=lambda request: sso_name(request.headers)) if header else dict(
        auth=check_login, auth_message=f"{web.title}: sign in with the account your administrator gave you. "
                                       "After many failed attempts, wait a few minutes before trying again.")
    app = gr.mount_gradio_app(app, demo, path="", max_file_size=f"{int(web.max_upload_mb * 1024)}kb",
                              allowed_paths=[], ssr_mode=False, mcp_server=False, pwa=False, show_error=False,
                              footer_links=[], enable_monitoring=False, run_history=False, css=CSS, **auth)
    from starlette.routing import Mount

    inner = next(r.app for r in app.routes if isinstance(r, Mount))
    inner.tokens = GradioTokens(sessions)  # Gradio's own routes (upload, files, config, queue) see our sessions
    inner.uploaded_file_dir = str(uploads)
    gradio_app["app"] = inner
    # Gradio checks that files in event inputs were uploaded only in apps started with launch(), which
    # sets this; a mounted app never does, so say it here (the event gate refuses such inputs first)
    demo.has_launched = True

    def is_admin(name: str) -> bool:
        try:
            return wb.principal(name).is_admin
        except NotFoundError:
            return False

    def guard_user(headers: dict[str, str]) -> str | None:
        return sso_name(headers) if header else sessions.user_of(token_of(cookies_of(headers)), touch=False)

    async def refused(user: str, what: str) -> None:
        await audit(user, "refused", what)

    gate = EventGate(shapes_of(demo), per_user=web.questions_per_user, in_flight=lambda user: questions_of(demo, user))
    app.add_middleware(WebGuard, origins=public_origins(web, host, port), user_of=guard_user, is_admin=is_admin,
                       gate=gate, max_body=int(web.max_request_kb * 1024), on_refused=refused,
                       single_headers=(header,) if header else ())
    app.state.sessions = sessions
    return app


def questions_of(demo, user: str) -> int:
    """Questions of ``user`` waiting in Gradio's queue or being answered (events of the "llm" group)."""
    q = demo._queue
    waiting = [e for eq in list(q.event_queue_per_concurrency_id.values()) for e in list(eq.queue)]
    running = [e for job in list(q.active_jobs) if job for e in job]
    return sum(1 for e in (*waiting, *running) if e.username == user and e.concurrency_id == "llm")


def serve(wb: Workbench, host: str | None = None, port: int | None = None) -> None:
    """Run the staff app until interrupted (loads the models in the background first)."""
    import uvicorn

    web = wb.config.web
    host, port = host or web.host, port if port is not None else web.port
    app = create_server(wb, host, port)
    if not wb.users.list() and web.trusted_user_header is None:
        print("workbench: no users yet; create one with `workbench users add NAME --groups admin`")
    if web.public_url and not web.trusted_proxies and is_loopback(host):
        print("workbench: [web] public_url is set but trusted_proxies is empty: behind a reverse proxy every client "
              "looks like the proxy, so failed sign-ins of one delay all; set trusted_proxies = [\"127.0.0.1\", "
              "\"::1\"] if the proxy runs here")

    def warm() -> None:  # each model has its own lock: pages, sign-in and status never wait for this
        try:
            wb.embedder
            wb.llm
        except WorkbenchError as exc:
            print(f"workbench: the model could not be loaded: {exc}")

    threading.Thread(target=warm, daemon=True).start()
    print(f"workbench: staff app on http://{host}:{port}/ (index {wb.index_dir}); Ctrl+C stops it")
    # X-Forwarded-For/-Proto are read only from the proxies the operator named (none by default)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False,
                proxy_headers=bool(web.trusted_proxies), forwarded_allow_ips=list(web.trusted_proxies) or None)


def main(argv=None) -> int:
    """`python -m apps.web [--config F] [--index D] [--host H] [--port P]` (same as `workbench serve`)."""
    p = argparse.ArgumentParser(prog="workbench-web", description="Start the staff web app.")
    p.add_argument("--config")
    p.add_argument("--index")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    args = p.parse_args(argv)
    serve(Workbench.open(args.config, index_dir=args.index), args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
