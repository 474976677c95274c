"""Where a benchmark ran: CPU model, cores, the flags that decide the embedding path, the runtime.

Every benchmark prints `describe()` first, so a figure is never read without the machine it was
measured on. ``--as-avx2`` (see `pretend_avx2`) makes an AVX-512/AMX machine choose and run as an
AVX2-only one: the workbench picks what it would pick there (WORKBENCH_CPU=avx2), torch's own
switches hold ATen, oneDNN and MKL to AVX2, and, where the CPU has CPUID faulting (flag
``cpuid_fault``), the process is started again with ``avx2cpu/avx2cpu.so`` preloaded, which hides
AVX-512, AMX, VNNI and BF16 from CPUID itself, so that ONNX Runtime's and OpenVINO's kernels (MLAS
picks from CPUID and has no switch) are AVX2 ones too. Without CPUID faulting, ONNX Runtime and
OpenVINO figures under ``--as-avx2`` are partly AVX-512 ones, and `describe()` says so.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

SHIM_SOURCE = Path(__file__).resolve().parent / "avx2cpu" / "avx2cpu.c"
SHIM_ENV = "WORKBENCH_AVX2CPU"  # set in the re-started process: the shim is loaded

AVX2_ENV = {
    "WORKBENCH_CPU": "avx2",          # the workbench's runtime choice
    "ATEN_CPU_CAPABILITY": "avx2",    # torch's own vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",     # oneDNN: no AVX-512, no AMX, no native bf16
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL's sgemm
}


def _shim() -> Path | None:
    """The compiled CPUID shim (built once into the user's cache with gcc), or None."""
    from workbench.hardware import cpu_info  # imports no torch

    if "cpuid_fault" not in cpu_info().flags or shutil.which("gcc") is None:
        return None
    built = Path.home() / ".cache" / "workbench-bench" / "avx2cpu.so"
    if not built.exists() or built.stat().st_mtime < SHIM_SOURCE.stat().st_mtime:
        built.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(built), str(SHIM_SOURCE)], check=True)
    return built


def pretend_avx2() -> None:
    """Hold this process to AVX2 (call first thing in main(), before torch is imported). Where the
    CPU has CPUID faulting, this re-starts the process with the CPUID shim preloaded."""
    if "torch" in sys.modules:
        raise RuntimeError("pretend_avx2() must run before torch is imported")
    os.environ.update(AVX2_ENV)
    if os.environ.get(SHIM_ENV) == "1":
        return
    shim = _shim()
    if shim is not None:
        env = {**os.environ, SHIM_ENV: "1",
               "LD_PRELOAD": " ".join(p for p in (str(shim), os.environ.get("LD_PRELOAD", "")) if p)}
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def describe(embedder=None) -> str:
    """Lines naming the CPU, its flags and cores, the Python, and the embedder's runtime/dtype."""
    from workbench.hardware import cpu_info

    cpu = cpu_info()
    lines = [f"machine: {cpu.describe()} · Python {platform.python_version()}"]
    if os.environ.get("ATEN_CPU_CAPABILITY"):
        lines.append("         torch kernels held to " + ", ".join(f"{k}={os.environ[k]}" for k in AVX2_ENV if k in os.environ))
        lines.append("         CPUID masked to AVX2 by avx2cpu.so: ONNX Runtime and OpenVINO held too"
                     if os.environ.get(SHIM_ENV) == "1" else
                     "         no CPUID faulting here: ONNX Runtime and OpenVINO kernels may still use AVX-512")
    if embedder is not None:
        lines.append(f"embedding: {embedder.name}, {embedder.describe()}")
    return "\n".join(lines)
