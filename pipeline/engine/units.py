"""Work units in, record rows out: the first step of every build.

Rows between stages have a fixed narrow schema (`id`, `unit_id`, `part`, `kind`, `blob`), where `blob` is the
pickled `Record` / `Rejection`: adapters differ wildly in what they carry, and a fixed schema spares
Ray Data any per-block schema inference. Consecutive task stages are fused by Ray Data into one task,
so the pickling between them costs a memcpy, not a transfer.

The unit tasks come from the build's unit listing (`.state/units.parquet`, pipeline/engine/build.py),
read by Ray Data, one pickled `UnitTask` per row: the driver never holds the list. A unit's rows are cut
into parts bounded by rows and image bytes, in adapter order (`part` numbers them from 0), so no batch
holds more than the recipe's batch bounds of pixels.
"""

from __future__ import annotations

import logging
import pickle
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from manifests import spans
from manifests.records import Record, Rejection
from sources import get_source
from sources.base import Source, WorkUnit

log = logging.getLogger(__name__)

ROW_COLUMNS = ("id", "unit_id", "part", "kind", "blob")


@dataclass(frozen=True)
class UnitTask:
    """Everything a worker needs to read one unit: which adapter, where, with which options."""

    source: str
    root: str
    options_json: str
    splits: tuple[str, ...] | None
    unit: WorkUnit
    fingerprint: str = ""  # of the unit's inputs at listing time (pipeline/engine/inputs.py)


@lru_cache(maxsize=64)
def _adapter(source: str, root: str, options_json: str, splits: tuple[str, ...] | None) -> Source:
    import json

    from pipeline.stage2.replay import NAME as HQ_REPLAY, HqReplay

    cls = HqReplay if source == HQ_REPLAY else get_source(source)  # stage 2 replays a stage-1 build
    return cls(root, json.loads(options_json), splits)


def _rows(items: list[tuple[str, str, str, Any]], part: int) -> dict[str, np.ndarray]:
    with spans.span("serialise"):  # spans: time between steps (manifests/spans.py)
        rows = _columns(items, part)
    spans.flush()  # spans: what this task recorded so far, before Ray takes the batch
    return rows


def _columns(items: list[tuple[str, str, str, Any]], part: int) -> dict[str, np.ndarray]:
    columns = {name: [] for name in ROW_COLUMNS}
    for record_id, unit_id, kind, payload in items:
        columns["id"].append(record_id)
        columns["unit_id"].append(unit_id)
        columns["part"].append(part)
        columns["kind"].append(kind)
        columns["blob"].append(pickle.dumps(payload, protocol=5))
    return {name: np.array(values, dtype=object) for name, values in columns.items()}


def _unit_items(task: UnitTask, attempts: int) -> Iterator[tuple[int, tuple[str, str, str, Any]]]:
    """(attempt, row) for every row of one unit, then its `unit_end` sentinel (the count that proves it complete).

    An exception from the adapter is a whole-unit failure: the unit is re-read up to `attempts`
    times (rows already emitted are identical and collapse by id), then reported with a
    `unit_error` row so the build can say which unit failed and why.
    """
    unit = task.unit
    for attempt in range(1, attempts + 1):
        seen: dict[str, int] = {}
        try:
            adapter = _adapter(task.source, task.root, task.options_json, task.splits)
            for item in adapter.iter_records(unit):
                if item.id in seen:  # an adapter must not emit one id twice; keep both, visibly
                    seen[item.id] += 1
                    item = Rejection(id=f"{item.id}#{seen[item.id]}", source=item.source, split=item.split,
                                     reason="duplicate_id", detail=f"id {item.id} emitted more than once",
                                     provenance=list(item.provenance))
                seen.setdefault(item.id, 1)
                yield attempt, (item.id, unit.id, "record" if isinstance(item, Record) else "rejection", item)
        except Exception as err:  # noqa: BLE001 - any adapter failure is a unit failure, reported below
            log.warning("unit %s failed (attempt %d/%d): %s", unit.id, attempt, attempts, err)
            if attempt < attempts:
                continue
            detail = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}"
            error = Rejection(id=f"{unit.id}#unit_error", source=unit.source, split=unit.split,
                              reason="unit_error", detail=detail[:4000])
            yield attempt, (error.id, unit.id, "unit_error", error)
            return
        yield attempt, (f"{unit.id}#end", unit.id, "unit_end", (len(seen), task.fingerprint))
        return


def _payload_bytes(item: Any) -> int:
    if not isinstance(item, Record):
        return 0
    return sum(im.pixels.nbytes if im.pixels is not None else len(im.encoded or b"") for im in item.images)


def expand_units(batch: dict[str, np.ndarray], attempts: int, rows_per_batch: int,
                 bytes_per_batch: int) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data UDF: unit tasks in, record rows out in parts bounded by rows and by image bytes.

    A re-read attempt starts again at part 0, so a row emitted twice carries the same part both times.
    """
    for blob in batch["task"]:
        task: UnitTask = pickle.loads(blob)
        pending: list = []
        pending_bytes, part, current = 0, 0, 1
        for attempt, item in spans.timed_iter(_unit_items(task, attempts), "adapter"):  # spans: adapter's own time
            if attempt != current:
                if pending:
                    yield _rows(pending, part)
                pending, pending_bytes, part, current = [], 0, 0, attempt
            pending.append(item)
            pending_bytes += _payload_bytes(item[3])
            if len(pending) >= rows_per_batch or pending_bytes >= bytes_per_batch:
                yield _rows(pending, part)
                pending, pending_bytes, part = [], 0, part + 1
        if pending:
            yield _rows(pending, part)
