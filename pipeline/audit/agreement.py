"""`unimed audit report BUILD`: quality and agreement from the raters' answers.

Per dimension and modality: the mean score and Q, the mean of the scores normalised to [0, 1] (spec 3.3,
target Q >= 0.85). Agreement per dimension: Fleiss' kappa (statsmodels) over the items every rater scored,
and Krippendorff's alpha (the krippendorff package; ordinal for the 0-5 scales, nominal for Modality Match),
which takes missing ratings as they are. Written to BUILD/audit/report/ as CSV and Parquet, and as
summary.json for the HTML build report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.audit import BY_NAME, DIMENSIONS, Q_TARGET, AuditError, audit_dir
from pipeline.audit.sample import read_sample
from pipeline.audit.store import AnswerStore


def scores_frame(build_dir: Path) -> pd.DataFrame:
    """One row per (rater, item, dimension) with its last score, the item's modality and task family."""
    items = {row["item"]: row for row in read_sample(build_dir)}
    rows = []
    for (rater, item, dimension), score in sorted(AnswerStore(build_dir).latest().items()):
        if item not in items:
            continue
        rows.append({"rater": rater, "item": item, "id": items[item]["id"], "modality": items[item]["modality"],
                     "task_family": items[item]["task_family"], "dimension": dimension, "score": score,
                     "normalised": BY_NAME[dimension].normalise(score)})
    return pd.DataFrame(rows, columns=["rater", "item", "id", "modality", "task_family", "dimension", "score",
                                       "normalised"])


def quality(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean score and Q per dimension and modality, plus the 'all' rows of each."""
    if scores.empty:
        return pd.DataFrame(columns=["dimension", "modality", "n", "mean", "Q"])
    parts = []
    for keys, by in ((["dimension", "modality"], scores),
                     (["dimension"], scores.assign(modality="all")),
                     (["modality"], scores.assign(dimension="all")),
                     ([], scores.assign(dimension="all", modality="all"))):
        group = by.groupby(["dimension", "modality"])
        parts.append(pd.DataFrame({"n": group["score"].size(), "mean": group["score"].mean(),
                                   "Q": group["normalised"].mean()}).reset_index())
    out = pd.concat(parts, ignore_index=True).drop_duplicates(["dimension", "modality"])
    order = {d.name: i for i, d in enumerate(DIMENSIONS)} | {"all": len(DIMENSIONS)}
    out = out.sort_values(["dimension", "modality"], key=lambda s: s.map(order) if s.name == "dimension" else s)
    # "all" modality last within each dimension
    out["_m"] = out["modality"].eq("all")
    return out.sort_values(["dimension", "_m", "modality"], key=lambda s: s.map(order) if s.name == "dimension"
                           else s).drop(columns="_m").reset_index(drop=True)


def fleiss(matrix: np.ndarray, dimension) -> float:
    """Fleiss' kappa of an items x raters matrix with no gaps (statsmodels)."""
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    table, _ = aggregate_raters(matrix.astype(int), n_cat=dimension.high - dimension.low + 1)
    return float(fleiss_kappa(table, method="fleiss"))


def kalpha(matrix: np.ndarray, dimension) -> float:
    """Krippendorff's alpha of a raters x items matrix, NaN for missing (the krippendorff package)."""
    import krippendorff

    level = "nominal" if dimension.high - dimension.low == 1 else "ordinal"
    values = list(range(dimension.low, dimension.high + 1))
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level, value_domain=values))


def agreement(scores: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for dimension in DIMENSIONS:
        part = scores[scores["dimension"] == dimension.name]
        wide = part.pivot_table(index="item", columns="rater", values="score", aggfunc="last")
        raters = int(wide.shape[1])
        complete = wide.dropna()
        row = {"dimension": dimension.name, "raters": raters, "items": int(wide.shape[0]),
               "items_all_raters": int(complete.shape[0]), "fleiss_kappa": math.nan,
               "krippendorff_alpha": math.nan,
               "alpha_level": "nominal" if dimension.high - dimension.low == 1 else "ordinal"}
        if raters >= 2 and len(complete) >= 1:
            with np.errstate(divide="ignore", invalid="ignore"):
                row["fleiss_kappa"] = fleiss(complete.to_numpy() - dimension.low, dimension)
        pairable = wide[wide.notna().sum(axis=1) >= 2]
        if raters >= 2 and len(pairable) >= 1 and pd.unique(pairable.to_numpy().ravel()[~np.isnan(
                pairable.to_numpy().ravel())]).size > 1:
            row["krippendorff_alpha"] = kalpha(wide.to_numpy(dtype=float).T, dimension)
        rows.append(row)
    return pd.DataFrame(rows)


def write_report(build_dir: Path) -> dict:
    build_dir = Path(build_dir)
    scores = scores_frame(build_dir)
    if scores.empty:
        raise AuditError(f"no answers yet in {audit_dir(build_dir) / 'answers'}; "
                         f"rate with `unimed audit serve {build_dir}` first")
    q = quality(scores)
    agree = agreement(scores)
    out = audit_dir(build_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("scores", scores), ("quality", q), ("agreement", agree)):
        frame.to_csv(out / f"{name}.csv", index=False)
        frame.to_parquet(out / f"{name}.parquet", index=False)
    overall = q[(q["dimension"] == "all") & (q["modality"] == "all")]
    summary = {
        "raters": sorted(scores["rater"].unique().tolist()),
        "items_rated": int(scores["item"].nunique()),
        "items_in_sample": len(read_sample(build_dir)),
        "Q": float(overall["Q"].iloc[0]),
        "Q_target": Q_TARGET,
        "quality": json.loads(q.to_json(orient="records")),
        "agreement": json.loads(agree.to_json(orient="records")),
        "files": sorted(str(p.relative_to(build_dir)) for p in out.iterdir()),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def read_summary(build_dir: Path) -> dict | None:
    path = audit_dir(build_dir) / "report" / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None
