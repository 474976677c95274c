"""Citations in a model's answer: parse [n] markers, drop invented ones, flag uncited sentences.

Pure text functions. A marker is valid when 1 <= n <= number of sources given; others are
removed from the text and reported. A sentence with no valid marker is flagged, except the
refusal sentence. Leaves out: judging whether a cited source really supports the sentence.
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")


def markers(text: str) -> list[int]:
    """Every cited number, in order of appearance ('[1, 3]' counts as 1 and 3)."""
    out: list[int] = []
    for m in _MARKER.finditer(text):
        out += [int(x) for x in m.group(1).split(",")]
    return out


def check_citations(text: str, n_sources: int, refusal: str = "") -> tuple[str, list[int], list[int], list[str]]:
    """(cleaned text, valid numbers cited, invented numbers dropped, uncited sentences)."""
    invented: list[int] = []

    def keep(m: re.Match) -> str:
        nums = [int(x) for x in m.group(1).split(",")]
        good = [n for n in nums if 1 <= n <= n_sources]
        invented.extend(n for n in nums if n not in good)
        return "".join(f"[{n}]" for n in good)

    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", _MARKER.sub(keep, text)).strip()
    valid = list(dict.fromkeys(n for n in markers(cleaned)))
    uncited = [s.strip() for s in _SENTENCE.split(cleaned)
               if s.strip() and not _MARKER.search(s) and len(s.split()) >= 4
               and (not refusal or refusal.rstrip(".") not in s)]
    return cleaned, valid, sorted(set(invented)), uncited
