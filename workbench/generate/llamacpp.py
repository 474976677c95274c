"""The `llamacpp` LLM backend: llama-cpp-python running a GGUF file (an optional extra).

llama.cpp is usually the fastest way to run Llama 3.1 8B on a CPU-only server. It compiles from
source (`make setup-llamacpp`, about 5 minutes on 2 cores). Uses the chat template stored in the
GGUF. Leaves out: GPU offload settings beyond llama.cpp's defaults.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from workbench.config import LLMSettings
from workbench.errors import WorkbenchError
from workbench.generate.base import Message, missing_weights, resolve_llm_path


class LlamaCppLLM:
    """A GGUF model in-process through llama-cpp-python, streamed."""

    max_concurrency = 1

    def __init__(self, settings: LLMSettings) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise WorkbenchError("[llm] backend = 'llamacpp' needs llama-cpp-python: run `make setup-llamacpp` "
                                 "(compiles in about 5 minutes), or use backend = 'transformers'") from None
        folder, gguf = resolve_llm_path(settings)
        path = Path(folder) / gguf if gguf else Path(folder)
        if path.suffix != ".gguf" or not path.is_file():
            raise missing_weights(settings.model, FileNotFoundError(f"no GGUF file at {path}"))
        self.llm = Llama(model_path=str(path), n_ctx=settings.context_window, n_threads=settings.threads,
                         verbose=False)
        self.name = settings.model
        self.context_window = int(self.llm.n_ctx())
        self.temperature = settings.temperature
        self.repeat_penalty = settings.repetition_penalty

    def count_tokens(self, messages: Sequence[Message]) -> int:
        # content tokens plus a few per message for the chat template's role markers
        return sum(len(self.llm.tokenize(m["content"].encode(), add_bos=False)) + 6 for m in messages) + 4

    def stream(self, messages: Sequence[Message], max_new_tokens: int) -> Iterator[str]:
        for chunk in self.llm.create_chat_completion(messages=list(messages), max_tokens=max_new_tokens,
                                                     temperature=self.temperature, repeat_penalty=self.repeat_penalty,
                                                     stream=True):
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                yield piece
