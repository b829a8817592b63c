"""Licence facts of a build: the access gate, the licence mix in stats.json, LICENCES.md and ACKNOWLEDGMENTS.md.

Everything here reads the dataset cards (sources/<name>.py: `licence`, `access`, `citation`,
`redistribute_text`, `redistribute_images`, and the "- Licence:" / "- Redistribution:" lines of the
card's docstring, which hold the evidence) and the build's manifest; nothing decides a record.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable

from sources import SOURCES
from sources.base import DatasetCard

#: What `--access public` (or a recipe's `access: public`) lets in: openly downloadable data only.
PUBLIC_ACCESS = ("open",)


class AccessRefused(ValueError):
    """A build asked to be public names sources whose access class forbids that; the message lists them."""


def card(name: str) -> DatasetCard | None:
    cls = SOURCES.get(name)
    return cls.card if cls else None


def check_access(policy: str | None, source_names: Iterable[str]) -> None:
    """Refuse, in one message naming all of them, the sources a `public` build may not contain."""
    if policy != "public":
        return
    refused = []
    for name in sorted(set(source_names)):
        facts = card(name)
        if facts is not None and facts.access not in PUBLIC_ACCESS:
            refused.append(f"{name} ({facts.access}: {facts.licence})")
    if refused:
        raise AccessRefused(
            f"access public refuses {len(refused)} source(s) that are not openly downloadable: "
            + "; ".join(refused)
            + ". Leave them out (--only, or drop them from the recipe) or build without --access public."
        )


def licence_mix(con, policy: str | None) -> dict:
    """The licence and access mix of a build, from its manifest (the `records` view): for stats.json."""
    by_access = {access: {"kept": kept, "rejected": rejected} for access, kept, rejected in con.execute(
        "SELECT coalesce(access, 'unknown'), count(*) FILTER (status = 'kept'), count(*) FILTER (status <> 'kept') "
        "FROM records GROUP BY ALL ORDER BY 1").fetchall()}
    by_licence = {licence: kept for licence, kept in con.execute(
        "SELECT coalesce(licence, 'unknown'), count(*) FILTER (status = 'kept') FROM records GROUP BY ALL ORDER BY 1"
    ).fetchall()}
    sources = {}
    for source, kept in con.execute(
            "SELECT source, count(*) FILTER (status = 'kept') FROM records GROUP BY ALL ORDER BY 1").fetchall():
        facts = card(source)
        sources[source] = {"kept": kept, "licence": facts.licence if facts else None,
                           "access": facts.access if facts else None,
                           "redistribute_text": bool(facts and facts.redistribute_text),
                           "redistribute_images": bool(facts and facts.redistribute_images)}
    return {"access_policy": policy or "any", "by_access": by_access, "by_licence": by_licence, "sources": sources}


def card_line(name: str, label: str) -> str:
    """The text of a card docstring's `- <label>:` bullet (continuation lines joined), or ''."""
    cls = SOURCES.get(name)
    doc = inspect.getmodule(cls).__doc__ if cls else None
    lines, found = [], False
    for line in (doc or "").splitlines():
        if line.startswith(f"- {label}:"):
            found = True
            lines.append(line.removeprefix(f"- {label}:").strip())
        elif found and line.startswith("  ") and line.strip():
            lines.append(line.strip())
        elif found:
            break
    return " ".join(lines)


def licences_markdown(counts: dict[str, int]) -> str:
    """LICENCES.md: per source, licence, access class, what the release redistributes, and the evidence."""
    out = ["# Licences", "",
           "Each source keeps its own licence. This release carries metadata; texts and images only where the",
           "source's licence allows redistribution. Get the data itself from each source's own site, under its",
           "terms, then rebuild with `unimed rebuild`.", "",
           "| source | licence | access | kept | texts | images |", "|---|---|---|---|---|---|"]
    notes = []
    for name in sorted(counts):
        facts = card(name)
        if facts is None:
            out.append(f"| {name} | unknown | unknown | {counts[name]} | no | no |")
            continue
        out.append(f"| {name} | {facts.licence} | {facts.access} | {counts[name]} | "
                   f"{'yes' if facts.redistribute_text else 'no'} | {'yes' if facts.redistribute_images else 'no'} |")
        evidence = "Redistribution: " + (card_line(name, "Redistribution") or "no terms stated; unknown means no.")
        notes.append(f"- **{name}** ({facts.url}): {card_line(name, 'Licence') or facts.licence} {evidence}")
    return "\n".join(out + ["", "## Evidence (from each dataset card)", "", *notes, ""])


def acknowledgments_markdown(names: Iterable[str]) -> str:
    out = ["# Acknowledgments", "", "This corpus is built from the following datasets. Please cite them.", ""]
    for name in sorted(set(names)):
        facts = card(name)
        if facts is not None:
            out.append(f"- **{facts.title}** ({name}): {card_line(name, 'Citation') or facts.citation}. {facts.url}")
    return "\n".join(out + [""])
