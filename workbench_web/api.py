"""The REST API for other tools, under ``/api/v1/``, with a personal key, as the key's user.

A program sends ``Authorization: Bearer wbk_...`` (a key from ``workbench keys create`` or the app's
"API keys" tab). `workbench.services.apicalls.KeyCalls` checks it: live, holding the call's scope,
its user still there (a directory user's groups re-read when due), within the key's rate. The call
then acts as that user through the same `Workbench` methods as the app, inside retrieval's access
rule, audited like the app's call with the key (id and label) as the identity source:

- ``POST /api/v1/search`` (scope search): ``{"query", "k", "collection", "mode"}`` → the hits with
  document, page, passage and scores (`workbench.wire`);
- ``POST /api/v1/ask`` (scope ask): ``{"question", "collection", "history"}`` → server-sent events:
  ``token`` events with the text as it is generated, then one ``answer`` event (the `Answer` with
  citations; the evidence gate and refusals of the app), or one ``error`` event;
- ``GET /api/v1/passages/{chunk_id}`` (scope read): the passage with the text around it and its
  document (a `SourceView`); ``GET /api/v1/passages/{chunk_id}/file``: the indexed file, only if it
  is still the one indexed;
- ``GET /api/v1/openapi.json``: the description of these routes, for a signed-in user or any live key.

Refusals are JSON ``{"error": ...}`` with 400, 401, 403, 404 or 429 (with Retry-After). No cookie is
read for the calls above; bodies are bounded and pages of other sites refused by the guard, and no
CORS headers are sent for any origin but the app's own. Leaves out: keys themselves
(`workbench.stores.keys`), MCP (`workbench_web.mcp`).
"""


import asyncio
import json
import threading
from contextlib import ExitStack

from workbench import Answer, Filters, Workbench, WorkbenchError
from workbench.errors import CallRefused, EmptyIndexError, NotFoundError
from workbench.services.apicalls import KeyCalls, search_refusal
from workbench.wire import answer_to_wire, hits_to_wire, to_wire
from workbench_web.guard import SECURE_HEADERS
from workbench_web.viewer import file_response

PREFIX = "/api/v1"
SEARCH, ASK, OPENAPI = f"{PREFIX}/search", f"{PREFIX}/ask", f"{PREFIX}/openapi.json"
PASSAGES = f"{PREFIX}/passages/"
MAX_HISTORY = 6  # earlier (question, answer) pairs a follow-up may carry
MAX_ANSWER_CHARS = 8000  # of each earlier answer a follow-up carries
NO_DOCUMENTS = "there are no documents to search yet: ask an administrator to add some"


def _error(status: int, message: str, headers: dict | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status, headers={**SECURE_HEADERS, **(headers or {})})


def bearer(headers) -> str:
    """The token of an ``Authorization: Bearer ...`` header ('' when there is none)."""
    value = headers.get("authorization", "")
    return value[7:].strip() if value[:7].lower() == "bearer " else ""


def refusal_headers(exc: CallRefused) -> dict[str, str]:
    """What a refused key call's answer tells the client: how to authenticate (401), when to retry (429)."""
    extra = {}
    if exc.status == 401:
        extra["WWW-Authenticate"] = 'Bearer realm="workbench", error="invalid_token"'
    if exc.status == 429:
        extra["Retry-After"] = str(max(1, round(exc.retry_after)))
    return extra


def _refused(exc: CallRefused):
    return _error(exc.status, str(exc), refusal_headers(exc))


def _collection(value) -> tuple[bool, str | None]:
    return (value is None or isinstance(value, str)), value or None


def _history(value, max_question: int) -> list[tuple[str, str]] | None:
    """Earlier turns as (question, answer) pairs, or None when ``value`` is not such a list or a turn is
    longer than a question may be (``max_question``) or an answer (`MAX_ANSWER_CHARS`)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_HISTORY:
        return None
    pairs = []
    for turn in value:
        if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            return None
        if len(turn[0]) > max_question or len(turn[1]) > MAX_ANSWER_CHARS:
            return None
        pairs.append((turn[0], turn[1]))
    return pairs


async def _json_object(request):
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def add_api_routes(app, wb: Workbench, calls: KeyCalls, signed_in=lambda request: None) -> None:
    """The routes of the module on ``app``. ``signed_in(request)``: the name of the request's signed-in
    user, or None (the OpenAPI description is theirs too)."""
    from fastapi import Request
    from fastapi.responses import JSONResponse, StreamingResponse

    @app.post(SEARCH)
    async def search(request: Request):
        token, body = bearer(request.headers), await _json_object(request)

        def call():  # one worker thread for the key check and the search (each hop costs a thread switch)
            principal = calls.act_as(token, "search").principal
            if body is None or not isinstance(body.get("query"), str) or not body["query"].strip():
                return _error(400, "the body must be a JSON object with a non-empty \"query\" string")
            k, (ok, collection), mode = body.get("k", 5), _collection(body.get("collection")), body.get("mode")
            if why := search_refusal(k, mode) or ("" if ok else "collection must be a string"):
                return _error(400, why)
            return JSONResponse(hits_to_wire(wb.search(body["query"], k, collection, mode, None, principal)),
                                headers=SECURE_HEADERS)

        try:
            return await asyncio.to_thread(call)
        except CallRefused as exc:
            return _refused(exc)
        except NotFoundError as exc:
            return _error(404, str(exc))
        except EmptyIndexError:  # its message names the server's folders
            return _error(404, NO_DOCUMENTS)
        except WorkbenchError as exc:
            return _error(400, str(exc))

    @app.post(ASK)
    async def ask(request: Request):
        try:
            principal = (await asyncio.to_thread(calls.act_as, bearer(request.headers), "ask")).principal
        except CallRefused as exc:
            return _refused(exc)
        body = await _json_object(request)
        if body is None or not isinstance(body.get("question"), str) or not body["question"].strip():
            return _error(400, "the body must be a JSON object with a non-empty \"question\" string")
        max_question = wb.config.answer.max_question_chars
        (ok, collection), history = _collection(body.get("collection")), _history(body.get("history"), max_question)
        if not ok or history is None:
            return _error(400, f"collection must be a string, history a list of at most {MAX_HISTORY} "
                               f"[question, answer] pairs of strings (questions up to {max_question:,} characters, "
                               f"answers up to {MAX_ANSWER_CHARS:,})")
        place = ExitStack()
        try:
            place.enter_context(calls.asking(principal))
        except CallRefused as exc:
            return _refused(exc)
        filters = Filters(collections=(collection,)) if collection else None
        events: asyncio.Queue = asyncio.Queue()  # unbounded: an answer is at most [llm] max_new_tokens pieces
        loop, stop = asyncio.get_running_loop(), threading.Event()

        def put(item) -> None:
            if not stop.is_set():
                loop.call_soon_threadsafe(events.put_nowait, item)

        def answer() -> None:
            answering = wb.ask_stream(body["question"], history=history, filters=filters, principal=principal)
            try:
                for item in answering:
                    if stop.is_set():  # the client went away: stop generating (audited as cancelled)
                        answering.close()
                        return
                    put(("answer", answer_to_wire(item)) if isinstance(item, Answer) else ("token", {"text": item}))
            except EmptyIndexError:
                put(("error", {"error": NO_DOCUMENTS}))
            except WorkbenchError as exc:
                put(("error", {"error": str(exc)}))
            except Exception:  # noqa: BLE001 - the client gets a fixed sentence, the log the rest
                import traceback

                traceback.print_exc()
                put(("error", {"error": "the question could not be answered: an administrator should check "
                                        "the server's log"}))
            finally:
                put(None)
                place.close()

        worker = threading.Thread(target=answer, daemon=True, name="api-ask")
        worker.start()

        async def stream():
            try:
                while (item := await events.get()) is not None:
                    name, data = item
                    yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            finally:
                stop.set()

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={**SECURE_HEADERS, "X-Accel-Buffering": "no"})

    @app.get(PASSAGES + "{chunk_id}")
    async def passage(chunk_id: int, request: Request):
        token = bearer(request.headers)
        try:
            view = await asyncio.to_thread(lambda: wb.source(chunk_id, calls.act_as(token, "read").principal))
        except CallRefused as exc:
            return _refused(exc)
        except NotFoundError as exc:
            return _error(404, str(exc))
        shown = to_wire(view)
        shown["document"].pop("groups")  # who else may read it is not the caller's business
        return JSONResponse({**shown, "file": f"{PASSAGES}{chunk_id}/file",
                             "viewer": f"/source/{chunk_id}"}, headers=SECURE_HEADERS)

    @app.get(PASSAGES + "{chunk_id}/file")
    async def download(chunk_id: int, request: Request):
        token = bearer(request.headers)
        try:
            opened = await asyncio.to_thread(lambda: wb.original_file(chunk_id, calls.act_as(token, "read").principal))
        except CallRefused as exc:
            return _refused(exc)
        except NotFoundError as exc:
            return _error(404, str(exc))
        return file_response(opened, inline=False)

    @app.get(OPENAPI)
    async def openapi(request: Request):
        if signed_in(request) is None:
            try:
                await asyncio.to_thread(calls.act_as, bearer(request.headers), None)
            except CallRefused as exc:
                return _refused(exc)
        from workbench_web.openapi import description

        return JSONResponse(description(wb.config.web.public_url), headers=SECURE_HEADERS)
