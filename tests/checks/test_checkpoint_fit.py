"""Resuming from a checkpoint that does not fit the run names what differs, before any weight is loaded."""

from __future__ import annotations

import pytest

from rql_lightning.config import compose_config
from rql_lightning.errors import UserError
from rql_lightning.training import train
from tests.runs import TINY


def _cfg(dataset, out, *extra):
    return compose_config([f"data.dataset_path={dataset}", *TINY, "eval.episodes=0", f"paths.output_dir={out}", *extra])


@pytest.fixture(scope="module")
def checkpoint(cube_single_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    train(_cfg(cube_single_dataset, out, "trainer.max_steps=3"))
    return out / "checkpoints" / "last.ckpt"


@pytest.mark.slow
def test_resume_with_other_network_sizes_names_each_key(checkpoint, cube_single_dataset, tmp_path):
    # docs/errors.md row 37
    cfg = _cfg(
        cube_single_dataset,
        tmp_path,
        "trainer.max_steps=5",
        f"ckpt_path={checkpoint}",
        "model.critic_hidden_dims=[16,16]",
        "model.num_critics=3",
    )
    with pytest.raises(UserError) as err:
        train(cfg)
    message = str(err.value)
    assert "does not fit this run" in message
    assert "model.num_critics=2 in the checkpoint, 3 here" in message
    assert "model.critic_hidden_dims=[32, 32] in the checkpoint, [16, 16] here" in message
    assert "size mismatch" not in message and "\n" not in message


@pytest.mark.slow
def test_resume_with_another_model_class_says_so(checkpoint, cube_single_dataset, tmp_path):
    # docs/errors.md row 38
    cfg = _cfg(cube_single_dataset, tmp_path, "trainer.max_steps=5", f"ckpt_path={checkpoint}", "model=fql")
    with pytest.raises(UserError, match="was written by .*resume with the model it was trained with"):
        train(cfg)


@pytest.mark.slow
def test_resume_with_the_same_settings_continues(checkpoint, cube_single_dataset, tmp_path):
    summary = train(_cfg(cube_single_dataset, tmp_path, "trainer.max_steps=5", f"ckpt_path={checkpoint}"))
    assert summary["step"] == 5
