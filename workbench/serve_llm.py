"""A small OpenAI-compatible chat endpoint over the configured LLM (`workbench llm-serve`).

Serves ``POST /v1/chat/completions`` (streamed as server-sent events, or whole) and
``GET /v1/models`` so that several workbench processes (the web app, notebooks, cron) can share
one loaded model, and so that the `openai` backend can be exercised against a real server.
``--parallel N`` gives it N slots: N generations run at once, each on its own slot (for llama.cpp a
context of its own over the one memory-mapped GGUF file, so the weights are in memory once; for
transformers threads sharing the one model), and up to ``--max-waiting`` more requests wait for a
free slot; beyond that a request gets 503 at once. Each request is bounded: a JSON body of at most
`body_limit` bytes (sized to the model's window), a prompt that fits the model's context window
(counted with its own tokenizer; longer ones get 400 before any work), never more new tokens than
the server's configured maximum or than the window leaves, and generation stops as soon as the
client goes away. API keys are compared in constant time. Binds to 127.0.0.1 unless told
otherwise, and refuses any other address without an API key; on loopback it answers only requests
whose ``Host`` names loopback (a web page cannot reach it through DNS rebinding; "this machine
only" is `workbench.net.is_loopback`, which the web app's guard asks too). Leaves out:
continuous batching and multi-GPU serving (use vLLM for that, see README), TLS (put a reverse proxy
in front when it leaves the host).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import queue
import select
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from workbench.errors import BadRequest, WorkbenchError
from workbench.net import is_loopback

MIN_BODY_BYTES = 64 * 1024
BODY_BYTES_PER_TOKEN = 24  # a token is rarely over 6 characters, and JSON escapes one in at most 6 bytes


def body_limit(context_window: int) -> int:
    """The largest request body worth reading for a model with this window (a longer one cannot fit it)."""
    return max(MIN_BODY_BYTES, context_window * BODY_BYTES_PER_TOKEN)
SOCKET_TIMEOUT_S = 60  # a client that stops sending mid-request is dropped


def server_api_key(host: str, api_key_env: str | None) -> str | None:
    """The key clients must send, read from ``api_key_env``; WorkbenchError when the variable is
    unset, or when there is no key and ``host`` is reachable from other machines."""
    key = None
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise WorkbenchError(f"--api-key-env names {api_key_env}, which is not set: export {api_key_env}=<a long "
                                 "random key> and start again")
    if key is None and not is_loopback(host):
        raise WorkbenchError(f"llm-serve would listen on {host} without an API key, so anyone who can reach it "
                             "could use the model: set --api-key-env VAR (or [llm] api_key_env) to the name of an "
                             "environment variable holding a key, or bind to 127.0.0.1")
    return key


def read_request(headers, rfile, default_max_tokens: int, max_body: int = MIN_BODY_BYTES
                 ) -> tuple[list[dict], int, bool]:
    """(messages, max_tokens, stream) from a chat request; BadRequest when it is not acceptable."""
    if headers.get_content_type() != "application/json":
        raise BadRequest(415, "send the request body as JSON (Content-Type: application/json)")
    try:
        length = int(headers.get("Content-Length", ""))
    except ValueError:
        raise BadRequest(411, "a Content-Length header is required") from None
    if length < 0 or length > max_body:
        raise BadRequest(413, f"request body over {max_body} bytes (more than the model's context window holds)")
    try:
        body = json.loads(rfile.read(length))
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in body["messages"]]
        requested = body.get("max_tokens") or default_max_tokens
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError("max_tokens must be a positive integer")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadRequest(400, f"bad request: {exc}") from None
    return messages, min(requested, default_max_tokens), bool(body.get("stream"))


class Slots:
    """The loaded models a server generates with, one generation per slot at a time, and a bound on
    the requests waiting for one."""

    def __init__(self, llms: list, max_waiting: int = 64) -> None:
        self.free: queue.Queue = queue.Queue()
        for llm in llms:
            self.free.put(llm)
        self.n, self.max_waiting = len(llms), max_waiting
        self.name = llms[0].name
        self.context_window = int(llms[0].context_window)
        self.waiting = 0
        self._lock = threading.Lock()

    def take(self):
        """A free slot's model (waiting for one), or None when max_waiting requests already wait."""
        with self._lock:
            if self.free.empty() and self.waiting >= self.max_waiting:
                return None
            self.waiting += 1
        try:
            return self.free.get()
        finally:
            with self._lock:
                self.waiting -= 1

    def give_back(self, llm) -> None:
        self.free.put(llm)


def fits_window(llm, messages: list[dict], max_tokens: int) -> int:
    """The new tokens ``messages`` may get from ``llm``: ``max_tokens``, or less when the window ends
    sooner. BadRequest (400) when the prompt alone fills the model's context window."""
    prompt = llm.count_tokens(messages)
    left = llm.context_window - prompt
    if left < 1:
        raise BadRequest(400, f"the prompt is {prompt} tokens; the model's context window is {llm.context_window}")
    return min(max_tokens, left)


def client_gone(conn: socket.socket) -> bool:
    """Whether the client closed its side of ``conn`` (it sends nothing else while it waits)."""
    try:
        if not select.select([conn], [], [], 0)[0]:
            return False
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def loopback_hosts(host: str, port: int) -> frozenset[str] | None:
    """``Host`` header values a server bound to ``host`` answers; None (any) when it is not loopback."""
    if not is_loopback(host):
        return None
    names = {host, "127.0.0.1", "localhost", "[::1]"}
    return frozenset(f"{n}:{port}" for n in names) | frozenset(names)


def make_handler(llm, api_key: str | None = None, default_max_tokens: int = 384, hosts: frozenset[str] | None = None):
    """A request handler serving ``llm`` (one model, or `Slots`); ``default_max_tokens`` is also the
    most a client gets; ``hosts``: the Host header values answered (None: any)."""
    slots = llm if isinstance(llm, Slots) else Slots([llm])
    expected = f"Bearer {api_key}".encode() if api_key else None
    max_body = body_limit(slots.context_window)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = SOCKET_TIMEOUT_S

        def log_message(self, fmt, *args) -> None:  # quiet: no request log on stderr
            pass

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status >= 400:
                self.send_header("Connection", "close")  # an unread body must not be taken for a request
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            named = self.headers.get_all("Host") or []
            if hosts is not None and (len(named) != 1 or named[0].lower() not in hosts):
                self._json(421, {"error": {"message": "this server answers only requests to its loopback address"}})
                return False
            sent = self.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if expected is not None and not hmac.compare_digest(sent, expected):
                self._json(401, {"error": {"message": "invalid API key"}})
                return False
            return True

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": slots.name, "object": "model", "owned_by": "local",
                                                             "max_concurrency": slots.n}]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                messages, max_tokens, stream = read_request(self.headers, self.rfile, default_max_tokens, max_body)
            except BadRequest as exc:
                self._json(exc.status, {"error": {"message": str(exc)}})
                return
            llm = slots.take()
            if llm is None:
                self._json(503, {"error": {"message": f"busy: all {slots.n} slots are generating and "
                                           f"{slots.max_waiting} requests are waiting; try again shortly"}})
                return
            try:
                try:
                    max_tokens = fits_window(llm, messages, max_tokens)
                except BadRequest as exc:
                    self._json(exc.status, {"error": {"message": str(exc)}})
                    return
                if stream:
                    self._stream(llm, messages, max_tokens)
                else:
                    self._whole(llm, messages, max_tokens)
            finally:
                slots.give_back(llm)

        def _pieces(self, llm, messages: list[dict], max_tokens: int):
            """The model's pieces, until it ends or the client leaves (then generation is stopped)."""
            with contextlib.closing(llm.stream(messages, max_tokens)) as pieces:
                for piece in pieces:
                    if client_gone(self.connection):
                        self.client_left = self.close_connection = True
                        return
                    yield piece

        def _whole(self, llm, messages: list[dict], max_tokens: int) -> None:
            self.client_left = False
            text = "".join(self._pieces(llm, messages, max_tokens))
            if self.client_left:
                return  # nobody to answer
            self._json(200, {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
                             "created": int(time.time()), "model": llm.name,
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": text}}]})

        def _stream(self, llm, messages: list[dict], max_tokens: int) -> None:
            rid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.client_left = False
            with contextlib.closing(self._pieces(llm, messages, max_tokens)) as pieces:
                self._send_pieces(pieces, rid, created, llm.name)
            if self.client_left:
                return
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

        def _send_pieces(self, pieces, rid: str, created: int, name: str) -> None:
            for piece in pieces:
                chunk = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                try:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                except OSError:  # the client left mid-answer: closing _pieces stops the model
                    self.client_left = self.close_connection = True
                    return

    return Handler


def load_slots(settings, parallel: int, max_waiting: int = 64, shared=None) -> Slots:
    """``parallel`` slots of the configured LLM: llama.cpp loads one context per slot over the same
    memory-mapped GGUF (its threads shared out between them); otherwise, and for one slot, every slot
    is the one model ``shared()`` returns (default: loaded here)."""
    from workbench.generate import load_llm

    if settings.backend != "llamacpp" or parallel == 1:
        return Slots([(shared or (lambda: load_llm(settings)))()] * parallel, max_waiting)
    threads = settings.threads or os.cpu_count() or 1
    each = settings.model_copy(update={"threads": max(1, threads // parallel)})
    return Slots([load_llm(each) for _ in range(parallel)], max_waiting)


def make_server(llm, host: str, port: int, api_key: str | None, max_tokens: int) -> ThreadingHTTPServer:
    """The HTTP server (not yet serving) for ``llm``; on loopback it answers loopback Host names only."""
    server = ThreadingHTTPServer((host, port), BaseHTTPRequestHandler)  # bound: its port is known now
    server.RequestHandlerClass = make_handler(llm, api_key, max_tokens, loopback_hosts(host, server.server_port))
    return server


def serve(llm, host: str = "127.0.0.1", port: int = 8000, api_key_env: str | None = None,
          max_tokens: int = 384) -> None:
    """Serve ``llm`` (a model, or `Slots`) until interrupted; ``max_tokens`` bounds every answer."""
    key = server_api_key(host, api_key_env)
    slots = llm if isinstance(llm, Slots) else Slots([llm])
    server = make_server(slots, host, port, key, max_tokens)
    print(f"serving {slots.name} at http://{host}:{server.server_port}/v1 (OpenAI-compatible; {slots.n} "
          f"slot{'s' if slots.n > 1 else ''}, {slots.max_waiting} may wait)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
