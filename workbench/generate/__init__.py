"""Language models: the `LLM` protocol and one module per backend, chosen by ``[llm] backend``.

- `workbench.generate.hf`: ``transformers`` (default): a model in this process (HF id on disk,
  folder or GGUF file);
- `workbench.generate.openai_api`: ``openai``: any OpenAI-compatible server (vLLM, llama.cpp's
  server, Ollama, `workbench llm-serve`);
- `workbench.generate.llamacpp`: ``llamacpp``: llama-cpp-python (an optional extra).

Backends import `workbench.generate.base` only, never each other; this module imports a backend
only when it is chosen (so `import workbench` loads no model library). Leaves out: prompts
(`workbench.prompt`) and retrieval.
"""

from __future__ import annotations

import importlib

from workbench.config import LLMSettings
from workbench.errors import WorkbenchError
from workbench.generate.base import LLM, SMOLLM2, Message, missing_weights, resolve_llm_path

# backend name -> (module, class); a plain dict, as the design asks
BACKENDS = {"transformers": ("workbench.generate.hf", "TransformersLLM"),
            "openai": ("workbench.generate.openai_api", "OpenAICompatibleLLM"),
            "llamacpp": ("workbench.generate.llamacpp", "LlamaCppLLM")}

__all__ = ["BACKENDS", "LLM", "Message", "SMOLLM2", "backend_class", "load_llm", "missing_weights",
           "resolve_llm_path"]


def backend_class(name: str) -> type:
    """The class of backend ``name`` (imports its module, loads no model)."""
    if name not in BACKENDS:
        raise WorkbenchError(f"[llm] backend {name!r}: use one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)


def load_llm(settings: LLMSettings) -> LLM:
    """The configured backend, loaded (seconds to minutes, by model size)."""
    return backend_class(settings.backend)(settings)


def __getattr__(name: str):  # `from workbench.generate import TransformersLLM` and friends
    for module, cls in BACKENDS.values():
        if cls == name:
            return getattr(importlib.import_module(module), cls)
    raise AttributeError(f"module 'workbench.generate' has no attribute {name!r}")
