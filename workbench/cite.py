"""Citations in a model's answer: parse [n] markers, drop invented ones, flag uncited sentences,
flag sentences whose figures are not in the passages they cite, and spot a model repeating itself.

Pure text functions. A marker is valid when 1 <= n <= number of sources given; others are
removed from the text and reported. A sentence with no valid marker is flagged, except the
refusal sentence. `unsupported_figures` checks every figure of a cited sentence against its cited
passages, allowing for units and formatting (5,472 / $5,472 million / 5.5 billion / 5472 / (10)
for -10). `degenerate` says whether a text ends in a loop of one phrase. Leaves out: judging whether
a cited source supports the sentence's words.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

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


# a figure: 5,472  5472  5.5  $5,472  (10)  -3.2%  5.5 billion  ($ and scale words are read around it)
_NUMBER = re.compile(r"(?<![\w.,])[-(]?\$?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\w,]|\.\d)\)?%?"
                     r"(?:\s*(thousand|million|billion|trillion|bn|m)\b)?", re.I)
_SCALE = {"thousand": 3, "million": 6, "m": 6, "billion": 9, "bn": 9, "trillion": 12}


def _figures(text: str) -> list[tuple[Decimal, int, int]]:
    """(absolute value, decimals written, power of ten of its scale word) of each figure in ``text``;
    years (1900-2099 written plainly), single digits and citation markers are not figures."""
    out = []
    for m in _NUMBER.finditer(_MARKER.sub(" ", text)):
        raw, scale = m.group(1), (m.group(2) or "").lower()
        plain = raw.replace(",", "")
        if not scale and ("," not in raw and "." not in raw) and (len(plain) < 2 or (len(plain) == 4 and plain[:2] in ("19", "20"))):
            continue
        try:
            value = Decimal(plain)
        except InvalidOperation:
            continue
        out.append((value, len(plain.split(".")[1]) if "." in plain else 0, _SCALE.get(scale, 0)))
    return out


def _found(figure: tuple[Decimal, int, int], values: set[Decimal]) -> bool:
    """Whether a figure of an answer is one of a passage's ``values``, as written or in other units:
    '5.5 billion' matches 5,472 (millions) rounded to one decimal, '$5,472 million' matches 5,472."""
    value, decimals, power = figure
    quantum = Decimal(1).scaleb(-decimals)
    for v in values:
        if v == value:
            return True
        for shift in (3, 6, 9, 12):  # the passage in thousands, millions, ... of the answer's unit
            if power and shift <= power + 3 and (v.scaleb(shift - power)).quantize(quantum) == value:
                return True
    return False


def unsupported_figures(text: str, passages: dict[int, str]) -> tuple[int, list[str]]:
    """(number of cited sentences with figures, those whose figures are not all in the passages
    they cite). ``passages``: source number -> passage text. A sentence without a valid marker is
    not checked here (`check_citations` flags it as uncited)."""
    checked, unsupported = 0, []
    for sentence in _SENTENCE.split(text):
        cited = [n for n in markers(sentence) if n in passages]
        figures = _figures(sentence)
        if not cited or not figures:
            continue
        checked += 1
        values = {v for n in cited for v, _, _ in _figures(passages[n])}
        if not all(_found(f, values) for f in figures):
            unsupported.append(sentence.strip())
    return checked, unsupported


def degenerate(text: str, min_repeats: int = 4) -> bool:
    """Whether ``text`` ends in one phrase (8 to 160 characters, white space aside) repeated
    ``min_repeats`` times or more in a row: a model stuck in a loop ('= 2.3% of gross margin = 2.3%
    of gross margin ...')."""
    tail = " ".join(text[-1200:].split())
    for period in range(8, min(160, len(tail) // min_repeats) + 1):
        unit = tail[-period:]
        if all(tail[-(i + 1) * period:-i * period or None] == unit for i in range(1, min_repeats)):
            return True
    return False
