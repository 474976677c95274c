"""The OpenAPI 3.1 description of the REST API (`workbench_web.api`), written out by hand.

Written here rather than generated, because the routes read their bodies themselves (to refuse
bad values with a sentence, before any work); `tests/test_rest_api.py` checks that every
``/api/v1`` route of the server is described here and nothing else. Leaves out: the MCP server
(it describes its own tools to MCP clients) and the staff app's own routes.
"""

from __future__ import annotations

from workbench import __version__

_ERROR = {"description": "refused: the reason is in `error`", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}}}}
_REFUSALS = {"400": _ERROR, "401": _ERROR, "403": _ERROR, "429": _ERROR}
_CHUNK = {"type": "object", "description": "a passage: its id, text, document path, page or slide, sheet, headings",
          "properties": {"chunk_id": {"type": "integer"}, "doc_id": {"type": "string"}, "text": {"type": "string"},
                         "path": {"type": "string"}, "part": {"type": "string"}, "title": {"type": "string"},
                         "page": {"type": ["integer", "null"]}, "sheet": {"type": ["string", "null"]},
                         "headings": {"type": "array", "items": {"type": "string"}},
                         "collection": {"type": "string"}, "format": {"type": "string"}}}
_HIT = {"type": "object", "properties": {
    "chunk": _CHUNK, "score": {"type": "number"}, "rank": {"type": "integer"},
    "dense_score": {"type": ["number", "null"]}, "lexical_score": {"type": ["number", "null"]},
    "context": {"type": "array", "items": _CHUNK}, "ocr_confidence": {"type": ["number", "null"]}}}
_ANSWER = {"type": "object", "description": "the answer (text with [n] markers) and what it rests on", "properties": {
    "question": {"type": "string"}, "text": {"type": "string"},
    "citations": {"type": "array", "items": {"type": "object", "properties": {
        "number": {"type": "integer"}, "chunk": _CHUNK, "ocr_confidence": {"type": ["number", "null"]}}}},
    "cited_numbers": {"type": "array", "items": {"type": "integer"}}, "hits": {"type": "array", "items": _HIT},
    "refused": {"type": "boolean"}, "refusal_reason": {"type": "string"}, "weak_evidence": {"type": "string"},
    "flags": {"type": "array", "items": {"type": "string"}},
    "uncited_sentences": {"type": "array", "items": {"type": "string"}},
    "unsupported_figures": {"type": "array", "items": {"type": "string"}}, "generation": {"type": "integer"},
    "model": {"type": "string"}}}
_CHUNK_ID = [{"name": "chunk_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0},
              "description": "a passage's id, from a search hit or a citation"}]


def _json_body(properties: dict, required: list[str]) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": properties, "required": required}}}}


def description(public_url: str | None) -> dict:
    """The OpenAPI document (servers: ``[web] public_url`` when set, else relative)."""
    collection = {"type": "string", "description": "only this collection (default: all you may read)"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "workbench", "version": __version__,
                 "description": "Search and ask the documents your groups may read. Every call acts as the key's "
                                "user and is audited. Send `Authorization: Bearer wbk_...` (a personal key)."},
        "servers": [{"url": (public_url or "").rstrip("/") or "/"}],
        "components": {"securitySchemes": {"key": {"type": "http", "scheme": "bearer",
                                                   "description": "a personal key: `workbench keys create` or "
                                                                  "the app's API keys tab"}}},
        "security": [{"key": []}],
        "paths": {
            "/api/v1/search": {"post": {
                "summary": "Search the documents (scope: search)",
                "requestBody": _json_body({"query": {"type": "string"}, "k": {"type": "integer", "minimum": 1,
                                                                               "maximum": 50, "default": 5},
                                           "collection": collection,
                                           "mode": {"enum": ["hybrid", "dense", "lexical"]}}, ["query"]),
                "responses": {"200": {"description": "the hits, best first", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"hits": {"type": "array", "items": _HIT},
                                                                 "generation": {"type": ["integer", "null"]}}}}}},
                              **_REFUSALS, "404": _ERROR}}},
            "/api/v1/ask": {"post": {
                "summary": "Ask a question answered from the documents (scope: ask), streamed",
                "requestBody": _json_body({"question": {"type": "string"}, "collection": collection,
                                           "history": {"type": "array", "maxItems": 6, "description":
                                                       "earlier [question, answer] pairs, for a follow-up",
                                                       "items": {"type": "array", "items": {"type": "string"},
                                                                 "minItems": 2, "maxItems": 2}}}, ["question"]),
                "responses": {"200": {"description": "server-sent events: `token` ({\"text\"}) as the answer is "
                                                     "generated, then one `answer` (the answer object below) or "
                                                     "one `error` ({\"error\"})",
                                      "content": {"text/event-stream": {"schema": _ANSWER}}}, **_REFUSALS}}},
            "/api/v1/passages/{chunk_id}": {"get": {
                "summary": "Read a passage with the text around it and its document (scope: read)",
                "parameters": _CHUNK_ID,
                "responses": {"200": {"description": "the passage", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"chunk": _CHUNK, "document": {"type": "object"},
                                                     "before": {"type": "string"}, "after": {"type": "string"},
                                                     "file": {"type": "string"}, "viewer": {"type": "string"}}}}}},
                              **_REFUSALS, "404": _ERROR}}},
            "/api/v1/passages/{chunk_id}/file": {"get": {
                "summary": "Download the document a passage came from, if it is still the indexed file (scope: read)",
                "parameters": _CHUNK_ID,
                "responses": {"200": {"description": "the file", "content": {"application/octet-stream": {}}},
                              **_REFUSALS, "404": _ERROR}}},
            "/api/v1/openapi.json": {"get": {"summary": "This description (signed-in users and keys)",
                                             "responses": {"200": {"description": "OpenAPI 3.1"}, "401": _ERROR}}},
        },
    }
