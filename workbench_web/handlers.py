"""What the page's controls do: the event handlers `workbench_web.pages` wires to its components.

`Handlers(workbench, blocks)` holds one method per event: the page's first load (who is signed in,
the collections they may search, the Admin tab for admins), asking (streamed into the chat, with the
conversation kept on the server as a `Conversation`), a new conversation, rating the last answer,
and for administrators the index status, uploads and re-indexing. Every handler finds the signed-in
user's `Principal` itself (admin handlers refuse and audit anyone else), and every answer, file and
status goes through `Workbench`, so the pipeline's access rule applies here too. Text shown is made
safe by `workbench_web.render`. Uploaded files wait in Gradio's private cache (see
`workbench_web.server.private_upload_dir`) and are deleted here once processed.

Leaves out: the components and which event calls which handler (`workbench_web.pages`), sign-in
(`workbench_web.signin`), and what a client may send into an event (`workbench_web.gate`). Importing
this module imports Gradio; `pages.build_app` does so only when a page is built.
"""

import dataclasses
import queue
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

# `workbench` first: its offline and no-analytics switches are set before gradio is imported
from workbench import Answer, EmptyIndexError, Filters, NotFoundError, Workbench, WorkbenchError
from workbench.stores import parse_groups, safe_filename, upload_outcomes
from workbench_web import render

import gradio as gr  # noqa: E402 (after workbench, see above)

MAX_CHAT_MESSAGES = 40  # of a conversation kept and shown
FOLLOW_UP_TURNS = 3  # earlier (question, answer) turns given to the model with a follow-up question
LOADING = "The language model is loading (only after a restart; this can take a few minutes)…"


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

    def answered(self, shown: str, question: str, answer: str) -> "Conversation":
        turns = (*self.turns, (question, answer))[-MAX_CHAT_MESSAGES:]
        return dataclasses.replace(self.last_shown(shown), turns=turns)


def answer_shown(answer: Answer) -> str:
    """An answer as the chat shows it: cited Markdown, then why it was refused or its evidence is weak,
    and the sentences whose figures are not in their cited sources."""
    shown = render.answer_markdown(answer.text, () if answer.refused else answer.citations)
    if answer.refused:
        shown += "\n\n*" + render.escape_markdown(
            f"No answer: {answer.refusal_reason}. Try other words, or another collection.") + "*"
    elif answer.weak_evidence:
        shown += "\n\n*" + render.escape_markdown(f"Weak evidence: {answer.weak_evidence}.") + "*"
    if answer.unsupported_figures and not answer.refused:
        quoted = "; ".join(f"“{s[:200]}”" for s in answer.unsupported_figures[:5])
        shown += "\n\n*" + render.escape_markdown(
            f"Check these figures: they are not in the sources the sentence cites: {quoted}") + "*"
    return shown


def remove_uploaded(paths, cache: str) -> None:
    """Delete Gradio's temp copies of ``paths`` (only inside ``cache``) and their now-empty folders."""
    base = Path(cache).resolve()
    for p in paths or ():
        path = Path(str(p)).resolve()
        if base in path.parents:
            path.unlink(missing_ok=True)
            if path.parent != base:
                shutil.rmtree(path.parent, ignore_errors=True)


class Handlers:
    """The page's event handlers for one `Workbench`; ``blocks`` is the page (its upload cache)."""

    def __init__(self, wb: Workbench, blocks: "gr.Blocks") -> None:
        self.wb, self.blocks = wb, blocks

    # ---- who is asking ------------------------------------------------------------------------
    def principal(self, request):
        """The signed-in user's Principal, or a gr.Error asking them to sign in again."""
        try:
            return self.wb.principal(getattr(request, "username", None) or "")
        except NotFoundError:
            raise gr.Error("Your session has ended or your account was removed. Reload the page and sign in "
                           "again.") from None

    def admin(self, request, what: str):
        """The signed-in admin's Principal; anyone else gets a gr.Error, and the attempt is audited."""
        principal = self.principal(request)
        if not principal.is_admin:
            self.wb.audit.record(principal.name, "refused", f"{what}: only administrators can do this",
                                 outcome="refused")
            raise gr.Error("Only administrators can do this.")
        return principal

    def collection_choices(self, principal):
        """Only collections holding documents this user may read (names of others are not shown)."""
        return [("All documents", "")] + [(f"{name} ({n})", name)
                                          for name, n in sorted(self.wb.collections(principal).items())]

    # ---- everyone -----------------------------------------------------------------------------
    def on_load(self, request: gr.Request):
        wb = self.wb
        principal = self.principal(request)
        status = wb.status()
        choices = self.collection_choices(principal)
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

    def ask(self, message: str, col: str, convo: Conversation | None, request: gr.Request):
        """The new question only: the conversation so far is the server's own (``convo``)."""
        wb = self.wb
        principal = self.principal(request)
        message = (message or "").strip() if isinstance(message, str) else ""
        if convo is None or convo.owner != principal.name:
            convo = Conversation(principal.name)
        if not message:
            yield list(convo.shown), gr.skip(), gr.skip(), gr.skip(), convo
            return
        convo = convo.showing({"role": "user", "content": render.escape_markdown(message)},
                              {"role": "assistant", "content": "Searching the documents…" if wb.llm_loaded else LOADING})
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
        convo = convo.answered(answer_shown(answer), message, answer.text)
        yield list(convo.shown), gr.skip(), render.sources_html(answer), answer, convo

    def new_conversation(self):
        return [], render.sources_html(None), None, None, "", ""

    def rate(self, rating: int):
        """The handler of the "Helpful" (1) or "Not helpful" (-1) button."""
        def handler(answer: Answer | None, text: str, request: gr.Request):
            principal = self.principal(request)
            if answer is None:
                return "Ask a question first, then rate its answer.", gr.skip()
            self.wb.feedback.add(principal.name, answer, rating, text or "")
            return "Thank you: your feedback was saved.", ""
        return handler

    # ---- the user's own API keys --------------------------------------------------------------
    def _key_rows(self, name: str) -> list[list[str]]:
        return [render.key_row(key) for key in self.wb.keys.list(name)]

    def my_keys(self, request: gr.Request):
        return self._key_rows(self.principal(request).name)

    def create_key(self, label: str, scopes: str, expires: str, request: gr.Request):
        """A new key of the signed-in user (never another's): shown once, audited."""
        from workbench.stores.keys import SELF_SERVICE_KEYS, parse_duration, parse_scopes

        principal = self.principal(request)
        keys = self.wb.keys
        try:
            if expires not in ("30d", "90d", "365d"):
                raise WorkbenchError("choose when the key expires")
            live = [k for k in keys.list(principal.name) if k.live]
            if len(live) >= SELF_SERVICE_KEYS:
                raise WorkbenchError(f"you have {len(live)} live keys: revoke one you no longer use first")
            account = self.wb.users.get(principal.name)
            if account is None:
                raise NotFoundError("your account was removed")
            key, secret = keys.create(principal.name, label if isinstance(label, str) else "",
                                      parse_scopes(scopes if isinstance(scopes, str) else ""), parse_duration(expires),
                                      user_since=account.created_at)
        except WorkbenchError as exc:  # NotFoundError included
            return gr.Textbox(value="", visible=False), gr.skip(), render.escape_markdown(str(exc)), gr.skip()
        self.wb.audit.record(principal, "key", f"created key {key.id} ({key.label}) with {','.join(key.scopes)}")
        return (gr.Textbox(value=secret, visible=True), self._key_rows(principal.name),
                f"Key **{key.id}** created. Copy it now: it is not shown again.", "")

    def revoke_key(self, key_id: str, request: gr.Request):
        """Revoke one of the signed-in user's own keys (another user's id is 'no such key')."""
        principal = self.principal(request)
        key_id = (key_id or "").strip() if isinstance(key_id, str) else ""
        try:
            self.wb.keys.revoke(key_id, user=principal.name)
        except (NotFoundError, WorkbenchError):
            return gr.skip(), f"You have no key {render.escape_markdown(key_id[:40])!s}.", gr.skip()
        self.wb.audit.record(principal, "key", f"revoked key {key_id}")
        return self._key_rows(principal.name), f"Key **{render.escape_markdown(key_id)}** revoked: it stops at once.", ""

    # ---- administrators -----------------------------------------------------------------------
    def status_now(self, request: gr.Request):
        self.admin(request, "index status")
        return render.status_html(self.wb.status()), render.feedback_rows(self.wb.feedback.list())

    def do_upload(self, paths, col: str, groups: str, request: gr.Request):
        principal = self.admin(request, "upload")
        try:
            for update in self._upload(principal, paths, col, groups):
                yield *update, gr.skip()
        finally:  # the uploaded copies are not kept once processed (the index keeps its own copy)
            remove_uploaded(paths, self.blocks.GRADIO_CACHE)
        yield gr.skip(), gr.skip(), gr.skip(), None  # empty the file picker: its files are gone

    def _upload(self, principal, paths, col: str, groups: str):
        """(upload result, status, collection choices) updates while ``paths`` are indexed."""
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
        work = dict(files=list(zip(names.values(), names)), collection=col, groups=chosen, principal=principal)
        threading.Thread(target=self._index_uploads, args=(work, events, result), daemon=True).start()
        yield render.upload_rows_markdown(rows) + "\n\nIndexing…", gr.skip(), gr.skip()
        while (event := events.get()) is not None:
            name, error = event
            rows = [(n, ("failed" if error else "read"), error or "") if safe_filename(n) == name or n == name
                    else (n, r, d) for n, r, d in rows]
            yield render.upload_rows_markdown(rows) + "\n\nIndexing…", gr.skip(), gr.skip()
        if "error" in result:
            yield (render.upload_rows_markdown(rows) + f"\n\n**Not indexed:** {render.escape_markdown(result['error'])}",
                   render.status_html(self.wb.status()), gr.skip())
            return
        report = result["report"]
        final = upload_outcomes([n for n, _, _ in rows], report, result["refused"])
        status = self.wb.status()
        yield (render.upload_rows_markdown(final) + "\n\n" + render.escape_markdown(report.summary()),
               render.status_html(status), gr.Dropdown(choices=self.collection_choices(principal)))

    def _index_uploads(self, work: dict, events: queue.Queue, result: dict) -> None:
        """`Workbench.upload` in a worker thread: (name, error) per file into ``events``, then None."""
        def on_file(path: str, error: str | None) -> None:
            events.put((Path(path).name, error))

        try:
            result["report"], result["refused"] = self.wb.upload(work["files"], work["collection"], on_file=on_file,
                                                                 groups=work["groups"], principal=work["principal"])
        except Exception as exc:  # noqa: BLE001 - shown to the admin instead of a bare error
            result["error"] = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
        finally:
            events.put(None)

    def do_reindex(self, request: gr.Request):
        principal = self.admin(request, "re-index")
        wb = self.wb
        try:
            report = wb.reindex(wait_s=5.0, progress=False, principal=principal)
        except WorkbenchError as exc:
            return render.escape_markdown(str(exc)), render.status_html(wb.status())
        failed = "".join(f"\n- {render.escape_markdown(str(f))}" for f in report.failed)
        return render.escape_markdown(report.summary()) + failed, render.status_html(wb.status())
