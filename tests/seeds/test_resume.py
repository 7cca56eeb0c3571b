"""A seed-batched run through ``train``: exact resume, and one seed exported resumes as a single run."""

from __future__ import annotations

import pytest
import torch

from rql_lightning.config import compose_config
from rql_lightning.modules.seed_export import export_seed
from rql_lightning.training import train
from tests.runs import TINY
from tests.training.test_resume import run

SEEDS = "[0,1]"


def moments(ckpt: dict) -> list[torch.Tensor]:
    return [t for s in ckpt["optimizer_states"][0]["state"].values() for t in (s["exp_avg"], s["exp_avg_sq"])]


@pytest.fixture(scope="module")
def runs(cube_single_dataset, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("seed-runs")
    return {
        "straight": run(cube_single_dataset, root / "straight", 10, f"seeds={SEEDS}"),
        "first": run(cube_single_dataset, root / "first", 5, f"seeds={SEEDS}"),
        "root": root,
    }


@pytest.mark.slow
def test_multi_seed_resume_is_bit_identical_to_straight_run(runs, cube_single_dataset):
    first_ckpt = runs["root"] / "first" / "checkpoints" / "last.ckpt"
    resumed = run(cube_single_dataset, runs["root"] / "resumed", 10, f"seeds={SEEDS}", f"ckpt_path={first_ckpt}")
    straight = runs["straight"]
    assert straight["global_step"] == resumed["global_step"] == 10
    assert straight["state_dict"]["policy.velocity_net.weights.0"].shape[0] == 2  # one checkpoint, all seeds
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    for a, b in zip(moments(straight), moments(resumed), strict=True):
        assert torch.equal(a, b)
    assert any(not torch.equal(v, runs["first"]["state_dict"][k]) for k, v in resumed["state_dict"].items())


@pytest.mark.slow
def test_seed_of_a_batched_run_equals_its_single_run_and_exports_as_one(runs, cube_single_dataset, tmp_path):
    straight = runs["straight"]["state_dict"]
    single = run(cube_single_dataset, tmp_path / "single", 10, "seed=1")
    for key, value in single["state_dict"].items():
        torch.testing.assert_close(straight[key][1], value, rtol=1e-5, atol=1e-6, msg=key)

    exported = export_seed(runs["root"] / "first" / "checkpoints" / "last.ckpt", 1, tmp_path / "seed1.ckpt")
    continued = run(cube_single_dataset, tmp_path / "continued", 10, "seed=1", f"ckpt_path={exported}")
    assert continued["global_step"] == 10
    assert continued["state_dict"].keys() == single["state_dict"].keys()
    for key, value in continued["state_dict"].items():
        torch.testing.assert_close(straight[key][1], value, rtol=1e-5, atol=1e-6, msg=key)
    for a, b in zip(moments(runs["straight"]), moments(continued), strict=True):
        torch.testing.assert_close(a[1], b, rtol=1e-5, atol=1e-8)


@pytest.mark.slow
def test_resume_with_other_seeds_is_refused_in_one_line(runs, cube_single_dataset, tmp_path):
    from rql_lightning.errors import UserError

    first_ckpt = runs["root"] / "first" / "checkpoints" / "last.ckpt"
    with pytest.raises(UserError, match=r"seeds"):
        run(cube_single_dataset, tmp_path / "other", 10, "seeds=[0,2]", f"ckpt_path={first_ckpt}")


@pytest.mark.slow
def test_a_seed_batched_checkpoint_resumed_as_one_run_points_to_the_export(cube_single_dataset, tmp_path):
    from rql_lightning.checks import read_checkpoint
    from rql_lightning.errors import UserError

    base = [f"data.dataset_path={cube_single_dataset}", *TINY, "eval.episodes=0"]
    train(compose_config([*base, "trainer.max_steps=2", "seeds=[0,1]", f"paths.output_dir={tmp_path / 'a'}"]))
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    for extra, expected in (
        (["seeds=[0,1,2]"], "does not fit this run: seeds=[0, 1] in the checkpoint, [0, 1, 2] here"),
        ([], "rql_lightning.modules.seed_export"),
    ):
        cfg = compose_config(
            [*base, "trainer.max_steps=4", f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path}", *extra]
        )
        with pytest.raises(UserError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            train(cfg)
    read_checkpoint(ckpt)  # readable as a checkpoint on its own
