"""The subject leakage rule: no training row of a person whose rows are in a held-out split.

Each record is tagged with its subject (`subject_of`, in the `task_builders` stage); the rule itself
is global over the `subject_id` column, so it acts at finalisation (`reject_leaked_subjects`).
"""

from __future__ import annotations

import duckdb

from manifests.records import Record

# Which meta fields name the person a record comes from, per source (joined with "/"). A source not
# listed has no subject identity in its files (BCI, DRIVE, ...): its rows get no subject_id.
SUBJECT_FIELDS: dict[str, tuple[str, ...]] = {
    "brats": ("case",),
    "synthrad2023": ("patient",),
    "ixi": ("subject",),
    "fastmri": ("patient_id",),
    "icg_cxr": ("branch", "patient"),
    "kits": ("case",),
    "samed2d": ("dataset", "case"),
    "isic": ("patient_id",),
}


def subject_of(record: Record) -> str | None:
    names = SUBJECT_FIELDS.get(record.source)
    values = [record.meta.get(name) for name in names or ()]
    if not values or any(value in (None, "") for value in values):
        return None
    return "/".join(str(value) for value in values)


def reject_leaked_subjects(con: duckdb.DuckDBPyConnection, held_out: list[str], reference_only: bool) -> None:
    """No training row of a subject that any held-out row of the same source names (kept or not).

    A global rule over the `subject_id` column, so it holds however the units were spread over workers.
    Held-out rows read only as the reference are then rejected too (`held_out_split`).
    """
    if not held_out:
        return
    splits = ", ".join("'" + split.replace("'", "''") + "'" for split in held_out)
    con.execute(
        f"""
        UPDATE chosen SET status = 'rejected', reason = 'subject_in_test_split',
               detail = 'subject ' || chosen.subject_id || ' is in ' || h.split || ' of ' || chosen.source
        FROM (SELECT source, subject_id, min(split) AS split FROM chosen
              WHERE split IN ({splits}) AND subject_id IS NOT NULL GROUP BY ALL) h
        WHERE chosen.status = 'kept' AND chosen.split NOT IN ({splits})
          AND chosen.source = h.source AND chosen.subject_id = h.subject_id
        """
    )
    if reference_only:
        con.execute(f"UPDATE chosen SET status = 'rejected', reason = 'held_out_split', "
                    f"detail = 'read only to exclude its subjects from training' "
                    f"WHERE status = 'kept' AND split IN ({splits})")
