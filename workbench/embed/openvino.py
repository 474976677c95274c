"""The OpenVINO embedder: the checked ONNX copy of the model run by OpenVINO's CPU plugin.

Why: bulk document embedding is compute-bound, and OpenVINO's kernels were the fastest measured
(benchmarks/embed_dtype.py, real PDF chunks of ~212 tokens, 2-core Xeon): bfloat16 3.8x torch
float32 (and faster than torch bfloat16) on AMX, with the worst chunk's cosine to float32 at 0.9998,
and float32 1.26x torch float32 with every kernel held to AVX2. Most of the lead over torch comes
from how it is fed: batches of equal token counts (`OnnxEmbedder._encode`), widths in steps of 16,
and one batch in flight per stream. An ingest process that embeds on it imports no torch.
It reads the same ``model.fp32.onnx`` that `workbench.embed.export` makes and checks; bfloat16 is a compile-time precision hint, so no second
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

from workbench.embed.export import PROBES
from workbench.embed.onnx import OnnxEmbedder, encode_batch, run, session
from workbench.errors import ModelNotFoundError

MIN_PLUGIN_COSINE = 0.999  # bf16 measured 0.9998 on real chunks; float32 1.0000


class OpenVinoEmbedder(OnnxEmbedder):
    """Embeds with OpenVINO on the CPU, float32 or bfloat16; imports neither torch nor transformers."""

    runtime = "openvino"
    # OpenVINO prepares kernels and buffers per input shape: widths in steps of 16 tokens instead of
    # every count from 1 to 256 measured 1.15x faster on AMX bf16 and used 30-40% less memory, at
    # 0.98x on AVX2 float32 (2,000 real PDF chunks, two streams)
    width_step = 16

    def _open(self, folder: Path, dtype: str, threads: int):
        import openvino as ov

        core = ov.Core()
        # throughput mode: OpenVINO splits the cores into streams (two of one thread each on 2 cores)
        # and `forward` keeps one batch in flight per stream. Measured on 600 real PDF chunks
        # (2-core Xeon): 1.11x one request on all threads on AMX bf16, 1.09x held to AVX2 float32.
        compiled = core.compile_model(core.read_model(str(folder / "model.fp32.onnx")), "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16" if dtype == "bfloat16" else "f32",
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "THROUGHPUT",
        })
        queue = ov.AsyncInferQueue(compiled, max(1, int(compiled.get_property("NUM_STREAMS"))))
        lock = threading.Lock()  # one caller at a time owns the queue

        def forward(batches: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
            out: list[np.ndarray | None] = [None] * len(batches)

            def done(request, index: int) -> None:
                out[index] = np.array(request.get_output_tensor(0).data, dtype=np.float32)  # the request is reused

            with lock:
                queue.set_callback(done)
                for index, (ids, mask) in enumerate(batches):
                    queue.start_async({"input_ids": ids, "attention_mask": mask}, index)
                queue.wait_all()
            missing = sum(rows is None for rows in out)
            if missing:
                raise RuntimeError(f"OpenVINO returned no rows for {missing} of {len(batches)} batches")
            return out  # type: ignore[return-value]

        ids, mask = encode_batch(self.tokenizer, [self.card.prompt("document") + p for p in PROBES])
        reference = run(session(folder / "model.fp32.onnx", 1), ids, mask)
        got = forward([(ids, mask)])[0]
        got /= np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)
        cosine = float((got * reference).sum(1).min())
        if cosine < MIN_PLUGIN_COSINE:
            raise ModelNotFoundError(f"OpenVINO {dtype} differs from the checked ONNX copy of {self.name!r} "
                                     f"(cosine {cosine:.5f}); set [embedding] runtime = \"torch\"")
        return forward
