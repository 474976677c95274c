"""What the user sees: the staff app's `gr.Blocks`, one small function per part of the page, and
which event of which control calls which handler.

`build_app(workbench)` lays out a header (title, who is signed in, sign out), a notice line, the
Ask tab (collection, chat, question, feedback buttons, the Sources panel), the API keys tab (the
user's own personal keys: create, list, revoke) and the Admin tab (add
documents, index status and re-indexing, the feedback table; shown to admins only), then wires each
control's event to `workbench_web.handlers.Handlers`. Questions share the LLM's concurrency
(`concurrency_for`) in the "llm" group; admin work runs one at a time; the rest never waits behind
an answer. No analytics; the queue is bounded (``[web] queue_size``) and its REST API closed; no
event is public in the API; the chat sanitizes HTML and the Markdown it shows is escaped by the handlers.

The components and the order of their events are what `workbench_web.gate` reads from the Blocks
(each event's input kinds) and what the browser tests click by ``elem_id``: a new input component
must be one the gate knows. Leaves out: what the handlers do (`workbench_web.handlers`) and the
server around the page: mounting (`workbench_web.server`), sign-in (`signin`), the source viewer (`viewer`).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench import Workbench
from workbench_web import render

if TYPE_CHECKING:
    import gradio as gr

CSS = """
.wb-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px; margin-bottom: 10px; }
.wb-source-head { margin-bottom: 4px; } .wb-num { font-weight: 700; color: var(--color-accent); }
.wb-passage { font-size: 0.92em; color: var(--body-text-color-subdued); margin: 6px 0; max-height: 9em; overflow: auto; }
.wb-empty { color: var(--body-text-color-subdued); padding: 8px; }
.wb-status th { text-align: left; padding-right: 1em; }
"""
HINT = "Ask a question about your organisation's documents. Answers cite their sources; click a number to see it."

QUICK = dict(api_visibility="private", concurrency_limit=None)  # never wait behind an answer


@dataclass(slots=True)
class AskTab:
    """The Ask tab's components that events read or write."""

    collection: Any
    chat: Any
    question: Any
    send: Any
    new_chat: Any
    up: Any
    down: Any
    comment: Any
    feedback_note: Any
    sources: Any


@dataclass(slots=True)
class KeysTab:
    """The API keys tab: the user's own keys, a new one, revoking one."""

    tab: Any
    label: Any
    scopes: Any
    expires: Any
    create: Any
    shown: Any
    table: Any
    revoke_id: Any
    revoke: Any
    note: Any


KEY_SCOPES = [("search, ask and read passages", "search,ask,read"), ("search only", "search"),
              ("search and ask", "search,ask")]
KEY_EXPIRY = [("30 days", "30d"), ("90 days", "90d"), ("1 year", "365d")]


@dataclass(slots=True)
class AdminTab:
    """The Admin tab and its components that events read or write."""

    tab: Any
    up_collection: Any
    up_groups: Any
    files: Any
    upload_btn: Any
    upload_result: Any
    status_box: Any
    refresh_btn: Any
    reindex_btn: Any
    reindex_note: Any
    feedback_table: Any


def concurrency_for(wb: Workbench) -> int:
    """Questions answered at once: ``[web] concurrency``, else what the LLM backend says it can take."""
    return wb.config.web.concurrency or wb.llm_max_concurrency


def build_app(wb: Workbench) -> "gr.Blocks":
    """The staff app's Blocks (launch it with `create_server`/`serve`, which add login and sources)."""
    import gradio as gr

    from workbench_web.handlers import Handlers  # imports gradio: only once a page is built

    web = wb.config.web
    # uploads nobody submitted are deleted after an hour (submitted ones as soon as they are processed)
    with gr.Blocks(title=web.title, analytics_enabled=False, fill_height=True, delete_cache=(600, 3600)) as demo:
        # server-side state (Gradio keeps it per tab; the event gate makes clients send null for it)
        answer_state = gr.State(None)  # the last Answer, for feedback
        conversation_state = gr.State(None)  # the Conversation (what the chat shows, and earlier turns)
        who = header(wb)
        notice = gr.Markdown("", elem_id="wb-notice")
        with gr.Tabs():
            ask = ask_tab(wb)
            keys = keys_tab()
            admin = admin_tab(wb)
        handlers, limit = Handlers(wb, demo), concurrency_for(wb)
        demo.load(handlers.on_load, None, [who, notice, ask.collection, admin.tab], **QUICK)
        wire_ask(handlers, ask, answer_state, conversation_state, limit)
        wire_admin(handlers, admin, ask)
        wire_keys(handlers, keys)
    demo.queue(max_size=web.queue_size, default_concurrency_limit=limit, api_open=False)
    return demo


def header(wb: Workbench):
    """The title, who is signed in (filled on load; returned) and the sign-out button (not with SSO)."""
    import gradio as gr

    web = wb.config.web
    with gr.Row():
        gr.Markdown(f"## {render.escape_markdown(web.title)}")
        who = gr.Markdown("", elem_id="wb-who")
        gr.Button("Sign out", link="logout", size="sm", variant="secondary", scale=0, elem_id="wb-signout",
                  visible=web.trusted_user_header is None)
    return who


def ask_tab(wb: Workbench) -> AskTab:
    """The Ask tab: collection, chat, question, feedback on the last answer; the Sources panel beside them."""
    import gradio as gr

    with gr.Tab("Ask", id="ask"), gr.Row(equal_height=False):
        with gr.Column(scale=3):
            collection = gr.Dropdown(label="Search in", choices=[("All documents", "")], value="",
                                     elem_id="wb-collection", interactive=True)
            chat = gr.Chatbot(label="Answers", height=460, elem_id="wb-chat", buttons=["copy"], sanitize_html=True,
                              allow_tags=False, render_markdown=True, placeholder=HINT)
            with gr.Row():
                question = gr.Textbox(label="Your question", placeholder="Type a question and press Enter", scale=5,
                                      elem_id="wb-question", max_lines=6, autofocus=True,
                                      max_length=wb.config.answer.max_question_chars)
                send = gr.Button("Ask", variant="primary", scale=1, elem_id="wb-ask")
            with gr.Row():
                new_chat = gr.Button("New conversation", size="sm", elem_id="wb-new")
                up = gr.Button("Helpful", size="sm", elem_id="wb-up")
                down = gr.Button("Not helpful", size="sm", elem_id="wb-down")
            comment = gr.Textbox(label="Comment on the last answer (optional)", lines=1, elem_id="wb-comment")
            feedback_note = gr.Markdown("", elem_id="wb-feedback-note")
        with gr.Column(scale=2):
            gr.Markdown("### Sources")
            sources = gr.Markdown(render.sources_html(None), elem_id="wb-sources", latex_delimiters=[])
    return AskTab(collection, chat, question, send, new_chat, up, down, comment, feedback_note, sources)


def keys_tab() -> KeysTab:
    """The API keys tab: personal keys for scripts and MCP clients (acting as this user), made and revoked here."""
    import gradio as gr

    with gr.Tab("API keys", id="keys") as tab:
        gr.Markdown("A key lets a script, a portal or an MCP client search and ask **as you**: it sees exactly "
                    "the documents you may read. Keep it secret; revoke it when it is no longer used.")
        with gr.Row():
            label = gr.Textbox(label="What will use it", placeholder="e.g. ticket system, my notebook", max_length=100,
                               elem_id="wb-key-label", scale=3)
            scopes = gr.Dropdown(label="It may", choices=KEY_SCOPES, value=KEY_SCOPES[0][1], elem_id="wb-key-scopes",
                                 interactive=True, scale=2)
            expires = gr.Dropdown(label="Expires after", choices=KEY_EXPIRY, value="90d", elem_id="wb-key-expires",
                                  interactive=True, scale=1)
        create = gr.Button("Create key", variant="primary", elem_id="wb-key-create")
        shown = gr.Textbox(label="Your new key (shown once: copy it now)", interactive=False, buttons=["copy"],
                           elem_id="wb-key-new", visible=False)
        table = gr.Dataframe(headers=["Key id", "Used by", "May", "Created", "Last used", "Expires", "State"],
                             interactive=False, elem_id="wb-keys", wrap=True)
        with gr.Row():
            revoke_id = gr.Textbox(label="Key id to revoke", max_length=40, elem_id="wb-key-revoke-id", scale=3)
            revoke = gr.Button("Revoke", variant="stop", elem_id="wb-key-revoke", scale=1)
        note = gr.Markdown("", elem_id="wb-key-note")
    return KeysTab(tab, label, scopes, expires, create, shown, table, revoke_id, revoke, note)


def admin_tab(wb: Workbench) -> AdminTab:
    """The Admin tab (hidden until an admin loads the page): add documents, the index, the feedback table."""
    import gradio as gr

    web = wb.config.web
    with gr.Tab("Admin", id="admin", visible=False) as tab:
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Add documents")
                up_collection = gr.Textbox(label="Collection", value="uploads", elem_id="wb-up-collection")
                up_groups = gr.Textbox(label="Who may read them (groups, comma-separated)",
                                       placeholder="e.g. staff, finance. Empty: the collection's default; "
                                                   "with none, admins only", elem_id="wb-up-groups")
                files = gr.File(label=f"Files (up to {web.max_upload_mb:g} MB each)", file_count="multiple",
                                file_types=wb.upload_types, elem_id="wb-files")
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
        feedback_table = gr.Dataframe(headers=["When", "User", "Rating", "Comment", "Question", "Answer", "Cited",
                                               "Generation"], interactive=False, elem_id="wb-feedback", wrap=True)
    return AdminTab(tab, up_collection, up_groups, files, upload_btn, upload_result, status_box, refresh_btn,
                    reindex_btn, reindex_note, feedback_table)


def wire_ask(handlers, ask: AskTab, answer_state, conversation_state, limit: int) -> None:
    """Questions (button or Enter) in the "llm" group, ``limit`` at once; new conversation; ratings."""
    ask_io = dict(fn=handlers.ask, inputs=[ask.question, ask.collection, conversation_state],
                  outputs=[ask.chat, ask.question, ask.sources, answer_state, conversation_state],
                  concurrency_limit=limit, concurrency_id="llm")
    ask.send.click(api_name="ask", api_visibility="undocumented", **ask_io)
    ask.question.submit(api_visibility="private", **ask_io)
    ask.new_chat.click(handlers.new_conversation, None, [ask.chat, ask.sources, answer_state, conversation_state,
                                                         ask.question, ask.feedback_note], **QUICK)
    ask.up.click(handlers.rate(1), [answer_state, ask.comment], [ask.feedback_note, ask.comment], **QUICK)
    ask.down.click(handlers.rate(-1), [answer_state, ask.comment], [ask.feedback_note, ask.comment], **QUICK)


def wire_keys(handlers, keys: KeysTab) -> None:
    """The user's keys on opening the tab; creating and revoking one (the handlers act for the signed-in user only)."""
    keys.tab.select(handlers.my_keys, None, [keys.table], **QUICK)
    keys.create.click(handlers.create_key, [keys.label, keys.scopes, keys.expires],
                      [keys.shown, keys.table, keys.note, keys.label], **QUICK)
    keys.revoke.click(handlers.revoke_key, [keys.revoke_id], [keys.table, keys.note, keys.revoke_id], **QUICK)


def wire_admin(handlers, admin: AdminTab, ask: AskTab) -> None:
    """Status on opening the tab and on Refresh; uploads and re-indexing one at a time (the "admin" group)."""
    status_now = handlers.status_now  # one function: both events share its (unlimited) concurrency group
    admin.tab.select(status_now, None, [admin.status_box, admin.feedback_table], **QUICK)
    admin.refresh_btn.click(status_now, None, [admin.status_box, admin.feedback_table], **QUICK)
    admin.upload_btn.click(handlers.do_upload, [admin.files, admin.up_collection, admin.up_groups],
                           [admin.upload_result, admin.status_box, ask.collection, admin.files],
                           api_visibility="private", concurrency_limit=1, concurrency_id="admin")
    admin.reindex_btn.click(handlers.do_reindex, None, [admin.reindex_note, admin.status_box],
                            api_visibility="private", concurrency_limit=1, concurrency_id="admin")
