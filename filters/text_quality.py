"""Text rules: the paper's 10-1024 characters, garbage (non-printable / replacement) ratio, language.

Language comes from langid (a small model shipped inside the package, deterministic, offline) over
the sample's whole text, restricted to the recipe's candidate languages; an adapter's own language
tag (SLAKE's `q_lang`) wins when present, since a two-word answer is too short to classify.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from filters.settings import FilterSettings
from manifests.records import Record

_ALLOWED_CONTROL = {"\n", "\t", "\r"}


def garbage_ratio(text: str) -> float:
    """Share of characters that are control, unassigned, private-use or U+FFFD replacement characters."""
    if not text:
        return 0.0
    bad = sum(
        1
        for ch in text
        if ch == "\ufffd" or (unicodedata.category(ch) in ("Cc", "Cn", "Co", "Cs") and ch not in _ALLOWED_CONTROL)
    )
    return bad / len(text)


@lru_cache(maxsize=4)
def _identifier(candidates: tuple[str, ...]):
    from langid.langid import LanguageIdentifier, model

    identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    if candidates:
        identifier.set_languages(list(candidates))
    return identifier


def detect_language(text: str, candidates: tuple[str, ...]) -> tuple[str | None, float | None]:
    if not text.strip():
        return None, None
    language, probability = _identifier(candidates).classify(text)
    return language, float(probability)


def score(record: Record, settings: FilterSettings) -> dict:
    text = record.text
    hint = record.meta.get("language")
    if hint:
        language, probability = str(hint), None
    else:
        language, probability = detect_language(text, tuple(settings.language_candidates))
    return {
        "text_chars": len(text),
        "garbage_ratio": garbage_ratio(text),
        "language": language,
        "language_prob": probability,
    }


def decide(scores: dict, settings: FilterSettings) -> tuple[str, str] | None:
    chars = scores["text_chars"]
    if chars < settings.text_min_chars:
        return "text_too_short", f"{chars} characters < {settings.text_min_chars}"
    if chars > settings.text_max_chars:
        return "text_too_long", f"{chars} characters > {settings.text_max_chars}"
    if scores["garbage_ratio"] > settings.max_garbage_ratio:
        return "text_garbage", f"garbage ratio {scores['garbage_ratio']:.3f} > {settings.max_garbage_ratio}"
    if settings.language and scores["language"] not in (None, settings.language):
        return "language", f"language {scores['language']} is not {settings.language}"
    return None
