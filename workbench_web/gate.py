"""What a client may put into the app's events: only the values the server expects or handed out.

Gradio runs an event with whatever the client sends for each of its input components, and before
any handler runs it copies every file object it finds in those values (``{"path": ..., "meta":
{"_type": "gradio.FileData"}}``, at any depth) into its cache and serves the copy: a path on the
server, ``/dev/zero`` or a URL it would download. `EventGate` reads the body of each
``queue/join`` before Gradio does and admits it only when

- the event exists, is not batched and carries no OAuth token;
- each input holds what its component's own page sends: a string (or null) for a text box or a
  dropdown, null for server-side state (`gr.State` is kept by the server; the conversation lives
  there), and for a file picker only file objects whose paths Gradio's upload route handed to this
  same user (and the event is one an administrator runs);
- no file object appears anywhere else (``event_data`` included);
- the session hash (Gradio's key for server-side state and event streams) is this user's: the
  first user to use a hash owns it, so nobody reads or drives another user's conversation;
- the user has fewer than ``per_user`` questions waiting or being answered.

Building the gate fails for an event whose inputs it does not know, so a new component cannot
slip past it. Leaves out: sign-in and origins (`workbench_web.guard` calls this), and the admin
check that every admin handler makes itself.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

TEXT, STATE, FILES = "text", "state", "files"
FILE_KEYS = {"path", "url", "size", "orig_name", "mime_type", "is_stream", "meta"}
JOIN_KEYS = {"data", "event_data", "fn_index", "trigger_id", "session_hash", "event_id", "batched",
             "simple_format", "oauth_token"}
HANDED_OUT_S = 3600.0  # Gradio deletes unsubmitted uploads after an hour (build_app's delete_cache)
MAX_SESSIONS = 50_000
MAX_HANDED_OUT = 1_000  # per user


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: HTTP status and a message for the client (also audited)."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class EventShape:
    """One event's input kinds (TEXT, STATE or FILES, in order) and its concurrency group."""

    inputs: tuple[str, ...]
    concurrency_id: str


def input_kind(component) -> str:
    """TEXT, STATE or FILES for a Gradio input component; ValueError for any other kind."""
    import gradio as gr

    if isinstance(component, gr.State):
        return STATE
    if isinstance(component, gr.File):
        return FILES
    if isinstance(component, (gr.Textbox, gr.Dropdown)) and not getattr(component, "multiselect", False):
        return TEXT
    raise ValueError(f"{type(component).__name__} is not an input the event gate knows: add it to "
                     "workbench_web.gate.input_kind with the values its page sends")


def shapes_of(blocks) -> dict[int, EventShape]:
    """{event id: EventShape} for every event of a `gr.Blocks`."""
    return {int(i): EventShape(tuple(input_kind(c) for c in fn.inputs), str(fn.concurrency_id))
            for i, fn in blocks.fns.items()}


def is_file_object(value) -> bool:
    """Whether Gradio would treat ``value`` as a file (or a URL) to fetch into its cache."""
    return isinstance(value, dict) and bool({"path", "url", "meta"} & value.keys())


def holds_file_object(value, depth: int = 0) -> bool:
    """Whether a file object appears anywhere in ``value`` (very deep values count as holding one)."""
    if depth > 32:
        return True
    if isinstance(value, dict):
        return is_file_object(value) or any(holds_file_object(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(holds_file_object(v, depth + 1) for v in value)
    return False


class EventGate:
    """Checks queue joins, event streams and uploads against what this server handed out (see module)."""

    def __init__(self, shapes: dict[int, EventShape], *, per_user: int, capped: Iterable[str] = ("llm",),
                 in_flight: Callable[[str], int] = lambda user: 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.shapes = shapes
        self.per_user = per_user
        self.capped = frozenset(capped)
        self.in_flight = in_flight
        self.clock = clock
        self._lock = threading.Lock()
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._handed: dict[str, OrderedDict[str, float]] = {}
        self._joining: dict[str, int] = {}

    # ---- session hashes ---------------------------------------------------------------------
    def claim(self, user: str, session_hash) -> Refusal | None:
        """Refusal unless ``session_hash`` is unused or already ``user``'s (then it is, from now on)."""
        if not isinstance(session_hash, str) or not 1 <= len(session_hash) <= 64:
            return Refusal(400, "a session hash (1-64 characters) is required")
        with self._lock:
            owner = self._owners.get(session_hash)
            if owner is not None and owner != user:
                return Refusal(403, "this session belongs to another user")
            self._owners[session_hash] = user
            self._owners.move_to_end(session_hash)
            while len(self._owners) > MAX_SESSIONS:
                self._owners.popitem(last=False)
        return None

    # ---- uploads ----------------------------------------------------------------------------
    def handed_out(self, user: str, paths: Iterable[str]) -> None:
        """Record the paths Gradio's upload route just returned to ``user``."""
        now = self.clock()
        with self._lock:
            mine = self._handed.setdefault(user, OrderedDict())
            for path in paths:
                mine[str(path)] = now
                mine.move_to_end(str(path))
            while len(mine) > MAX_HANDED_OUT:
                mine.popitem(last=False)

    def was_handed(self, user: str, path) -> bool:
        """Whether ``path`` was uploaded by ``user`` within the last hour."""
        with self._lock:
            when = self._handed.get(user, {}).get(path) if isinstance(path, str) else None
        return when is not None and self.clock() - when < HANDED_OUT_S

    def _files(self, user: str, admin: bool, value) -> Refusal | None:
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, dict) or not set(item) <= FILE_KEYS or item.get("is_stream"):
                return Refusal(422, "a file input holds something that is not an uploaded file")
            if not admin:
                return Refusal(403, "only administrators can submit files")
            if not self.was_handed(user, item.get("path")):
                return Refusal(403, "a file input names a file this user did not upload here")
            if holds_file_object(item.get("meta")) or not isinstance(item.get("url"), (str, type(None))):
                return Refusal(422, "a file input holds something that is not an uploaded file")
        return None

    # ---- queue joins ------------------------------------------------------------------------
    def check_join(self, user: str, admin: bool, body) -> Refusal | None:
        """Refusal when the join ``body`` (parsed JSON) must not reach Gradio; None to admit it."""
        if not isinstance(body, dict) or not set(body) <= JOIN_KEYS:
            return Refusal(422, "not a queue request of this app")
        fn = body.get("fn_index")
        shape = self.shapes.get(fn) if isinstance(fn, int) and not isinstance(fn, bool) else None
        if shape is None:
            return Refusal(404, "no such event")
        if body.get("batched") or body.get("oauth_token") is not None or body.get("event_id") is not None:
            return Refusal(422, "batched calls, OAuth tokens and event ids are not accepted")
        data = body.get("data")
        if not isinstance(data, list) or len(data) != len(shape.inputs):
            return Refusal(422, f"this event takes {len(shape.inputs)} values")
        if holds_file_object(body.get("event_data")):
            return Refusal(422, "event data may not name files")
        for kind, value in zip(shape.inputs, data):
            if kind == TEXT and not isinstance(value, (str, type(None))):
                return Refusal(422, "a text input holds something that is not text")
            if kind == STATE and value is not None:
                return Refusal(422, "state is kept by the server; send null")
            if kind == FILES and (refused := self._files(user, admin, value)):
                return refused
        if refused := self.claim(user, body.get("session_hash")):
            return refused
        if shape.concurrency_id in self.capped:
            with self._lock:
                busy = self.in_flight(user) + self._joining.get(user, 0)
            if busy >= self.per_user:
                return Refusal(429, f"you have {busy} question{'s' if busy != 1 else ''} waiting or being answered "
                                    f"([web] questions_per_user = {self.per_user}); wait for an answer first")
        return None

    def is_capped(self, body) -> bool:
        """Whether the (admitted) join ``body`` counts towards the per-user cap."""
        shape = self.shapes.get(body.get("fn_index")) if isinstance(body, dict) else None
        return shape is not None and shape.concurrency_id in self.capped

    def joining(self, user: str, delta: int) -> None:
        """Count a capped join between its admission and its arrival in Gradio's queue (+1, then -1)."""
        with self._lock:
            left = self._joining.get(user, 0) + delta
            if left > 0:
                self._joining[user] = left
            else:
                self._joining.pop(user, None)
