"""The expert audit (spec 3.3) as a workbench: a stratified sample stored with the build, a small web app
where raters score it on the seven dimensions, and the agreement report.

sample.py      `unimed audit sample`: stratified by modality, every task family represented, seeded
invitations.py `unimed audit invite`: a secret link per rater, only its hash stored; --revoke
store.py       the answers: an append-only JSONL log per rater, fsync per answer, last answer per (item, dimension) wins
server.py      `unimed audit serve`: stdlib http.server, invited raters only, one item at a time, keyboard scoring
agreement.py   `unimed audit report`: mean and normalised Q, Fleiss' kappa (statsmodels), Krippendorff's alpha
labelstudio.py Label Studio task and annotation JSON, both ways
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dimension:
    name: str
    title: str
    low: int
    high: int

    def check(self, score) -> int:
        """The score as an int, or ValueError saying the scale."""
        if isinstance(score, bool) or not isinstance(score, (int, float)) or int(score) != score:
            raise ValueError(f"{self.title} takes a whole number from {self.low} to {self.high}, got {score!r}")
        if not self.low <= score <= self.high:
            raise ValueError(f"{self.title} is scored {self.low} to {self.high}; {score} is outside the scale")
        return int(score)

    def normalise(self, score: float) -> float:
        return (score - self.low) / (self.high - self.low)


# Spec 3.3: Modality Match 0/1, the other six 0-5. Order is the order raters see and key through.
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("modality_match", "Modality Match", 0, 1),
    Dimension("factual_accuracy", "Factual Accuracy", 0, 5),
    Dimension("information_completeness", "Information Completeness", 0, 5),
    Dimension("position_quantity_accuracy", "Position/Quantity Accuracy", 0, 5),
    Dimension("professionalism", "Professionalism", 0, 5),
    Dimension("planning_coherence", "Planning Coherence", 0, 5),
    Dimension("clinical_reasoning", "Clinical Reasoning", 0, 5),
)
BY_NAME = {d.name: d for d in DIMENSIONS}
Q_TARGET = 0.85  # the paper's mean quality after normalising


class AuditError(Exception):
    """A user-facing problem with the audit's inputs; the message says what to do."""


def audit_dir(build_dir) -> Path:
    return Path(build_dir) / "audit"
