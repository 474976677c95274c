"""What this machine's CPU can do: its model name, usable cores and instruction-set flags.

Every backend that chooses a kernel or a precision asks here (the embedding runtimes, the
transformers LLM, `workbench status`, the benchmarks), so the answer is read once and the same
everywhere. ``WORKBENCH_CPU=avx2`` hides the AVX-512 and AMX flags, so the choices made are an
AVX2-only machine's (a measurable lower bound). Leaves out: GPUs (torch is asked where a CUDA
device is configured) and the choices themselves (`workbench.embed.choice`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CPU_FLAGS_SHOWN = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
PRETEND_ENV = "WORKBENCH_CPU"  # "avx2": choose runtimes as on an AVX2-only CPU (a measurable lower bound)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU this process runs on: model name, usable cores and the instruction-set flags."""

    model: str
    cores: int
    flags: frozenset[str]
    pretend: str = ""

    @property
    def bf16(self) -> bool:
        """True when the CPU runs bf16 matrix math natively (AVX-512 BF16 or AMX)."""
        return bool(self.flags & _BF16_FLAGS)

    def describe(self) -> str:
        shown = " ".join(f for f in CPU_FLAGS_SHOWN if f in self.flags) or "no avx2"
        note = f" (choosing as an {self.pretend}-only CPU: {PRETEND_ENV}={self.pretend})" if self.pretend else ""
        return f"{self.model} · {self.cores} cores · {shown}{note}"


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """Read /proc/cpuinfo once. With WORKBENCH_CPU=avx2 the AVX-512 and AMX flags are hidden, so the
    runtime choices are an AVX2-only machine's (the kernels underneath may still use AVX-512)."""
    model, flags = "unknown CPU", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = " ".join(value.split())
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    except OSError:
        pass
    pretend = os.environ.get(PRETEND_ENV, "").strip().lower()
    if pretend == "avx2":
        flags = frozenset(f for f in flags if not f.startswith(("avx512", "amx")))
    return CpuInfo(model, _usable_cores(), flags, pretend if pretend == "avx2" else "")


def cpu_has_bf16() -> bool:
    """True when the CPU runs bf16 matrix math natively (AVX-512 BF16 or AMX)."""
    return cpu_info().bf16
