"""Where a benchmark ran: CPU model, cores, the flags that decide the embedding path, the runtime.

Every benchmark prints `describe()` first, so a figure is never read without the machine it was
measured on. ``--as-avx2`` (see `pretend_avx2`) makes an AVX-512/AMX machine choose and run as an
AVX2-only one as far as software allows: the workbench picks what it would pick there, and torch's
kernels (ATen, oneDNN, MKL) are held to AVX2. ONNX Runtime has no such switch: its kernels still
use AVX-512 when the CPU has it, so pair ``--as-avx2`` with ``--runtime torch`` for a lower bound.
"""

from __future__ import annotations

import os
import platform
import sys

AVX2_ENV = {
    "WORKBENCH_CPU": "avx2",          # the workbench's runtime choice
    "ATEN_CPU_CAPABILITY": "avx2",    # torch's own vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",     # oneDNN: no AVX-512, no AMX, no native bf16
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL's sgemm
}


def pretend_avx2() -> None:
    """Hold this process to AVX2 (call before torch is imported)."""
    if "torch" in sys.modules:
        raise RuntimeError("pretend_avx2() must run before torch is imported")
    os.environ.update(AVX2_ENV)


def describe(embedder=None) -> str:
    """Lines naming the CPU, its flags and cores, the Python, and the embedder's runtime/dtype."""
    from workbench.embed import cpu_info

    cpu = cpu_info()
    lines = [f"machine: {cpu.describe()} · Python {platform.python_version()}"]
    if os.environ.get("ATEN_CPU_CAPABILITY"):
        lines.append("         torch kernels held to " + ", ".join(f"{k}={os.environ[k]}" for k in AVX2_ENV if k in os.environ))
    if embedder is not None:
        choice = getattr(embedder, "choice", None)
        lines.append(f"embedding: {embedder.name}, " + (choice.describe() if choice else
                     f"{getattr(embedder, 'runtime', '?')} {getattr(embedder, 'dtype', '?')}"))
    return "\n".join(lines)
