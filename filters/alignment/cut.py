"""The decision of F_align (spec 3.2): normalise S and M, S_final = lambda * S + M, keep the top fraction.

The cut needs every score, so it runs at finalisation over the staged rows, and again, with new
settings and without any model, in `unimed rethreshold`.
"""

from __future__ import annotations

from filters.alignment.pairs import EXEMPT
from filters.settings import AlignmentSettings

CUT_REASON = "alignment_below_cut"
UNSCORED_REASON = "alignment_unscored"


def _scope(scope: str) -> str:
    return {"global": "1", "source": "source", "modality": "modality"}[scope]


def apply_cut(con, settings: AlignmentSettings, table: str = "chosen") -> dict[str, int]:
    """Normalise S and M, combine, and reject everything below the top `keep_fraction` per scope.

    Works on a DuckDB table of manifest rows with the raw score columns. Exempt rows stay as they
    are; scored rows whose S or M is null are rejected (`alignment_unscored`) or kept, per recipe.
    Ties at the cut are broken by id, so the same scores always give the same decision.
    """
    m_column = "align_m_logit" if settings.m_score == "logit" else "align_m_prob"
    scored = (f"status = 'kept' AND align_reason IS DISTINCT FROM '{EXEMPT}' "
              f"AND align_s_raw IS NOT NULL AND {m_column} IS NOT NULL")
    unscored = (f"status = 'kept' AND (align_reason IS NULL OR align_reason <> '{EXEMPT}') "
                f"AND (align_s_raw IS NULL OR {m_column} IS NULL)")
    counts = {"unscored": con.execute(f"SELECT count(*) FROM {table} WHERE {unscored}").fetchone()[0]}
    con.execute(f"UPDATE {table} SET align_s = NULL, align_m = NULL, align_final = NULL")
    if settings.unscored == "reject":
        con.execute(f"UPDATE {table} SET status = 'rejected', reason = '{UNSCORED_REASON}', "
                    f"detail = coalesce(align_reason, 'no alignment score') WHERE {unscored}")
    norm_part, keep_part = _scope(settings.normalize_scope), _scope(settings.keep_scope)
    if settings.normalize == "minmax":
        def norm(column: str) -> str:
            window = f"OVER (PARTITION BY {norm_part})"
            return (f"coalesce(({column} - min({column}) {window}) / "
                    f"nullif(max({column}) {window} - min({column}) {window}, 0), 0.5)")
    else:
        def norm(column: str) -> str:
            return f"percent_rank() OVER (PARTITION BY {norm_part} ORDER BY {column})"
    con.execute(
        f"""
        UPDATE {table} SET align_s = n.s, align_m = n.m, align_final = ? * n.s + n.m
        FROM (SELECT id, {norm('align_s_raw')} AS s, {norm(m_column)} AS m FROM {table} WHERE {scored}) n
        WHERE {table}.id = n.id
        """,
        [settings.lambda_s],
    )
    con.execute(
        f"""
        UPDATE {table} SET status = 'rejected', reason = '{CUT_REASON}',
               detail = printf('align_final %.4f ranks %d of %d in its %s scope; top %.0f%% kept',
                               r.final, r.rank, r.n, '{settings.keep_scope}', ? * 100)
        FROM (
            SELECT id, align_final AS final,
                   row_number() OVER (PARTITION BY {keep_part} ORDER BY align_final DESC, id) AS rank,
                   count(*) OVER (PARTITION BY {keep_part}) AS n
            FROM {table} WHERE align_final IS NOT NULL AND status = 'kept'
        ) r
        WHERE {table}.id = r.id AND r.rank > ceil(? * r.n)
        """,
        [settings.keep_fraction, settings.keep_fraction],
    )
    counts["below_cut"] = con.execute(f"SELECT count(*) FROM {table} WHERE reason = '{CUT_REASON}'").fetchone()[0]
    counts["scored"] = con.execute(f"SELECT count(*) FROM {table} WHERE align_final IS NOT NULL").fetchone()[0]
    return counts
