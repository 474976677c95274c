"""The OpenVINO embedder: the checked ONNX copy of the model run by OpenVINO's CPU plugin.

Why: bulk document embedding is compute-bound, and OpenVINO's kernels were the fastest measured
(benchmarks/embed_dtype.py, real PDF chunks of ~212 tokens, 2-core Xeon): bfloat16 1.1x torch
bfloat16 on AMX, with the worst chunk's cosine to float32 at 0.9998, and float32 as fast as torch
float32 with every kernel held to AVX2 (1.0x). An ingest process that embeds on it imports no
torch, and holds less memory. It reads the same ``model.fp32.onnx`` that
`workbench.embed_onnx` exports and checks; bfloat16 is a compile-time precision hint, so no second
file is written. On load it embeds the export's probe sentences and compares them with ONNX Runtime
float32 (the checked reference): a plugin that disagrees (cosine < 0.999) is refused, and `auto`
falls back to torch.

OpenVINO is installed without its optional ``openvino-telemetry`` package (see the Makefile): only
its model-conversion tools would use it, and the workbench never calls them. Leaves out: int8 (it
was slower than float32 on AVX2 kernels, and below cosine 0.99 on every variant tried) and GPUs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from workbench.embed_onnx import PROBES, OnnxEmbedder, _batch, _run, _session
from workbench.errors import ModelNotFoundError

MIN_PLUGIN_COSINE = 0.999  # bf16 measured 0.9998 on real chunks; float32 1.0000


def available() -> bool:
    """True when the openvino package is installed (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


class OpenVinoEmbedder(OnnxEmbedder):
    """Embeds with OpenVINO on the CPU, float32 or bfloat16; imports neither torch nor transformers."""

    runtime = "openvino"

    def _open(self, folder: Path, dtype: str, threads: int):
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(folder / "model.fp32.onnx")), "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16" if dtype == "bfloat16" else "f32",
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",  # one request at a time, all threads on it
        })
        request, lock = compiled.create_infer_request(), threading.Lock()

        def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            with lock:  # an infer request serves one caller at a time
                return np.array(request.infer({"input_ids": ids, "attention_mask": mask})[0], dtype=np.float32)

        ids, mask = _batch(self.tokenizer, [self.card.prompt("document") + p for p in PROBES])
        reference = _run(_session(folder / "model.fp32.onnx", 1), ids, mask)
        got = forward(ids, mask)
        got /= np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
        cosine = float((got * reference).sum(1).min())
        if cosine < MIN_PLUGIN_COSINE:
            raise ModelNotFoundError(f"OpenVINO {dtype} differs from the checked ONNX copy of {self.name!r} "
                                     f"(cosine {cosine:.5f}); set [embedding] runtime = \"torch\"")
        return forward
