"""A small OpenAI-compatible chat endpoint over the configured LLM (`workbench llm-serve`).

Serves ``POST /v1/chat/completions`` (streamed as server-sent events, or whole) and
``GET /v1/models`` so that several workbench processes (the web app, notebooks, cron) can share
one loaded model, and so that the `openai` backend can be exercised against a real server.
One generation runs at a time; others wait. Binds to 127.0.0.1 unless told otherwise. Leaves
out: batching and multi-GPU serving (use vLLM for that, see README).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(llm, api_key: str | None = None, default_max_tokens: int = 384):
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args) -> None:  # quiet: no request log on stderr
            pass

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if api_key and self.headers.get("Authorization") != f"Bearer {api_key}":
                self._json(401, {"error": {"message": "invalid API key"}})
                return False
            return True

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": llm.name, "object": "model", "owned_by": "local"}]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._json(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
            except (ValueError, KeyError, TypeError) as exc:
                self._json(400, {"error": {"message": f"bad request: {exc}"}})
                return
            max_tokens = int(body.get("max_tokens") or default_max_tokens)
            rid, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())
            with lock:
                if not body.get("stream"):
                    text = "".join(llm.stream(messages, max_tokens))
                    self._json(200, {"id": rid, "object": "chat.completion", "created": created, "model": llm.name,
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": text}}]})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for piece in llm.stream(messages, max_tokens):
                    chunk = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": llm.name,
                             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

    return Handler


def serve(llm, host: str = "127.0.0.1", port: int = 8000, api_key_env: str | None = None,
          max_tokens: int = 384) -> None:
    """Serve ``llm`` until interrupted."""
    key = os.environ.get(api_key_env) if api_key_env else None
    server = ThreadingHTTPServer((host, port), make_handler(llm, key, max_tokens))
    print(f"serving {llm.name} at http://{host}:{server.server_port}/v1 (OpenAI-compatible)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
