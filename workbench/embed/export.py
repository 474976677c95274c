"""The one-time export of a sentence-transformers model to ONNX, checked against the model itself.

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
from pathlib import Path

from workbench.embed.card import ModelCard
from workbench.embed.onnx import encode_batch, run, session
from workbench.errors import ModelNotFoundError
from workbench.files import private_dir, private_file

EXPORT_FORMAT = 1
PROBES = (
    "How many days of annual leave can be carried over into the next year?",
    "The shuttle bus leaves car park D every fifteen minutes between 7:00 and 9:30.",
    "Rscript -e 'install.packages(\"foo\")' installs a package from CRAN into the user library.",
    "Quarterly revenue rose 4.2% to EUR 1.3bn; operating margin 11.8% (prior year: 10.9%).",
    "x",
)
MIN_EXPORT_COSINE = 0.9999


def export_dir(cache_dir: Path, name: str, card: ModelCard) -> Path:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name)[:40]
    return cache_dir / f"{slug}-{card.key()}"


def ensure_export(card: ModelCard, folder: Path, int8: bool = False) -> dict:
    """Export (once) and check the ONNX copies in ``folder``; return their record (export.json).

    Raises ModelNotFoundError when the export cannot reproduce the model, OSError when the folder
    cannot be written. Concurrent callers wait on a lock file and export once.
    """
    import fcntl

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
    ids, mask = encode_batch(tok, PROBES)
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
        exported = session(tmp, 1)
        cosine = 1.0
        for kind, encode in (("query", reference.encode_query), ("document", reference.encode_document)):
            expected = encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True)
            got = run(exported, *encode_batch(tok, [card.prompt(kind) + p for p in PROBES]))
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
        ids, mask = encode_batch(card.tokenizer(), PROBES)
        cosine = float((run(session(tmp, 1), ids, mask) * run(session(src, 1), ids, mask)).sum(1).min())
        os.replace(tmp, folder / "model.int8.onnx")
    finally:
        root.level = level
        tmp.unlink(missing_ok=True)
    record = {**record, "int8_min_cosine": round(cosine, 6)}
    _write_record(folder, record)
    return record


