"""Grounded prompts: numbered sources with title and location, fitted to the model's context.

Templates are TOML data files (``workbench/prompts/grounded.toml``; a deployer points
``[answer] prompt`` at an edited copy). Sources are added best first while the whole prompt,
measured with the model's own tokenizer, leaves room for the answer; the source that does not
fit is shortened, the rest dropped. Leaves out: calling the model and checking its citations.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import ConfigError
from workbench.records import Hit

PROMPTS = Path(__file__).parent / "prompts"
_KEYS = {"system", "source", "user", "refusal", "condense_system", "condense_user"}


@dataclass(frozen=True, slots=True)
class Template:
    system: str
    source: str
    user: str
    refusal: str
    condense_system: str
    condense_user: str


def load_template(name_or_path: str) -> Template:
    path = Path(name_or_path).expanduser()
    if not path.suffix:
        path = PROMPTS / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"prompt template {path} not found; [answer] prompt takes a name in {PROMPTS} "
                          "or a path to a TOML file") from None
    missing = _KEYS - set(data)
    if missing or set(data) - _KEYS:
        raise ConfigError(f"prompt template {path}: needs exactly the keys {sorted(_KEYS)}; "
                          f"missing {sorted(missing)}, unknown {sorted(set(data) - _KEYS)}")
    return Template(**data)


def _source(template: Template, n: int, hit: Hit, text: str) -> str:
    c = hit.chunk
    where = c.label
    return template.source.format(n=n, title=c.title or Path(c.path).name, location=f" ({where})" if where else "",
                                  text=text.strip())


def build_messages(template: Template, question: str, hits: Sequence[Hit], count_tokens: Callable[[list], int],
                   budget: int) -> tuple[list[dict[str, str]], list[Hit]]:
    """Chat messages for ``question`` with as many hits as fit in ``budget`` prompt tokens.

    Returns the messages and the hits actually given (source n is ``used[n - 1]``).
    """
    def messages(sources: list[str]) -> list[dict[str, str]]:
        user = template.user.format(sources="\n\n".join(sources), question=question)
        return [{"role": "system", "content": template.system}, {"role": "user", "content": user}]

    sources: list[str] = []
    used: list[Hit] = []
    for hit in hits:
        candidate = _source(template, len(used) + 1, hit, hit.chunk.text)
        if count_tokens(messages([*sources, candidate])) <= budget:
            sources.append(candidate)
            used.append(hit)
            continue
        words = hit.chunk.text.split()
        while len(words) > 20:  # shorten the one that does not fit, then stop
            words = words[: len(words) * 2 // 3]
            candidate = _source(template, len(used) + 1, hit, " ".join(words) + " …")
            if count_tokens(messages([*sources, candidate])) <= budget:
                sources.append(candidate)
                used.append(hit)
                break
        break
    return messages(sources), used


def condense_messages(template: Template, history: Sequence[tuple[str, str]], question: str) -> list[dict[str, str]]:
    """Messages asking the model to rewrite a follow-up as a stand-alone question."""
    lines = []
    for q, a in history[-3:]:
        lines += [f"User: {q}", f"Assistant: {a[:500]}"]
    return [{"role": "system", "content": template.condense_system},
            {"role": "user", "content": template.condense_user.format(history="\n".join(lines), question=question)}]
