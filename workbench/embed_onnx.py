"""The ONNX Runtime embedder, and the one-time export of a sentence-transformers model to ONNX.

Why: a fresh process that only embeds a query imports onnxruntime and tokenizers (well under a
second) instead of torch and transformers (seconds); the vectors are torch float32's. For bulk
document embedding torch is as fast or faster (benchmarks/embed_dtype.py), except with int8.

The export runs once per model, in whatever process first needs it (it imports torch, and holds
a file lock so that concurrent processes export once): the model with its pooling and
normalisation is traced to ``INDEX/models/<name>-<key>/model.fp32.onnx``, then checked against
sentence-transformers itself, prompts included, on probe sentences (cosine >= 0.9999, else the
export is refused and the caller stays on torch). The tracer is torch's TorchScript-based exporter
(``dynamo=False``), deprecated in torch 2.13 but exact here; the check is what guards it.
``model.int8.onnx`` (made when dtype = "int8" is asked) is the same graph with the up- and
same-size weight matrices quantized per output channel (activations per batch at run time); the
feed-forward down-projections and attention's activation products stay float32. Leaves out: models whose sentence-transformers pipeline has
modules beyond Transformer → Pooling (mean or CLS) → Normalize; those stay on torch.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from workbench.errors import ModelNotFoundError

EXPORT_FORMAT = 1
PROBES = (
    "How many days of annual leave can be carried over into the next year?",
    "The shuttle bus leaves car park D every fifteen minutes between 7:00 and 9:30.",
    "Rscript -e 'install.packages(\"foo\")' installs a package from CRAN into the user library.",
    "Quarterly revenue rose 4.2% to EUR 1.3bn; operating margin 11.8% (prior year: 10.9%).",
    "x",
)
MIN_EXPORT_COSINE = 0.9999


class ModelCard:
    """What a model folder says about itself, read without loading weights: the tokenizer,
    embedding size, sequence limit, pooling and prompts. ``onnx_ok`` is False (with
    ``onnx_reason``) when the ONNX path cannot reproduce the model."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        folder = self.path
        if not folder.is_dir():
            raise ModelNotFoundError(
                f"embedding model folder {path!r} not found. The workbench never downloads: fetch it on a "
                "connected machine (`hf download ID --local-dir DIR`) and set [embedding] model = \"DIR\"")
        read = lambda name: json.loads((folder / name).read_text()) if (folder / name).exists() else None  # noqa: E731
        modules = read("modules.json") or []
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        pooling = next((read(f"{m['path']}/config.json") for m in modules if m.get("type", "").endswith("Pooling")), None)
        config = read("config.json") or {}
        sbert = read("sentence_bert_config.json") or {}
        self.max_seq_length = int(sbert.get("max_seq_length") or config.get("max_position_embeddings") or 512)
        dense = [read(f"{m['path']}/config.json") or {} for m in modules if m.get("type", "").endswith("Dense")]
        self.dim = int((dense[-1].get("out_features") if dense else None)
                       or (pooling or {}).get("word_embedding_dimension") or config.get("hidden_size") or 0)
        st = read("config_sentence_transformers.json") or {}
        self.prompts = st.get("prompts") or {}
        self.default_prompt = st.get("default_prompt_name") or ""
        self.pooling = ("cls" if (pooling or {}).get("pooling_mode_cls_token") else
                        "mean" if (pooling or {}).get("pooling_mode_mean_tokens") else None)
        self.tokenizer_file = folder / "tokenizer.json"
        reasons = []
        if not self.tokenizer_file.exists():
            reasons.append("no tokenizer.json")
        if kinds[:2] != ["Transformer", "Pooling"] or any(k not in ("Normalize",) for k in kinds[2:]):
            reasons.append(f"modules {kinds or 'unknown'} (only Transformer, Pooling, Normalize are exported)")
        if self.pooling is None:
            reasons.append("pooling other than mean or CLS")
        if config.get("auto_map"):
            reasons.append("custom model code")
        if sbert.get("do_lower_case") or (pooling or {}).get("include_prompt") is False:
            reasons.append("lower-casing or prompt-excluding pooling")
        self.onnx_reason = "; ".join(reasons)
        self.onnx_ok = not reasons and self.dim > 0

    def tokenizer(self, truncate: bool = True):
        """A `tokenizers.Tokenizer`, unpadded, that truncates like the model (special tokens included)
        or, with ``truncate=False``, not at all (for counting)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.tokenizer_file))
        tok.no_padding()
        if truncate:
            tok.enable_truncation(self.max_seq_length)
        else:
            tok.no_truncation()
        return tok

    def prompt(self, kind: str) -> str:
        """The text sentence-transformers' ``encode_query`` / ``encode_document`` put before a text:
        the 'query' prompt, or the first of 'document', 'passage', 'corpus'; else the default one."""
        names = ("query",) if kind == "query" else ("document", "passage", "corpus")
        name = next((n for n in names if n in self.prompts), self.default_prompt)
        return self.prompts.get(name, "")

    def key(self) -> str:
        """Names the export folder: changes when the weights or configs (any module's) change."""
        import hashlib

        h = hashlib.sha256(str(self.path.resolve()).encode())
        for f in sorted(self.path.rglob("*.json")) + sorted(self.path.glob("*.safetensors")):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:12]


def export_dir(cache_dir: Path, name: str, card: ModelCard) -> Path:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name)[:40]
    return cache_dir / f"{slug}-{card.key()}"


def ensure_export(card: ModelCard, folder: Path, int8: bool = False) -> dict:
    """Export (once) and check the ONNX copies in ``folder``; return their record (export.json).

    Raises ModelNotFoundError when the export cannot reproduce the model, OSError when the folder
    cannot be written. Concurrent callers wait on a lock file and export once.
    """
    import fcntl

    from workbench.store import private_dir, private_file

    record = _record(folder)
    if _complete(folder, record, int8):
        return record
    private_dir(folder.parent)
    private_dir(folder)
    with open(private_file(folder / "lock"), "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = _record(folder)
        if not _complete(folder, record, False):
            record = _export_fp32(card, folder)
        if int8 and not _complete(folder, record, True):
            record = _quantize_int8(card, folder, record)
    return record


def _record(folder: Path) -> dict:
    try:
        return json.loads((folder / "export.json").read_text())
    except (OSError, ValueError):
        return {}


def _complete(folder: Path, record: dict, int8: bool) -> bool:
    ok = record.get("format") == EXPORT_FORMAT and (folder / "model.fp32.onnx").exists()
    return ok and (not int8 or ("int8_min_cosine" in record and (folder / "model.int8.onnx").exists()))


def _temp(folder: Path, name: str) -> Path:
    """A new, empty 0600 file in ``folder`` (O_EXCL: never an existing file or link)."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    os.close(fd)
    return Path(path)


def _write_record(folder: Path, record: dict) -> None:
    tmp = _temp(folder, "export.json")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, folder / "export.json")


def _export_fp32(card: ModelCard, folder: Path) -> dict:
    import warnings

    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, inner, pooling: str) -> None:
            super().__init__()
            self.inner, self.pooling = inner, pooling

        def forward(self, input_ids, attention_mask):
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if self.pooling == "cls":
                v = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                v = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, dim=-1)

    started = time.perf_counter()
    transformers.utils.logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(card.path), local_files_only=True, use_safetensors=True,
                                      trust_remote_code=False, attn_implementation="eager").eval()
    tok = card.tokenizer()
    ids, mask = _batch(tok, PROBES)
    tmp = _temp(folder, "model.fp32.onnx")
    try:
        # the tracer's notes on shapes are silenced; the check against sentence-transformers is what counts
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(Pooled(model, card.pooling), (torch.from_numpy(ids), torch.from_numpy(mask)), str(tmp),
                              input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"},
                                            "sentence_embedding": {0: "batch"}},
                              opset_version=17, dynamo=False)
        # the reference is sentence-transformers itself (prompts, pooling, normalisation), float32
        reference = SentenceTransformer(str(card.path), device="cpu", local_files_only=True, trust_remote_code=False,
                                        model_kwargs={"use_safetensors": True})
        session = _session(tmp, 1)
        cosine = 1.0
        for kind, encode in (("query", reference.encode_query), ("document", reference.encode_document)):
            expected = encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True)
            got = _run(session, *_batch(tok, [card.prompt(kind) + p for p in PROBES]))
            cosine = min(cosine, float((got * expected).sum(1).min()))
        if cosine < MIN_EXPORT_COSINE:
            raise ModelNotFoundError(f"the ONNX export of {card.path} differs from torch (cosine {cosine:.5f}); "
                                     "set [embedding] runtime = \"torch\"")
        os.replace(tmp, folder / "model.fp32.onnx")
    finally:
        tmp.unlink(missing_ok=True)
    record = {"format": EXPORT_FORMAT, "source": str(card.path), "fp32_min_cosine": round(cosine, 6),
              "export_s": round(time.perf_counter() - started, 2)}
    _write_record(folder, record)
    return record


def _quantize_int8(card: ModelCard, folder: Path, record: dict) -> dict:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = folder / "model.fp32.onnx"
    model = onnx.load(str(src))
    weights = {i.name: i for i in model.graph.initializer}
    keep_float = []
    for n in model.graph.node:
        if n.op_type != "MatMul":
            continue
        w = weights.get(n.input[1])
        # attention's activation-by-activation products, and the down-projections (K > N: the
        # feed-forward output, whose GELU activations have the widest range) stay float32:
        # quantizing those took the worst chunk's cosine to float32 from 0.992 to 0.976
        if w is None or (len(w.dims) == 2 and w.dims[0] > w.dims[1]):
            keep_float.append(n.name)
    del model
    tmp = _temp(folder, "model.int8.onnx")
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # its advice to pre-process is for image models
    try:
        quantize_dynamic(str(src), str(tmp), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                         per_channel=True, nodes_to_exclude=keep_float)
        ids, mask = _batch(card.tokenizer(), PROBES)
        cosine = float((_run(_session(tmp, 1), ids, mask) * _run(_session(src, 1), ids, mask)).sum(1).min())
        os.replace(tmp, folder / "model.int8.onnx")
    finally:
        root.level = level
        tmp.unlink(missing_ok=True)
    record = {**record, "int8_min_cosine": round(cosine, 6)}
    _write_record(folder, record)
    return record


def _session(path: Path, threads: int):
    import onnxruntime as ort

    ort.disable_telemetry_events()  # never phone home (also switched off by ORT_DISABLE_TELEMETRY, privacy.py)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # no busy-waiting between ops: parser processes share the cores during ingest
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _batch(tok, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    return _pad(tok.encode_batch(list(texts)))


def _pad(enc: Sequence, step: int = 1, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, attention mask) of tokenizer encodings, padded with 0 to the longest one, rounded
    up to a multiple of ``step`` but not past ``limit`` (the model's sequence limit)."""
    width = max(len(e.ids) for e in enc)
    width = max(width, min(-(-width // step) * step, limit))
    ids = np.zeros((len(enc), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(enc):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return ids, mask


def _run(session, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


class OnnxEmbedder:
    """Embeds with ONNX Runtime on the CPU (float32 or int8); imports neither torch nor transformers."""

    runtime = "onnx"
    device = "cpu"
    width_step = 1  # batch widths are padded to a multiple of this (see OpenVinoEmbedder)

    def __init__(self, name: str, card: ModelCard, folder: Path, dtype: str, batch_size: int) -> None:
        self.name, self.card, self.dtype, self.batch_size = name, card, dtype, batch_size
        self.dim = card.dim
        self.max_seq_length = card.max_seq_length
        self.tokenizer = card.tokenizer()
        self.counter = card.tokenizer(truncate=False)
        from workbench.embed import cpu_info

        self._forward = self._open(folder, dtype, cpu_info().cores)

    def _open(self, folder: Path, dtype: str, threads: int):
        """A function: [(input ids, attention mask), ...] -> each batch's pooled float32 rows, in
        order (one batch after another here; OpenVINO overlaps them)."""
        session = _session(folder / f"model.{'int8' if dtype == 'int8' else 'fp32'}.onnx", threads)
        return lambda batches: [_run(session, ids, mask) for ids, mask in batches]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        enc = self.tokenizer.encode_batch(list(texts))
        # batches of equal token counts: sorting by characters instead left 13% of the computed
        # positions as padding on real PDF chunks, sorting by tokens 1.6% (batch 16)
        order = np.argsort([len(e.ids) for e in enc], kind="stable")
        groups = [order[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        batches = [_pad([enc[i] for i in rows], self.width_step, self.max_seq_length) for rows in groups]
        for rows, vectors in zip(groups, self._forward(batches)):
            out[rows] = vectors
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        prompt = self.card.prompt("document")
        return self._encode([prompt + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([self.card.prompt("query") + text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return count_tokens(self.counter, texts)


def count_tokens(tokenizer, texts: Sequence[str]) -> list[int]:
    """Token counts without special tokens (the chunker's budget); ``tokenizer`` must not truncate."""
    if not texts:
        return []
    return [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
