"""The ONNX Runtime embedder: the checked ONNX copy of the model on the CPU, float32 or int8.

Why: a fresh process that only embeds a query imports onnxruntime and tokenizers (well under a
second) instead of torch and transformers (seconds); the vectors are torch float32's. For bulk
document embedding torch is as fast or faster (benchmarks/embed_dtype.py), except with int8.
Also the ONNX Runtime plumbing the export's checks and the OpenVINO runtime share (`session`,
`encode_batch`, `pad`, `run`). Leaves out: making the ONNX copy (`workbench.embed.export`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from workbench.embed.card import ModelCard, count_tokens
from workbench.hardware import cpu_info


def session(path: Path, threads: int):
    """An ONNX Runtime CPU session of the model file ``path`` on ``threads`` threads, telemetry off."""
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


def encode_batch(tok, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, attention mask) of ``texts``, padded to the longest."""
    return pad(tok.encode_batch(list(texts)))


def pad(enc: Sequence, step: int = 1, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
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


def run(onnx_session, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The pooled, normalised rows the exported graph computes for one batch."""
    return onnx_session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


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
        self._forward = self._open(folder, dtype, cpu_info().cores)

    def _open(self, folder: Path, dtype: str, threads: int):
        """A function: [(input ids, attention mask), ...] -> each batch's pooled float32 rows, in
        order (one batch after another here; OpenVINO overlaps them)."""
        onnx_session = session(folder / f"model.{'int8' if dtype == 'int8' else 'fp32'}.onnx", threads)
        return lambda batches: [run(onnx_session, ids, mask) for ids, mask in batches]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        enc = self.tokenizer.encode_batch(list(texts))
        # batches of equal token counts: sorting by characters instead left 13% of the computed
        # positions as padding on real PDF chunks, sorting by tokens 1.6% (batch 16)
        order = np.argsort([len(e.ids) for e in enc], kind="stable")
        groups = [order[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        batches = [pad([enc[i] for i in rows], self.width_step, self.max_seq_length) for rows in groups]
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
