"""The MCP server's tools: search the documents, ask a grounded question, read a cited passage.

`mcp_server(wb, who, link)` builds an `mcp.server.mcpserver.MCPServer` (the official MCP Python
SDK) with three tools, each acting for ``who(ctx, scope)`` (a `Principal`, or None for the
operator) inside retrieval's access rule, audited as the same call in the app would be:

- ``search(query, k, collection, mode)``: the passages, each with file, page, where it sits and
  a link to the source viewer;
- ``ask(question, collection)``: the answer with its numbered citations (the evidence gate and
  refusals of the app), and what is worth flagging about it;
- ``read_passage(chunk_id)``: a cited passage with the text around it.

Over HTTP (`workbench_web.mcp`) ``who`` reads the checked key of the request; over stdio
(``workbench mcp``) it is the operator or ``--as-user NAME``. A refusal or a bad value becomes a
tool error with the reason (never a traceback). Leaves out: transports and keys.
"""


import contextlib
from collections.abc import Callable
from typing import Any

from workbench.errors import NotFoundError, WorkbenchError
from workbench.records import Principal
from workbench.services.apicalls import search_refusal

INSTRUCTIONS = ("Searches and answers from the organization's documents that the signed-in user may read. "
                "Use `search` to find passages, `ask` for an answer with numbered citations, and "
                "`read_passage` to read a cited passage in its context. Cite the file and page.")


def _where(chunk, link: str | None) -> dict[str, Any]:
    return {"chunk_id": chunk.chunk_id, "title": chunk.title, "path": chunk.display_path, "page": chunk.page,
            "location": chunk.label, "collection": chunk.collection, "link": link}


def mcp_server(wb, who: Callable[[Any, str], Principal | None], link: Callable[[Any, int], str | None],
               asking: "Callable[[Principal | None], contextlib.AbstractContextManager] | None" = None):
    """The MCP server over ``wb`` (see module). ``asking(principal)`` holds a place while a question
    is answered (may refuse); none by default."""
    import anyio.to_thread
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    # no subscriptions: a client could otherwise hold a listening stream open for ever
    server = MCPServer("workbench", instructions=INSTRUCTIONS, log_level="WARNING", subscriptions=False)

    async def run(ctx: Context, scope: str, work: Callable[[Principal | None], Any]) -> Any:
        def call():
            try:
                return work(who(ctx, scope))
            except NotFoundError as exc:
                raise ToolError(str(exc)) from None
            except WorkbenchError as exc:  # refusals (keys, rates) and bad values, with their reason
                raise ToolError(str(exc)) from None
        return await anyio.to_thread.run_sync(call)

    @server.tool(description="Search the documents you may read. Returns the best passages, each with "
                             "its file, page and a link to the source. mode: hybrid (default), dense or lexical.")
    async def search(query: str, ctx: Context, k: int = 5, collection: str | None = None,
                     mode: str | None = None) -> dict[str, Any]:
        if not query.strip():
            raise ToolError("query must not be empty")
        if why := search_refusal(k, mode):
            raise ToolError(why)

        def work(principal):
            hits = wb.search(query, k, collection, mode, None, principal)
            return {"hits": [{"rank": h.rank, "score": h.score, **_where(h.chunk, link(ctx, h.chunk.chunk_id)),
                              "text": h.chunk.text} for h in hits],
                    "generation": hits.trace.generation if hits.trace else None}
        return await run(ctx, "search", work)

    @server.tool(description="Ask a question answered only from the documents you may read. Returns the "
                             "answer with [n] markers and the citations they point to (file, page, link); "
                             "refused when the documents do not cover the question.")
    async def ask(question: str, ctx: Context, collection: str | None = None) -> dict[str, Any]:
        if not question.strip():
            raise ToolError("question must not be empty")
        from workbench.records import Filters

        def work(principal):
            with (asking(principal) if asking else contextlib.nullcontext()):
                answer = wb.ask(question, filters=Filters(collections=(collection,)) if collection else None,
                                principal=principal)
            return {"answer": answer.text, "refused": answer.refused, "refusal_reason": answer.refusal_reason,
                    "flags": [str(f) for f in answer.flags()], "generation": answer.generation,
                    "citations": [{"number": c.number, **_where(c.chunk, link(ctx, c.chunk_id)), "snippet": c.snippet,
                                   "cited": c.number in answer.cited_numbers} for c in answer.citations]}
        return await run(ctx, "ask", work)

    @server.tool(description="Read a passage (by the chunk_id a search hit or citation gave) with the text "
                             "just before and after it, and where it sits in its document.")
    async def read_passage(chunk_id: int, ctx: Context) -> dict[str, Any]:
        def work(principal):
            view = wb.source(chunk_id, principal)
            return {**_where(view.chunk, link(ctx, view.chunk.chunk_id)), "text": view.chunk.text,
                    "before": view.before, "after": view.after, "document_format": view.document.format}
        return await run(ctx, "read", work)

    return server


def serve_stdio(wb, principal: Principal | None) -> None:
    """Run the tools over stdio until the client closes it, acting for ``principal`` (None: the operator).

    Links point at the source viewer under ``[web] public_url`` when it is set, else there are none.
    Nothing but MCP messages is written to stdout (the protocol's channel)."""
    public = (wb.config.web.public_url or "").rstrip("/")
    server = mcp_server(wb, lambda ctx, scope: principal,
                        lambda ctx, chunk_id: f"{public}/source/{chunk_id}" if public else None)
    server.run("stdio")
