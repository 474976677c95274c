"""Offline and no-telemetry switches, applied when `workbench` is imported.

The workbench never downloads weights or phones home at run time. Hugging Face, transformers
and Gradio read these environment variables when they are first imported, so this module runs
before any of them (it is imported first by `workbench/__init__.py`). A deployer who really
wants hub downloads at run time can set ``WORKBENCH_ALLOW_DOWNLOADS=1``; nothing else turns
these off. This module only sets variables: it imports nothing heavy and opens no socket.
"""

from __future__ import annotations

import os

OFFLINE_SWITCHES: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "ORT_DISABLE_TELEMETRY": "1",  # ONNX Runtime (1.2x+) sends usage events to Microsoft's collector, Linux too
}


def apply_offline_switches() -> None:
    """Force the offline/no-telemetry variables (unless WORKBENCH_ALLOW_DOWNLOADS=1)."""
    if os.environ.get("WORKBENCH_ALLOW_DOWNLOADS") == "1":
        return
    for key, value in OFFLINE_SWITCHES.items():
        os.environ[key] = value
