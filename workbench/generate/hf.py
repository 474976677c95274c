"""The `transformers` LLM backend (the default): a causal LM in this process, streamed token by token.

Loads a Hugging Face id already on disk, a local folder, or a GGUF file (``gguf_file``), uses the
model's own chat template, bf16 where the hardware supports it, CUDA when present, streams through
`TextIteratorStreamer`, and never sets ``trust_remote_code``; weights come from safetensors or
GGUF, never pickle. Leaves out: batching (one answer at a time; use vLLM for many users).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Sequence

from workbench.config import LLMSettings
from workbench.errors import WorkbenchError
from workbench.generate.base import Message, missing_weights, resolve_llm_path


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

    max_concurrency = 1  # one generate() at a time shares the CPU/GPU best

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
            from workbench.hardware import cpu_has_bf16

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
            raise missing_weights(settings.model, exc) from None
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
        """Pieces of the answer as they are generated; closing the iterator early (a reader who left)
        stops the generation at its next token."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop = threading.Event()

        class Stopped(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:
                return stop.is_set()

        inputs = {k: v.to(self.device) for k, v in self._inputs(messages).items()}
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kwargs = dict(**inputs, max_new_tokens=max_new_tokens, streamer=streamer,
                      repetition_penalty=self.repetition_penalty,
                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                      stopping_criteria=StoppingCriteriaList([Stopped()]))
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
        try:
            yield from streamer
        finally:  # also when the caller stops reading: the model stops with it
            stop.set()
            thread.join()
        if errors:
            raise errors[0]


