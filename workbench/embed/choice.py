"""Which runtime and precision embed documents and queries on this CPU, and why.

A pure function of the settings, the CPU's flags and what is installed; the measurements behind
it are in `choose_runtime`'s docstring. Leaves out: loading the runtimes (`workbench.embed.lazy`).
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config import EmbeddingSettings
from workbench.errors import ConfigError
from workbench.hardware import CpuInfo


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime and dtype embed documents and queries, and why."""

    documents: tuple[str, str]  # (runtime, dtype)
    queries: tuple[str, str]
    reason: str

    def describe(self) -> str:
        d, q = self.documents, self.queries
        same = d == q
        text = f"{d[0]} {d[1]}" + ("" if same else f" for documents, {q[0]} {q[1]} for queries")
        return f"{text} ({self.reason})"


def choose_runtime(settings: EmbeddingSettings, cpu: CpuInfo, onnx_ok: bool, onnx_reason: str = "",
                   openvino_ok: bool = False) -> RuntimeChoice:
    """Resolve ``runtime``/``dtype`` 'auto' for this CPU and say why.

    Measured on real PDF chunks (~212 tokens, benchmarks/embed_dtype.py) on a 2-core Xeon: OpenVINO
    bf16 1.4-1.6x torch bf16 on AMX, OpenVINO float32 1.26x torch float32 with every kernel held to AVX2;
    torch bf16 2.6x torch fp32; ONNX Runtime fp32 0.9x torch fp32; ONNX int8 1.2-1.4x (worst chunk
    cosine 0.98). So documents take OpenVINO (bf16 where native, else float32: never slower, and an
    ingest process then needs no torch) when it is installed and the model has a checked ONNX copy,
    torch otherwise, and ONNX Runtime when int8 is asked; queries take ONNX Runtime fp32, which
    answers a fresh process in a fraction of a second without torch."""
    runtime, dtype = settings.runtime, settings.dtype
    cuda = settings.device.startswith("cuda")
    if cuda and (runtime in ("onnx", "openvino") or dtype == "int8"):
        raise ConfigError(f"[embedding] device = \"{settings.device}\" needs runtime = \"torch\" or \"auto\" without "
                          "int8: the ONNX and OpenVINO runtimes here run on the CPU")
    if runtime in ("torch", "openvino") and dtype == "int8":
        raise ConfigError("[embedding] dtype = \"int8\" needs runtime = \"onnx\" (or \"auto\")")
    if runtime == "onnx" and dtype == "bfloat16":
        raise ConfigError("[embedding] dtype = \"bfloat16\" needs runtime = \"openvino\" or \"torch\" (ONNX Runtime "
                          "runs float32 or int8)")
    if runtime in ("onnx", "openvino") and not onnx_ok:
        raise ConfigError(f"[embedding] runtime = \"{runtime}\" cannot run {settings.model!r}: {onnx_reason}; "
                          "use runtime = \"torch\"")
    if runtime == "openvino" and not openvino_ok:
        raise ConfigError("[embedding] runtime = \"openvino\" needs the openvino package: run `make setup` "
                          "(or `pip install --no-deps openvino`), or use runtime = \"auto\"")
    if runtime == "auto":
        if dtype == "int8":
            if not onnx_ok:
                raise ConfigError(f"[embedding] dtype = \"int8\" runs on ONNX Runtime, which cannot run "
                                  f"{settings.model!r}: {onnx_reason}")
            runtime, why = "onnx", "int8 runs on ONNX Runtime"
        elif onnx_ok and openvino_ok and settings.device == "cpu":
            runtime = "openvino"
            why = ("native bf16 on this CPU" if cpu.bf16 and dtype == "auto" else
                   "no native bf16 on this CPU: float32"
                   if dtype == "auto" else f"dtype = \"{dtype}\"")
        else:
            runtime = "torch"
            why = ("CUDA" if cuda else "device = \"auto\": CUDA when present" if settings.device == "auto" else
                   "native bf16 on this CPU" if cpu.bf16 and dtype == "auto" else
                   "no native bf16 on this CPU; torch float32 measured at least as fast as ONNX Runtime float32"
                   if dtype == "auto" else f"dtype = \"{dtype}\"")
    else:
        why = f"runtime = \"{runtime}\" in [embedding]"
    if dtype == "auto" and not (runtime == "torch" and settings.device == "auto"):  # that one: at load
        dtype = "bfloat16" if runtime in ("torch", "openvino") and (cuda or cpu.bf16) else "float32"
    queries = ("onnx", "float32") if settings.runtime != "torch" and onnx_ok else (runtime, dtype)
    return RuntimeChoice((runtime, dtype), queries, why)
