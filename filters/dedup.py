"""Exact duplicates: the same decoded pixels and text within one task, kept once (recipe `filters.dedup`).

`content_hash` (manifests/schema.py) covers every image's pixel hash and the message; the rule needs the
whole build, so it runs at finalisation over the staged rows, lowest id first.
"""

from __future__ import annotations

import duckdb


def reject_exact_duplicates(con: duckdb.DuckDBPyConnection, table: str = "chosen") -> None:
    """Keep the first id of each (task family, sub-task, content hash) among kept rows; reject the rest."""
    con.execute(
        f"""
        UPDATE {table} SET status = 'rejected', reason = 'duplicate',
               detail = 'same decoded pixels and text as ' || d.first_id
        FROM (
            SELECT id, first_value(id) OVER w AS first_id, row_number() OVER w AS rank
            FROM {table} WHERE status = 'kept'
            WINDOW w AS (PARTITION BY task_family, sub_task_type, content_hash ORDER BY id)
        ) d
        WHERE {table}.id = d.id AND d.rank > 1
        """
    )
