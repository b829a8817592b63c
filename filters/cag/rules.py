"""What a CAG reply must be to be used: one check per rule, the first failing rule gives the reason.

The rules follow spec 5.2 and the notes in docs/cag.md: step 1 (describe) is one paragraph of the
four-level description without a diagnosis; step 2 (fuse) is one paragraph starting "Please generate a
realistic [modality] image showing" plus a flag line, keeping every location word of the original
caption; step 3 (plan) is a `<think>` block with the three labelled items and a structured caption, then
"Here is the generated [modality] image that displays:" and 2-8 bullets with generative verbs only.
Lexical checks see only the words they know: a changed organ name (liver -> spleen) passes.
"""

from __future__ import annotations

import re

# Our modality ids (manifests/records.py) as the prompts and the prefix check write them.
MODALITY_PHRASES = {
    "chest_xray": "chest X-ray", "ct": "CT", "mri": "MRI", "ultrasound": "ultrasound",
    "histopathology": "histopathology", "fundus": "color fundus photograph", "oct": "OCT",
    "endoscopy": "endoscopy", "dermoscopy": "dermoscopy",
}
# Words that name the modality in a description's first sentence.
MODALITY_TERMS = {
    "chest_xray": ("x-ray", "radiograph"), "ct": ("ct", "computed tomography"),
    "mri": ("mri", "magnetic resonance", "mr "), "ultrasound": ("ultrasound", "sonograph", "ultrasonograph"),
    "histopathology": ("histopath", "histolog", "micrograph", "stain", "h&e", "slide"),
    "fundus": ("fundus", "retina"), "oct": ("oct", "optical coherence"),
    "endoscopy": ("endoscop", "colonoscop", "gastroscop"), "dermoscopy": ("dermoscop", "dermatoscop", "skin"),
}

OBSERVATIONAL = re.compile(
    r"\b(shows?|showing|shown|visible|visuali[sz]ed|seen|observed|noted|appears?|appearing|demonstrates?|reveals?)\b",
    re.I)
HEDGE = re.compile(
    r"\b(consistent with|suggestive of|suggests?|compatible with|indicative of|diagnostic of|likely|probabl[ey]|"
    r"possibl[ey]|cannot exclude|differential|diagnos[ie]s|in keeping with|representing)\b", re.I)
META = re.compile(
    r"(\bas an ai\b|\bi cannot\b|\bi can't\b|\bi am unable\b|\bsorry\b|structured description|original caption"
    r"|\bthe rules?\b|\bhere is the fused\b|\{|\}|\[modality\])", re.I)
LIST_OR_HEADING = re.compile(r"^\s*([-*\u2022]|#{1,6}\s|\d+[.)]\s)", re.M)
LOCATION = re.compile(
    r"\b(left|right|bilateral(?:ly)?|upper|middle|lower|anterior|posterior|superior|inferior|medial|lateral|"
    r"proximal|distal|apical|basal|basilar|central|peripheral|subpleural|perihilar|retrocardiac|"
    r"cortical|subcortical|periventricular|frontal|parietal|temporal|occipital|ascending|descending|"
    r"sigmoid|caecum|cecum|rectum|fundus|antrum|macula|macular|optic disc|[LTCS][1-9]|T1[0-2])\b", re.I)
LATERAL_PAIRS = (("left", "right"), ("upper", "lower"), ("anterior", "posterior"), ("superior", "inferior"),
                 ("medial", "lateral"), ("proximal", "distal"))
FLAG_LINE = re.compile(r"^Abnormalities added from the original caption:\s*(?P<items>.+?)\s*$")
TEMPLATE_ECHO = re.compile(r"one element of the image per line|in one or two sentences|the description restated",
                           re.I)
BULLET_VERBS = re.compile(r"\b(is|are|has|have|shows?|depicts?|illustrates?)\b", re.I)


def modality_phrase(modality: str) -> str | None:
    return MODALITY_PHRASES.get(modality)


def fuse_prefix(modality: str) -> str:
    return f"Please generate a realistic {modality_phrase(modality)} image showing"


def plan_header(modality: str) -> str:
    return f"Here is the generated {modality_phrase(modality)} image that displays:"


def _words(pattern: re.Pattern, text: str) -> set[str]:
    return {m.group(0).lower() for m in pattern.finditer(text)}


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text.strip()) if s]


def location_reason(source: str, reply: str, require_all: bool = True) -> str | None:
    """`location_changed` when a "<side> <word>" phrase of the source comes back with the opposite side;
    with `require_all`, `location_dropped` when a location phrase or word of the source is missing."""
    src, out = source.lower(), reply.lower()
    for a, b in LATERAL_PAIRS:
        for word, other in ((a, b), (b, a)):
            for m in re.finditer(rf"\b{word}\s+(\w+)", src):
                head = m.group(1)
                flipped = f"{other} {head}"
                if re.search(rf"\b{flipped}\b", out) and not re.search(rf"\b{flipped}\b", src):
                    return "location_changed"
                if require_all and not re.search(rf"\b{word}\s+{re.escape(head)}\b", out):
                    return "location_dropped"
    if require_all and _words(LOCATION, source) - _words(LOCATION, reply):
        return "location_dropped"
    return None


def check_describe(reply: str, modality: str, min_sentences: int = 9, max_sentences: int = 22,
                   min_chars: int = 300, max_chars: int = 4000) -> str | None:
    """Step 1: None when the four-level description is usable, else the reason."""
    text = reply.strip()
    if not text:
        return "empty"
    if "\n" in text or LIST_OR_HEADING.search(text):
        return "not_one_paragraph"
    if META.search(text):
        return "meta_text"
    found = sentences(text)
    if not min_sentences <= len(found) <= max_sentences:
        return "sentence_count"
    if not min_chars <= len(text) <= max_chars:
        return "length"
    if HEDGE.search(text):
        return "diagnosis_added"
    terms = MODALITY_TERMS.get(modality, ())
    if terms and not any(term in found[0].lower() for term in terms):
        return "modality_mismatch"
    return None


def check_fuse(reply: str, modality: str, caption: str, min_chars: int = 120,
               max_chars: int = 1500) -> tuple[str | None, dict]:
    """Step 2: (None, {prompt, flagged}) when usable, else (reason, {})."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if len(lines) != 2:
        return "line_count", {}
    prompt, flag = lines
    if not prompt.startswith(fuse_prefix(modality)):
        return "missing_prefix", {}
    match = FLAG_LINE.match(flag)
    if not match:
        return "missing_flag_line", {}
    if META.search(prompt):
        return "meta_text", {}
    if not min_chars <= len(prompt) <= max_chars:
        return "length", {}
    reason = location_reason(caption, prompt)
    if reason:
        return reason, {}
    if _words(HEDGE, prompt) - _words(HEDGE, caption):
        return "diagnosis_added", {}
    items_text = match["items"]
    items = [] if items_text.lower().rstrip(".") == "none" else [
        item.strip().rstrip(".") for item in items_text.split(";") if item.strip()]
    if any(item.lower() not in prompt.lower() for item in items):
        return "flag_not_in_prompt", {}
    return None, {"prompt": prompt, "flagged": items}


def plan_pattern(modality: str) -> re.Pattern:
    phrase = re.escape(modality_phrase(modality) or modality)
    return re.compile(
        r"\A<think>\n"
        r"1\) Key pathological process: (?P<p1>[^\n]+)\n"
        r"2\) Anatomical structures: (?P<p2>[^\n]+)\n"
        rf"3\) {phrase} imaging characteristics: (?P<p3>[^\n]+)\n"
        r"Structured caption: (?P<cap>[^\n]+)\n"
        r"</think>\n"
        rf"Here is the generated {phrase} image that displays:\n"
        r"(?P<bullets>(?:- [^\n]+\n?){2,8})\Z")


def check_plan(reply: str, modality: str, description: str, ban_observational_in_think: bool = True) -> str | None:
    """Step 3: None when the thinking-enhanced response is usable, else the reason."""
    text = reply.strip()
    if "<think>" not in text or "</think>" not in text:
        return "missing_think"
    if text.count("<think>") != 1 or text.count("</think>") != 1:
        return "think_tags"
    if plan_header(modality) not in text:
        return "missing_prefix"
    match = plan_pattern(modality).match(text)
    if not match:
        return "plan_format"
    if TEMPLATE_ECHO.search(text):
        return "template_echo"
    checked = text if ban_observational_in_think else match["bullets"]
    if OBSERVATIONAL.search(checked):
        return "observational_verb"
    for bullet in match["bullets"].splitlines():
        if BULLET_VERBS.search(bullet[2:]):
            return "non_generative_verb"
    reason = location_reason(description, text, require_all=False)
    if reason:
        return reason
    if _words(HEDGE, text) - _words(HEDGE, description):
        return "diagnosis_added"
    return None
