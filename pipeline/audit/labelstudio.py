"""Label Studio task and annotation JSON, both ways, for teams that prefer to rate there.

`export_tasks` writes the audit sample as Label Studio tasks (one per item, the image referenced by a URL
prefix you choose, the turns as text) with each rater's answers as annotations, plus the labeling config
(one Number tag per dimension, min/max set to its scale). `import_annotations` reads Label Studio's JSON
export back and appends every valid score to the raters' answer logs; out-of-scale or unknown fields are
counted and skipped. Agreement is then computed here (Label Studio's agreement statistics are an Enterprise feature).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.audit import BY_NAME, DIMENSIONS, AuditError
from pipeline.audit.sample import read_sample
from pipeline.audit.store import AnswerStore

TO_NAME = "dialogue"


def label_config() -> str:
    numbers = "\n".join(f'  <Header value="{d.title} ({d.low}-{d.high})"/>\n'
                        f'  <Number name="{d.name}" toName="{TO_NAME}" min="{d.low}" max="{d.high}" required="true"/>'
                        for d in DIMENSIONS)
    return (f'<View>\n  <Image name="image" value="$image"/>\n  <Text name="{TO_NAME}" value="$text"/>\n'
            f"{numbers}\n</View>\n")


def _text(sample: dict) -> str:
    return "\n\n".join(f"{turn['from']}: {turn['value']}" for turn in sample.get("message", []))


def export_tasks(build_dir: Path, out: Path, image_url_prefix: str = "/data/local-files/?d=") -> dict:
    """Write OUT/tasks.json and OUT/label_config.xml; returns counts."""
    items = read_sample(build_dir)
    answers = AnswerStore(build_dir).latest()
    by_item: dict[int, dict[str, dict[str, int]]] = {}
    for (rater, item, dimension), score in answers.items():
        by_item.setdefault(item, {}).setdefault(rater, {})[dimension] = score
    tasks = []
    for row in items:
        sample = json.loads(row["sample"])
        refs = sample.get("input_img") or sample.get("output_img") or []
        image = f"{image_url_prefix}{row['shard']}/{row['key']}.{refs[0]['path']}" if refs else ""
        annotations = [{"completed_by": {"email": rater}, "result": [
            {"from_name": dim, "to_name": TO_NAME, "type": "number", "value": {"number": score}}
            for dim, score in sorted(scores.items())]} for rater, scores in sorted(by_item.get(row["item"], {}).items())]
        tasks.append({"id": row["item"] + 1, "data": {"item": row["item"], "sample_id": row["id"], "image": image,
                                                       "text": _text(sample), "modality": row["modality"],
                                                       "task_family": row["task_family"]},
                      "annotations": annotations})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tasks.json").write_text(json.dumps(tasks, indent=1, ensure_ascii=False))
    (out / "label_config.xml").write_text(label_config())
    return {"tasks": len(tasks), "annotations": sum(len(t["annotations"]) for t in tasks)}


def _rater_of(annotation: dict) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("username") or who.get("id")
    return str(who) if who not in (None, "") else ""


def import_annotations(build_dir: Path, path: Path) -> dict:
    """Append the scores of a Label Studio JSON export to the raters' answer logs; returns {'saved': n, 'skipped': n}."""
    try:
        tasks = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise AuditError(f"cannot read Label Studio export {path}: {err}") from None
    if not isinstance(tasks, list):
        raise AuditError(f"{path}: expected Label Studio's JSON export (a list of tasks)")
    items = read_sample(build_dir)
    by_sample_id = {row["id"]: row["item"] for row in items}
    store = AnswerStore(build_dir)
    saved = skipped = 0
    for task in tasks:
        data = task.get("data", {}) if isinstance(task, dict) else {}
        item = by_sample_id.get(data.get("sample_id"), data.get("item"))
        for annotation in task.get("annotations", []) if isinstance(task, dict) else []:
            rater = _rater_of(annotation)
            for result in annotation.get("result", []):
                value = result.get("value", {})
                score = value.get("number", value.get("rating"))
                if result.get("from_name") not in BY_NAME:
                    skipped += 1
                    continue
                try:
                    store.add(rater, item, result["from_name"], score, n_items=len(items))
                    saved += 1
                except AuditError:
                    skipped += 1
    return {"saved": saved, "skipped": skipped}
