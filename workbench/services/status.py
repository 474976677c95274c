"""`workbench status`: the published index at a glance, in one `IndexStatus` record.

Counts, collections, sources, failures, what searches the vectors and the terms (from the
generation's manifest), pages read by OCR with low confidence, the embedding runtime this process
would use and the CPU. Leaves out: formatting (`IndexStatus.summary`, the web app's renderer).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from workbench.config import Config
from workbench.errors import WorkbenchError
from workbench.hardware import cpu_info
from workbench.index import IndexReader
from workbench.records import IndexStatus


def index_status(config: Config, reader: IndexReader | None, describe_embedder: Callable[[], str]) -> IndexStatus:
    """The status of ``reader``'s generation (None: nothing published) under ``config``;
    ``describe_embedder`` says the runtime (it loads no weights)."""
    try:
        runtime = describe_embedder()
    except WorkbenchError as exc:  # the model is missing: the index can still be described
        runtime = f"unavailable: {exc}"
    here = {"embedding_runtime": runtime, "cpu": cpu_info().describe(), "sign_in": sign_in_sources(config)}
    if reader is None:
        return IndexStatus(str(config.index.dir), 0, 0, 0, {}, (), (), config.embedding.model, 0, "", **here)
    docs, chunks = reader.catalog.counts()
    meta = reader.catalog.meta()
    return IndexStatus(**here,
        index_dir=str(config.index.dir), generation=reader.generation, documents=docs, chunks=chunks,
        collections=reader.catalog.collections(), sources=tuple({**src, "permissions": permissions_of(config, src)}
                                                         for src in reader.catalog.sources()),
        failures=tuple(reader.catalog.failures()), embedding_model=meta.get("embedding_model", ""),
        embedding_dim=int(meta.get("embedding_dim", 0)), published_at=meta.get("published_at", ""),
        access_changed=int(meta.get("access_changed", 0) or 0),
        vector_index=_describe_index(reader.index_info, config.index.nprobe),
        lexical_index=_describe_lexical(reader.lexical_info),
        ocr_low_confidence=tuple(f"{path}, page {page}: {conf:.0f}%" for path, page, conf in
                                 reader.catalog.low_confidence_pages(config.ocr.low_confidence)))



def _size_on_disk(info: dict) -> str:
    if "bytes" not in info:
        return "size not recorded"
    return f"{info['bytes'] / 2**20:.1f} MB on disk" if info["bytes"] >= 2**20 else f"{info['bytes'] / 2**10:.0f} KB on disk"


def _describe_lexical(info: dict) -> str:
    """One line on what answers a generation's BM25 queries (its manifest's "lexical" entry)."""
    if info.get("kind") != "matrix":
        return "SQLite FTS5 (the catalog's full-text table)"
    how = "linked from the previous generation" if info.get("reused") else f"built in {info['build_s']} s"
    return f"BM25 matrices (bm25s), {info['chunks']:,} chunks, {info['terms']:,} terms, {_size_on_disk(info)}; {how}"


def _describe_index(info: dict, nprobe: int) -> str:
    """One line on what searches a generation's vectors (its manifest's "index" entry)."""
    size = _size_on_disk(info)
    if info.get("kind") != "ivf":
        return f"flat (exact search), {size}"
    return (f"ivf ({info['nlist']} lists, nprobe {nprobe}), {size}; recall@10 against exact "
            f"{info['recall_at_10']:.3f} at publish (nprobe {info['nprobe']}, trained on {info['trained_on']:,} vectors)")


def sign_in_sources(config: Config) -> str:
    """Where the web app's users come from, as configured (no server is contacted)."""
    auth = config.auth
    parts = ["local accounts"]
    if auth.ldap.url:
        parts.append(f"LDAP {auth.ldap.url}{' (StartTLS)' if auth.ldap.start_tls else ''}")
    if auth.oidc.issuer:
        parts.append(f"OpenID {auth.oidc.issuer}")
    if config.web.trusted_user_header:
        parts = [f"a reverse proxy's {config.web.trusted_user_header} header"]
    mapped = f"; {len(auth.groups)} directory groups mapped, refreshed every {auth.refresh_s:g} s" if (
        auth.ldap.url or auth.oidc.issuer) else ""
    return ", ".join(parts) + mapped


def permissions_of(config: Config, source: dict) -> str:
    """Where a catalogued source's readers come from, as the source itself says (nothing is read)."""
    from workbench.access import AccessRules
    from workbench.sources import root_of, source_for

    root, collection = root_of(source["root"]), source["collection"]
    rules = AccessRules([root] if isinstance(root, Path) else [], collection, config.access)
    return source_for(root, collection, rules, config).permissions
