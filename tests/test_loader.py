"""The curriculum loader: proportions, no duplicates across ranks x workers, exact resumption."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the `train` extra

from pipeline.bench.loader import observed_proportions, write_synthetic_build  # noqa: E402
from pipeline.curriculum.index import build_index  # noqa: E402
from pipeline.curriculum.loader import CurriculumDataset, CurriculumLoader  # noqa: E402
from pipeline.curriculum.mixture import MixtureConfig, MixturePlan, apportion_exact  # noqa: E402
from pipeline.curriculum.schedule import CURRICULUM_STAGES, FAMILIES, Schedule, normalised  # noqa: E402

COUNTS = {"i2t": 40, "t2i": 24, "interleaved": 12, "text": 10}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_synthetic_build(tmp_path_factory.mktemp("loader") / "syn", counts=COUNTS, per_shard=30,
                                 image_size=16)


@pytest.fixture(scope="module")
def index(synthetic):
    return build_index([synthetic])


def _loader(index, stages=(1,), scale=0.0002, rank=0, world_size=1, workers=0, mode="random", batch_size=4,
            seed=7, **config) -> CurriculumLoader:
    mixture = MixtureConfig(batch_size=batch_size, seed=seed, mode=mode, rank=rank, world_size=world_size, **config)
    return CurriculumLoader(CurriculumDataset(index, Schedule.of(stages, scale), mixture), num_workers=workers)


def _digest(batch) -> tuple:
    """Everything the model sees, as bytes: equal digests mean bit-identical batches."""
    tensors = [batch[name] for name in ("input_ids", "labels", "attention_mask", "input_images", "input_owner",
                                        "output_images", "output_owner", "family", "draw")]
    return (batch["step"], tuple(batch["key"]), tuple(t.numpy().tobytes() for t in tensors))


def test_stage_weights_normalised_like_bagel():
    probs = normalised(CURRICULUM_STAGES[1].weights)
    assert sum(CURRICULUM_STAGES[1].weights.values()) == 105
    assert probs["i2t"] == pytest.approx(75 / 105) and probs["text"] == pytest.approx(5 / 105)
    assert [round(sum(s.weights.values())) for s in CURRICULUM_STAGES.values()] == [105, 100, 100]


@pytest.mark.parametrize("stage", [1, 2, 3])
@pytest.mark.parametrize("mode", ["random", "stratified"])
def test_proportions_within_one_point_over_10000_draws(stage, mode):
    expected = normalised(CURRICULUM_STAGES[stage].weights)
    observed = observed_proportions(stage, draws=10_000, mode=mode, seed=0)
    for family in FAMILIES:
        assert abs(observed[family] - expected[family]) < 0.01, (family, observed, expected)
    if mode == "stratified":  # exact up to one batch's rounding
        assert all(abs(observed[f] - expected[f]) < 16 / 10_000 for f in FAMILIES)


def test_stratified_every_global_batch_holds_exact_shares():
    schedule = Schedule.of([1], scale=200 / CURRICULUM_STAGES[1].steps)
    plan = MixturePlan(list(FAMILIES), [50] * 4, list(FAMILIES), [1.0] * 4, schedule,
                       MixtureConfig(batch_size=4, world_size=2, mode="stratified"))
    quota = {f: 8 * p for f, p in normalised(CURRICULUM_STAGES[1].weights).items()}
    totals = Counter()
    while not plan.done:
        counts = Counter(FAMILIES[stream] for stream, _ in plan.next_batch())
        totals.update(counts)
        for family in FAMILIES:
            assert np.floor(quota[family]) <= counts[family] <= np.ceil(quota[family])
    assert totals["text"] > 0  # the small share is rotated in, not starved by rounding
    assert abs(totals["text"] / (200 * 8) - 5 / 105) < 1 / 200


def test_apportion_exact_is_a_largest_remainder_rounding():
    counts = apportion_exact(10, np.array([0.5, 0.25, 0.25, 0.0]), np.zeros(4))
    assert counts.tolist() in ([5, 3, 2, 0], [5, 2, 3, 0]) and counts.sum() == 10


def test_no_sample_twice_within_an_epoch_across_2_ranks_x_2_workers(index):
    # stage 3 draws every family; 40 steps x 8 per global batch = 320 draws, so every family wraps
    draws = []
    for rank in (0, 1):
        loader = _loader(index, stages=(3,), scale=40 / CURRICULUM_STAGES[3].steps, rank=rank, world_size=2, workers=2,
                         seed=3)
        batches = list(loader)
        assert len(batches) == 40  # the same budget on both ranks, whatever the shards hold
        assert [b["step"] for b in batches] == list(range(40))
        for batch in batches:
            draws.extend(zip(batch["stream"], batch["draw"].tolist(), batch["key"]))
    assert len(draws) == 40 * 8
    by_stream: dict[str, list[tuple[int, str]]] = {}
    for stream, draw, key in draws:
        by_stream.setdefault(stream, []).append((draw, key))
    sizes = Counter(index.family)
    wrapped = [stream for stream, items in by_stream.items() if len(items) > sizes[stream]]
    assert {"i2t", "t2i", "interleaved"} <= set(wrapped)  # they ran out and were resampled
    for stream, items in by_stream.items():
        numbers = sorted(draw for draw, _ in items)
        assert numbers == list(range(len(numbers))), stream  # each draw made exactly once across ranks/workers
        epochs: dict[int, list[str]] = {}
        for draw, key in items:
            epochs.setdefault(draw // sizes[stream], []).append(key)
        for epoch, keys in epochs.items():
            assert len(keys) == len(set(keys)), (stream, epoch)
            if epoch < max(epochs):
                assert len(keys) == sizes[stream]  # a full epoch covers the whole family


def test_uneven_families_give_equal_batches_per_rank(tmp_path):
    build = write_synthetic_build(tmp_path / "uneven", counts={"i2t": 7, "t2i": 1}, per_shard=3, image_size=8)
    index = build_index([build])
    lengths = [len(list(_loader(index, scale=10 / CURRICULUM_STAGES[1].steps, rank=r, world_size=3, batch_size=5)))
               for r in range(3)]
    assert lengths == [10, 10, 10]


@pytest.mark.parametrize("mode", ["random", "stratified"])
def test_resume_mid_stage_is_bit_identical(index, mode):
    reference = [_digest(b) for b in _loader(index, scale=12 / CURRICULUM_STAGES[1].steps, workers=2, mode=mode)]
    first = _loader(index, scale=12 / CURRICULUM_STAGES[1].steps, workers=2, mode=mode)
    head = []
    for batch in first:
        head.append(_digest(batch))
        if len(head) == 5:
            break
    state = first.state_dict()
    assert state["step"] == 5 and state["stage"] == 1
    resumed = _loader(index, scale=12 / CURRICULUM_STAGES[1].steps, workers=2, mode=mode)
    resumed.load_state_dict(state)
    assert head + [_digest(b) for b in resumed] == reference


def test_resume_twice_across_a_stage_boundary(index):
    scale = 1e-4  # stage 1: 8 steps, stage 2: 12 steps
    reference = [_digest(b) for b in _loader(index, stages=(1, 2), scale=scale, workers=2, mode="stratified")]
    assert len(reference) == 20
    got, state = [], None
    for stop in (6, 11, None):  # stop inside stage 1, inside stage 2 (after the boundary), then run out
        loader = _loader(index, stages=(1, 2), scale=scale, workers=2, mode="stratified")
        if state is not None:
            loader.load_state_dict(state)
        for batch in loader:
            got.append(_digest(batch))
            if stop is not None and len(got) == stop:
                break
        state = loader.state_dict()
    assert state["stage"] == 2
    assert got == reference


def test_state_from_another_mixture_is_refused(index):
    loader = _loader(index, scale=4 / CURRICULUM_STAGES[1].steps)
    next(iter(loader))
    other = _loader(index, scale=4 / CURRICULUM_STAGES[1].steps, seed=8)
    with pytest.raises(ValueError, match="different mixture"):
        other.load_state_dict(loader.state_dict())


def test_per_source_streams_follow_source_weights(index):
    loader = _loader(index, stages=(3,), scale=60 / CURRICULUM_STAGES[3].steps, mode="stratified", batch_size=8,
                     source_weights={"i2t": {"srca": 3, "srcb": 1}})
    counts = Counter(stream for batch in loader for stream in batch["stream"])
    assert {"i2t/srca", "i2t/srcb", "t2i", "interleaved", "text"} == set(counts)
    assert counts["i2t/srca"] / (counts["i2t/srca"] + counts["i2t/srcb"]) == pytest.approx(0.75, abs=0.01)


def test_decoded_batch_is_model_ready(index):
    families_seen = set()
    for batch in _loader(index, stages=(3,), scale=20 / CURRICULUM_STAGES[3].steps, batch_size=8, mode="stratified"):
        assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
        assert batch["input_images"].dtype == torch.float32 and batch["input_images"].shape[1:] == (3, 64, 64)
        assert batch["input_images"].min() >= -1 and batch["input_images"].max() <= 1
        for i, family in enumerate(batch["family"].tolist()):
            families_seen.add(FAMILIES[family])
            # one image token per input image, as the `<image>` placeholders say
            assert int((batch["input_ids"][i] == 259).sum()) == int((batch["input_owner"] == i).sum())
            if FAMILIES[family] == "text":
                assert (batch["input_owner"] != i).all() and (batch["output_owner"] != i).all()
            if FAMILIES[family] in ("t2i", "interleaved"):
                assert int((batch["output_owner"] == i).sum()) == 1
    assert families_seen == set(FAMILIES)


def test_reads_a_real_build_without_manifest_help(stage1_build):
    index = build_index([stage1_build.out_dir])
    assert set(index.family) <= set(FAMILIES) and len(index) == stage1_build.result.kept
    batch = next(iter(_loader(index, scale=1e-4, batch_size=4)))
    assert len(batch["key"]) == 4 and set(batch["source"]) <= set(index.source)


def _index_rows(index) -> list[tuple]:
    """Every sample as (shard path, key, family, source, members): what the loader reads."""
    return [(index.shards[index.shard[i]], index.key(i), str(index.family[i]), str(index.source[i]),
             index.members(i)[1]) for i in range(len(index))]


def test_index_from_manifest_equals_the_tar_scan(tmp_path):
    with_manifest = write_synthetic_build(tmp_path / "a" / "syn", counts=COUNTS, per_shard=7, image_size=8)
    tars_only = write_synthetic_build(tmp_path / "b" / "syn", counts=COUNTS, per_shard=7, image_size=8,
                                      manifest=False)
    from_manifest, from_tars = build_index([with_manifest]), build_index([tars_only])
    assert len(from_manifest) == sum(COUNTS.values())
    rows_b = [(shard.replace(str(tars_only), str(with_manifest)), *rest) for shard, *rest in _index_rows(from_tars)]
    assert _index_rows(from_manifest) == rows_b


def test_index_of_a_real_build_from_its_manifest_equals_the_tar_scan(stage1_build, tmp_path):
    import shutil

    copy = tmp_path / stage1_build.out_dir.name
    shutil.copytree(stage1_build.out_dir / "shards", copy / "shards")  # the same shards, no manifest
    from_manifest, from_tars = build_index([stage1_build.out_dir]), build_index([copy])
    assert len(from_manifest) == stage1_build.result.kept > 0
    rows_b = [(shard.replace(str(copy), str(stage1_build.out_dir)), *rest) for shard, *rest in _index_rows(from_tars)]
    assert _index_rows(from_manifest) == rows_b


def test_a_shard_missing_from_disk_is_one_clear_error(tmp_path):
    build = write_synthetic_build(tmp_path / "syn", counts={"i2t": 4}, per_shard=2, image_size=8)
    next((build / "shards").rglob("*.tar")).unlink()
    with pytest.raises(FileNotFoundError, match="named by the manifest"):
        build_index([build])


def test_the_header_walk_reads_what_tarfile_reads(tmp_path):
    import io
    import tarfile

    from pipeline.curriculum.index import _walk_tarfile, _walk_ustar, scan_tar

    path = tmp_path / "mixed.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, size in (("a.json", 3), ("a.in0.png", 700), ("b.json", 0), ("x" * 120 + ".json", 5)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(b"z" * size))
    assert _walk_ustar(io.BytesIO(path.read_bytes())) is None  # the 120-character name needs a GNU long-name header
    assert [key for key, _ in scan_tar(path)] == ["a", "b", "x" * 120]
    short = tmp_path / "short.tar"
    with tarfile.open(short, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, size in (("d/a.json", 3), ("d/a.in0.png", 700), ("b.json", 0)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(b"z" * size))
    assert _walk_ustar(io.BytesIO(short.read_bytes())) == _walk_tarfile(short)
