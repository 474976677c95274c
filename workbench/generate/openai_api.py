"""The `openai` LLM backend: any OpenAI-compatible chat endpoint (vLLM, llama.cpp's server, Ollama,
`workbench llm-serve`), streamed over server-sent events.

Leaves out: the server's tokenizer (token counts are a deliberate over-estimate) and retries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence

from workbench.config import LLMSettings
from workbench.errors import WorkbenchError
from workbench.generate.base import Message


class OpenAICompatibleLLM:
    """Any OpenAI-compatible chat endpoint (vLLM, llama.cpp's server, Ollama), streamed over SSE."""

    max_concurrency = 4  # a serving engine batches; [web] concurrency overrides this guess

    def __init__(self, settings: LLMSettings) -> None:
        import httpx

        if not settings.base_url:
            raise WorkbenchError("[llm] backend = 'openai' needs base_url, e.g. \"http://127.0.0.1:8000/v1\"")
        self.base_url = settings.base_url.rstrip("/")
        self.name = settings.model
        self.max_concurrency = settings.max_concurrency or type(self).max_concurrency
        self.context_window = settings.context_window
        self.temperature = settings.temperature
        key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(600, connect=10))

    def count_tokens(self, messages: Sequence[Message]) -> int:
        # The server's tokenizer is not reachable through the API; ~3 characters per token is
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
