"""Text rules: the paper's 10-1024 characters, garbage (non-printable / replacement) ratio, language;
and the paper's light text cleaning.

The 10-1024 character rule judges the text that came from the dataset (`Record.source_text`: the caption,
the report, the question and answer, the label-derived caption), never the instruction or template an
adapter or builder adds; `source_text_chars` is its length (whitespace collapsed) and `text_chars` stays the
length of the whole sample. An interleaved task sample whose text is only builder wording (no
`source_text`) is exempt from the length rule: `text_rule` says `exempt_interleaved`. A record of another
family without `source_text` (an adapter that adds no wording of its own) is judged on its whole text.

Light cleaning (`clean_record`, run before scoring) removes control characters (Unicode Cc other than tab,
newline and carriage return) and the invisible U+FEFF / U+200B from every turn and from `source_text`;
`text_cleaned` counts them and `meta.text_cleaning` names them. U+FFFD and private-use characters stay and
count in the garbage ratio.

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
_INVISIBLE = {"\ufeff", "\u200b"}
JUDGED, EXEMPT_INTERLEAVED, WHOLE_TEXT = "source_text", "exempt_interleaved", "whole_text"


def _removable(ch: str) -> bool:
    return ch in _INVISIBLE or (unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROL)


def clean_text(text: str) -> tuple[str, list[str]]:
    """The text without control and invisible characters, and the code points removed (U+XXXX, in order)."""
    removed = [f"U+{ord(ch):04X}" for ch in text if _removable(ch)]
    if not removed:
        return text, []
    return "".join(ch for ch in text if not _removable(ch)), removed


def clean_record(record: Record) -> int:
    """Light cleaning of every turn and of `source_text`, recorded in `scores` and `meta`; returns the count."""
    removed: list[str] = []
    for turn in record.message:
        turn["value"], gone = clean_text(turn["value"])
        removed += gone
    if record.source_text is not None:
        record.source_text, gone = clean_text(record.source_text)
        removed += gone
    record.scores["text_cleaned"] = len(removed)
    if removed:
        record.meta["text_cleaning"] = {code: removed.count(code) for code in sorted(set(removed))}
    return len(removed)


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
    if record.source_text is not None:
        source_chars, rule = len(" ".join(record.source_text.split())), JUDGED
    elif record.task_family == "interleaved":
        source_chars, rule = None, EXEMPT_INTERLEAVED
    else:
        source_chars, rule = len(text), WHOLE_TEXT
    return {
        "text_chars": len(text),
        "source_text_chars": source_chars,
        "text_rule": rule,
        "garbage_ratio": garbage_ratio(text),
        "language": language,
        "language_prob": probability,
    }


def decide(scores: dict, settings: FilterSettings) -> tuple[str, str] | None:
    chars = scores.get("source_text_chars")
    if chars is not None and chars < settings.text_min_chars:
        return "text_too_short", f"{chars} characters of dataset text < {settings.text_min_chars}"
    if chars is not None and chars > settings.text_max_chars:
        return "text_too_long", f"{chars} characters of dataset text > {settings.text_max_chars}"
    if scores["garbage_ratio"] > settings.max_garbage_ratio:
        return "text_garbage", f"garbage ratio {scores['garbage_ratio']:.3f} > {settings.max_garbage_ratio}"
    if settings.language and scores["language"] not in (None, settings.language):
        return "language", f"language {scores['language']} is not {settings.language}"
    return None
