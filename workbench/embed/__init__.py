"""Embedding: the `Embedder` protocol, one module per runtime, and one choice per CPU.

- `workbench.embed.base`: the protocols (`Embedder` for callers, `Runtime` for backends), model
  paths, and what is embedded for a chunk (`document_input`);
- `workbench.embed.card`: what a model folder says about itself, read without loading weights;
- `workbench.embed.choice`: which runtime and precision, and why (a pure function of the CPU);
- `workbench.embed.lazy`: the configured embedder, loading each runtime on first use (`RUNTIMES`);
- runtimes: `torch` (sentence-transformers), `onnx` (ONNX Runtime), `openvino` (OpenVINO), and
  `export` (the one-time, checked ONNX copy the last two run).

Imports run one way (base, card → onnx → export → openvino; choice; lazy over all), and no
runtime library is imported until a runtime is loaded, so `import workbench` loads no model.
Leaves out: the embedding cache (the index keeps it) and the CPU's facts (`workbench.hardware`).
"""

from __future__ import annotations

from workbench.embed.base import Embedder, Runtime, document_input, resolve_model_path
from workbench.embed.choice import RuntimeChoice, choose_runtime
from workbench.embed.lazy import RUNTIMES, LazyEmbedder, load_embedder

__all__ = ["RUNTIMES", "Embedder", "LazyEmbedder", "Runtime", "RuntimeChoice", "choose_runtime",
           "document_input", "load_embedder", "resolve_model_path"]
