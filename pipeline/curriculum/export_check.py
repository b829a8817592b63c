"""`unimed export --check EXPORT`: validate a `--format unimedvl` export offline, without UniMedVL's code.

The rules are what the released loaders need (issue #11; the constants live in export.py): every
dataset_info entry names a registered loader, holds only the keys PackedDataset reads, with paths relative
to the export that exist; every config group names a loader, carries exactly the constructor keys that
loader accepts, `num_used_data` in the loader's unit and as long as `dataset_names`, a positive weight;
every data file is registered and named by a config; every row is routed to the loader of its shape, with
`<image>` only where that loader parses it; every group has at least ranks x workers rows (files).
One message per problem; an empty list means the export passes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from manifests.records import IMAGE_TOKEN
from pipeline.curriculum.export import (BAGEL_T2I, COMMON_KEYS, COUNTERFACTUAL, CURRICULUM_STAGES, DEFAULT_RANKS,
                                        DEFAULT_WORKERS, EDIT, FAMILY_LOADERS, JSONL_LOADERS, LOADER_FAMILY,
                                        SETTINGS_FILE, SFT_I2T, SHUFFLE_KEYS, TEXT_ONLY, TRANSFORM_KEYS, T2I_JSONL,
                                        Unreadable, route)

IMAGE_ARG_KEYS = {"max_image_size", "min_image_size", "image_stride", "max_pixels", "image_mean", "image_std"}
# The packer's limits with the released settings: VAE stride 16 (latent patch 1 x downsample 16), at most
# 64 latents a side; ViT patch 14, at most 70 patches a side.
VAE_STRIDE, MAX_LATENT, VIT_PATCH, MAX_VIT_PATCHES = 16, 64, 14, 70


def expected_loader(doc: dict[str, Any]) -> str | None:
    """The loader a row belongs to, by its shape (None when no released loader reads it whole)."""
    try:
        return route(doc)[0]
    except Unreadable:
        return None


def _rel(export: Path, value: Any, what: str, problems: list[str]) -> Path | None:
    if not isinstance(value, str) or not value:
        problems.append(f"{what}: {value!r} is not a path")
        return None
    if os.path.isabs(value):
        problems.append(f"{what}: {value} is absolute; write it relative to the export so a copied export still "
                        "trains (re-export with this version)")
        return None
    path = export / value
    if not path.exists():
        problems.append(f"{what}: {value} does not exist under {export}")
        return None
    return path


def check_export(export: Path | str, ranks: int | None = None, workers: int | None = None) -> list[str]:
    export = Path(export)
    problems: list[str] = []
    if not export.is_dir():
        return [f"{export} is not a folder; give the --out folder of `unimed export`"]
    settings: dict[str, Any] = {}
    if (export / SETTINGS_FILE).is_file():
        settings = json.loads((export / SETTINGS_FILE).read_text(encoding="utf-8"))
    ranks = ranks or settings.get("ranks") or DEFAULT_RANKS
    workers = workers or settings.get("workers") or DEFAULT_WORKERS

    info = _check_info(export, problems)
    units = {}  # (registry, name) -> rows or parquet files
    for registry, names in info.items():
        for name, meta in names.items():
            units[(registry, name)] = _check_data(export, registry, name, meta, problems)
    _check_unregistered(export, info, problems)

    configs = sorted((export / "configs").glob("*.yaml")) if (export / "configs").is_dir() else []
    if not configs:
        problems.append("configs/: no dataset config; the training script needs one per stage")
    referenced: set[tuple[str, str]] = set()
    for path in configs:
        _check_config(export, path, info, units, referenced, ranks, workers, problems)
    for registry, name in sorted(set(units) - referenced):
        problems.append(f"dataset_info.yaml {registry}/{name}: named in no configs/*.yaml, so no training stage reads "
                        "it")
    return problems


def _check_info(export: Path, problems: list[str]) -> dict[str, dict[str, Any]]:
    path = export / "dataset_info.yaml"
    if not path.is_file():
        problems.append("dataset_info.yaml missing: nothing tells DATASET_INFO where the data is")
        return {}
    info = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not (export / "unimed_dataset_info.py").is_file():
        problems.append("unimed_dataset_info.py missing: UniMedVL reads DATASET_INFO from a Python dict, not from "
                        "dataset_info.yaml; re-export to get the merge module")
    good = {}
    for registry, names in info.items():
        if registry not in TRANSFORM_KEYS:
            problems.append(f"dataset_info.yaml: {registry!r} is not one of UniMedVL's loaders "
                            f"({', '.join(sorted(TRANSFORM_KEYS))})")
            continue
        good[registry] = {}
        for name, meta in (names or {}).items():
            allowed = {"data_dir"} if registry == BAGEL_T2I else {"data_dir", "jsonl_path"}
            extra = sorted(set(meta) - allowed)
            if extra:
                problems.append(f"dataset_info.yaml {registry}/{name}: keys {extra} are not read (or break the "
                                f"loader's constructor); {registry} takes {sorted(allowed)}")
            missing = sorted(allowed - set(meta))
            if missing:
                problems.append(f"dataset_info.yaml {registry}/{name}: missing {missing}")
                continue
            good[registry][name] = meta
    return good


def _check_data(export: Path, registry: str, name: str, meta: dict[str, Any], problems: list[str]) -> int:
    what = f"dataset_info.yaml {registry}/{name}"
    data_dir = _rel(export, meta["data_dir"], f"{what} data_dir", problems)
    if registry == BAGEL_T2I:
        return _check_parquet(data_dir, what, problems) if data_dir else 0
    jsonl = _rel(export, meta["jsonl_path"], f"{what} jsonl_path", problems)
    if jsonl is None:
        return 0
    rows = 0
    with open(jsonl, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            rows += 1
            where = f"{jsonl.relative_to(export)}:{lineno}"
            try:
                line = raw.decode("ascii")
            except UnicodeDecodeError:
                problems.append(f"{where}: not ASCII; the loaders open the file in the locale's encoding")
                continue
            if not line.strip():
                problems.append(f"{where}: blank line; it counts in num_used_data but yields nothing")
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as err:
                problems.append(f"{where}: not JSON ({err})")
                continue
            _check_row(doc, registry, data_dir, where, problems)
    if rows == 0:
        problems.append(f"{what}: {meta['jsonl_path']} is empty; the loader fails with IndexError on an empty list")
    return rows


def _check_row(doc: dict[str, Any], registry: str, data_dir: Path | None, where: str, problems: list[str]) -> None:
    message = doc.get("message")
    if not isinstance(message, list) or not all(isinstance(t, dict) and t.get("from") in ("human", "gpt")
                                                 and isinstance(t.get("value"), str) for t in message):
        problems.append(f"{where}: `message` must be a list of {{from: human|gpt, value: str}} turns; the loader "
                        "raises out of its generator otherwise")
        return
    want = expected_loader(doc)
    if want is None:
        try:
            route(doc)
        except Unreadable as reason:
            problems.append(f"{where}: no released loader reads this row whole: {reason}")
        return
    if want != registry and not {want, registry} <= {T2I_JSONL, BAGEL_T2I}:
        problems.append(f"{where}: row of task {doc.get('main_task_type')!r} with {len(doc.get('input_img') or [])} "
                        f"input / {len(doc.get('output_img') or [])} output images is under {registry}; "
                        f"it belongs to {want}")
    human = [t["value"].count(IMAGE_TOKEN) for t in message if t["from"] == "human"]
    n_in = len(doc.get("input_img") or [])
    if registry in (EDIT, T2I_JSONL, TEXT_ONLY) and sum(human):
        problems.append(f"{where}: {sum(human)} `<image>` in the human turn; {registry} does not parse it, the "
                        "string reaches the tokenizer as text")
    if registry == SFT_I2T and (sum(human) != n_in or max(human, default=0) != n_in):
        problems.append(f"{where}: human `<image>` per turn {human} for {n_in} input images; {SFT_I2T} needs all "
                        "of them in one human turn")
    if registry == COUNTERFACTUAL and sum(human) > n_in:
        problems.append(f"{where}: {sum(human)} `<image>` for {n_in} input image(s)")
    if data_dir is None:
        return
    for role in ("input_img", "output_img"):
        for ref in doc.get(role) or []:
            path = ref.get("path") if isinstance(ref, dict) else None
            if not isinstance(path, str) or os.path.isabs(path):
                problems.append(f"{where}: {role} path {path!r} must be relative to data_dir")
            elif not (data_dir / path).is_file():
                problems.append(f"{where}: {role} {path} not found under data_dir; the loader skips the image")


def _check_parquet(data_dir: Path, what: str, problems: list[str]) -> int:
    import pyarrow.parquet as pq

    files = sorted(p for p in data_dir.iterdir() if p.name.endswith(".parquet"))
    if not files:
        problems.append(f"{what}: no *.parquet in {data_dir.name}; t2i_pretrain divides by zero")
    for path in files:
        schema = pq.read_schema(path)
        types = {f.name: str(f.type) for f in schema}
        if types.get("image") not in ("binary", "large_binary") or types.get("captions") not in ("string",
                                                                                                 "large_string"):
            problems.append(f"{what}: {path.name} columns {types}; t2i_pretrain reads `image` (bytes) and "
                            "`captions` (a JSON string)")
    return len(files)


def _check_unregistered(export: Path, info: dict[str, dict[str, Any]], problems: list[str]) -> None:
    registered = {os.path.normpath(m["jsonl_path"]) for names in info.values() for m in names.values()
                  if "jsonl_path" in m}
    dirs = {os.path.normpath(m["data_dir"]) for m in info.get(BAGEL_T2I, {}).values()}
    for path in sorted(export.rglob("*.jsonl")):
        if os.path.normpath(str(path.relative_to(export))) not in registered:
            problems.append(f"{path.relative_to(export)}: not registered in dataset_info.yaml")
    for path in sorted(export.rglob("*.parquet")):
        if os.path.normpath(str(path.parent.relative_to(export))) not in dirs:
            problems.append(f"{path.relative_to(export)}: its folder is not a t2i_pretrain data_dir")


def _check_config(export: Path, path: Path, info: dict[str, Any], units: dict[tuple[str, str], int],
                  referenced: set[tuple[str, str]], ranks: int, workers: int, problems: list[str]) -> None:
    label = f"configs/{path.name}"
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(config, dict) or not config:
        problems.append(f"{label}: no dataset group; PackedDataset asserts total weight > 0 (leave the file out)")
        return
    total = 0.0
    family_weight: Counter = Counter()
    for registry, group in config.items():
        where = f"{label} {registry}"
        if registry not in TRANSFORM_KEYS:
            problems.append(f"{where}: not one of UniMedVL's loaders ({', '.join(sorted(TRANSFORM_KEYS))})")
            continue
        allowed = set(COMMON_KEYS) | set(TRANSFORM_KEYS[registry]) | (set() if registry == BAGEL_T2I
                                                                       else set(SHUFFLE_KEYS))
        unexpected = sorted(set(group) - allowed)
        if unexpected:
            problems.append(f"{where}: keys {unexpected} are not accepted by its constructor (TypeError)")
        for key in TRANSFORM_KEYS[registry]:
            if key not in group:
                problems.append(f"{where}: missing {key}; its constructor requires it (TypeError)")
            else:
                _check_transform(where, key, group[key], problems)
        names, counts = group.get("dataset_names"), group.get("num_used_data")
        if not isinstance(names, list) or not names:
            problems.append(f"{where}: dataset_names must be a non-empty list")
            continue
        if not isinstance(counts, list) or len(counts) != len(names):
            problems.append(f"{where}: num_used_data {counts!r} must list one count per dataset_names entry "
                            f"({len(names)}); a shorter list silently drops datasets")
            counts = [None] * len(names)
        weight = group.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or weight <= 0:
            problems.append(f"{where}: weight {weight!r} must be positive")
        else:
            total += weight
            family_weight[LOADER_FAMILY[registry]] += weight
        if group.get("is_mandatory"):
            problems.append(f"{where}: is_mandatory puts one of its samples in every pack, whatever the weights")
        available = 0
        for name, count in zip(names, counts):
            if name not in info.get(registry, {}):
                problems.append(f"{where}: {name} is not in dataset_info.yaml under {registry} (KeyError)")
                continue
            referenced.add((registry, name))
            have = units.get((registry, name), 0)
            unit = "parquet files" if registry == BAGEL_T2I else "rows"
            if registry == BAGEL_T2I and count != have:
                problems.append(f"{where}: num_used_data {count} for {name}, which has {have} parquet files; "
                                "t2i_pretrain counts files, and repeats (or drops) them to reach the number")
            elif count is not None and (not isinstance(count, int) or count < 0 or count > have):
                problems.append(f"{where}: num_used_data {count} for {name}, which has {have} {unit}")
            used = have if registry == BAGEL_T2I or not count else min(count, have)
            available += used
        need = ranks * workers
        if available < need:
            unit = "parquet files" if registry == BAGEL_T2I else "rows"
            problems.append(f"{where}: {available} {unit} for {ranks} ranks x {workers} workers = {need}; a rank "
                            "with an empty share loops forever without yielding (train on fewer ranks/workers)")
    if total <= 0:
        problems.append(f"{label}: total weight {total}; PackedDataset asserts it is > 0")
    stage = path.stem.removeprefix("stage")
    if stage.isdigit() and int(stage) in CURRICULUM_STAGES:
        weights = CURRICULUM_STAGES[int(stage)].weights
        for family, weight in family_weight.items():
            if abs(weight - weights.get(family, 0)) > 1e-3:
                problems.append(f"{label}: {family} groups weigh {weight:g}; curriculum stage {stage} gives "
                                f"{family} {weights.get(family, 0)}")


def _check_transform(where: str, key: str, args: Any, problems: list[str]) -> None:
    if not isinstance(args, dict):
        problems.append(f"{where}: {key} must be a mapping of ImageTransform arguments")
        return
    unknown = sorted(set(args) - IMAGE_ARG_KEYS)
    if unknown:
        problems.append(f"{where}: {key} has {unknown}, which ImageTransform does not take (TypeError)")
    stride, largest = args.get("image_stride"), args.get("max_image_size")
    if not isinstance(stride, int) or not isinstance(largest, int):
        problems.append(f"{where}: {key} needs integer image_stride and max_image_size")
        return
    if key == "image_transform_args" and (stride % VAE_STRIDE or largest > MAX_LATENT * VAE_STRIDE):
        problems.append(f"{where}: {key} stride {stride} / max side {largest}: the VAE needs a multiple of "
                        f"{VAE_STRIDE} and at most {MAX_LATENT * VAE_STRIDE}")
    if key == "vit_image_transform_args" and (stride != VIT_PATCH or largest > MAX_VIT_PATCHES * VIT_PATCH):
        problems.append(f"{where}: {key} stride {stride} / max side {largest}: the ViT needs stride {VIT_PATCH} "
                        f"and at most {MAX_VIT_PATCHES * VIT_PATCH}")


__all__ = ["check_export", "expected_loader", "FAMILY_LOADERS", "JSONL_LOADERS"]
