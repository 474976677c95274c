"""A workbench on another machine, used from a notebook or script with a personal key.

``wb = Workbench.connect("https://docs.example.org", key="wbk_...")`` gives a `RemoteWorkbench`
whose ``search``, ``ask``, ``ask_stream``, ``source`` and ``original_file`` return the same
records as the local `Workbench` (`Hits` of `Hit`, `Answer`, `SourceView`, bytes), built from the
REST API's JSON (`workbench.wire`), so notebook code runs unchanged against either. Every call acts
as the key's user on the server, with their groups there. A refusal raises `RemoteError` with the
server's reason and status (401 key, 403 scope, 404 not found or not yours, 429 rate).

Leaves out: anything the API does not offer (ingest, users, status); TLS settings beyond httpx's
(``verify`` is passed through: a CA bundle path for an internal CA).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence

from workbench.errors import NotFoundError, RemoteError, WorkbenchError
from workbench.records import Answer, Filters, Hits, SourceView
from workbench.wire import from_wire, hits_from_wire


class RemoteWorkbench:
    """The REST API of a workbench server as the `Workbench` methods (see module)."""

    def __init__(self, url: str, key: str | None = None, *, timeout_s: float = 300.0, verify=True) -> None:
        import httpx

        key = key or os.environ.get("WORKBENCH_KEY")
        if not key:
            raise WorkbenchError("connect needs a key: Workbench.connect(url, key='wbk_...') or WORKBENCH_KEY; "
                                 "create one in the app's API keys tab or with `workbench keys create`")
        if not url.startswith(("https://", "http://")):
            raise WorkbenchError(f"{url!r}: give the server's address, e.g. https://docs.example.org")
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, verify=verify, trust_env=False,
                                  headers={"Authorization": f"Bearer {key}"}, follow_redirects=False)

    def __repr__(self) -> str:
        return f"RemoteWorkbench({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RemoteWorkbench":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _raise_for(response) -> None:
        if response.status_code < 400:
            return
        try:
            message = response.json().get("error") or response.text
        except ValueError:
            message = response.text[:300] or response.reason_phrase
        if response.status_code == 404:
            raise NotFoundError(message)
        raise RemoteError(response.status_code, message)

    def search(self, query: str, k: int = 5, collection: str | None = None, mode: str | None = None) -> Hits:
        """The ``k`` best passages for ``query`` that the key's user may read (as `Workbench.search`)."""
        body = {"query": query, "k": k, "collection": collection, "mode": mode}
        response = self._http.post("/api/v1/search", json={n: v for n, v in body.items() if v is not None})
        self._raise_for(response)
        return hits_from_wire(response.json())

    def ask_stream(self, question: str, history: Sequence[tuple[str, str]] = (),
                   filters: Filters | None = None) -> Iterator[str | Answer]:
        """The answer's text pieces as the server generates them, then the `Answer` (as `Workbench.ask_stream`;
        of ``filters`` only one collection is sent)."""
        collection = _one_collection(filters)
        body = {"question": question, "history": [list(t) for t in history], **({"collection": collection}
                                                                                  if collection else {})}
        with self._http.stream("POST", "/api/v1/ask", json=body) as response:
            if response.status_code >= 400:
                response.read()
                self._raise_for(response)
            event = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:].strip()
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if event == "token":
                        yield data["text"]
                    elif event == "answer":
                        yield from_wire(Answer, data)
                        return
                    elif event == "error":
                        raise RemoteError(200, data.get("error", "the question could not be answered"))
        raise RemoteError(502, "the server ended the answer without a result")

    def ask(self, question: str, history: Sequence[tuple[str, str]] = (), filters: Filters | None = None,
            on_token=None) -> Answer:
        """The grounded `Answer` (``on_token(piece)`` sees the text as it streams)."""
        from workbench.answer import final_answer

        return final_answer(self.ask_stream(question, history, filters), on_token)

    def source(self, chunk_id: int) -> SourceView:
        """The passage with the text around it and its document (NotFoundError: none, or not yours)."""
        response = self._http.get(f"/api/v1/passages/{int(chunk_id)}")
        self._raise_for(response)
        return from_wire(SourceView, response.json())

    def original_file(self, chunk_id: int) -> bytes:
        """The bytes of the indexed file a passage came from (NotFoundError when gone, changed or not yours)."""
        response = self._http.get(f"/api/v1/passages/{int(chunk_id)}/file")
        self._raise_for(response)
        return response.content


def _one_collection(filters: Filters | None) -> str | None:
    if filters is None or not filters.restricts:
        return None
    if filters.collections and len(filters.collections) == 1 and filters == Filters(collections=filters.collections):
        return filters.collections[0]
    raise WorkbenchError("a remote question can be limited to one collection only: Filters(collections=('name',))")
