"""The REST API for other tools: ``POST /api/v1/search`` with a personal key, as the key's user.

A program sends ``Authorization: Bearer wbk_...`` (a key from ``workbench keys create``): the key
must be live and hold the scope of the call (`workbench.stores.keys.KeyStore.check`), and its user
must still exist; the call then acts as that user with their groups *now* (so directory changes,
removals included, apply at once), through the same `Workbench.search` as the app, inside
retrieval's access rule. Each call is audited like a search in the app, with the key (id and label)
as the identity source. Calls are limited per key (``[web] api_calls_per_minute``, a token bucket);
bodies are bounded by the guard. No cookies are read, and a page of another site cannot call it
(the guard refuses foreign origins). Leaves out, for now: ``ask`` (streamed), reading a passage,
downloads, an OpenAPI page, an MCP server, keys in the web app.
"""

import asyncio
import dataclasses
import threading
import time

from workbench import Workbench, WorkbenchError
from workbench.errors import NotFoundError
from workbench.stores.keys import KeyStore
from workbench_web.guard import SECURE_HEADERS

SEARCH = "/api/v1/search"
MAX_K = 50


class RateLimit:
    """A token bucket per key: ``per_minute`` calls a minute, bursts up to that."""

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str) -> float:
        """0 when a call may go ahead now (it is counted), else seconds to wait."""
        now = self.clock()
        rate = self.per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0


def _error(status: int, message: str, headers: dict | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status, headers={**SECURE_HEADERS, **(headers or {})})


def add_api_routes(app, wb: Workbench) -> None:
    """POST /api/v1/search on ``app`` (see module)."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    keys = KeyStore(wb.index_dir)
    limit = RateLimit(wb.config.web.api_calls_per_minute)

    def caller(request: Request, scope: str):
        """(principal, key, None) for a live key with ``scope``, else (None, None, the refusal)."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not token:
            return None, None, _error(401, "send your key: Authorization: Bearer wbk_...",
                                      {"WWW-Authenticate": 'Bearer realm="workbench"'})
        key, why = keys.check(token, scope)
        if key is None:
            return None, None, _error(401, why, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if why:
            return None, key, _error(403, why)
        if wb.users.get(key.user) is None:
            return None, key, _error(401, f"the key's user {key.user!r} no longer exists")
        wait = limit.take(key.id)
        if wait > 0:
            return None, key, _error(429, f"too many calls with this key: try again in {wait:.0f} s",
                                     {"Retry-After": str(max(1, round(wait)))})
        principal = wb.principal(key.user)
        return dataclasses.replace(principal, source=f"api key {key.id} ({key.label})"[:40]), key, None

    @app.post(SEARCH)
    async def search(request: Request):
        principal, _, refused = await asyncio.to_thread(caller, request, "search")
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body must be JSON: {\"query\": \"...\", \"k\": 5}")
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            return _error(400, "the body must be a JSON object with a non-empty \"query\" string")
        k, collection, mode = body.get("k", 5), body.get("collection"), body.get("mode")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            return _error(400, f"k must be a whole number from 1 to {MAX_K}")
        if collection is not None and not isinstance(collection, str) or mode not in (None, "hybrid", "dense", "lexical"):
            return _error(400, "collection must be a string, mode one of hybrid, dense, lexical")
        try:
            hits = await asyncio.to_thread(wb.search, body["query"], k, collection, mode, None, principal)
        except NotFoundError as exc:
            return _error(404, str(exc))
        except WorkbenchError as exc:
            return _error(400, str(exc))
        return JSONResponse({"generation": hits.trace.generation if hits.trace else None,
                             "hits": [_hit(h) for h in hits]}, headers=SECURE_HEADERS)


def _hit(hit) -> dict:
    chunk = hit.chunk
    return {"rank": hit.rank, "score": hit.score, "dense_score": hit.dense_score, "lexical_score": hit.lexical_score,
            "chunk_id": chunk.chunk_id, "collection": chunk.collection, "path": chunk.path, "page": chunk.page,
            "sheet": chunk.sheet, "headings": list(chunk.headings), "text": chunk.text,
            "source": f"/source/{chunk.chunk_id}"}
