"""Exact resume: N steps, stop, resume for N more == 2N steps straight, bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rql_lightning.config import compose_config
from rql_lightning.training import train
from tests.runs import TINY


def run(dataset: Path, out: Path, steps: int, *extra: str, ckpt: Path | None = None) -> dict:
    """A tiny run of ``steps`` (checkpoints every 5, no evaluation) into ``out``; its ``last.ckpt``."""
    overrides = [
        f"data.dataset_path={dataset}",
        f"paths.output_dir={out}",
        f"trainer.max_steps={steps}",
        *(o for o in TINY if not o.lstrip("+").startswith(("callbacks.", "trainer.log_every_n_steps"))),
        "trainer.log_every_n_steps=1",
        "callbacks.checkpoint.every_n_train_steps=5",
        "~callbacks.evaluation",
        *extra,
    ]
    if ckpt is not None:
        overrides.append(f"ckpt_path={ckpt}")
    train(compose_config(overrides))
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)


@pytest.mark.slow
def test_resumed_run_is_bit_identical_to_straight_run(cube_single_dataset, tmp_path):
    straight = run(cube_single_dataset, tmp_path / "straight", 10)
    first = run(cube_single_dataset, tmp_path / "first", 5)
    resumed = run(cube_single_dataset, tmp_path / "resumed", 10, ckpt=tmp_path / "first" / "checkpoints" / "last.ckpt")
    assert straight["global_step"] == resumed["global_step"] == 10
    assert first["global_step"] == 5
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    # Adam's moments too.
    for a, b in zip(
        straight["optimizer_states"][0]["state"].values(), resumed["optimizer_states"][0]["state"].values(), strict=True
    ):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    # And the run moved at all between step 5 and 10.
    assert any(not torch.equal(v, first["state_dict"][k]) for k, v in resumed["state_dict"].items())


@pytest.mark.slow
def test_same_seed_same_machine_gives_identical_training(cube_single_dataset, tmp_path):
    a = run(cube_single_dataset, tmp_path / "a", 5)
    b = run(cube_single_dataset, tmp_path / "b", 5)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
