"""The reference training loop: per-family losses fall, exact resume, and DDP under torchrun (gloo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")  # the `train` extra

from pipeline.bench.loader import write_synthetic_build  # noqa: E402
from pipeline.curriculum.train import TrainConfig, latest_checkpoint, loss_trend, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COUNTS = {"i2t": 16, "t2i": 12, "interleaved": 8, "text": 8}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_synthetic_build(tmp_path_factory.mktemp("train") / "syn", counts=COUNTS, per_shard=20, image_size=16)


def _config(build: Path, out: Path, **changes) -> TrainConfig:
    base = dict(builds=[str(build)], out=str(out), stages=(3,), steps=40, batch_size=8, lr=3e-3, dim=32, layers=1,
                image_size=16, max_tokens=96, log_every=10, checkpoint_every=1000)
    base.update(changes)
    return TrainConfig(**base)


def test_every_family_loss_falls(synthetic, tmp_path):
    history = train(_config(synthetic, tmp_path / "run"))
    trend = loss_trend(history, window=1)
    assert set(trend) == {"i2t", "t2i", "interleaved", "text"}
    for family, (first, last) in trend.items():
        assert last < first, (family, first, last)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [10, 20, 30, 40]
    saved = torch.load(latest_checkpoint(tmp_path / "run"), weights_only=False)
    assert {"model", "optimizer", "loader", "step"} <= set(saved) and saved["loader"]["step"] == 40


def test_resume_from_checkpoint_matches_an_uninterrupted_run(synthetic, tmp_path):
    straight = train(_config(synthetic, tmp_path / "a", steps=12, log_every=2))
    head = train(_config(synthetic, tmp_path / "b", steps=12, log_every=2, stop_after=5))
    assert latest_checkpoint(tmp_path / "b").name == "step-0000005.pt"
    tail = train(_config(synthetic, tmp_path / "b", steps=12, log_every=2, resume=True))
    # logging windows restart at the resume, so compare the windows that do not straddle step 5
    resumed = [row for row in head + tail if row["step"] != 6]
    assert resumed == [row for row in straight if row["step"] != 6]
    a = torch.load(latest_checkpoint(tmp_path / "a"), weights_only=False)["model"]
    b = torch.load(latest_checkpoint(tmp_path / "b"), weights_only=False)["model"]
    assert all(torch.equal(a[name], b[name]) for name in a)


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed")
def test_ddp_two_ranks_under_torchrun(synthetic, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", "2",
               "-m", "pipeline.cli", "train", "--stage", "3", "--build", str(synthetic), "--out", str(tmp_path / "ddp"),
               "--steps", "6", "--batch-size", "4", "--log-every", "3", "--workers", "1"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [3, 6]
    # both ranks' samples are in the averaged log: 2 ranks x 4 per rank x 3 steps per window
    assert all(sum(f["samples"] for f in row["families"].values()) == 24 for row in rows)
