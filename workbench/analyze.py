"""Lexical analysis per language: detection, tokens, stop words and Snowball stems.

`detect_language` scores a text against the stop-word lists of the supported languages and
returns an ISO 639-1 code, or "und" when the evidence is too thin (very short text, or a
language we do not analyse). `terms` lower-cases, tokenises, drops that language's stop words,
stems with PyStemmer (Snowball) and folds accents, so "vacaciones" and "Vacación" meet. The
full-text index stores these terms; queries go through the same function. Leaves out:
compound splitting, CJK segmentation, synonyms.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# ISO code -> (Snowball stemmer name, stop-words list name)
LANGUAGES: dict[str, tuple[str, str]] = {
    "en": ("english", "english"),
    "es": ("spanish", "spanish"),
    "fr": ("french", "french"),
    "de": ("german", "german"),
    "pt": ("portuguese", "portuguese"),
    "it": ("italian", "italian"),
    "nl": ("dutch", "dutch"),
}
UNDETERMINED = "und"
_TOKEN = re.compile(r"\w+", re.UNICODE)


def fold(text: str) -> str:
    """Lower-case and strip accents: 'Acción' -> 'accion'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=None)
def stop_words(lang: str) -> frozenset[str]:
    from stop_words import get_stop_words

    if lang not in LANGUAGES:
        return frozenset()
    return frozenset(w.casefold() for w in get_stop_words(LANGUAGES[lang][1]))


@lru_cache(maxsize=None)
def _stemmer(lang: str):
    import Stemmer

    return Stemmer.Stemmer(LANGUAGES[lang][0]) if lang in LANGUAGES else None


def detect_language(text: str, candidates: tuple[str, ...] = tuple(LANGUAGES), min_hits: int = 2) -> str:
    """The candidate language whose stop words the text uses most, or 'und'."""
    words = [w.casefold() for w in _TOKEN.findall(text[:20000])]
    if not words:
        return UNDETERMINED
    best, best_score, runner_up = UNDETERMINED, 0.0, 0.0
    for lang in candidates:
        sw = stop_words(lang)
        hits = [w for w in words if w in sw]
        score = len(hits) + 0.5 * len(set(hits))  # distinct stop words break ties between close languages
        if score > best_score:
            best, best_score, runner_up = lang, score, best_score
        elif score > runner_up:
            runner_up = score
    if best_score < min_hits or best_score == runner_up:
        return UNDETERMINED
    return best


def terms(text: str, lang: str) -> list[str]:
    """Index terms of ``text`` analysed as ``lang`` (no stemming or stop words for 'und')."""
    tokens = [t.casefold() for t in _TOKEN.findall(text)]
    sw = stop_words(lang)
    tokens = [t for t in tokens if t not in sw]
    stemmer = _stemmer(lang)
    if stemmer is not None:
        tokens = stemmer.stemWords(tokens)
    return [fold(t) for t in tokens]
